"""``manage.py create_api_key --account SLUG --name NAME --scopes a:read,b:write`` or
``--tenant ID``: prints the key on its last line, the only time it is shown."""

import datetime as dt

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from billing import services as billing_services
from billing.models import Tenant
from metering import domain, services
from metering.management.commands.create_account import _messages
from metering.models import Account


class Command(BaseCommand):
    help = "Create an account key (--account, --scopes) or a tenant's portal key (--tenant)."

    def add_arguments(self, parser):
        parser.add_argument("--account", help="Slug of the account (account keys).")
        parser.add_argument("--name", default="", help="A label for the key.")
        parser.add_argument(
            "--scopes",
            help=f"Comma-separated, among {','.join(domain.SCOPES)}; 'all' for every scope.",
        )
        parser.add_argument("--tenant", type=int, help="Tenant id (portal keys).")
        parser.add_argument("--expires-at", help="Expiry, ISO 8601 date or datetime (UTC).")

    def handle(self, *args, account, name, scopes, tenant, expires_at, **options):
        expiry = _parse_expiry(expires_at)
        if tenant is not None:
            if scopes:
                raise CommandError("Portal keys have no scopes: leave out --scopes.")
            found = Tenant.objects.filter(pk=tenant)
            if account:
                found = found.filter(account__slug=account)
            tenant_obj = found.first()
            if tenant_obj is None:
                raise CommandError(
                    f"No tenant with id {tenant}"
                    + (f" in account {account!r}." if account else ".")
                )
            key, raw = billing_services.create_portal_key(
                tenant=tenant_obj, name=name or f"portal {tenant_obj.name}", expires_at=expiry
            )
            self.stdout.write(f"Created portal key {key.prefix}… for tenant {tenant_obj.name}.")
            self.stdout.write(raw)
            return

        if not account:
            raise CommandError("Give --account SLUG (account key) or --tenant ID (portal key).")
        account_obj = Account.objects.filter(slug=account).first()
        if account_obj is None:
            raise CommandError(f"No account with slug {account!r}.")
        if not scopes:
            raise CommandError(f"Give --scopes, among {','.join(domain.SCOPES)} (or 'all').")
        scope_list = (
            list(domain.SCOPES)
            if scopes.strip() == "all"
            else [scope.strip() for scope in scopes.split(",") if scope.strip()]
        )
        unknown = domain.unknown_scopes(scope_list)
        if unknown or not scope_list:
            raise CommandError(
                f"Unknown scope(s) {', '.join(unknown) or scopes!r}; "
                f"valid: {','.join(domain.SCOPES)}."
            )
        try:
            key, raw = services.create_api_key(
                account=account_obj,
                name=name or "command line",
                scopes=scope_list,
                expires_at=expiry,
            )
        except ValidationError as exc:
            raise CommandError(_messages(exc)) from None
        self.stdout.write(
            f"Created account key {key.prefix}… for {account_obj.slug} "
            f"with scopes {' '.join(key.scopes)}."
        )
        self.stdout.write(raw)


def _parse_expiry(value: str | None):
    if not value:
        return None
    try:
        moment = parse_datetime(value)
        if moment is None:
            day = parse_date(value)
            if day is not None:
                moment = dt.datetime(day.year, day.month, day.day)
    except ValueError:
        moment = None
    if moment is None:
        raise CommandError(f"--expires-at {value!r} is not an ISO 8601 date or datetime.")
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, dt.UTC)
    if moment <= timezone.now():
        raise CommandError("--expires-at is in the past.")
    return moment

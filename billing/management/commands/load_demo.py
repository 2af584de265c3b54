"""``manage.py load_demo [--password PASSWORD]``: rebuild the demo account from scratch.

Prints what was built, the admin URL, the staff login and, on its last line, an account key
with every scope (the only time it is shown).
"""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.models import ProtectedError, RestrictedError

from billing import demo as demo_data
from metering.management.commands.create_account import _messages


class Command(BaseCommand):
    help = (
        f"Rebuild the demo account (slug {demo_data.DEMO_SLUG!r}): two buildings with their "
        "lots, supply points, gateways, meters and registers, two years of readings and of "
        "utility bills up to today, tariffs, tenants and their leases, meter shares, "
        "allocation rules, a closed and a draft billing period per building, a staff "
        f"login {demo_data.DEMO_USERNAME!r} and an API key with every scope. Any existing "
        f"account with slug {demo_data.DEMO_SLUG!r} is deleted first, with all its data."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--password",
            help=(
                f"Password of the {demo_data.DEMO_USERNAME!r} login "
                "(default: a new random one on each run)."
            ),
        )

    def handle(self, *args, password: str | None, **options):
        _check_migrations()
        if password is None:
            password = secrets.token_urlsafe(12)
        else:
            _check_password(password)
        try:
            # One transaction: a failure leaves the previous demo as it was.
            with transaction.atomic():
                demo = demo_data.build_demo(password=password)
                counts = demo_data.summary(demo.account)
        except demo_data.DemoError as exc:
            raise CommandError(str(exc)) from None
        except ValidationError as exc:
            raise CommandError(f"The demo data breaks a rule: {_messages(exc)}") from None
        except (ProtectedError, RestrictedError) as exc:
            raise CommandError(
                f"The existing {demo_data.DEMO_SLUG!r} account cannot be deleted: {exc.args[0]}"
            ) from None
        except DatabaseError as exc:
            raise CommandError(f"The database refused the demo: {exc}".strip()) from None

        account = demo.account
        self.stdout.write(f"Built the demo account {account.name!r} (slug {account.slug}):")
        self.stdout.write(
            f"  {counts['places']} places, {counts['estates']} estates, "
            f"{counts['service places']} service places, {counts['gateways']} gateways"
        )
        self.stdout.write(
            f"  {counts['meters']} meters ({counts['meters with sub-meters']} with sub-meters, "
            f"{counts['sub-meters']} sub-meters), {counts['registers']} registers"
        )
        self.stdout.write(f"  {counts['tariffs']} tariffs, {counts['tenants']} tenants")
        manual = counts["meters"] - counts["automatic meters"]
        self.stdout.write(
            f"  {counts['readings']} readings over {demo_data.HISTORY_YEARS} years (daily on "
            f"{counts['automatic meters']} automatic meters, monthly on {manual} manual ones)"
        )
        self.stdout.write(
            f"  flagged by the engine: {counts['rollovers']} rollovers, {counts['spikes']} "
            f"spikes, {counts['drops']} drops, {counts['negative']} negative "
            f"({counts['deviations']} deviations)"
        )
        self.stdout.write(
            f"  {counts['period readings']} utility bills (period readings) on "
            f"{counts['billed meters']} supplied meters"
        )
        self.stdout.write(
            f"  {counts['leases']} leases, {counts['meter shares']} meter shares, "
            f"{counts['allocation rules']} allocation rules"
        )
        self.stdout.write(
            f"  {counts['billing periods']} billing periods ({counts['closed periods']} closed, "
            f"{counts['draft periods']} draft) with {counts['charges']} charges "
            f"({counts['vacancy charges']} for vacant lots)"
        )
        self.stdout.write(
            f"  {counts['device replacements']} device replacement (the meter's devices: "
            "serial-number history)"
        )
        self.stdout.write(f"Admin: {demo_data.ADMIN_URL}")
        self.stdout.write(f"Username: {demo_data.DEMO_USERNAME}")
        self.stdout.write(f"Password: {password}")
        self.stdout.write("API key with every scope (shown only now):")
        self.stdout.write(demo.api_key)


def _check_migrations() -> None:
    """Refuse to start on a database that is unreachable or not fully migrated."""
    try:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError as exc:
        raise CommandError(f"Cannot read the database: {exc}".strip()) from None
    if pending:
        raise CommandError(
            f"The database has {len(pending)} unapplied migration(s): "
            "run `python manage.py migrate` first."
        )


def _check_password(password: str) -> None:
    """A staff login gets a password the project's validators accept."""
    user = get_user_model()(
        username=demo_data.DEMO_USERNAME, first_name="Demo", email="demo@example.com"
    )
    try:
        password_validation.validate_password(password, user=user)
    except ValidationError as exc:
        raise CommandError(f"--password is refused: {' '.join(exc.messages)}") from None

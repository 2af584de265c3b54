"""``manage.py create_account NAME --slug SLUG [--currency EUR] [--timezone Europe/Paris]``."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError

from metering import services
from metering.models import Account


class Command(BaseCommand):
    help = "Create an account; prints its id on the last line."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--slug", required=True)
        parser.add_argument("--currency", default="EUR", help="ISO 4217 code (default EUR).")
        parser.add_argument(
            "--timezone", default="Europe/Paris", help="IANA time zone (default Europe/Paris)."
        )

    def handle(self, *args, name, slug, currency, timezone, **options):
        if Account.objects.filter(slug=slug).exists():
            raise CommandError(f"An account with slug {slug!r} already exists.")
        try:
            account = services.create_account(
                name=name, slug=slug, currency=currency, timezone=timezone
            )
        except ValidationError as exc:
            raise CommandError(_messages(exc)) from None
        except IntegrityError:
            raise CommandError(f"An account with slug {slug!r} already exists.") from None
        self.stdout.write(f"Created account {account.name} ({account.slug}).")
        self.stdout.write(str(account.id))


def _messages(exc: ValidationError) -> str:
    if hasattr(exc, "message_dict"):
        return "; ".join(
            f"{field}: {' '.join(messages)}" for field, messages in exc.message_dict.items()
        )
    return " ".join(exc.messages)

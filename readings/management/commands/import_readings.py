"""``manage.py import_readings PATH --account SLUG [--dry-run] [--errors-out FILE]`` (CONTRACT §7).

A CSV of index readings, the API's field names as headers (``serial_number``,
``reading_date``, ``value``, ``register``, ...); an ``export_readings`` file reads back. The
rules (columns, skipped and rejected rows, one transaction, the engine's checks) are
``readings.imports``'s. Summary line and exit status (1 when a row is rejected or the import
stops): see ``metering.csv_files``.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from metering.models import Account
from readings import imports


def account_of(slug: str) -> Account:
    account = Account.objects.filter(slug=slug).first()
    if account is None:
        raise CommandError(f"Unknown account {slug!r}.")
    return account


def add_import_arguments(parser) -> None:
    parser.add_argument("path", help="CSV file, ',' or ';' delimited, UTF-8.")
    parser.add_argument("--account", required=True, help="The account's slug.")
    parser.add_argument("--dry-run", action="store_true", help="Validate every row, store nothing.")
    parser.add_argument(
        "--errors-out", metavar="FILE", help="Write rejected rows (line, code, message)."
    )


class Command(BaseCommand):
    help = "Import index readings from a CSV file (the API's field names as headers)."
    importer = staticmethod(imports.import_readings)
    actor_label = "system:import_readings"

    def add_arguments(self, parser):
        add_import_arguments(parser)

    def handle(self, *args, path, account, dry_run, errors_out, **options):
        result = self.importer(
            account=account_of(account),
            path=path,
            dry_run=dry_run,
            errors_out=errors_out,
            stdout=self.stdout,
            stderr=self.stderr,
            actor_label=self.actor_label,
        )
        if result.failure:
            raise CommandError(result.failure, returncode=1)

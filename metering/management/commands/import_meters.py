"""``manage.py import_meters PATH --account SLUG [--dry-run] [--errors-out FILE]`` (CONTRACT §7).

The columns, the rules and the transaction are ``metering.imports.import_meters``', which the
admin's import page calls too. Exit status and summary line: see ``metering.csv_files``.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from metering.imports import METER_COLUMNS as COLUMNS

# The names this module defined before metering.imports, for code that imported them here.
from metering.imports import (  # noqa: F401
    AccountReferences,
    ImportResult,
    ParentNotYet,
    RecordingCsvImport,
    RowRejected,
    import_meter_rows,
    meter_values,
    validation_messages,
)
from metering.models import Account


class Command(BaseCommand):
    help = "Import meters from a CSV file (the API's field names as headers)."

    def add_arguments(self, parser):
        parser.add_argument("path", help="CSV file, ',' or ';' delimited, UTF-8.")
        parser.add_argument("--account", required=True, help="The account's slug.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Validate every row, store nothing."
        )
        parser.add_argument(
            "--errors-out", metavar="FILE", help="Write rejected rows (line, code, message)."
        )

    def handle(self, *args, path, account, dry_run, errors_out, **options):
        slug = account
        # The file is opened before the account is looked up: an unreadable file is reported
        # as such, without touching the database.
        with RecordingCsvImport(
            path, columns=COLUMNS, errors_out=errors_out, stdout=self.stdout, stderr=self.stderr
        ) as csv_import:
            account = Account.objects.filter(slug=slug).first()
            if account is None:
                raise CommandError(f"Unknown account {slug!r}.")
            import_meter_rows(csv_import, account=account, dry_run=dry_run)
            result = ImportResult.of(csv_import, label="Meters", dry_run=dry_run)
        if result.failure:
            raise CommandError(result.failure, returncode=1)

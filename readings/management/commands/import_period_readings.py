"""``manage.py import_period_readings PATH --account SLUG [--dry-run] [--errors-out FILE]``.

A CSV of period readings (CONTRACT §4.4, §7), the API's field names as headers
(``serial_number``, ``start_date``, ``end_date``, ``consumption``, ``cost``,
``cost_currency``, ``demand_kw``, ``is_estimated``, ``notes``). The rules are
``readings.imports``'s; the options and exit status those of ``import_readings``.
"""

from __future__ import annotations

from readings import imports
from readings.management.commands import import_readings


class Command(import_readings.Command):
    help = "Import period readings from a CSV file (the API's field names as headers)."
    importer = staticmethod(imports.import_period_readings)
    actor_label = "system:import_period_readings"

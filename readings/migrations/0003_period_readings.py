"""Period readings (CONTRACT §4.4): an index for the series, and no overlap on PostgreSQL.

Two period readings of one meter never share a day. ``readings.periods`` refuses overlaps under
the meter's row lock, on every database; on PostgreSQL an exclusion constraint holds the rule
in the database too (``btree_gist``, a trusted extension since PostgreSQL 13: the database
owner may create it). SQLite, used by the demo, has no such constraint: the operation does
nothing there. A violation is SQLSTATE 23P01, answered as 409 ``overlap``.
"""

from django.db import migrations, models

CONSTRAINT = "period_reading_no_overlap"


def add_exclusion_constraint(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    schema_editor.execute(
        f"ALTER TABLE readings_periodreading ADD CONSTRAINT {CONSTRAINT} "
        "EXCLUDE USING gist (meter_id WITH =, daterange(start_date, end_date, '[]') WITH &&)"
    )


def drop_exclusion_constraint(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        f"ALTER TABLE readings_periodreading DROP CONSTRAINT IF EXISTS {CONSTRAINT}"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("readings", "0002_engine_fields_and_history"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="periodreading",
            index=models.Index(fields=["meter", "end_date"], name="readings_pe_meter_i_2c9f18_idx"),
        ),
        migrations.RunPython(add_exclusion_constraint, drop_exclusion_constraint, elidable=False),
    ]

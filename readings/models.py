"""Index readings and period readings.

The stored ``previous_value``, ``consumption``, ``is_rollover`` and anomaly flags are derived by
the readings engine (``readings.services``) from the register's series: they are always what
a fresh in-order computation gives (``readings.domain``). Every change to a reading, by any path
and including bulk writes, is recorded by database triggers (django-pghistory) with its context.
"""

from __future__ import annotations

import pghistory
from django.db import models

from metering.models import Account, AccountScopedQuerySet, Meter, Register, TimeStampedModel

from . import domain

READING_TYPES = [(t, t) for t in ("MANUAL", "AUTOMATIC", "PHOTO", "ESTIMATED")]
SOURCES = [(s, s) for s in ("API", "IMPORT", "PORTAL", "ADMIN")]


class FlaggedModel(TimeStampedModel):
    """Anomaly flags (CONTRACT §4.2) as one boolean column each: portable and filterable."""

    flag_deviation = models.BooleanField(default=False)
    flag_spike = models.BooleanField(default=False)
    flag_drop = models.BooleanField(default=False)
    flag_negative = models.BooleanField(default=False)

    class Meta:
        abstract = True

    @property
    def anomaly_flags(self) -> list[str]:
        return [flag for flag in domain.FLAGS if getattr(self, domain.FLAG_FIELDS[flag])]

    def set_flags(self, flags: frozenset[str] | set[str] | tuple[str, ...]) -> None:
        for flag, field in domain.FLAG_FIELDS.items():
            setattr(self, field, flag in flags)


@pghistory.track(
    pghistory.InsertEvent(),
    pghistory.UpdateEvent(),
    pghistory.DeleteEvent(),
    model_name="ReadingEvent",
    # One trigger call per statement, over its transition tables: a batch of 500 readings
    # writes its 500 events in one INSERT ... SELECT instead of 500 trigger calls.
    level=pghistory.Statement,
    # A reading's history (by pgh_obj) and a meter's, newest first (readings.selectors).
    meta={
        "indexes": [
            models.Index(fields=["pgh_obj", "pgh_id"], name="readingevent_obj_idx"),
            models.Index(fields=["meter", "pgh_id"], name="readingevent_meter_idx"),
            models.Index(fields=["pgh_context"], name="readingevent_context_idx"),
        ]
    },
)
class Reading(FlaggedModel):
    """An index reading of one register at one instant."""

    # No index of their own: (account, reading_date), (meter, reading_date) and the unique
    # (register, reading_date) serve them; each index slows every write of readings.
    account = models.ForeignKey(
        Account, on_delete=models.CASCADE, related_name="readings", db_index=False
    )
    meter = models.ForeignKey(
        Meter, on_delete=models.RESTRICT, related_name="readings", db_index=False
    )
    register = models.ForeignKey(
        Register, on_delete=models.RESTRICT, related_name="readings", db_index=False
    )
    reading_date = models.DateTimeField()
    value = models.DecimalField(max_digits=20, decimal_places=6)
    reading_type = models.CharField(max_length=16, choices=READING_TYPES, default="MANUAL")
    is_estimated = models.BooleanField(default=False)
    is_billing_reading = models.BooleanField(default=False)
    # A reading taken for a lease (move-in, move-out): the one reference from readings to
    # billing besides the meter's tariff, kept as a lazy reference.
    lease = models.ForeignKey(
        "billing.Lease",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="readings",
        db_index=False,  # indexed where set only (Meta): most readings have no lease
    )
    photo_url = models.URLField(max_length=500, blank=True, default="")
    # A photo sent through the portal: its name in the default storage, never served as public
    # media (the API hands it out: ``.../readings/{id}/photo/``), see ``readings.photos``.
    photo = models.FileField(max_length=200, blank=True, default="", db_default="")
    reader_name = models.CharField(max_length=100, blank=True, default="")
    notes = models.TextField(blank=True, default="")
    source = models.CharField(max_length=8, choices=SOURCES, default="API")
    created_by = models.CharField(max_length=150, blank=True, default="")
    previous_value = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    # Exact: value (6 decimals) × multiplier (6) × transformer ratio (6).
    consumption = models.DecimalField(max_digits=38, decimal_places=18, null=True, blank=True)
    is_rollover = models.BooleanField(default=False)

    objects = AccountScopedQuerySet.as_manager()

    class Meta:
        ordering = ["register_id", "reading_date"]
        constraints = [
            models.UniqueConstraint(
                fields=["register", "reading_date"], name="reading_unique_register_date"
            ),
            models.CheckConstraint(condition=models.Q(value__gte=0), name="reading_value_positive"),
        ]
        indexes = [
            models.Index(fields=["meter", "reading_date"]),
            models.Index(fields=["account", "reading_date"]),
            models.Index(
                fields=["lease"],
                condition=models.Q(lease__isnull=False),
                name="reading_lease_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.register} @ {self.reading_date:%Y-%m-%d %H:%M}: {self.value}"

    @property
    def is_locked(self) -> bool:
        locked_until = self.register.locked_until
        return locked_until is not None and self.reading_date <= locked_until


class PeriodReadingQuerySet(AccountScopedQuerySet):
    def with_lock(self) -> PeriodReadingQuerySet:
        """Each row with its meter's lock instant (``meter_locked_until``), in the same query."""
        default = Register.objects.filter(meter=models.OuterRef("meter_id"), is_default=True)
        return self.annotate(meter_locked_until=models.Subquery(default.values("locked_until")[:1]))


@pghistory.track(
    pghistory.InsertEvent(),
    pghistory.UpdateEvent(),
    pghistory.DeleteEvent(),
    model_name="PeriodReadingEvent",
    # One trigger call per statement, over its transition tables: a batch of 500 readings
    # writes its 500 events in one INSERT ... SELECT instead of 500 trigger calls.
    level=pghistory.Statement,
    meta={
        "indexes": [
            models.Index(fields=["pgh_obj", "pgh_id"], name="periodevent_obj_idx"),
            models.Index(fields=["meter", "pgh_id"], name="periodevent_meter_idx"),
            models.Index(fields=["pgh_context"], name="periodevent_context_idx"),
        ]
    },
)
class PeriodReading(FlaggedModel):
    """Consumption known for a whole period, such as a utility bill.

    Written by ``readings.periods`` only: it keeps the flags current, refuses overlaps and
    honours locks. Periods of one meter never overlap (on PostgreSQL an exclusion constraint
    holds it too, see migration 0003).
    """

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="period_readings")
    meter = models.ForeignKey(Meter, on_delete=models.RESTRICT, related_name="period_readings")
    start_date = models.DateField()
    end_date = models.DateField()
    consumption = models.DecimalField(max_digits=24, decimal_places=6)
    cost = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    cost_currency = models.CharField(max_length=3, blank=True, default="")
    demand_kw = models.DecimalField(max_digits=14, decimal_places=3, null=True, blank=True)
    is_estimated = models.BooleanField(default=False)
    notes = models.TextField(blank=True, default="")
    source = models.CharField(max_length=8, choices=SOURCES, default="API")
    created_by = models.CharField(max_length=150, blank=True, default="")

    objects = PeriodReadingQuerySet.as_manager()

    class Meta:
        ordering = ["meter_id", "start_date"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(end_date__gte=models.F("start_date")),
                name="period_reading_end_after_start",
            )
        ]
        indexes = [models.Index(fields=["meter", "end_date"])]

    def __str__(self) -> str:
        return f"{self.meter} {self.start_date}..{self.end_date}: {self.consumption}"

    @property
    def is_locked(self) -> bool:
        """Whether a closed billing period reaches it (``domain.period_is_locked``).

        Reads ``meter_locked_until`` as ``PeriodReadingQuerySet.with_lock`` and the services set
        it; an instance loaded without it asks the database.
        """
        if not hasattr(self, "meter_locked_until"):
            self.meter_locked_until = (
                Register.objects.filter(meter_id=self.meter_id, is_default=True)
                .values_list("locked_until", flat=True)
                .first()
            )
        return domain.period_is_locked(self.start_date, self.meter_locked_until, self.account.zone)

"""Reads of the readings app: the audit history of index and period readings (CONTRACT §4.7),
and consumption over time (CONTRACT §4.5)."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import DateTimeField, Exists, F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce

from metering import domain as metering_domain
from metering.models import Account, Meter, Place, Register
from readings import domain, periods, services
from readings.models import PeriodReading, Reading

ReadingEvent = Reading.pgh_event_model

# What a change shows: the fields a user writes and the ones the engine derives.
AUDITED_FIELDS = (
    "register_id",
    "reading_date",
    "value",
    "reading_type",
    "is_estimated",
    "is_billing_reading",
    "lease_id",
    "photo_url",
    "reader_name",
    "notes",
    "previous_value",
    "consumption",
    "is_rollover",
    *domain.FLAG_FIELDS.values(),
)


@dataclass(frozen=True)
class HistoryEntry:
    """One change of one reading: who, when, through which path, and each field's values."""

    reading_id: int
    at: dt.datetime
    action: str  # insert, update, delete
    actor: str
    source: str
    changes: dict[str, tuple[Any, Any]]  # field -> (before, after)


def reading_history(
    *, reading_ids: list[int] | None = None, meter_id: int | None = None, limit: int = 200
) -> list[HistoryEntry]:
    """The latest changes of some readings (by id) or of a meter's readings, newest first.

    Each update shows only the fields it changed, with their values before and after (the
    snapshot of the reading's previous event). Two queries whatever the number of events.
    """
    return _history(ReadingEvent, AUDITED_FIELDS, reading_ids, meter_id, limit)


def _history(
    event_model, fields: tuple[str, ...], ids: list[int] | None, meter_id: int | None, limit: int
) -> list[HistoryEntry]:
    events = event_model.objects.all()
    if ids is not None:
        events = events.filter(pgh_obj_id__in=ids)
    if meter_id is not None:
        events = events.filter(meter_id=meter_id)
    latest = list(events.select_related("pgh_context").order_by("-pgh_id")[:limit])
    if not latest:
        return []
    # The events before the oldest shown one, for the "before" side of its changes.
    earlier = (
        event_model.objects.filter(
            pgh_obj_id__in={event.pgh_obj_id for event in latest},
            pgh_id__lt=min(event.pgh_id for event in latest),
        )
        .order_by("pgh_obj_id", "-pgh_id")
        .distinct("pgh_obj_id")
        if len(latest) == limit
        else []
    )
    shown = {event.pgh_id for event in latest}
    previous: dict[int, Any] = {}
    entries = []
    for event in sorted([*earlier, *latest], key=lambda event: event.pgh_id):
        if event.pgh_id in shown:
            entries.append(_entry(event, previous.get(event.pgh_obj_id), fields))
        previous[event.pgh_obj_id] = event
    entries.reverse()
    return entries


def _entry(event, before, fields: tuple[str, ...]) -> HistoryEntry:
    metadata = event.pgh_context.metadata if event.pgh_context else {}
    if event.pgh_label == "insert":
        changes = {name: (None, getattr(event, name)) for name in fields}
    elif event.pgh_label == "delete":
        changes = {name: (getattr(event, name), None) for name in fields}
    else:
        changes = {
            name: (getattr(before, name) if before else None, getattr(event, name))
            for name in fields
            if before is None or getattr(before, name) != getattr(event, name)
        }
    return HistoryEntry(
        reading_id=event.pgh_obj_id,
        at=event.pgh_created_at,
        action=event.pgh_label,
        actor=metadata.get("actor", ""),
        source=metadata.get("source", ""),
        changes=changes,
    )


# --- period readings -------------------------------------------------------------------------

PeriodReadingEvent = PeriodReading.pgh_event_model

# What a change shows: every field a user writes, and the flags derived from them.
PERIOD_AUDITED_FIELDS = (*periods.EDITABLE_FIELDS, *domain.FLAG_FIELDS.values())


def period_reading_history(
    *, period_ids: list[int] | None = None, meter_id: int | None = None, limit: int = 200
) -> list[HistoryEntry]:
    """The latest changes of some period readings (by id) or of a meter's, newest first.

    As ``reading_history``: each update shows the fields it changed, before and after; its
    ``reading_id`` is the period reading's id. Two queries whatever the number of events.
    """
    return _history(PeriodReadingEvent, PERIOD_AUDITED_FIELDS, period_ids, meter_id, limit)


# --- consumption over time (CONTRACT §4.5) ---------------------------------------------------


@dataclass(frozen=True)
class Source:
    """A register whose intervals are spread, with its meter's period readings or not."""

    meter_id: int
    register_id: int
    with_period_readings: bool


@dataclass(frozen=True)
class BucketTotal:
    """One bucket of one meter: consumption (the register's unit), whether part of it is
    estimated, and the number of index readings dated in the bucket."""

    consumption: Decimal
    is_estimated: bool
    readings_count: int


EMPTY_BUCKET = BucketTotal(Decimal(0), False, 0)


def spread_consumption(
    *,
    account: Account,
    sources: Sequence[Source],
    ranges: Sequence[domain.Bucket],
    strategy: str | None = None,
) -> dict[int, list[BucketTotal]]:
    """Each source meter's consumption per bucket of ``ranges`` (CONTRACT §4.5).

    The figures are ``domain.consumption_per_bucket``'s. ``ranges`` are contiguous buckets
    (``domain.buckets``) in the account's time zone. On PostgreSQL one aggregation query
    computes them, whatever the number of readings and sources (``SPREAD_SQL``, by
    ``strategy``: ``probe`` or ``scan``, chosen by ``spread_strategy`` when None); elsewhere
    (the SQLite demo) two queries load the readings and Python computes the same figures.
    """
    if not ranges:
        return {source.meter_id: [] for source in sources}
    if not sources:
        return {}
    if connection.vendor != "postgresql":
        return _spread_in_python(account, sources, ranges)
    return _spread_in_sql(account, sources, ranges, strategy, per_meter=True)


def spread_total(
    *,
    account: Account,
    sources: Sequence[Source],
    ranges: Sequence[domain.Bucket],
    strategy: str | None = None,
) -> list[BucketTotal]:
    """The sources' consumption per bucket, added up (``spread_consumption``, summed in SQL)."""
    if not ranges or not sources:
        return [EMPTY_BUCKET] * len(ranges)
    if connection.vendor != "postgresql":
        return _add_up(list(_spread_in_python(account, sources, ranges).values()), len(ranges))
    return _spread_in_sql(account, sources, ranges, strategy, per_meter=False)[0]


def _spread_in_sql(
    account: Account,
    sources: Sequence[Source],
    ranges: Sequence[domain.Bucket],
    strategy: str | None,
    *,
    per_meter: bool,
) -> dict[int, list[BucketTotal]]:
    """Per meter (or, without ``per_meter``, under key 0 for all), per bucket."""
    strategy = strategy or spread_strategy(len(sources), len(ranges))
    keys = [source.meter_id for source in sources] if per_meter else [0]
    totals = {key: [EMPTY_BUCKET] * len(ranges) for key in keys}
    params = spread_sql_params(account, sources, ranges) | {"per_meter": per_meter}
    with connection.cursor() as cursor:
        cursor.execute(SPREAD_SQL[strategy], params)
        rows = cursor.fetchall()
    for key, bucket, whole, units, is_estimated, readings in rows:
        consumption = domain.add_units(whole, int(units))
        totals[key][bucket - 1] = BucketTotal(consumption, is_estimated, int(readings))
    return totals


# Up to this many (register, bound) pairs, probing the index per bucket and per bound costs
# less than one pass with a window over every reading (about 20 µs a probe against 2 to 3 µs
# a reading): a meter with readings every 15 minutes takes ~100 readings a day.
PROBE_LIMIT = 2500


def spread_strategy(sources: int, buckets: int) -> str:
    """``probe`` for few (register, bucket) pairs, ``scan`` beyond ``PROBE_LIMIT``."""
    return "probe" if sources * (buckets + 1) <= PROBE_LIMIT else "scan"


def _midnight_sql(day: str) -> str:
    """SQL for the instant the local date ``day`` starts, as ``domain.local_midnight`` (fold 0).

    PostgreSQL's ``AT TIME ZONE`` takes a local time repeated by a change of clock as its
    second occurrence, Python as its first: both candidate offsets (a day before and a day
    after) are tried, the earliest that gives back the local time wins, and a local time
    skipped by the clock takes the offset of before the change, as Python does.
    """
    return f"""(
        SELECT coalesce(
            least(
                CASE WHEN (c.early AT TIME ZONE %(zone)s) = c.wall THEN c.early END,
                CASE WHEN (c.late AT TIME ZONE %(zone)s) = c.wall THEN c.late END
            ),
            c.early
        )
        FROM (
            SELECT w.wall,
                (w.wall AT TIME ZONE 'UTC')
                    - (((w.wall - interval '1 day') AT TIME ZONE 'UTC') AT TIME ZONE %(zone)s
                       - (w.wall - interval '1 day')) AS early,
                (w.wall AT TIME ZONE 'UTC')
                    - (((w.wall + interval '1 day') AT TIME ZONE 'UTC') AT TIME ZONE %(zone)s
                       - (w.wall + interval '1 day')) AS late
            FROM (SELECT ({day})::timestamp AS wall) w
        ) c
    )"""  # noqa: S608 (only this module's own SQL expressions are formatted in)


def _share_sql(consumption: str, start: str, end: str, bound: str) -> str:
    """SQL for ``domain.share_until``: the part of ``consumption`` over ``[start, end)`` taken
    before ``bound`` (strictly inside), in 10⁻¹⁸, rounded half away from zero with exact
    integer arithmetic (``div`` truncates; microseconds as exact numerics)."""
    # timestamptz − timestamptz is an interval of days and time (24 h days): exact in epoch.
    elapsed = f"(extract(epoch FROM {bound} - {start}) * 1000000)"
    length = f"(extract(epoch FROM {end} - {start}) * 1000000)"
    return (
        f"(sign({consumption}) * div(2 * abs({consumption}) * 1e18 * {elapsed} + {length},"
        f" 2 * {length}))"
    )


# The consumption of bucket k, [b(k), b(k + 1)), is the sum over every interval of
# round(C × F(b(k + 1))) − round(C × F(b(k))) (``domain.spread``). Only an interval spanning
# a bound (strictly) has 0 < F < 1 there, so the sum is
#     E(k) + P(k + 1) − P(k)
# where E(k) is the consumption of the intervals ending in (b(k), b(k + 1)] and P(j) the
# rounded part, before bound j, of the interval spanning it. Buckets are numbered 1..n and
# bounds 1..n + 1, as ``width_bucket`` does (0 before, n + 1 after). Every query below yields
# ``parts`` rows (meter, bucket, consumption, units of 10⁻¹⁸, estimated, readings) that the
# last SELECT adds up; each term is exact (NUMERIC sums, P in integer arithmetic).
_SPREAD_HEAD = f"""
WITH params AS (
    SELECT %(bounds)s::timestamptz[] AS bounds, %(count)s::integer AS n
),
sources AS (
    SELECT *
    FROM unnest(%(meters)s::bigint[], %(registers)s::bigint[], %(periods)s::boolean[])
        AS s(meter_id, register_id, with_period_readings)
),
bounds AS (
    SELECT u.j::integer AS j, u.b
    FROM params p CROSS JOIN LATERAL unnest(p.bounds) WITH ORDINALITY AS u(b, j)
),
-- Period readings, their dates turned into local midnights: E for the bucket of their end,
-- P at each bound they span.
periods AS (
    SELECT pr.meter_id, pr.consumption, pr.is_estimated,
        {_midnight_sql("pr.start_date")} AS t0, {_midnight_sql("pr.end_date + 1")} AS t1
    FROM sources s
    JOIN readings_periodreading pr ON pr.meter_id = s.meter_id
    WHERE s.with_period_readings
        AND pr.start_date <= %(last_day)s AND pr.end_date >= %(first_day)s
        -- A register measured by index readings is not also counted from the bills.
        AND NOT EXISTS (SELECT 1 FROM readings_reading r WHERE r.register_id = s.register_id)
),
period_spans AS (
    SELECT v.meter_id, bd.j, {_share_sql("v.consumption", "v.t0", "v.t1", "bd.b")} AS part
    FROM periods v
    JOIN bounds bd ON bd.b > v.t0 AND bd.b < v.t1
),
"""  # noqa: S608 (only this module's own SQL expressions are formatted in)

_PERIOD_PARTS = """
    UNION ALL
    SELECT v.meter_id, width_bucket(v.t1 - interval '1 microsecond', p.bounds), v.consumption,
        0, v.is_estimated, 0
    FROM periods v CROSS JOIN params p
    WHERE v.t1 > p.bounds[1] AND v.t1 <= p.bounds[p.n + 1]
    UNION ALL
    SELECT meter_id, j - 1, 0, part, true, 0 FROM period_spans
    UNION ALL
    SELECT meter_id, j, 0, -part, true, 0 FROM period_spans
"""

_SPREAD_TAIL = """
SELECT CASE WHEN %(per_meter)s THEN v.meter_id ELSE 0 END, v.bucket, sum(v.consumption),
    sum(v.units), bool_or(v.estimated), sum(v.readings)
FROM parts v CROSS JOIN params p
WHERE v.bucket BETWEEN 1 AND p.n
GROUP BY 1, v.bucket
"""

# ``probe``: per source register and bucket, one aggregate over the index range of the
# readings dated in it (consumption, estimated readings, count: a reading on a bound belongs
# to the bucket it starts, its interval to the one it ends); per register and bound, two
# index probes find the reading on the bound (its consumption moves to the bucket before) or
# the interval spanning it (P; both buckets are estimated). Cost: the readings of the range
# plus 3 index probes per (register, bucket); no sort.
_PROBE_BODY = f"""
dated AS (
    SELECT s.meter_id, bd.j AS bucket, r.consumption, r.estimated, r.readings
    FROM sources s
    CROSS JOIN params p
    JOIN bounds bd ON bd.j <= p.n
    CROSS JOIN LATERAL (
        SELECT coalesce(sum(x.consumption), 0) AS consumption,
            coalesce(bool_or(x.is_estimated), false) AS estimated, count(*) AS readings
        FROM readings_reading x
        WHERE x.register_id = s.register_id
            AND x.reading_date >= bd.b AND x.reading_date < p.bounds[bd.j + 1]
    ) r
    WHERE r.readings > 0
),
edges AS (
    SELECT s.meter_id, bd.j,
        nx.reading_date = bd.b AS on_bound,
        coalesce(nx.consumption, 0) AS on_consumption,
        nx.is_estimated AS on_estimated,
        nx.reading_date > bd.b AND pv.reading_date IS NOT NULL AND nx.consumption IS NOT NULL
            AS spanned,
        {_share_sql("nx.consumption", "pv.reading_date", "nx.reading_date", "bd.b")} AS part
    FROM sources s
    CROSS JOIN bounds bd
    LEFT JOIN LATERAL (
        SELECT y.reading_date, y.consumption, y.is_estimated
        FROM readings_reading y
        WHERE y.register_id = s.register_id AND y.reading_date >= bd.b
        ORDER BY y.reading_date
        LIMIT 1
    ) nx ON true
    LEFT JOIN LATERAL (
        SELECT y.reading_date
        FROM readings_reading y
        WHERE y.register_id = s.register_id AND y.reading_date < bd.b
        ORDER BY y.reading_date DESC
        LIMIT 1
    ) pv ON true
),
parts AS (
    SELECT meter_id, bucket, consumption, 0 AS units, estimated, readings
    FROM dated
    UNION ALL
    SELECT e.meter_id, t.bucket, t.consumption, t.units, t.estimated, 0
    FROM edges e
    CROSS JOIN LATERAL (
        VALUES
            (e.j - 1,
             CASE WHEN e.on_bound THEN e.on_consumption ELSE 0 END,
             CASE WHEN e.spanned THEN e.part ELSE 0 END,
             coalesce(e.on_bound AND e.on_estimated, false) OR coalesce(e.spanned, false)),
            (e.j,
             CASE WHEN e.on_bound THEN -e.on_consumption ELSE 0 END,
             CASE WHEN e.spanned THEN -e.part ELSE 0 END,
             coalesce(e.spanned, false))
    ) AS t(bucket, consumption, units, estimated)
    WHERE e.on_bound OR e.spanned
"""  # noqa: S608 (only this module's own SQL expressions are formatted in; values are parameters)

# ``scan``: per source register, one index range scan of its readings dated in the range plus
# the first one after it, in date order, with each interval's start (LAG: no sort, the scan
# is ordered); each reading is placed in the bucket of its date and its interval in the
# bucket of its last microsecond (one less when the reading lies on a bound). One hash
# aggregation by (meter, bucket of the interval's end) gives E, the readings counted and
# the estimated ones (a reading on a bound moves them to the next bucket) and P of the
# intervals spanning one bound (the usual case); the intervals spanning several bounds
# (readings further apart than a bucket) get P at each. Cost: a few µs per reading of the
# range, whatever the number of buckets and registers.
_SCAN_BODY = f"""
dated AS (
    SELECT s.meter_id, r.t0, r.t1, r.consumption, r.is_estimated, r.at_bucket
    FROM sources s
    CROSS JOIN LATERAL (
        SELECT x.reading_date AS t1, x.consumption, x.is_estimated,
            coalesce(
                lag(x.reading_date) OVER (ORDER BY x.reading_date),
                (SELECT max(y.reading_date) FROM readings_reading y
                 WHERE y.register_id = s.register_id AND y.reading_date < %(first)s)
            ) AS t0,
            width_bucket(x.reading_date, %(bounds)s::timestamptz[]) AS at_bucket
        FROM readings_reading x
        WHERE x.register_id = s.register_id
            AND x.reading_date >= %(first)s AND x.reading_date < %(last)s
        UNION ALL
        SELECT a.reading_date, a.consumption, a.is_estimated,
            (SELECT max(y.reading_date) FROM readings_reading y
             WHERE y.register_id = s.register_id AND y.reading_date < %(last)s),
            %(count)s + 1
        FROM (
            SELECT y.reading_date, y.consumption, y.is_estimated
            FROM readings_reading y
            WHERE y.register_id = s.register_id AND y.reading_date >= %(last)s
            ORDER BY y.reading_date
            LIMIT 1
        ) a
    ) r
),
placed AS (
    SELECT d.*,
        d.at_bucket - CASE WHEN d.t1 = p.bounds[d.at_bucket] THEN 1 ELSE 0 END AS last_bucket
    FROM dated d CROSS JOIN params p
),
readings AS MATERIALIZED (
    SELECT v.*, v.first_bucket IS NOT NULL AS spanning,
        v.first_bucket + 1 = v.last_bucket AS single,
        CASE WHEN v.first_bucket IS NOT NULL THEN p.bounds[v.last_bucket] END AS last_start
    FROM (
        SELECT v.*, CASE WHEN v.t0 < p.bounds[v.last_bucket] AND v.consumption IS NOT NULL
            THEN width_bucket(v.t0, p.bounds) END AS first_bucket
        FROM placed v CROSS JOIN params p
    ) v
    CROSS JOIN params p
),
grouped AS (
    SELECT meter_id, last_bucket AS bucket,
        coalesce(sum(consumption), 0) AS consumption,
        coalesce(bool_or(is_estimated OR spanning), false) AS estimated,
        coalesce(bool_or(is_estimated) FILTER (WHERE at_bucket <> last_bucket), false)
            AS estimated_next,
        count(*) FILTER (WHERE at_bucket = last_bucket) AS readings,
        count(*) FILTER (WHERE at_bucket <> last_bucket) AS readings_next,
        coalesce(sum({_share_sql("consumption", "t0", "t1", "last_start")}) FILTER (WHERE single),
            0) AS part_before,
        coalesce(bool_or(single), false) AS spanned_before
    FROM readings
    GROUP BY meter_id, last_bucket
),
several AS MATERIALIZED (
    SELECT meter_id, t0, t1, consumption, first_bucket, last_bucket
    FROM readings
    WHERE spanning AND NOT single
),
spans AS (
    SELECT v.meter_id, bd.j, {_share_sql("v.consumption", "v.t0", "v.t1", "bd.b")} AS part
    FROM several v
    JOIN bounds bd ON bd.j > v.first_bucket AND bd.j <= v.last_bucket
),
parts AS (
    SELECT meter_id, bucket, consumption, -part_before AS units, estimated, readings
    FROM grouped
    UNION ALL
    SELECT meter_id, bucket + 1, 0, 0, estimated_next, readings_next
    FROM grouped
    WHERE readings_next > 0
    UNION ALL
    SELECT meter_id, bucket - 1, 0, part_before, true, 0
    FROM grouped
    WHERE spanned_before
    UNION ALL
    SELECT meter_id, j - 1, 0, part, true, 0 FROM spans
    UNION ALL
    SELECT meter_id, j, 0, -part, true, 0 FROM spans
"""  # noqa: S608 (only this module's own SQL expressions are formatted in; values are parameters)

SPREAD_SQL = {
    strategy: "".join((_SPREAD_HEAD, body, _PERIOD_PARTS, ")", _SPREAD_TAIL))
    for strategy, body in (("probe", _PROBE_BODY), ("scan", _SCAN_BODY))
}


def spread_sql_params(
    account: Account, sources: Sequence[Source], ranges: Sequence[domain.Bucket]
) -> dict[str, Any]:
    """The parameters of ``SPREAD_SQL`` (the benchmark runs the queries bare with them)."""
    bounds = domain.bucket_bounds(ranges)
    return {
        "bounds": bounds,
        "first": bounds[0],
        "last": bounds[-1],
        "count": len(ranges),
        "meters": [source.meter_id for source in sources],
        "registers": [source.register_id for source in sources],
        "periods": [source.with_period_readings for source in sources],
        "zone": account.timezone,
        "first_day": ranges[0].period_start,
        "last_day": ranges[-1].period_end,
        "per_meter": True,
    }


def _spread_in_python(
    account: Account, sources: Sequence[Source], ranges: Sequence[domain.Bucket]
) -> dict[int, list[BucketTotal]]:
    """The same figures as ``_SPREAD_SQL``, by ``domain.consumption_per_bucket`` (two queries)."""
    bounds = domain.bucket_bounds(ranges)
    first, last = bounds[0], bounds[-1]
    by_register = {source.register_id: source for source in sources}
    before = (
        Reading.objects.filter(register_id=OuterRef("register_id"), reading_date__lte=first)
        .order_by("-reading_date")
        .values("reading_date")[:1]
    )
    after = (
        Reading.objects.filter(register_id=OuterRef("register_id"), reading_date__gte=last)
        .order_by("reading_date")
        .values("reading_date")[:1]
    )
    rows = (
        Reading.objects.filter(register_id__in=by_register)
        .annotate(
            lower=Coalesce(Subquery(before), Value(first), output_field=DateTimeField()),
            upper=Coalesce(Subquery(after), Value(last), output_field=DateTimeField()),
        )
        .filter(reading_date__gte=F("lower"), reading_date__lte=F("upper"))
        .order_by("register_id", "reading_date")
        .values_list("register_id", "reading_date", "consumption", "is_estimated")
    )
    series: dict[int, list[domain.IndexReading]] = {source.register_id: [] for source in sources}
    for register_id, reading_date, consumption, is_estimated in rows:
        series[register_id].append(domain.IndexReading(reading_date, consumption, is_estimated))

    zone = account.zone
    periods: dict[int, list[domain.Interval]] = {source.meter_id: [] for source in sources}
    rows = (
        PeriodReading.objects.filter(
            meter_id__in=[source.meter_id for source in sources if source.with_period_readings],
            start_date__lte=ranges[-1].period_end,
            end_date__gte=ranges[0].period_start,
        )
        .exclude(  # a register measured by index readings is not also counted from the bills
            Exists(Reading.objects.filter(meter_id=OuterRef("meter_id"), register__is_default=True))
        )
        .values_list("meter_id", "start_date", "end_date", "consumption", "is_estimated")
    )
    for meter_id, start_date, end_date, consumption, is_estimated in rows:
        periods[meter_id].append(
            domain.Interval(
                _midnight_or_limit(start_date, zone),
                _midnight_or_limit(end_date, zone, next_day=True),
                consumption,
                is_estimated,
            )
        )

    return {
        source.meter_id: [
            BucketTotal(bucket.consumption, bucket.is_estimated, bucket.readings_count)
            for bucket in domain.consumption_per_bucket(
                [series[source.register_id]], periods[source.meter_id], bounds
            )
        ]
        for source in sources
    }


def _midnight_or_limit(day: dt.date, zone: dt.tzinfo, *, next_day: bool = False) -> dt.datetime:
    """``domain.local_midnight`` of ``day`` (or of the day after), or the first or last
    instant Python can hold when that midnight lies beyond year 1..9999."""
    try:
        return domain.local_midnight(day + dt.timedelta(days=1) if next_day else day, zone)
    except OverflowError:
        limit = dt.datetime.max if next_day else dt.datetime.min
        return limit.replace(tzinfo=dt.UTC)


def meter_consumption(
    *, meter: Meter, register: Register, ranges: Sequence[domain.Bucket]
) -> list[BucketTotal]:
    """A register's consumption per bucket; the default register's includes the meter's
    period readings (they belong to the meter, which its default register stands for) when it
    has no index reading: a meter is measured by its readings or by its bills, never both."""
    source = Source(meter.pk, register.pk, with_period_readings=register.is_default)
    return spread_consumption(account=meter.account, sources=[source], ranges=ranges)[meter.pk]


def unit_of(register: Register, meter: Meter) -> str:
    return register.unit or meter.unit


# A place's meters of one type, keeping only those none of whose ancestors is among them: a
# sub-meter's consumption is already counted in its main meter's. UNION stops on a cycle.
_PLACE_METERS_SQL = """
WITH RECURSIVE chosen AS (
    SELECT id, parent_meter_id, unit
    FROM metering_meter
    WHERE account_id = %(account)s AND place_id = %(place)s AND meter_type = %(meter_type)s
),
above(meter_id, ancestor_id) AS (
    SELECT id, parent_meter_id FROM chosen WHERE parent_meter_id IS NOT NULL
    UNION
    SELECT a.meter_id, m.parent_meter_id
    FROM above a JOIN metering_meter m ON m.id = a.ancestor_id
    WHERE m.parent_meter_id IS NOT NULL
)
SELECT c.id, r.id, coalesce(nullif(r.unit, ''), c.unit)
FROM chosen c
JOIN metering_register r ON r.meter_id = c.id AND r.is_default
WHERE NOT EXISTS (
    SELECT 1 FROM above a JOIN chosen p ON p.id = a.ancestor_id WHERE a.meter_id = c.id
)
ORDER BY c.id
"""


def place_consumption(
    *, place: Place, meter_type: str, ranges: Sequence[domain.Bucket]
) -> tuple[str, list[BucketTotal]]:
    """The consumption per bucket of a place's meters of ``meter_type``, and its unit.

    Sums the default registers (with period readings) of the place's meters of that type,
    except sub-meters with an ancestor among them: their consumption is already in it.
    Two queries whatever the number of meters. Meters read in different units cannot be
    added: ``ValidationError`` on ``meter_type``.
    """
    account_id = Meter._meta.get_field("account").target_field.get_db_prep_value(
        place.account_id, connection
    )
    params = {"account": account_id, "place": place.pk, "meter_type": meter_type}
    with connection.cursor() as cursor:
        cursor.execute(_PLACE_METERS_SQL, params)
        chosen = cursor.fetchall()
    units = sorted({unit for _, _, unit in chosen})
    if len(units) > 1:
        raise ValidationError(
            {
                "meter_type": [
                    f"The place's {meter_type} meters are read in different units"
                    f" ({', '.join(units)}): their consumption cannot be added."
                ]
            }
        )
    unit = units[0] if units else metering_domain.default_unit(meter_type)
    sources = [Source(meter_id, register_id, True) for meter_id, register_id, _ in chosen]
    return unit, spread_total(account=place.account, sources=sources, ranges=ranges)


def _add_up(series: list[list[BucketTotal]], count: int) -> list[BucketTotal]:
    """Bucket by bucket, the sum of several meters' totals."""
    return [
        BucketTotal(
            domain.exact_sum(one[index].consumption for one in series),
            any(one[index].is_estimated for one in series),
            sum(one[index].readings_count for one in series),
        )
        for index in range(count)
    ]


@dataclass(frozen=True)
class Balance:
    """A main meter against its direct sub-meters over a range (CONTRACT §4.5)."""

    unit: str
    main_consumption: Decimal
    sub_meters_consumption: Decimal
    difference: Decimal
    difference_ratio: Decimal | None
    sub_meters_count: int
    is_estimated: bool


def meter_balance(*, meter: Meter, start: dt.date, end: dt.date) -> Balance:
    """``meter``'s consumption over ``[start 00:00, end + 1 day 00:00)`` (local) against the
    sum of its direct sub-meters'; default registers with their period readings, spread as
    ``meter_consumption`` does. Two queries whatever the number of sub-meters; sub-meters read
    in another unit than the meter: ``ValidationError``.
    """
    account = meter.account
    registers = list(
        Register.objects.filter(is_default=True)
        .filter(Q(meter=meter) | Q(meter__parent_meter=meter))
        .select_related("meter")
        .order_by("meter_id")
    )
    main = next((register for register in registers if register.meter_id == meter.pk), None)
    if main is None:
        raise ValidationError({"non_field_errors": ["This meter has no default register."]})
    subs = [register for register in registers if register.meter_id != meter.pk]
    unit = unit_of(main, meter)
    others = sorted({unit_of(r, r.meter) for r in subs} - {unit})
    if others:
        raise ValidationError(
            {
                "non_field_errors": [
                    f"Sub-meters of this meter are read in {', '.join(others)}, the meter in"
                    f" {unit}: their consumption cannot be compared."
                ]
            }
        )
    day = domain.Bucket(
        start,
        end,
        domain.local_midnight(start, account.zone),
        domain.local_midnight(end + dt.timedelta(days=1), account.zone),
    )
    sources = [Source(r.meter_id, r.pk, True) for r in registers]
    totals = {
        meter_id: buckets[0]
        for meter_id, buckets in spread_consumption(
            account=account, sources=sources, ranges=[day]
        ).items()
    }
    main_total = totals[meter.pk].consumption
    sub_total = domain.exact_sum(totals[r.meter_id].consumption for r in subs)
    difference, ratio = domain.balance_difference(main_total, sub_total)
    return Balance(
        unit=unit,
        main_consumption=main_total,
        sub_meters_consumption=sub_total,
        difference=difference,
        difference_ratio=ratio,
        sub_meters_count=len(subs),
        is_estimated=any(total.is_estimated for total in totals.values()),
    )


# --- the values a new reading could take without a flag (the portal's allowed range) ----------


@dataclass(frozen=True)
class AllowedRange:
    """What ``domain.unflagged_range`` gives a reading of ``register`` at ``reading_date``,
    with what it was worked out from."""

    reading_date: dt.datetime
    register: Register
    previous_value: Decimal | None
    previous_reading_date: dt.datetime | None
    next_value: Decimal | None
    next_reading_date: dt.datetime | None
    baseline_intervals: int
    baseline_daily_consumption: Decimal | None
    min_value: Decimal
    max_value: Decimal | None
    is_locked: bool


def allowed_range(
    *,
    meter: Meter,
    register: Register,
    reading_date: dt.datetime,
    since: dt.datetime | None = None,
) -> AllowedRange:
    """The values a reading of ``register`` at ``reading_date`` could take without an anomaly
    flag (CONTRACT §4.2 with the account's thresholds), from the stored series: the reading
    just before it (or the device it counts from after a replacement) and the baseline of the
    intervals that end within ``baseline_days`` before it. Three queries.

    A reading already stored at ``reading_date`` is left out (a new one there would be a
    duplicate). A later reading caps ``max_value`` on meters without ``max_value``, so that it
    does not turn NEGATIVE; its own rate flags, which a reading in between changes, are not
    considered.

    With ``since`` (≤ ``reading_date``: a tenant's lease start, CONTRACT §6) only the readings
    dated from ``since`` on count, as if the series began there: no earlier reading is the
    previous one nor starts an interval of the baseline.
    """
    settings = services.thresholds(meter.account)
    lower = domain.earlier_by(reading_date, settings.baseline_span)
    series = Reading.objects.filter(register=register)
    if since is not None:
        series = series.filter(reading_date__gte=since)
    # As the engine loads a window: the readings from ``lower`` on, and the one just before it
    # (whose date starts the first interval).
    before = (
        series.filter(reading_date__lt=lower).order_by("-reading_date").values("reading_date")[:1]
    )
    rows = list(
        series.filter(
            reading_date__lt=reading_date,
            reading_date__gte=Coalesce(Subquery(before), lower, output_field=DateTimeField()),
        )
        .order_by("reading_date")
        .values_list("reading_date", "value", "consumption")
    )
    consumption, micros, intervals = Decimal(0), 0, 0
    for (start, _, _), (end, _, interval) in itertools.pairwise(rows):
        # A NEGATIVE interval (consumption < 0) is no part of a baseline.
        if end >= lower and interval is not None and interval >= 0:
            consumption += interval
            micros += (end - start) // dt.timedelta(microseconds=1)
            intervals += 1
    baseline = domain.Baseline(consumption, micros, intervals)
    later = (
        Reading.objects.filter(register=register, reading_date__gt=reading_date)
        .order_by("reading_date")
        .values_list("reading_date", "value")
        .first()
    )

    start_value, previous = None, None
    restarts = services.restarts_of(meter=meter, register=register) if rows or later else []
    if rows:
        previous = domain.Point(rows[-1][0], rows[-1][1])
        start_value = domain.start_value(previous, reading_date, restarts)
    # The later reading counts from the new one, unless a device was replaced in between.
    next_value = None
    if later is not None and not any(reading_date <= r.at < later[0] for r in restarts):
        next_value = later[1]
    value_range = domain.unflagged_range(
        start=start_value,
        micros=(reading_date - previous.reading_date) // dt.timedelta(microseconds=1)
        if previous
        else 0,
        baseline=baseline,
        factor=meter.multiplier * register.transformer_ratio,
        thresholds=settings,
        decimals=meter.precision_digits,
        modulus=meter.max_value,
        later_value=next_value,
    )
    return AllowedRange(
        reading_date=reading_date,
        register=register,
        previous_value=start_value,
        previous_reading_date=previous.reading_date if previous else None,
        next_value=later[1] if later else None,
        next_reading_date=later[0] if later else None,
        baseline_intervals=intervals,
        baseline_daily_consumption=(
            baseline.per_day() if intervals >= settings.min_intervals else None
        ),
        min_value=value_range.min_value,
        max_value=value_range.max_value,
        is_locked=services.is_locked(register, reading_date),
    )

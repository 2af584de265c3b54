"""Reads of the readings app: the audit history of readings (CONTRACT §4.7)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from readings import domain
from readings.models import Reading

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
    events = ReadingEvent.objects.all()
    if reading_ids is not None:
        events = events.filter(pgh_obj_id__in=reading_ids)
    if meter_id is not None:
        events = events.filter(meter_id=meter_id)
    latest = list(events.select_related("pgh_context").order_by("-pgh_id")[:limit])
    if not latest:
        return []
    # The events before the oldest shown one, for the "before" side of its changes.
    earlier = (
        {
            event.pgh_id: event
            for event in ReadingEvent.objects.filter(
                pgh_obj_id__in={event.pgh_obj_id for event in latest},
                pgh_id__lt=min(event.pgh_id for event in latest),
            )
            .order_by("pgh_obj_id", "-pgh_id")
            .distinct("pgh_obj_id")
        }
        if len(latest) == limit
        else {}
    )

    chronological = sorted([*earlier.values(), *latest], key=lambda event: event.pgh_id)
    shown = {event.pgh_id for event in latest}
    previous: dict[int, Any] = {}
    entries = []
    for event in chronological:
        before = previous.get(event.pgh_obj_id)
        if event.pgh_id in shown:
            entries.append(_entry(event, before))
        previous[event.pgh_obj_id] = event
    entries.reverse()
    return entries


def _entry(event, before) -> HistoryEntry:
    metadata = event.pgh_context.metadata if event.pgh_context else {}
    if event.pgh_label == "insert":
        changes = {name: (None, getattr(event, name)) for name in AUDITED_FIELDS}
    elif event.pgh_label == "delete":
        changes = {name: (getattr(event, name), None) for name in AUDITED_FIELDS}
    else:
        changes = {
            name: (getattr(before, name) if before else None, getattr(event, name))
            for name in AUDITED_FIELDS
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

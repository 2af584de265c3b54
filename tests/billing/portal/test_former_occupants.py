"""What a meter measured before the tenant's lease (a former occupant's use) stays hidden."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from readings import services as readings_services
from readings.models import Reading
from tests.billing.portal.conftest import image_bytes

pytestmark = pytest.mark.django_db

ACTOR = readings_services.Actor("test:former", "API")
PNG = image_bytes("PNG")


def utc(day: str) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(hour=12, tzinfo=dt.UTC)


@pytest.fixture
def history(meter):
    """One reading in the former occupant's time (before 2023-06-01), two in the lease's."""
    items = [
        readings_services.ReadingInput(reading_date=utc(day), value=Decimal(value))
        for day, value in (("2023-05-15", 100), ("2023-06-15", 150), ("2023-07-15", 200))
    ]
    result = readings_services.create_readings(meter=meter, items=items, actor=ACTOR)
    assert not result.errors
    return result.accepted


def test_readings_before_the_lease_are_not_listed_nor_shown(portal, meter, history):
    response = portal.get(f"/api/v1/portal/meters/{meter.pk}/readings/")
    assert response.status_code == 200
    assert [row["value"] for row in response.json()["data"]] == [150, 200]
    # Both readings have a photo: only the lease's one is handed out.
    for reading in history[:2]:
        name = default_storage.save(f"reading-photos/test/{reading.pk}.png", ContentFile(PNG))
        Reading.objects.filter(pk=reading.pk).update(photo=name)
    hidden, visible = history[0], history[1]
    photo = f"/api/v1/portal/meters/{meter.pk}/readings/{{}}/photo/"
    assert portal.get(photo.format(visible.pk)).status_code == 200
    assert portal.get(photo.format(hidden.pk)).status_code == 404


def test_a_reading_dated_before_the_lease_is_refused(portal, meter, history):
    response = portal.post(
        f"/api/v1/portal/meters/{meter.pk}/readings/",
        {"reading_date": "2023-05-20T12:00:00Z", "value": 120},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {
        "reading_date": ["Your lease of this meter starts on 2023-06-01."]
    }
    assert Reading.objects.filter(meter=meter).count() == 3


def test_consumption_starts_with_the_lease(portal, meter, history):
    path = f"/api/v1/portal/meters/{meter.pk}/consumption/"
    early = portal.get(path, {"start": "2023-05-01", "end": "2023-07-31"})
    assert early.status_code == 400
    assert early.json()["error"]["details"] == {
        "start": ["Your lease of this meter starts on 2023-06-01: start from then on."]
    }
    assert portal.get(path, {"start": "2023-06-01", "end": "2023-07-31"}).status_code == 200

"""The reading list's "Export to CSV": the list's filters, export_readings' format, accounts."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.core.management import call_command

from metering.models import Meter
from readings.management.commands.export_readings import COLUMNS
from tests.conftest import login
from tests.factories import MeterFactory, PlaceFactory, RegisterFactory, UserFactory
from tests.metering.test_admin import messages_of
from tests.readings.conftest import add
from tests.readings.test_admin import reading_url

pytestmark = pytest.mark.django_db

EXPORT_URL = "/admin/readings/reading/export/"


@pytest.fixture
def meters(account, other_account):
    place = PlaceFactory(account=account, code="B1")
    b = MeterFactory(account=account, serial_number="B-2", max_value=Decimal(1000), place=place)
    a = MeterFactory(account=account, serial_number="A-1")
    peak = RegisterFactory(meter=a, code="1.8.1")
    add(b, (0, 100), (1, 150), (2, 20))  # a rollover
    add(a, (1, 10), (0, 5))
    add(a, (0, 7), register=peak)
    add(MeterFactory(account=other_account, serial_number="A-1"), (0, 1))
    return a, b


def exported(response) -> tuple[list[str], list[list[str]]]:
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response.streaming
    text = b"".join(response.streaming_content).decode()
    header, *rows = list(csv.reader(io.StringIO(text)))
    return header, rows


def command_rows(*args: str) -> list[list[str]]:
    out = io.StringIO()
    call_command("export_readings", *args, stdout=out)
    return list(csv.reader(io.StringIO(out.getvalue())))[1:]


def test_the_list_links_to_the_export_with_its_filters(member, meters):
    a, _ = meters
    page = member("VIEWER").get(reading_url(), {"meter__id__exact": a.pk, "p": "1"})
    assert page.status_code == 200
    assert page.context["export_url"] == f"{EXPORT_URL}?meter__id__exact={a.pk}"
    assert f'href="{EXPORT_URL}?meter__id__exact={a.pk}"' in page.content.decode()


def test_export_of_a_meter_filter_gives_exactly_its_readings(member, meters):
    a, _ = meters
    response = member("VIEWER").get(EXPORT_URL, {"meter__id__exact": a.pk})
    header, rows = exported(response)
    assert tuple(header) == COLUMNS
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("A-1", "1.8.1", "2024-01-01T00:00:00Z"),
        ("A-1", "default", "2024-01-01T00:00:00Z"),
        ("A-1", "default", "2024-01-02T00:00:00Z"),
    ]
    # The same rows, cell for cell, as manage.py export_readings writes them.
    assert rows == command_rows("--account", "acme", "--meter", "A-1")
    assert response["Content-Disposition"].startswith('attachment; filename="readings-acme-')


def test_export_without_filters_is_the_members_accounts_only(member, meters):
    _, rows = exported(member("VIEWER").get(EXPORT_URL))
    assert len(rows) == 6
    assert rows == command_rows("--account", "acme")


def test_export_follows_other_filters_and_search(member, meters):
    client = member("MANAGER")
    _, by_place = exported(client.get(EXPORT_URL, {"meter__place__id__exact": meters[1].place_id}))
    assert {row[0] for row in by_place} == {"B-2"}
    assert len(by_place) == 3
    _, searched = exported(client.get(EXPORT_URL, {"q": "1.8.1"}))
    assert [(row[0], row[1]) for row in searched] == [("A-1", "1.8.1")]
    _, rollovers = exported(client.get(EXPORT_URL, {"reading_date__day": "3"}))
    assert [(row[0], row[11]) for row in rollovers] == [("B-2", "true")]


def test_another_accounts_meter_exports_nothing(member, meters, other_account):
    other_meter = Meter.objects.get(account=other_account)
    response = member("MANAGER").get(EXPORT_URL, {"meter__id__exact": other_meter.pk})
    _, rows = exported(response)
    assert rows == []


def test_a_superuser_exports_every_account(superuser_client, meters):
    _, rows = exported(superuser_client.get(EXPORT_URL))
    assert len(rows) == 7


def test_invalid_filters_are_a_message(member, meters):
    response = member("VIEWER").get(EXPORT_URL, {"nonsense__field": "1"})
    assert response.status_code == 302
    assert messages_of(response) == ["These filters are not valid: nothing exported."]


def test_a_staff_user_of_no_account_is_refused(db):
    client = login(UserFactory(is_staff=True))
    assert client.get(EXPORT_URL).status_code == 403

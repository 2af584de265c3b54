"""The admin of index readings: lists, writes through the readings engine, locks, history."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from metering import services as metering_services
from metering.models import Meter
from readings import services
from readings.models import Reading
from tests.factories import MeterFactory, PlaceFactory
from tests.metering.test_admin import messages_of, post_data, url
from tests.readings.conftest import add, day, fresh_series, stored_series

pytestmark = pytest.mark.django_db

LOCKED_MESSAGE = "This reading belongs to a closed billing period and cannot change."


def reading_url(view: str = "changelist", *args: Any) -> str:
    return url("reading", view, *args, app="readings")


def add_form(meter: Meter, when: dt.datetime, amount: str, **fields: str) -> dict[str, str]:
    """What the add page posts for a reading of ``meter``."""
    return {
        "meter": str(meter.pk),
        "register_code": "",
        "reading_date_0": f"{when:%Y-%m-%d}",
        "reading_date_1": f"{when:%H:%M:%S}",
        "value": amount,
        "reading_type": "MANUAL",
        "photo_url": "",
        "reader_name": "",
        "notes": "",
        **fields,
    }


def change_form(response, **changes: Any) -> dict[str, Any]:
    """The change form of a reading as rendered, with ``changes``, as a browser posts it."""
    form = response.context["adminform"].form
    data = post_data(form)
    when = data.pop("reading_date")
    data |= {"reading_date_0": f"{when:%Y-%m-%d}", "reading_date_1": f"{when:%H:%M:%S}"}
    return data | changes


def form_errors(response) -> dict[str, list[str]]:
    return {
        name: list(errors) for name, errors in response.context["adminform"].form.errors.items()
    }


def listed(client: Client, **params: str) -> set[int]:
    response = client.get(reading_url(), params)
    assert response.status_code == 200
    return {reading.pk for reading in response.context["cl"].result_list}


def history_is_recorded() -> bool:
    return connection.vendor == "postgresql"


# --- the list ------------------------------------------------------------------------------


def test_reading_list_filters_by_anomaly_type_meter_and_place(member, account, meter):
    # Four steady intervals, then a spike, a drop and a negative consumption.
    add(meter, (0, 0), (1, 10), (2, 20), (3, 30), (4, 40), (5, 90), (6, 91), (7, 80))
    place = PlaceFactory(account=account)
    elsewhere = MeterFactory(account=account, serial_number="E-9", place=place)
    estimated = services.create_readings(
        meter=elsewhere,
        items=[services.ReadingInput(day(0), Decimal(5), reading_type="ESTIMATED")],
        actor=services.Actor("test", "API"),
    ).accepted[0]
    client = member("VIEWER")

    def flagged(**flags: bool) -> set[int]:
        return set(Reading.objects.filter(**flags).values_list("pk", flat=True))

    for flag in ("DEVIATION", "SPIKE", "DROP", "NEGATIVE"):
        expected = flagged(**{f"flag_{flag.lower()}": True})
        assert expected, flag
        assert listed(client, anomaly=flag) == expected, flag
    anomalous = {r.pk for r in Reading.objects.all() if r.anomaly_flags}
    assert listed(client, anomaly="any") == anomalous
    assert listed(client, anomaly="none") == set(Reading.objects.values_list("pk", flat=True)) - (
        anomalous
    )
    assert listed(client, reading_type__exact="ESTIMATED") == {estimated.pk}
    assert listed(client, source__exact="API") == set(Reading.objects.values_list("pk", flat=True))
    assert listed(client, meter__id__exact=str(elsewhere.pk)) == {estimated.pk}
    assert listed(client, meter__place__id__exact=str(place.pk)) == {estimated.pk}
    assert listed(client, q="E-9") == {estimated.pk}
    assert listed(client, q="W-1") == flagged(meter=meter)
    assert listed(client, reading_date__year="2024", reading_date__month="1") == set(
        Reading.objects.values_list("pk", flat=True)
    )


def test_reading_list_columns(member, meter):
    add(meter, (0, 0), (1, 10), (2, 20), (3, 30), (4, 40), (5, 90))
    services.lock_readings(readings=Reading.objects.filter(reading_date=day(0)))

    response = member("VIEWER").get(reading_url())

    rows = {reading.reading_date: reading for reading in response.context["cl"].result_list}
    content = response.content.decode()
    assert rows[day(5)].anomaly_flags == ["DEVIATION", "SPIKE"]
    assert "DEVIATION SPIKE" in content
    assert content.count("icon-yes.svg") == 1  # the locked reading
    assert content.count(">W-1<") == 6
    assert content.count(">default<") == 6


def test_list_filters_offer_only_the_users_accounts(member, account, other_account):
    place = PlaceFactory(account=account)
    mine = {MeterFactory(account=account, place=place) for _ in range(2)}
    MeterFactory(account=other_account, place=PlaceFactory(account=other_account))

    specs = member("VIEWER").get(reading_url()).context["cl"].filter_specs

    by_path = {getattr(spec, "field_path", spec.title): spec for spec in specs}
    assert {label for _, label in by_path["meter"].lookup_choices} == {str(m) for m in mine}
    assert {label for _, label in by_path["meter__place"].lookup_choices} == {str(place)}


def test_reading_list_queries_do_not_grow_with_rows(superuser_client, account, meter):
    place = PlaceFactory(account=account)
    other = MeterFactory(account=account, place=place)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert superuser_client.get(reading_url()).status_code == 200
        return len(captured)

    add(meter, (0, 1))
    add(other, (0, 1))
    few = queries()
    add(meter, *[(n, n + 1) for n in range(1, 30)])
    add(other, *[(n, n + 1) for n in range(1, 30)])
    assert queries() == few


# --- writes through the engine -------------------------------------------------------------


def test_adding_a_reading_goes_through_the_engine(member, meter, register):
    add(meter, (0, 10), (2, 30))
    client = member("OPERATOR")

    response = client.post(reading_url("add"), add_form(meter, day(1), "15", reader_name="Ann"))

    assert response.status_code == 302, form_errors(response)
    added = Reading.objects.get(reading_date=day(1))
    assert (added.source, added.created_by) == ("ADMIN", f"user:{client.user.username}")
    assert (added.register, added.account_id, added.reader_name) == (
        register,
        meter.account_id,
        "Ann",
    )
    assert (added.previous_value, added.consumption) == (10, 5)
    later = Reading.objects.get(reading_date=day(2))
    assert (later.previous_value, later.consumption) == (15, 15)
    assert stored_series(register) == fresh_series(register)


def test_the_add_page_offers_the_meters_registers(member, meter):
    metering_services.create_register(meter=meter, values={"code": "1.8.2", "name": "Night"})
    client = member("OPERATOR")

    form = client.get(reading_url("add"), {"meter": meter.pk}).context["adminform"].form
    choices = [value for value, _ in form.fields["register_code"].widget.choices]
    assert choices == ["default", "1.8.2"]

    response = client.post(reading_url("add"), add_form(meter, day(1), "3", register_code="1.8.2"))
    assert response.status_code == 302, form_errors(response)
    assert Reading.objects.get().register.code == "1.8.2"


def test_editing_a_value_derives_the_next_reading_again(member, meter, register):
    _, second, third = add(meter, (0, 10), (1, 20), (2, 30))
    client = member("MANAGER")
    page = client.get(reading_url("change", second.pk))
    assert page.context["has_change_permission"]

    response = client.post(reading_url("change", second.pk), change_form(page, value="25"))

    assert response.status_code == 302, form_errors(response)
    second.refresh_from_db()
    third.refresh_from_db()
    assert (second.value, second.consumption) == (25, 15)
    assert (third.previous_value, third.consumption) == (25, 5)
    assert second.source == "API"  # who created it stays; the history says who changed it
    assert stored_series(register) == fresh_series(register)


def test_moving_a_reading_onto_another_date_is_checked_by_the_engine(member, meter):
    _, second = add(meter, (0, 10), (1, 20))
    client = member("MANAGER")
    page = client.get(reading_url("change", second.pk))

    response = client.post(
        reading_url("change", second.pk),
        change_form(page, reading_date_0=f"{day(0):%Y-%m-%d}", reading_date_1="00:00:00"),
    )

    assert response.status_code == 200
    assert form_errors(response)["reading_date"] == [
        "This register already has a reading at this date."
    ]
    second.refresh_from_db()
    assert second.reading_date == day(1)


def test_a_duplicate_date_is_a_form_error(member, meter):
    add(meter, (0, 10))

    response = member("OPERATOR").post(reading_url("add"), add_form(meter, day(0), "12"))

    assert response.status_code == 200
    assert form_errors(response) == {
        "reading_date": ["This register already has a reading at this date."]
    }
    assert Reading.objects.get().value == 10


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"value": "-1"}, "value", "A reading value cannot be negative."),
        ({"value": "1.0001"}, "value", "This meter's readings have at most 3 decimals."),
        ({"register_code": "nope"}, "register_code", "No register 'nope' on this meter."),
        (
            {"reading_date_0": "2999-01-01"},
            "reading_date",
            "A reading cannot be more than 5 minutes in the future.",
        ),
    ],
    ids=["negative", "precision", "register", "future"],
)
def test_engine_refusals_are_form_errors(member, meter, fields, field, message):
    response = member("OPERATOR").post(reading_url("add"), add_form(meter, day(0), "1", **fields))

    assert response.status_code == 200
    assert form_errors(response) == {field: [message]}
    assert not Reading.objects.exists()


def test_a_decommissioned_meter_takes_no_reading(member, meter):
    Meter.objects.filter(pk=meter.pk).update(status="DECOMMISSIONED")

    response = member("OPERATOR").post(reading_url("add"), add_form(meter, day(0), "1"))

    assert response.status_code == 200
    assert "decommissioned" in form_errors(response)["meter"][0]
    assert not Reading.objects.exists()


def test_deleting_a_reading_derives_the_next_again(member, meter, register):
    _, second, third = add(meter, (0, 10), (1, 20), (2, 30))

    response = member("OPERATOR").post(reading_url("delete", second.pk), {"post": "yes"})

    assert response.status_code == 302
    assert not Reading.objects.filter(pk=second.pk).exists()
    third.refresh_from_db()
    assert (third.previous_value, third.consumption) == (10, 20)
    assert stored_series(register) == fresh_series(register)


# --- locks ---------------------------------------------------------------------------------


def test_a_locked_reading_cannot_be_changed_or_deleted(member, meter):
    first, second, third = add(meter, (0, 10), (1, 20), (3, 40))
    services.lock_readings(readings=Reading.objects.filter(pk__in=[first.pk, second.pk]))
    client = member("MANAGER")

    page = client.get(reading_url("change", second.pk))
    assert page.status_code == 200
    assert not page.context["has_change_permission"]
    assert LOCKED_MESSAGE in page.content.decode()
    assert reading_url("delete", second.pk).encode() not in page.content

    assert client.post(reading_url("change", second.pk), {"value": "21"}).status_code == 403
    for method in ("get", "post"):
        response = getattr(client, method)(reading_url("delete", second.pk), {"post": "yes"})
        assert response.status_code == 302
        assert response["Location"] == reading_url("change", second.pk)
        assert messages_of(response)[-1] == LOCKED_MESSAGE
    response = client.post(
        reading_url(),
        {"action": "delete_selected", "_selected_action": [second.pk, third.pk], "post": "yes"},
    )
    assert LOCKED_MESSAGE in messages_of(response)
    assert Reading.objects.count() == 3
    assert Reading.objects.get(pk=second.pk).value == 20

    # No reading among locked ones, and no reading moved into them.
    response = client.post(reading_url("add"), add_form(meter, day(0.5), "15"))
    assert response.status_code == 200
    assert form_errors(response) == {"__all__": [LOCKED_MESSAGE]}
    page = client.get(reading_url("change", third.pk))
    assert page.context["has_change_permission"]
    response = client.post(
        reading_url("change", third.pk),
        change_form(page, reading_date_0=f"{day(0.5):%Y-%m-%d}", reading_date_1="12:00:00"),
    )
    assert response.status_code == 200
    assert form_errors(response) == {"__all__": [LOCKED_MESSAGE]}
    assert Reading.objects.get(pk=third.pk).reading_date == day(3)


# --- scoping and roles ---------------------------------------------------------------------


def test_other_accounts_readings_and_meters_are_not_offered(member, account, other_account):
    theirs = MeterFactory(account=other_account, serial_number="THEIRS")
    (reading,) = add(theirs, (0, 1))
    mine = MeterFactory(account=account, serial_number="MINE")
    client = member("MANAGER")

    assert listed(client) == set()
    for view in ("change", "delete", "history"):
        response = client.get(reading_url(view, reading.pk))
        assert response.status_code == 302, view
        assert response["Location"] == reverse("admin:index")

    form = client.get(reading_url("add")).context["adminform"].form
    assert list(form.fields["meter"].queryset) == [mine]
    response = client.get(
        reverse("admin:autocomplete"),
        {"app_label": "readings", "model_name": "reading", "field_name": "meter", "term": ""},
    )
    assert response.status_code == 200
    assert [r["text"] for r in response.json()["results"]] == [str(mine)]

    response = client.post(reading_url("add"), add_form(theirs, day(1), "2"))
    assert response.status_code == 200
    assert "meter" in form_errors(response)
    assert Reading.objects.count() == 1


def test_viewer_views_readings_but_cannot_add_change_or_delete(member, meter):
    (reading,) = add(meter, (0, 10))
    client = member("VIEWER")

    assert client.get(reading_url()).status_code == 200
    page = client.get(reading_url("change", reading.pk))
    assert page.status_code == 200
    assert not page.context["has_change_permission"]
    assert client.get(reading_url("add")).status_code == 403
    assert client.post(reading_url("add"), add_form(meter, day(1), "11")).status_code == 403
    assert client.post(reading_url("change", reading.pk), {"value": "1"}).status_code == 403
    assert client.post(reading_url("delete", reading.pk), {"post": "yes"}).status_code == 403
    assert list(Reading.objects.values_list("value", flat=True)) == [10]


def test_operator_adds_readings_but_cannot_change_meters(member, meter):
    client = member("OPERATOR")

    assert client.get(reading_url("add")).status_code == 200
    response = client.post(reading_url("add"), add_form(meter, day(0), "7"))
    assert response.status_code == 302, form_errors(response)
    assert Reading.objects.get().value == 7

    page = client.get(url("meter", "change", meter.pk))
    assert page.status_code == 200
    assert not page.context["has_change_permission"]
    assert client.post(url("meter", "change", meter.pk), {"name": "x"}).status_code == 403


# --- history -------------------------------------------------------------------------------


def test_reading_page_shows_its_history(member, meter):
    _, second = add(meter, (0, 10), (1, 20))
    client = member("MANAGER")
    page = client.get(reading_url("change", second.pk))
    client.post(reading_url("change", second.pk), change_form(page, value="22.5"))

    content = client.get(reading_url("change", second.pk)).content.decode()

    if not history_is_recorded():
        assert "No history recorded." in content
        return
    assert f"user:{client.user.username}" in content
    assert "ADMIN" in content
    assert "value: 20 → 22.5" in content
    assert "consumption: 10 → 12.5" in content
    assert "test:fixture" in content  # the insert, through the API path
    assert "value: — → 20" in content


def test_meter_page_lists_latest_readings_and_their_history(member, meter):
    readings = add(meter, *[(n, 10 * n) for n in range(25)])
    client = member("OPERATOR")
    deleted = readings[-1]
    client.post(reading_url("delete", deleted.pk), {"post": "yes"})

    response = client.get(url("meter", "change", meter.pk))

    assert response.status_code == 200
    content = response.content.decode()
    assert "Latest readings" in content
    shown = [r.pk for r in readings[-21:-1]][::-1]  # the 20 latest left, newest first
    positions = [content.index(f'href="{reading_url("change", pk)}"') for pk in shown]
    assert positions == sorted(positions)
    assert (
        f'href="{reading_url("change", readings[0].pk)}"' not in content.split("Reading history")[0]
    )
    assert f"{reading_url()}?meter__id__exact={meter.pk}" in content
    assert f"{reading_url('add')}?meter={meter.pk}" in content
    assert "Reading history" in content
    if history_is_recorded():
        assert f"#{deleted.pk} (deleted)" in content
        assert f"user:{client.user.username}" in content
    else:
        assert "No history recorded." in content


def test_meter_page_queries_do_not_grow_with_readings(member, meter, register):
    client = member("MANAGER")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url("meter", "change", meter.pk)).status_code == 200
        return len(captured)

    # Enough for the history to name readings older than the latest ones shown.
    add(meter, *[(n, n) for n in range(60)])
    few = queries()
    add(meter, *[(n, n) for n in range(60, 200)])
    for reading in Reading.objects.filter(reading_date__gte=day(100)):
        services.update_reading(
            reading=reading, values={"notes": "checked"}, actor=services.Actor("x", "API")
        )
    assert queries() == few


def test_meter_page_of_a_viewer_offers_no_add_link(member, meter):
    content = member("VIEWER").get(url("meter", "change", meter.pk)).content.decode()

    assert "Latest readings" in content
    assert reading_url("add") not in content


# --- account thresholds --------------------------------------------------------------------


def test_changing_thresholds_in_the_account_admin_derives_flags_again(member, account, meter):
    add(meter, (0, 0), (1, 10), (2, 20), (3, 30), (4, 42))
    assert Reading.objects.get(reading_date=day(4)).anomaly_flags == []
    client = member("ADMIN")
    page = client.get(url("account", "change", account.pk))
    data = post_data(page.context["adminform"].form) | {"anomaly_deviation_ratio": "0.1"}

    response = client.post(url("account", "change", account.pk), data)

    assert response.status_code == 302
    assert Reading.objects.get(reading_date=day(4)).anomaly_flags == ["DEVIATION"]

"""The admin of period readings: writes through ``readings.periods``, refusals, locks, history."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from metering.models import Meter
from readings import periods
from readings.models import PeriodReading
from tests.factories import MeterFactory
from tests.metering.test_admin import messages_of, post_data, url
from tests.readings.test_periods import create, date, fresh_flags, item, stored_flags

pytestmark = pytest.mark.django_db

LOCKED_MESSAGE = "This reading belongs to a closed billing period and cannot change."


def period_url(view: str = "changelist", *args: Any) -> str:
    return url("periodreading", view, *args, app="readings")


@pytest.fixture
def meter(account):
    return MeterFactory(account=account, meter_type="GAS", serial_number="G-1")


def add_form(meter: Meter, start: int, end: int, amount: str = "30", **fields: str) -> dict:
    return {
        "meter": str(meter.pk),
        "start_date": date(start).isoformat(),
        "end_date": date(end).isoformat(),
        "consumption": amount,
        "cost": "",
        "cost_currency": "",
        "demand_kw": "",
        "notes": "",
        **fields,
    }


def change_form(response, **changes: Any) -> dict[str, Any]:
    return post_data(response.context["adminform"].form) | changes


def form_errors(response) -> dict[str, list[str]]:
    return {
        name: list(errors) for name, errors in response.context["adminform"].form.errors.items()
    }


def test_adding_goes_through_the_services(member, meter):
    create(meter, *[item(30 * k, 30 * k + 29) for k in (0, 1, 2, 4)])
    client = member("OPERATOR")

    response = client.post(
        period_url("add"), add_form(meter, 90, 119, "300", cost="12.50", notes="bill")
    )

    assert response.status_code == 302, form_errors(response)
    added = PeriodReading.objects.get(start_date=date(90))
    assert (added.source, added.created_by) == ("ADMIN", f"user:{client.user.username}")
    assert (added.account_id, added.cost, added.cost_currency) == (
        meter.account_id,
        D("12.50"),
        "EUR",
    )
    assert added.anomaly_flags == ["DEVIATION", "SPIKE"]
    assert stored_flags(meter) == fresh_flags(meter)


@pytest.mark.parametrize(
    ("start", "end", "fields", "errors"),
    [
        (5, 25, {}, {"__all__": ["This period overlaps another period reading of the meter."]}),
        (30, 20, {}, {"end_date": ["A period cannot end before it starts."]}),
        (30, 39, {"demand_kw": "-1"}, {"demand_kw": ["The demand cannot be negative."]}),
        (30, 39, {"cost_currency": "EURO"}, None),
    ],
    ids=["overlap", "dates", "demand", "currency"],
)
def test_refusals_are_form_errors(member, meter, start, end, fields, errors):
    create(meter, item(10, 19))
    response = member("OPERATOR").post(period_url("add"), add_form(meter, start, end, **fields))
    assert response.status_code == 200
    if errors is None:
        assert "cost_currency" in form_errors(response)
    else:
        assert form_errors(response) == errors
    assert PeriodReading.objects.count() == 1


def test_a_decommissioned_meter_takes_no_period_reading(member, meter):
    Meter.objects.filter(pk=meter.pk).update(status="DECOMMISSIONED")
    response = member("OPERATOR").post(period_url("add"), add_form(meter, 0, 9))
    assert response.status_code == 200
    assert "decommissioned" in form_errors(response)["meter"][0]
    assert not PeriodReading.objects.exists()


def test_changing_derives_the_flags_again(member, meter):
    rows = create(meter, *[item(30 * k, 30 * k + 29) for k in range(5)])
    client = member("MANAGER")
    page = client.get(period_url("change", rows[1].pk))
    assert page.context["has_change_permission"]

    response = client.post(period_url("change", rows[1].pk), change_form(page, consumption="600"))

    assert response.status_code == 302, form_errors(response)
    assert PeriodReading.objects.get(pk=rows[1].pk).consumption == 600
    assert stored_flags(meter) == fresh_flags(meter)
    assert PeriodReading.objects.get(pk=rows[4].pk).anomaly_flags == ["DEVIATION", "DROP"]


def test_moving_onto_another_period_is_a_form_error(member, meter):
    _, second = create(meter, item(0, 9), item(10, 19))
    client = member("MANAGER")
    page = client.get(period_url("change", second.pk))

    response = client.post(
        period_url("change", second.pk), change_form(page, start_date=date(5).isoformat())
    )

    assert response.status_code == 200
    assert form_errors(response) == {
        "__all__": ["This period overlaps another period reading of the meter."]
    }
    assert PeriodReading.objects.get(pk=second.pk).start_date == date(10)


def test_deleting_goes_through_the_services(member, meter):
    rows = create(meter, *[item(30 * k, 30 * k + 29) for k in range(4)], item(120, 149, "300"))
    response = member("OPERATOR").post(period_url("delete", rows[0].pk), {"post": "yes"})
    assert response.status_code == 302
    assert not PeriodReading.objects.filter(pk=rows[0].pk).exists()
    assert stored_flags(meter) == fresh_flags(meter)


def test_a_locked_period_cannot_be_changed_or_deleted(member, meter):
    january, february = create(meter, item(0, 30), item(31, 58))
    periods.lock_period_readings(periods=PeriodReading.objects.filter(pk=january.pk))
    client = member("MANAGER")

    page = client.get(period_url("change", january.pk))
    assert page.status_code == 200
    assert not page.context["has_change_permission"]
    assert LOCKED_MESSAGE in page.content.decode()
    assert client.post(period_url("change", january.pk), {"consumption": "1"}).status_code == 403
    for method in ("get", "post"):
        response = getattr(client, method)(period_url("delete", january.pk), {"post": "yes"})
        assert response.status_code == 302
        assert response["Location"] == period_url("change", january.pk)
        assert messages_of(response)[-1] == LOCKED_MESSAGE
    response = client.post(
        period_url(),
        {
            "action": "delete_selected",
            "_selected_action": [january.pk, february.pk],
            "post": "yes",
        },
    )
    assert LOCKED_MESSAGE in messages_of(response)
    assert PeriodReading.objects.count() == 2

    # Nor may a period be added or moved before the lock instant.
    PeriodReading.objects.filter(pk=january.pk).delete()
    response = client.post(period_url("add"), add_form(meter, 0, 9))
    assert form_errors(response) == {"__all__": [LOCKED_MESSAGE]}
    page = client.get(period_url("change", february.pk))
    response = client.post(
        period_url("change", february.pk), change_form(page, start_date=date(20).isoformat())
    )
    assert form_errors(response) == {"__all__": [LOCKED_MESSAGE]}
    assert PeriodReading.objects.get(pk=february.pk).start_date == date(31)


def test_viewer_sees_but_cannot_write(member, meter):
    (period,) = create(meter, item(0, 9))
    client = member("VIEWER")
    assert client.get(period_url()).status_code == 200
    assert not client.get(period_url("change", period.pk)).context["has_change_permission"]
    assert client.get(period_url("add")).status_code == 403
    assert client.post(period_url("add"), add_form(meter, 10, 19)).status_code == 403
    assert client.post(period_url("delete", period.pk), {"post": "yes"}).status_code == 403
    assert PeriodReading.objects.count() == 1


def test_other_accounts_periods_and_meters_are_not_offered(member, account, other_account):
    theirs = MeterFactory(account=other_account, serial_number="THEIRS")
    (period,) = create(theirs, item(0, 9))
    mine = MeterFactory(account=account, serial_number="MINE")
    client = member("MANAGER")

    assert list(client.get(period_url()).context["cl"].result_list) == []
    assert client.get(period_url("change", period.pk)).status_code == 302
    assert list(
        client.get(period_url("add")).context["adminform"].form.fields["meter"].queryset
    ) == [mine]
    response = client.post(period_url("add"), add_form(theirs, 10, 19))
    assert "meter" in form_errors(response)
    assert PeriodReading.objects.count() == 1


def test_list_shows_flags_and_locks_with_constant_queries(member, meter):
    client = member("VIEWER")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(period_url())
            assert response.status_code == 200
        return len(captured)

    create(meter, item(0, 9))
    few = queries()
    create(meter, *[item(10 * k, 10 * k + 9) for k in range(1, 4)], item(40, 49, "100"))
    periods.lock_period_readings(periods=PeriodReading.objects.filter(start_date=date(0)))
    assert queries() == few
    content = client.get(period_url()).content.decode()
    assert "DEVIATION SPIKE" in content
    assert content.count("icon-yes.svg") == 1  # the locked period


def test_page_shows_its_history(member, meter):
    (period,) = create(meter, item(0, 9, "10"))
    client = member("MANAGER")
    page = client.get(period_url("change", period.pk))
    client.post(period_url("change", period.pk), change_form(page, consumption="12.5"))

    content = client.get(period_url("change", period.pk)).content.decode()

    assert f"user:{client.user.username}" in content
    assert "consumption: 10 → 12.5" in content
    assert "test:periods" in content  # the insert, through the services' import path


def test_every_path_stores_the_same_rows(api, member, account):
    """The services, the API (single and batch) and the admin give identical period readings."""
    bills = [(0, 30, "31"), (31, 58, "28"), (59, 89, "31"), (90, 119, "30"), (120, 150, "99")]
    by_path = {path: MeterFactory(account=account) for path in ("service", "api", "batch", "admin")}

    create(by_path["service"], *[item(s, e, a, cost=D("9.90")) for s, e, a in bills])
    for start, end, amount in bills:
        response = api.post(
            f"/api/v1/meters/{by_path['api'].pk}/period-readings/",
            {**add_form(by_path["api"], start, end, amount), "cost": "9.90", "cost_currency": None},
            format="json",
        )
        assert response.status_code == 201, response.json()
    payload = [
        {"start_date": date(s).isoformat(), "end_date": date(e).isoformat(), "consumption": a}
        | {"cost": "9.90"}
        for s, e, a in bills
    ]
    response = api.post(
        f"/api/v1/meters/{by_path['batch'].pk}/period-readings/batch/",
        {"readings": payload},
        format="json",
    )
    assert response.json()["data"]["accepted"] == len(bills)
    client = member("OPERATOR")
    for start, end, amount in bills:
        response = client.post(
            period_url("add"), add_form(by_path["admin"], start, end, amount, cost="9.90")
        )
        assert response.status_code == 302, form_errors(response)

    def rows(meter: Meter) -> list[tuple]:
        return [
            (
                p.start_date,
                p.end_date,
                p.consumption,
                p.cost,
                p.cost_currency,
                p.demand_kw,
                p.is_estimated,
                p.notes,
                tuple(p.anomaly_flags),
            )
            for p in PeriodReading.objects.filter(meter=meter).order_by("start_date")
        ]

    expected = rows(by_path["service"])
    assert expected[-1][-1] == ("DEVIATION", "SPIKE")
    for path, meter in by_path.items():
        assert rows(meter) == expected, path

"""The billing admin: leases, meter shares, allocation rules, billing periods and charges.

Scoping and roles as everywhere (``metering.admin_base``); writes through ``billing.services``;
computing and closing periods from the list's actions and the period's page.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing import services
from billing.models import AllocationRule, BillingPeriod, Charge, Lease, MeterShare
from metering.errors import Overlap
from metering.models import Register
from readings import services as readings_services
from readings.domain import local_midnight
from readings.models import Reading
from tests.factories import (
    AllocationRuleFactory,
    EstateFactory,
    LeaseFactory,
    MeterFactory,
    MeterShareFactory,
    PlaceFactory,
    TariffFactory,
    TenantFactory,
)
from tests.metering.test_admin import change_page_data, messages_of, post_data

pytestmark = pytest.mark.django_db

D = Decimal
ACTOR = readings_services.Actor("test:billing-admin", "API")


def url(model_name: str, view: str = "changelist", *args) -> str:
    return reverse(f"admin:billing_{model_name}_{view}", args=args)


def date(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def read(meter, *pairs) -> None:
    """Readings ``(day, value)`` at the account's local midnight, through the engine."""
    zone = zoneinfo.ZoneInfo(meter.account.timezone)
    items = [
        readings_services.ReadingInput(
            reading_date=local_midnight(date(day), zone), value=D(str(value))
        )
        for day, value in pairs
    ]
    result = readings_services.create_readings(meter=meter, items=items, actor=ACTOR)
    assert not result.errors, result.errors


@pytest.fixture
def place(account):
    return PlaceFactory(account=account, code="P1")


@pytest.fixture
def billed(account, place):
    """Estate A1 leased all January 2024, its meter read on Jan 1 (100) and Feb 1 (200) at
    0.20 €/kWh: one charge of 20.00; estate A2's meter has no reading in February (an issue)."""
    TariffFactory(account=account, meter_type="ELECTRICITY", unit_price=D("0.20"))
    a1 = EstateFactory(place=place, code="A1")
    a2 = EstateFactory(place=place, code="A2")
    tenant = TenantFactory(account=account, name="Camille Martin")
    lease = LeaseFactory(estate=a1, tenant=tenant, reference="L-A1", start_date=date("2023-06-01"))
    LeaseFactory(estate=a2, reference="L-A2", start_date=date("2023-06-01"))
    read(
        MeterFactory(account=account, place=place, estate=a1, serial_number="E-A1"),
        *[
            ("2024-01-01", 100),
            ("2024-02-01", 200),
        ],
    )
    incomplete = MeterFactory(account=account, place=place, estate=a2, serial_number="E-A2")
    read(incomplete, ("2024-01-01", 50))
    period = services.create_period(
        account=account,
        values={
            "place": place,
            "name": "January 2024",
            "start_date": date("2024-01-01"),
            "end_date": date("2024-01-31"),
        },
    )
    return {"period": period, "lease": lease, "a1": a1, "a2": a2, "incomplete": incomplete}


def complete(billed) -> None:
    """Read the incomplete meter in February: the period has no more issues."""
    read(billed["incomplete"], ("2024-02-01", 60))


def action(name: str, *periods, **extra) -> dict:
    return {"action": name, "_selected_action": [str(p.pk) for p in periods], **extra}


# --- pages -----------------------------------------------------------------------------------


def test_every_billing_page_answers_for_a_manager(member, account, place, billed):
    shared = MeterShareFactory(
        meter=MeterFactory(account=account, place=place, billing_type="SHARED"),
        estate=billed["a1"],
    )
    rule = AllocationRuleFactory(
        meter=MeterFactory(account=account, place=place, billing_type="COLLECTIVE")
    )
    services.compute_period(period=billed["period"])
    charge = Charge.objects.first()
    client = member("MANAGER")

    for model, obj in [
        ("lease", billed["lease"]),
        ("metershare", shared),
        ("allocationrule", rule),
        ("billingperiod", billed["period"]),
        ("tenant", billed["lease"].tenant),
    ]:
        assert client.get(url(model)).status_code == 200, model
        assert client.get(url(model), {"q": "x"}).status_code == 200, model
        assert client.get(url(model, "add")).status_code == 200, model
        assert client.get(url(model, "change", obj.pk)).status_code == 200, model
    assert client.get(url("charge")).status_code == 200
    assert client.get(url("charge", "change", charge.pk)).status_code == 200


def test_a_viewer_reads_but_writes_nothing(member, billed):
    client = member("VIEWER")
    period = billed["period"]

    page = client.get(url("billingperiod", "change", period.pk))
    assert page.status_code == 200
    assert not page.context["has_change_permission"]
    assert url("billingperiod", "compute", period.pk).encode() not in page.content
    assert client.get(url("lease", "add")).status_code == 403

    changelist = client.get(url("billingperiod"))
    assert changelist.status_code == 200
    action_form = changelist.context["action_form"]
    offered = {name for name, _ in action_form.fields["action"].choices} if action_form else set()
    assert not offered & {
        "compute_selected_periods",
        "close_selected_periods",
        "force_close_selected_periods",
    }
    client.post(url("billingperiod"), action("compute_selected_periods", period))
    client.post(url("billingperiod"), action("force_close_selected_periods", period, confirm="yes"))
    assert client.post(url("billingperiod", "compute", period.pk)).status_code == 403
    assert client.post(url("billingperiod", "close", period.pk), {"force": "1"}).status_code == 403
    period.refresh_from_db()
    assert (period.status, period.computed_at) == ("DRAFT", None)
    assert not Charge.objects.exists()


def test_another_accounts_member_cannot_see_the_period(member, other_account, billed):
    period = billed["period"]
    client = member("ADMIN", other_account)

    assert client.get(url("billingperiod")).context["cl"].result_count == 0
    for view, args in [
        ("change", [period.pk]),
        ("delete", [period.pk]),
        ("close", [period.pk]),
        ("statement", [period.pk, billed["lease"].pk]),
    ]:
        response = client.get(url("billingperiod", view, *args))
        assert response.status_code == 302, view
        assert response["Location"] == reverse("admin:index")
    response = client.post(url("billingperiod", "compute", period.pk))
    assert response["Location"] == reverse("admin:index")
    response = client.post(url("billingperiod"), action("compute_selected_periods", period))
    period.refresh_from_db()
    assert period.computed_at is None


# --- leases ----------------------------------------------------------------------------------


def lease_form(tenant, estate, start: str, end: str = "", reference: str = "L-NEW") -> dict:
    return {
        "tenant": tenant.pk,
        "estate": estate.pk,
        "reference": reference,
        "start_date": start,
        "end_date": end,
    }


def test_adding_a_lease_and_an_overlapping_one(member, account, place):
    estate = EstateFactory(place=place, code="B1")
    first, second = TenantFactory(account=account), TenantFactory(account=account)
    client = member("MANAGER")

    response = client.post(
        url("lease", "add"), lease_form(first, estate, "2024-01-01", "2024-06-30", "L-1")
    )
    assert response.status_code == 302
    lease = Lease.objects.get(reference="L-1")
    assert (lease.account, lease.tenant, lease.end_date) == (account, first, date("2024-06-30"))

    response = client.post(url("lease", "add"), lease_form(second, estate, "2024-06-01"))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "already leased" in str(errors["start_date"])
    assert not Lease.objects.filter(reference="L-NEW").exists()

    response = client.post(url("lease", "add"), lease_form(second, estate, "2024-07-01"))
    assert response.status_code == 302
    listed = client.get(url("lease"), {"status": "ended"}).context["cl"].result_list
    assert [lease.reference for lease in listed] == ["L-1"]


def test_a_lease_refuses_another_accounts_estate_and_tenant(member, account, other_account):
    foreign_estate = EstateFactory(place=PlaceFactory(account=other_account))
    foreign_tenant = TenantFactory(account=other_account)
    tenant = TenantFactory(account=account)
    estate = EstateFactory(place=PlaceFactory(account=account))
    client = member("MANAGER")

    response = client.post(url("lease", "add"), lease_form(tenant, foreign_estate, "2024-01-01"))
    assert "estate" in response.context["adminform"].form.errors
    response = client.post(url("lease", "add"), lease_form(foreign_tenant, estate, "2024-01-01"))
    assert "tenant" in response.context["adminform"].form.errors
    assert not Lease.objects.exists()

    # The autocomplete offers only the member's estates.
    response = client.get(
        reverse("admin:autocomplete"),
        {"app_label": "billing", "model_name": "lease", "field_name": "estate", "term": ""},
    )
    assert {row["id"] for row in response.json()["results"]} == {str(estate.pk)}


def test_a_member_of_two_accounts_cannot_mix_them(member, account, other_account):
    tenant = TenantFactory(account=account)
    estate = EstateFactory(place=PlaceFactory(account=account))
    client = member("MANAGER", account, other_account)

    response = client.post(
        url("lease", "add"),
        {"account": other_account.pk, **lease_form(tenant, estate, "2024-01-01")},
    )

    assert response.status_code == 200
    assert {"tenant", "estate"} <= set(response.context["adminform"].form.errors)
    assert not Lease.objects.exists()


def test_the_tenant_page_adds_and_changes_leases(member, account, place):
    tenant = TenantFactory(account=account, name="Inès Moreau")
    estate = EstateFactory(place=place, code="C1")
    lease = LeaseFactory(estate=estate, tenant=tenant, start_date=date("2022-01-01"))
    other_estate = EstateFactory(place=place, code="C2")
    client = member("MANAGER")
    page = client.get(url("tenant", "change", tenant.pk))
    assert page.status_code == 200
    (inline,) = page.context["inline_admin_formsets"]
    assert [form.instance for form in inline.formset.forms] == [lease]
    data = change_page_data(page)
    prefix = inline.formset.prefix
    data |= {
        f"{prefix}-0-end_date": "2023-12-31",
        f"{prefix}-TOTAL_FORMS": "2",
        f"{prefix}-1-reference": "L-C2",
        f"{prefix}-1-estate": str(other_estate.pk),
        f"{prefix}-1-start_date": "2024-01-01",
        f"{prefix}-1-end_date": "",
    }

    response = client.post(url("tenant", "change", tenant.pk), data)

    assert response.status_code == 302, response.context["inline_admin_formsets"][0].formset.errors
    lease.refresh_from_db()
    assert lease.end_date == date("2023-12-31")
    added = Lease.objects.get(reference="L-C2")
    assert (added.tenant, added.estate, added.account) == (tenant, other_estate, account)

    # An overlapping lease from the tenant's page is a form error on its row.
    data[f"{prefix}-TOTAL_FORMS"] = "3"
    data |= {
        f"{prefix}-1-id": str(added.pk),
        f"{prefix}-1-tenant": str(tenant.pk),
        f"{prefix}-2-reference": "L-AGAIN",
        f"{prefix}-2-estate": str(other_estate.pk),
        f"{prefix}-2-start_date": "2024-03-01",
    }
    data[f"{prefix}-INITIAL_FORMS"] = "2"
    response = client.post(url("tenant", "change", tenant.pk), data)
    assert response.status_code == 200
    assert "already leased" in str(response.context["inline_admin_formsets"][0].formset.errors)
    assert not Lease.objects.filter(reference="L-AGAIN").exists()


# --- meter shares and allocation rules -------------------------------------------------------


def test_meter_shares_are_for_shared_meters_of_the_estates_place(member, account, place):
    shared = MeterFactory(account=account, place=place, billing_type="SHARED", serial_number="S")
    individual = MeterFactory(account=account, place=place, serial_number="I")
    estate = EstateFactory(place=place)
    elsewhere = EstateFactory(place=PlaceFactory(account=account))
    client = member("MANAGER")

    form = client.get(url("metershare", "add")).context["adminform"].form
    assert list(form.fields["meter"].queryset) == [shared]

    response = client.post(
        url("metershare", "add"), {"meter": individual.pk, "estate": estate.pk, "ratio": "1"}
    )
    assert "meter" in response.context["adminform"].form.errors
    response = client.post(
        url("metershare", "add"), {"meter": shared.pk, "estate": elsewhere.pk, "ratio": "1"}
    )
    assert "estate" in response.context["adminform"].form.errors
    response = client.post(
        url("metershare", "add"), {"meter": shared.pk, "estate": estate.pk, "ratio": "0"}
    )
    assert "ratio" in response.context["adminform"].form.errors
    response = client.post(
        url("metershare", "add"), {"meter": shared.pk, "estate": estate.pk, "ratio": "120"}
    )
    assert response.status_code == 302
    assert MeterShare.objects.get().ratio == 120


def test_allocation_rules_are_for_collective_meters(member, account, place):
    collective = MeterFactory(
        account=account, place=place, billing_type="COLLECTIVE", meter_type="HEATING"
    )
    client = member("MANAGER")
    data = {"meter": collective.pk, "basis": "SURFACE", "consumption_part_percent": "70"}

    assert "consumption_part_percent" in (
        client.post(url("allocationrule", "add"), data | {"consumption_part_percent": "101"})
        .context["adminform"]
        .form.errors
    )
    response = client.post(url("allocationrule", "add"), data)

    assert response.status_code == 302
    rule = AllocationRule.objects.get()
    assert (rule.meter, rule.basis, rule.consumption_part_percent) == (collective, "SURFACE", 70)
    assert rule.account == account


# --- billing periods: create, change, delete -------------------------------------------------


def test_adding_a_period_takes_the_accounts_currency(member, account, place):
    account.currency = "CHF"
    account.save()
    client = member("MANAGER")
    data = {"place": place.pk, "name": "Q1", "start_date": "2024-01-01", "end_date": "2024-03-31"}

    refused = client.post(url("billingperiod", "add"), data | {"end_date": "2023-12-31"})
    assert "end_date" in refused.context["adminform"].form.errors
    response = client.post(url("billingperiod", "add"), data)

    assert response.status_code == 302
    period = BillingPeriod.objects.get()
    assert (period.status, period.currency, period.account) == ("DRAFT", "CHF", account)


def test_changing_a_draft_drops_its_charges_saving_it_unchanged_keeps_them(member, billed):
    period = services.compute_period(period=billed["period"])
    assert period.charges.exists()
    client = member("MANAGER")
    data = post_data(
        client.get(url("billingperiod", "change", period.pk)).context["adminform"].form
    )

    assert client.post(url("billingperiod", "change", period.pk), data).status_code == 302
    assert period.charges.exists()

    response = client.post(url("billingperiod", "change", period.pk), data | {"name": "Jan."})
    assert response.status_code == 302
    period.refresh_from_db()
    assert (period.name, period.computed_at, period.total_amount) == ("Jan.", None, None)
    assert not period.charges.exists()


def test_a_closed_period_cannot_be_changed_nor_deleted(member, billed):
    complete(billed)
    period = services.close_period(period=billed["period"], closed_by="test")
    client = member("MANAGER")

    page = client.get(url("billingperiod", "change", period.pk))
    assert page.status_code == 200
    assert not page.context["has_change_permission"]
    assert not page.context["has_delete_permission"]
    assert url("billingperiod", "compute", period.pk).encode() not in page.content
    response = client.post(url("billingperiod", "change", period.pk), {"name": "Changed"})
    assert response.status_code == 403
    assert (
        client.post(url("billingperiod", "delete", period.pk), {"post": "yes"}).status_code == 403
    )

    response = client.post(url("billingperiod"), action("delete_selected", period, post="yes"))
    assert response.status_code == 403
    page = client.post(url("billingperiod"), action("delete_selected", period))
    assert page.context["perms_lacking"]  # the confirmation page says why, with no button
    response = client.post(url("billingperiod"), action("compute_selected_periods", period))
    assert any("closed" in message for message in messages_of(response))
    period.refresh_from_db()
    assert (period.name, period.status) == ("January 2024", "CLOSED")


def test_a_refusal_after_the_form_was_valid_is_a_message(member, account, place, monkeypatch):
    """A lease written concurrently between the form's check and the save: the service's 409
    becomes an error message, nothing is stored."""
    estate = EstateFactory(place=place)
    tenant = TenantFactory(account=account)

    def refuse(**kwargs):
        raise Overlap("The estate is already leased from 2024-01-01 to an open end.")

    monkeypatch.setattr(services, "create_object", refuse)
    add = url("lease", "add")

    response = member("MANAGER").post(add, lease_form(tenant, estate, "2024-01-01"))

    assert (response.status_code, response["Location"]) == (302, add)
    assert any("already leased" in message for message in messages_of(response))
    assert not Lease.objects.exists()


def test_deleting_a_draft(member, billed):
    period = services.compute_period(period=billed["period"])
    response = member("MANAGER").post(url("billingperiod", "delete", period.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not BillingPeriod.objects.exists()
    assert not Charge.objects.exists()


# --- billing periods: compute and close ------------------------------------------------------


def test_compute_action_writes_the_charges(member, billed):
    period = billed["period"]
    client = member("MANAGER")

    response = client.post(url("billingperiod"), action("compute_selected_periods", period))

    assert response.status_code == 302
    period.refresh_from_db()
    assert period.computed_at is not None
    (charge,) = Charge.objects.filter(billing_period=period, lease=billed["lease"])
    assert (charge.consumption, charge.amount) == (D(100), D("20.00"))
    assert [issue["serial_number"] for issue in period.issues] == ["E-A2"]
    assert any("January 2024 computed" in message for message in messages_of(response))

    changelist = client.get(url("billingperiod"))
    assert changelist.status_code == 200
    assert b"20.00 EUR" in changelist.content


def test_close_action_refuses_issues_and_the_forced_one_asks_first(member, billed):
    period = billed["period"]
    services.compute_period(period=period)
    client = member("MANAGER")

    response = client.post(url("billingperiod"), action("close_selected_periods", period))
    assert any("unresolved issue" in message for message in messages_of(response))
    period.refresh_from_db()
    assert period.status == "DRAFT"

    page = client.post(url("billingperiod"), action("force_close_selected_periods", period))
    assert page.status_code == 200
    assert b"E-A2" in page.content and b"even with their issues" in page.content
    period.refresh_from_db()
    assert period.status == "DRAFT"

    response = client.post(
        url("billingperiod"), action("force_close_selected_periods", period, confirm="yes")
    )
    assert response.status_code == 302
    period.refresh_from_db()
    assert (period.status, period.closed_by) == ("CLOSED", f"user:{client.user.username}")
    assert period.closed_at is not None
    # The readings it used are locked.
    register = Register.objects.get(meter__serial_number="E-A1")
    assert Reading.objects.get(register=register, value=200).is_locked


def test_close_action_without_issues(member, billed):
    complete(billed)
    period = billed["period"]

    response = member("MANAGER").post(
        url("billingperiod"), action("close_selected_periods", period)
    )

    assert any("January 2024 closed" in message for message in messages_of(response))
    period.refresh_from_db()
    assert period.status == "CLOSED"
    assert period.charges.count() == 2


def test_closing_over_another_closed_period_is_refused_with_a_message(member, place, billed):
    complete(billed)
    services.close_period(period=billed["period"], closed_by="test")
    overlapping = services.create_period(
        account=place.account,
        values={
            "place": place,
            "name": "Winter",
            "start_date": date("2024-01-15"),
            "end_date": date("2024-01-31"),
        },
    )

    response = member("MANAGER").post(
        url("billingperiod"), action("close_selected_periods", overlapping)
    )

    assert response.status_code == 302
    assert any("overlaps this one" in message for message in messages_of(response))
    overlapping.refresh_from_db()
    assert overlapping.status == "DRAFT"


def test_buttons_on_the_periods_page(member, billed):
    period = billed["period"]
    client = member("MANAGER")
    page = client.get(url("billingperiod", "change", period.pk))
    assert url("billingperiod", "compute", period.pk).encode() in page.content
    assert url("billingperiod", "close", period.pk).encode() in page.content
    assert b"Not computed yet" in page.content
    assert client.get(url("billingperiod", "compute", period.pk)).status_code == 405

    response = client.post(url("billingperiod", "compute", period.pk), follow=True)
    assert response.redirect_chain == [(url("billingperiod", "change", period.pk), 302)]
    content = response.content.decode()
    assert "E-A1" in content and "20.00" in content  # the charges' table
    assert "The meter has no reading" in content or "E-A2" in content  # the issues

    # Close: a page lists the issues; closing without forcing is refused and shows them.
    page = client.get(url("billingperiod", "close", period.pk))
    assert page.status_code == 200
    assert b"E-A2" in page.content and b'name="force"' in page.content
    refused = client.post(url("billingperiod", "close", period.pk), {"close": "Close"}, follow=True)
    assert refused.redirect_chain == [(url("billingperiod", "close", period.pk), 302)]
    assert "unresolved issue" in refused.content.decode()
    assert b"E-A2" in refused.content and b'name="force"' in refused.content
    period.refresh_from_db()
    assert period.status == "DRAFT"

    response = client.post(url("billingperiod", "close", period.pk), {"force": "1"})
    assert response.status_code == 302
    period.refresh_from_db()
    assert period.status == "CLOSED"
    page = client.get(url("billingperiod", "change", period.pk))
    assert url("billingperiod", "close", period.pk).encode() not in page.content


def test_the_statement_page(member, billed):
    period = services.compute_period(period=billed["period"])
    client = member("VIEWER")
    page = client.get(url("billingperiod", "change", period.pk))
    statement_url = url("billingperiod", "statement", period.pk, billed["lease"].pk)
    assert statement_url.encode() in page.content

    response = client.get(statement_url)

    assert response.status_code == 200
    content = response.content.decode()
    assert "Camille Martin" in content and "E-A1" in content and "20.00" in content
    other_lease = LeaseFactory(estate=EstateFactory(place=PlaceFactory()))
    missing = client.get(url("billingperiod", "statement", period.pk, other_lease.pk))
    assert missing.status_code == 404


# --- charges -------------------------------------------------------------------------------


def test_charges_are_read_only(member, billed):
    period = services.compute_period(period=billed["period"])
    charge = Charge.objects.get(billing_period=period)
    client = member("MANAGER")

    listed = client.get(url("charge"), {"billing_period__id__exact": period.pk})
    assert [c.pk for c in listed.context["cl"].result_list] == [charge.pk]
    assert client.get(url("charge"), {"is_vacancy__exact": "1"}).context["cl"].result_count == 0
    assert client.get(url("charge", "add")).status_code == 403
    page = client.get(url("charge", "change", charge.pk))
    assert page.status_code == 200 and not page.context["has_change_permission"]
    assert client.post(url("charge", "delete", charge.pk), {"post": "yes"}).status_code == 403
    assert Charge.objects.filter(pk=charge.pk).exists()


# --- query counts --------------------------------------------------------------------------


def test_pages_make_as_many_queries_for_many_rows(member, account, place, billed):
    """The lease and charge lists and the period's page: their queries do not grow with rows."""
    client = member("MANAGER")
    period = billed["period"]
    pages = [
        url("lease"),
        url("charge"),
        url("billingperiod"),
        url("billingperiod", "change", period.pk),
    ]

    def queries() -> list[int]:
        services.compute_period(period=period)
        counts = []
        for page in pages:
            ContentType.objects.clear_cache()  # the same cold cache each time
            with CaptureQueriesContext(connection) as captured:
                assert client.get(page).status_code == 200, page
            counts.append(len(captured))
        return counts

    few = queries()
    for n in range(5):
        estate = EstateFactory(place=place, code=f"M{n}")
        LeaseFactory(estate=estate, start_date=date("2023-01-01"), end_date=date("2024-01-10"))
        LeaseFactory(estate=estate, start_date=date("2024-01-11"))
        meter = MeterFactory(account=account, place=place, estate=estate)
        read(meter, ("2024-01-01", 10), ("2024-02-01", 20))
    assert Charge.objects.count() == 1  # before computing again
    assert queries() == few
    assert Charge.objects.count() == 1 + 10

"""The admin: account scoping, role permissions and writes through the services."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing import services as billing_services
from billing.models import (
    AllocationRule,
    BillingPeriod,
    Charge,
    Lease,
    MeterShare,
    PortalKey,
    Tariff,
    Tenant,
)
from metering import keys, services
from metering.models import (
    Account,
    ApiKey,
    Estate,
    Gateway,
    Invitation,
    Membership,
    Meter,
    Place,
    Register,
    ServicePlace,
)
from readings.models import PeriodReading, Reading
from tests.factories import (
    EstateFactory,
    MembershipFactory,
    MeterFactory,
    PlaceFactory,
    TenantFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

# What the add form of a meter posts for the fields that have defaults.
DEFAULT_METER_FIELDS = {
    "billing_type": "INDIVIDUAL",
    "communication_type": "NONE",
    "status": "ACTIVE",
    "multiplier": "1",
    "precision_digits": "3",
    "properties": "{}",
}

# Every model has an add page (index and period readings through their services' own admin
# forms) except charges, which only computing a billing period writes, and memberships, which
# only an accepted invitation writes; only superusers add accounts.
NOT_ADDABLE: set[type] = {Charge, Membership}
NOT_ADDABLE_BY_MEMBERS = NOT_ADDABLE | {Account}


def url(model_name: str, view: str = "changelist", *args: Any, app: str = "metering") -> str:
    return reverse(f"admin:{app}_{model_name}_{view}", args=args)


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def raw_key_in(messages: list[str], kind_prefix: str) -> str:
    """The clear key shown in exactly one of ``messages``."""
    raws = [
        word
        for message in messages
        for word in message.split()
        if word.startswith(kind_prefix) and len(word) > keys.CLEAR_PREFIX_LENGTH
    ]
    assert len(raws) == 1, messages
    return raws[0]


def post_data(form) -> dict[str, Any]:
    """What a browser posts back for ``form`` as rendered (unticked boxes are left out)."""
    data: dict[str, Any] = {}
    for name, field in form.fields.items():
        if field.disabled:
            continue
        value = form[name].value()
        if value is False:
            continue
        data[form.add_prefix(name)] = "on" if value is True else ("" if value is None else value)
    return data


def change_page_data(response) -> dict[str, Any]:
    """The whole change form of an admin page, inlines included, as a browser would post it."""
    data = post_data(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        data.update(post_data(inline.formset.management_form))
        for form in inline.formset.forms:
            data.update(post_data(form))
    return data


# --- scoping -------------------------------------------------------------------------------


def test_member_sees_only_their_accounts_meters(member, account, other_account):
    MeterFactory(account=account, serial_number="A-1")
    MeterFactory(account=other_account, serial_number="B-1")

    response = member("MANAGER").get(url("meter"))

    assert response.status_code == 200
    assert [m.serial_number for m in response.context["cl"].result_list] == ["A-1"]
    assert b"B-1" not in response.content


def test_other_accounts_meter_page_is_not_found(member, other_account):
    meter = MeterFactory(account=other_account, serial_number="B-SECRET")
    client = member("ADMIN")

    for view in ("change", "delete", "history"):
        response = client.get(url("meter", view, meter.pk))
        assert response.status_code == 302, view
        assert response["Location"] == reverse("admin:index")
    response = client.get(url("meter", "change", meter.pk), follow=True)
    assert b"B-SECRET" not in response.content
    assert Meter.objects.filter(pk=meter.pk).exists()


def test_meter_form_refuses_another_accounts_place(member, other_account):
    foreign_place = PlaceFactory(account=other_account)

    response = member("MANAGER").post(
        url("meter", "add"),
        {
            "name": "Hall",
            "serial_number": "X1",
            "meter_type": "ELECTRICITY",
            "place": foreign_place.pk,
        }
        | DEFAULT_METER_FIELDS,
    )

    assert response.status_code == 200
    assert "place" in response.context["adminform"].form.errors
    assert not Meter.objects.filter(serial_number="X1").exists()


def test_superuser_sees_every_account(superuser_client, account, other_account):
    MeterFactory(account=account, serial_number="A-1")
    MeterFactory(account=other_account, serial_number="B-1")

    response = superuser_client.get(url("meter"))

    assert {m.serial_number for m in response.context["cl"].result_list} == {"A-1", "B-1"}
    assert "account" in response.context["cl"].list_display


def test_foreign_key_choices_filters_and_autocomplete_are_scoped(member, account, other_account):
    mine = PlaceFactory(account=account, code="MINE")
    also_mine = PlaceFactory(account=account, code="ALSO-MINE")
    PlaceFactory(account=other_account, code="THEIRS")
    client = member("MANAGER")

    form = client.get(url("meter", "add")).context["adminform"].form
    assert {p.code for p in form.fields["place"].queryset} == {"MINE", "ALSO-MINE"}

    estate_filters = client.get(url("estate")).context["cl"].filter_specs
    place_filter = next(spec for spec in estate_filters if spec.field_path == "place")
    assert {label for _, label in place_filter.lookup_choices} == {str(mine), str(also_mine)}

    response = client.get(
        reverse("admin:autocomplete"),
        {"app_label": "metering", "model_name": "meter", "field_name": "place", "term": "MINE"},
    )
    assert response.status_code == 200
    assert {r["text"] for r in response.json()["results"]} == {str(mine), str(also_mine)}


def test_several_accounts_offer_only_those_accounts(member, account, other_account):
    third = Account.objects.create(name="Third", slug="third")
    client = member("MANAGER", account, other_account)

    form = client.get(url("meter", "add")).context["adminform"].form

    assert not form.fields["account"].disabled
    assert set(form.fields["account"].queryset) == {account, other_account}
    assert third not in form.fields["account"].queryset


def test_a_single_account_is_set_by_itself(member, account):
    client = member("MANAGER")

    form = client.get(url("place", "add")).context["adminform"].form
    assert form.fields["account"].disabled
    assert form.initial["account"] == account.pk

    response = client.post(url("place", "add"), {"account": "ignored", "code": "P1", "name": "P"})
    assert response.status_code == 302
    assert account.places.get().code == "P1"


# --- meter changelist and pages ------------------------------------------------------------


def test_meter_changelist_filters_and_searches(member, account):
    place = PlaceFactory(account=account)
    MeterFactory(account=account, serial_number="E-1", meter_type="ELECTRICITY", place=place)
    MeterFactory(account=account, serial_number="G-1", meter_type="GAS", status="FAULTY")
    MeterFactory(account=account, serial_number="W-1", meter_type="WATER", billing_type="SHARED")
    client = member("VIEWER")

    def listed(**params: str) -> set[str]:
        response = client.get(url("meter"), params)
        assert response.status_code == 200
        return {m.serial_number for m in response.context["cl"].result_list}

    assert listed(meter_type__exact="GAS") == {"G-1"}
    assert listed(status__exact="FAULTY") == {"G-1"}
    assert listed(billing_type__exact="SHARED") == {"W-1"}
    assert listed(place__id__exact=str(place.pk)) == {"E-1"}
    assert listed(q="W-1") == {"W-1"}


def test_meter_page_shows_registers_and_sub_meters(member, account):
    main = MeterFactory(account=account, serial_number="MAIN", meter_type="WATER")
    services.create_register(meter=main, values={"code": "1.8.1", "unit": "m3"})
    child = MeterFactory(account=account, serial_number="CHILD", meter_type="WATER_HOT")
    services.update_meter(meter=child, values={"parent_meter": main})

    response = member("VIEWER").get(url("meter", "change", main.pk))

    assert response.status_code == 200
    inlines = {i.formset.prefix: i for i in response.context["inline_admin_formsets"]}
    assert {f.instance.code for f in inlines["registers"].formset.forms} == {"default", "1.8.1"}
    assert [f.instance.serial_number for f in inlines["sub_meters"].formset.forms] == ["CHILD"]
    assert url("meter", "change", child.pk).encode() in response.content


def test_adding_a_meter_creates_its_default_register(member, account):
    estate = EstateFactory(place=PlaceFactory(account=account))

    response = member("MANAGER").post(
        url("meter", "add"),
        {"name": "Flat 1", "serial_number": "NEW-1", "meter_type": "WATER", "estate": estate.pk}
        | DEFAULT_METER_FIELDS,
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    meter = Meter.objects.get(serial_number="NEW-1")
    assert meter.account == account
    assert meter.unit == "m3"
    assert meter.place == estate.place  # taken from the estate by the model's rules
    assert list(meter.registers.values_list("code", "is_default", "unit")) == [
        ("default", True, "m3")
    ]


def test_a_duplicate_serial_number_is_a_form_error(member, account):
    MeterFactory(account=account, serial_number="DUP")

    response = member("MANAGER").post(
        url("meter", "add"),
        {"name": "Again", "serial_number": "DUP", "meter_type": "GAS"} | DEFAULT_METER_FIELDS,
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert Meter.objects.filter(serial_number="DUP").count() == 1


def test_changing_a_meter_goes_through_the_service(member, account):
    meter = MeterFactory(account=account, serial_number="KEEP", meter_type="GAS")
    client = member("MANAGER")
    data = change_page_data(client.get(url("meter", "change", meter.pk)))
    data |= {"name": "Renamed", "unit": "L", "serial_number": "CHANGED"}

    response = client.post(url("meter", "change", meter.pk), data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    meter.refresh_from_db()
    assert (meter.name, meter.serial_number, meter.unit) == ("Renamed", "KEEP", "L")
    # update_meter moves the registers that were in the meter's unit along.
    assert meter.registers.get().unit == "L"


def test_a_parent_meter_page_posts_back_with_its_sub_meters(member, account):
    parent = MeterFactory(account=account, meter_type="WATER")
    child = MeterFactory(account=account, meter_type="WATER_COLD")
    services.update_meter(meter=child, values={"parent_meter": parent})
    client = member("MANAGER")
    data = change_page_data(client.get(url("meter", "change", parent.pk)))

    response = client.post(url("meter", "change", parent.pk), data | {"name": "Main"})

    assert response.status_code == 302
    parent.refresh_from_db()
    child.refresh_from_db()
    assert (parent.name, child.parent_meter_id) == ("Main", parent.pk)


def test_meter_changelist_queries_do_not_grow_with_rows(superuser_client, account):
    place = PlaceFactory(account=account)
    estate = EstateFactory(place=place)
    parent = MeterFactory(account=account)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert superuser_client.get(url("meter")).status_code == 200
        return len(captured)

    MeterFactory(account=account, place=place, estate=estate, parent_meter=parent)
    few = queries()
    for _ in range(20):
        MeterFactory(account=account, place=place, estate=estate, parent_meter=parent)
    assert queries() == few


def test_registers_inline_keeps_one_default(member, account):
    meter = MeterFactory(account=account)
    extra = services.create_register(meter=meter, values={"code": "1.8.1"})
    client = member("MANAGER")
    page = client.get(url("meter", "change", meter.pk))
    data = change_page_data(page)
    forms = {f.instance.code: f.prefix for f in page.context["inline_admin_formsets"][0].formset}

    no_default = {**data}
    no_default.pop(f"{forms['default']}-is_default")
    response = client.post(url("meter", "change", meter.pk), no_default)
    assert response.status_code == 200
    assert meter.registers.get(is_default=True).code == "default"

    delete_default = data | {f"{forms['default']}-DELETE": "on"}
    response = client.post(url("meter", "change", meter.pk), delete_default)
    assert response.status_code == 200
    assert meter.registers.filter(code="default").exists()

    switch = {**data, f"{forms['1.8.1']}-is_default": "on"}
    switch.pop(f"{forms['default']}-is_default")
    response = client.post(url("meter", "change", meter.pk), switch)
    assert response.status_code == 302
    assert meter.registers.get(is_default=True) == extra


def test_deleting_a_meter_with_sub_meters_is_refused_with_a_message(member, account):
    parent = MeterFactory(account=account, serial_number="PARENT")
    child = MeterFactory(account=account)
    services.update_meter(meter=child, values={"parent_meter": parent})
    client = member("MANAGER")

    confirmation = client.get(url("meter", "delete", parent.pk))
    assert confirmation.status_code == 200
    assert confirmation.context["protected"]  # the page says why, and offers no button

    response = client.post(url("meter", "delete", parent.pk), {"post": "yes"})

    assert response.status_code == 302
    assert response["Location"] == url("meter", "change", parent.pk)
    assert any("sub-meters" in m for m in messages_of(response))
    assert Meter.objects.filter(pk=parent.pk).exists()

    response = client.post(
        url("meter"),
        {"action": "delete_selected", "_selected_action": [parent.pk], "post": "yes"},
    )
    assert any("sub-meters" in m for m in messages_of(response))
    assert Meter.objects.filter(pk=parent.pk).exists()


def test_deleting_a_meter_removes_its_registers(member, account):
    meter = MeterFactory(account=account)

    response = member("MANAGER").post(url("meter", "delete", meter.pk), {"post": "yes"})

    assert response.status_code == 302
    assert not Meter.objects.filter(pk=meter.pk).exists()
    assert not Register.objects.filter(meter_id=meter.pk).exists()


# --- roles ---------------------------------------------------------------------------------


def test_viewer_views_meters_but_cannot_add(member, account):
    meter = MeterFactory(account=account)
    client = member("VIEWER")

    assert client.get(url("meter")).status_code == 200
    assert client.get(url("meter", "change", meter.pk)).status_code == 200
    assert client.get(url("meter", "add")).status_code == 403
    response = client.post(url("meter", "add"), {"name": "x", "serial_number": "V1"})
    assert response.status_code == 403
    assert not Meter.objects.filter(serial_number="V1").exists()


def test_operator_cannot_change_meters(member, account):
    meter = MeterFactory(account=account, name="Before")
    client = member("OPERATOR")

    response = client.get(url("meter", "change", meter.pk))
    assert response.status_code == 200
    assert not response.context["has_change_permission"]
    response = client.post(url("meter", "change", meter.pk), {"name": "After"})
    assert response.status_code == 403
    assert client.post(url("meter", "delete", meter.pk), {"post": "yes"}).status_code == 403
    meter.refresh_from_db()
    assert meter.name == "Before"


def test_role_is_the_one_held_in_the_objects_account(member, account, other_account):
    mine = MeterFactory(account=account)
    viewed = MeterFactory(account=other_account, name="Viewed")
    client = member("MANAGER", account)
    MembershipFactory(user=client.user, account=other_account, role="VIEWER")

    assert client.get(url("meter", "change", mine.pk)).context["has_change_permission"]
    assert not client.get(url("meter", "change", viewed.pk)).context["has_change_permission"]
    assert client.post(url("meter", "change", viewed.pk), {"name": "x"}).status_code == 403
    form = client.get(url("meter", "add")).context["adminform"].form
    assert list(form.fields["account"].queryset) == [account]


def test_api_keys_are_for_admins_only(member, account):
    services.create_api_key(account=account, name="integration", scopes=["meters:read"])

    manager = member("MANAGER")
    assert manager.get(url("apikey")).status_code == 403
    index = manager.get(reverse("admin:index"))
    assert url("apikey").encode() not in index.content

    response = member("ADMIN").get(url("apikey"))
    assert response.status_code == 200
    assert [k.name for k in response.context["cl"].result_list] == ["integration"]


def test_admin_changes_account_settings_but_only_superusers_add_accounts(
    member, account, other_account, superuser_client
):
    client = member("ADMIN")
    assert client.get(url("account", "add")).status_code == 403
    assert client.get(url("account", "change", other_account.pk)).status_code == 302
    page = client.get(url("account", "change", account.pk))
    data = post_data(page.context["adminform"].form) | {"currency": "CHF", "timezone": "UTC"}

    response = client.post(url("account", "change", account.pk), data)

    assert response.status_code == 302
    account.refresh_from_db()
    assert (account.currency, account.timezone, account.slug) == ("CHF", "UTC", "acme")
    assert client.post(url("account", "delete", account.pk), {"post": "yes"}).status_code == 403
    assert member("MANAGER").get(url("account")).status_code == 403

    response = superuser_client.post(
        url("account", "add"),
        {"name": "New", "slug": "new", "currency": "EUR", "timezone": "Europe/Paris"},
    )
    assert response.status_code == 302
    assert Account.objects.filter(slug="new").exists()


def test_members_join_by_invitation_and_no_admin_removes_themself(member, account):
    """Adding a login by username is gone (tests/metering/test_invitations.py invites)."""
    newcomer = UserFactory(username="newcomer")
    client = member("ADMIN")

    response = client.post(url("membership", "add"), {"user": "newcomer", "role": "VIEWER"})

    assert response.status_code == 403
    assert not Membership.objects.filter(user=newcomer).exists()
    own = Membership.objects.get(user=client.user)
    assert client.post(url("membership", "delete", own.pk), {"post": "yes"}).status_code == 403


# --- keys ----------------------------------------------------------------------------------


def test_creating_an_api_key_shows_it_once_and_stores_its_hash(member, account):
    client = member("ADMIN")

    response = client.post(
        url("apikey", "add"),
        {"name": "ERP", "scopes": ["meters:read", "readings:write"]},
        follow=True,
    )

    assert response.redirect_chain[-1] == (url("apikey"), 302)
    key = ApiKey.objects.get(name="ERP")
    raw = raw_key_in([str(m) for m in response.context["messages"]], keys.ACCOUNT_KEY_PREFIX)
    assert raw.encode() in response.content
    assert key.key_hash == keys.digest(raw)
    assert raw.startswith(key.prefix)
    assert key.account == account
    assert key.scopes == ["meters:read", "readings:write"]
    assert key.created_by == client.user

    # Shown once: the next pages have it no more.
    page = client.get(url("apikey", "change", key.pk))
    assert raw.encode() not in page.content
    assert key.key_hash.encode() not in page.content
    assert key.prefix.encode() in page.content
    assert raw.encode() not in client.get(url("apikey")).content


def test_revoking_keys(member, account):
    key, _ = services.create_api_key(account=account, name="old", scopes=["meters:read"])
    client = member("ADMIN")

    response = client.post(
        url("apikey"), {"action": "revoke_selected_keys", "_selected_action": [key.pk]}
    )

    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert not key.is_usable(timezone.now())


def test_creating_a_portal_key_shows_it_once(member, account, other_account):
    tenant = TenantFactory(account=account)
    foreign_tenant = TenantFactory(account=other_account)
    client = member("ADMIN")

    refused = client.post(url("portalkey", "add", app="billing"), {"tenant": foreign_tenant.pk})
    assert "tenant" in refused.context["adminform"].form.errors

    response = client.post(
        url("portalkey", "add", app="billing"), {"tenant": tenant.pk, "name": "app"}
    )

    assert response.status_code == 302
    portal_key = PortalKey.objects.get()
    raw = raw_key_in(messages_of(response), keys.PORTAL_KEY_PREFIX)
    assert portal_key.key_hash == keys.digest(raw)
    assert portal_key.account == account


# --- every page ----------------------------------------------------------------------------


@pytest.fixture
def one_of_each(account, world) -> dict[type, Any]:
    """One object of every model, in ``account``: ``world``'s (tests/conftest.py) and the
    account's own (members, invitations, keys)."""
    api_key, _ = services.create_api_key(account=account, name="k", scopes=["meters:read"])
    portal_key, _ = billing_services.create_portal_key(tenant=world["tenant"], name="p")
    return {
        Account: account,
        Membership: MembershipFactory(account=account, role="VIEWER"),
        Invitation: services.invite_member(account=account, email="i@example.org", role="VIEWER"),
        ApiKey: api_key,
        PortalKey: portal_key,
        Place: world["place"],
        Estate: world["estate"],
        ServicePlace: world["service_place"],
        Gateway: world["gateway"],
        Meter: world["meter"],
        Reading: world["reading"],
        PeriodReading: world["period_reading"],
        Tenant: world["tenant"],
        Lease: world["lease"],
        MeterShare: world["meter_share"],
        AllocationRule: world["allocation_rule"],
        Tariff: world["tariff"],
        BillingPeriod: world["billing_period"],
        Charge: world["charge"],
    }


@pytest.mark.parametrize("as_superuser", [False, True], ids=["admin-member", "superuser"])
def test_every_admin_page_answers(as_superuser, member, superuser_client, one_of_each):
    client = superuser_client if as_superuser else member("ADMIN")
    not_addable = NOT_ADDABLE if as_superuser else NOT_ADDABLE_BY_MEMBERS
    project_apps = {"metering", "readings", "billing"}
    walked = []

    for model in admin.site._registry:
        opts = model._meta
        if opts.app_label not in project_apps and not as_superuser:
            continue  # auth's own admins follow Django's permissions, not account roles
        name = f"{opts.app_label}.{opts.model_name}"
        base = f"admin:{opts.app_label}_{opts.model_name}"

        assert client.get(reverse(f"{base}_changelist")).status_code == 200, name
        assert client.get(reverse(f"{base}_changelist"), {"q": "x"}).status_code == 200, name
        expected = 403 if model in not_addable else 200
        assert client.get(reverse(f"{base}_add")).status_code == expected, name
        obj = one_of_each.get(model)
        if obj is not None:
            assert client.get(reverse(f"{base}_change", args=[obj.pk])).status_code == 200, name
        walked.append(model)

    assert set(one_of_each) <= set(walked)

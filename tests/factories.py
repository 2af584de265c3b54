"""factory-boy factories; meters go through the service, so they get their default register."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model

from billing.models import AllocationRule, BillingPeriod, Lease, MeterShare, Tariff, Tenant
from metering import services
from metering.models import (
    Account,
    Estate,
    Gateway,
    Membership,
    Meter,
    Place,
    Register,
    ServicePlace,
)


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account

    name = factory.Sequence(lambda n: f"Account {n}")
    slug = factory.Sequence(lambda n: f"account-{n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw")
    is_staff = True


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    account = factory.SubFactory(AccountFactory)
    role = "MANAGER"


class PlaceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Place

    account = factory.SubFactory(AccountFactory)
    name = factory.Sequence(lambda n: f"Building {n}")
    code = factory.Sequence(lambda n: f"B{n}")
    city = "Lyon"


class EstateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Estate

    place = factory.SubFactory(PlaceFactory)
    account = factory.SelfAttribute("place.account")
    code = factory.Sequence(lambda n: f"L{n}")
    name = factory.Sequence(lambda n: f"Lot {n}")
    shares = 100
    surface_m2 = Decimal("50")


class ServicePlaceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ServicePlace

    place = factory.SubFactory(PlaceFactory)
    account = factory.SelfAttribute("place.account")
    meter_type = "ELECTRICITY"
    provider = "EDF"
    delivery_point = factory.Sequence(lambda n: f"PDL{n:014d}")


class GatewayFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Gateway

    account = factory.SubFactory(AccountFactory)
    name = factory.Sequence(lambda n: f"Gateway {n}")
    identifier = factory.Sequence(lambda n: f"GW-{n}")
    communication_type = "LORAWAN"


class TariffFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tariff

    account = factory.SubFactory(AccountFactory)
    name = "Base"
    meter_type = "ELECTRICITY"
    unit_price = Decimal("0.20")
    valid_from = dt.date(2020, 1, 1)


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant

    account = factory.SubFactory(AccountFactory)
    name = factory.Sequence(lambda n: f"Tenant {n}")


class MeterFactory(factory.django.DjangoModelFactory):
    """A meter created through ``services.create_meter`` (so with its default register)."""

    class Meta:
        model = Meter

    account = factory.SubFactory(AccountFactory)
    name = factory.Sequence(lambda n: f"Meter {n}")
    serial_number = factory.Sequence(lambda n: f"SN{n:06d}")
    meter_type = "ELECTRICITY"

    @classmethod
    def _create(cls, model_class, *args, account, **kwargs):
        return services.create_meter(account=account, values=kwargs)


class RegisterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Register

    meter = factory.SubFactory(MeterFactory)
    code = factory.Sequence(lambda n: f"1.8.{n}")
    unit = factory.SelfAttribute("meter.unit")


class LeaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Lease

    estate = factory.SubFactory(EstateFactory)
    account = factory.SelfAttribute("estate.account")
    tenant = factory.SubFactory(TenantFactory, account=factory.SelfAttribute("..account"))
    reference = factory.Sequence(lambda n: f"L-{n:04d}")
    start_date = dt.date(2024, 1, 1)
    end_date = None


class MeterShareFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MeterShare

    meter = factory.SubFactory(
        MeterFactory,
        billing_type="SHARED",
        place=factory.SubFactory(PlaceFactory),
        account=factory.SelfAttribute("place.account"),
    )
    account = factory.SelfAttribute("meter.account")
    estate = factory.SubFactory(EstateFactory, place=factory.SelfAttribute("..meter.place"))
    ratio = Decimal(1)


class AllocationRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AllocationRule

    meter = factory.SubFactory(
        MeterFactory,
        billing_type="COLLECTIVE",
        place=factory.SubFactory(PlaceFactory),
        account=factory.SelfAttribute("place.account"),
    )
    account = factory.SelfAttribute("meter.account")
    basis = "SHARES"
    consumption_part_percent = Decimal(0)


class BillingPeriodFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BillingPeriod

    place = factory.SubFactory(PlaceFactory)
    account = factory.SelfAttribute("place.account")
    name = factory.Sequence(lambda n: f"Period {n}")
    start_date = dt.date(2024, 1, 1)
    end_date = dt.date(2024, 1, 31)

"""The demo account built by ``manage.py load_demo``.

Two buildings of a French property manager: a residential block in Lyon with collective heating
and hot water, and a mixed-use building in Paris with shops and a rooftop solar installation.
Their lots, supply points, gateways, meters and registers, the tariffs, the tenants and their
leases, the meter shares and allocation rules, and billing periods (one closed, one draft per
building) are built through the services, so the demo obeys every rule data entered through the
API obeys.

Every object is fixed, so tests and documentation can rely on codes, serial numbers and counts.
The readings cover the two years up to "today" and come from seeded random streams: the same
day gives the same readings, and the deliberate anomalies (leaks, vacancies, rollovers, an
estimate, a misread) sit at fixed distances from today, and so do the leases and the billing
periods. ``build_demo`` runs the steps in order on a ``Demo`` that collects what is built, keyed
by the domain's own identifiers.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import random
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.db.models import Count, Q
from django.utils import timezone

from billing import services as billing_services
from billing.models import (
    AllocationRule,
    BillingPeriod,
    Charge,
    Lease,
    MeterShare,
    Tariff,
    Tenant,
)
from metering import domain, services
from metering.errors import Overlap
from metering.models import (
    Account,
    Estate,
    Gateway,
    Membership,
    Meter,
    MeterDevice,
    Place,
    Register,
    ServicePlace,
)
from readings import periods as readings_periods
from readings import services as readings_services
from readings.models import PeriodReading, Reading
from readings.services import ReadingInput

DEMO_SLUG = "demo"
DEMO_ACCOUNT_NAME = "Régie Bellecour & Associés"
DEMO_USERNAME = "demo"
ADMIN_URL = "http://127.0.0.1:8000/admin/"

LYON = "LYO-TIL"
PARIS = "PAR-ROQ"


class DemoError(Exception):
    """A condition that stops the demo from being built; its text is meant for the operator."""


@dataclass
class Demo:
    """What the demo holds, keyed by the identifiers the domain gives each object."""

    account: Account
    places: dict[str, Place] = field(default_factory=dict)  # by place code
    estates: dict[tuple[str, str], Estate] = field(default_factory=dict)  # (place, estate code)
    # by (place code, meter type)
    service_places: dict[tuple[str, str], ServicePlace] = field(default_factory=dict)
    gateways: dict[str, Gateway] = field(default_factory=dict)  # by place code
    tariffs: dict[str, Tariff] = field(default_factory=dict)  # by the keys of TARIFFS
    tenants: dict[str, Tenant] = field(default_factory=dict)  # by external reference
    meters: dict[str, Meter] = field(default_factory=dict)  # by serial number
    leases: dict[str, Lease] = field(default_factory=dict)  # by reference
    periods: list[BillingPeriod] = field(default_factory=list)
    user: AbstractUser | None = None
    api_key: str = ""


# --- places and lots ------------------------------------------------------------------------

PLACES: list[dict[str, Any]] = [
    {
        "code": LYON,
        "name": "Résidence Les Tilleuls",
        "address_line1": "27 rue de Créqui",
        "postal_code": "69006",
        "city": "Lyon",
        "country": "FR",
        "latitude": Decimal("45.766720"),
        "longitude": Decimal("4.846130"),
        "surface_m2": Decimal("1157.30"),
    },
    {
        "code": PARIS,
        "name": "Immeuble Roquette",
        "address_line1": "112 rue de la Roquette",
        "address_line2": "Bâtiment sur rue",
        "postal_code": "75011",
        "city": "Paris",
        "country": "FR",
        "latitude": Decimal("48.857310"),
        "longitude": Decimal("2.378740"),
        "surface_m2": Decimal("540.00"),
    },
]

# (code, name, floor, surface m², shares, usage); each place's shares add up to 1000 tantièmes,
# common areas hold none.
ESTATES: dict[str, list[tuple[str, str, str, str, int, str]]] = {
    LYON: [
        ("A01", "Apartment A01 (T2)", "0", "45.20", 72, "RESIDENTIAL"),
        ("A02", "Apartment A02 (T3)", "0", "62.50", 98, "RESIDENTIAL"),
        ("A03", "Apartment A03 (T3)", "1", "52.80", 82, "RESIDENTIAL"),
        ("A04", "Apartment A04 (T4)", "1", "71.30", 110, "RESIDENTIAL"),
        ("A05", "Apartment A05 (T3)", "2", "53.10", 84, "RESIDENTIAL"),
        ("A06", "Apartment A06 (T4)", "2", "71.60", 112, "RESIDENTIAL"),
        ("A07", "Apartment A07 (T3)", "3", "53.40", 86, "RESIDENTIAL"),
        ("A08", "Apartment A08 (T4)", "3", "72.00", 114, "RESIDENTIAL"),
        ("A09", "Apartment A09 (T4, top floor)", "4", "86.50", 136, "RESIDENTIAL"),
        ("A10", "Apartment A10 (T1 bis)", "4", "38.90", 62, "RESIDENTIAL"),
        ("P01", "Underground car park (12 spaces)", "-1", "310.00", 44, "PARKING"),
        ("COM", "Common areas (halls, stairs, boiler room)", "", "240.00", 0, "COMMON"),
    ],
    PARIS: [
        ("C01", "Bakery (ground floor, street side)", "0", "95.00", 170, "COMMERCIAL"),
        ("C02", "Shop (ground floor, courtyard side)", "0", "70.00", 130, "COMMERCIAL"),
        ("A11", "Apartment A11 (T3)", "1", "62.00", 150, "RESIDENTIAL"),
        ("A12", "Apartment A12 (T3)", "1", "68.00", 165, "RESIDENTIAL"),
        ("A21", "Apartment A21 (T3)", "2", "63.00", 155, "RESIDENTIAL"),
        ("A22", "Apartment A22 (T3)", "2", "69.00", 170, "RESIDENTIAL"),
        ("A31", "Furnished studio A31", "3", "28.00", 60, "RESIDENTIAL"),
        ("COM", "Common areas (hall, stairs, courtyard)", "", "85.00", 0, "COMMON"),
    ],
}

# (place code, meter type, provider, contract reference, delivery point: PDL/PCE/subscriber no.)
SERVICE_PLACES: list[tuple[str, str, str, str, str]] = [
    (LYON, "ELECTRICITY", "EDF Entreprises", "EDF-TJ-4471203", "30002741185236"),
    (LYON, "GAS", "TotalEnergies", "TE-GN-889104", "21457889632541"),
    (LYON, "WATER_COLD", "Eau du Grand Lyon", "EGL-552310", "EGL-PDS-118822"),
    (PARIS, "ELECTRICITY", "EDF", "EDF-BL-5520981", "30002741196018"),
    (PARIS, "SOLAR", "EDF Obligation d'Achat Solaire", "BOA-2022-07781", "30002741196025"),
    (PARIS, "GAS", "Engie", "ENG-GN-310452", "21457889647730"),
    (PARIS, "WATER_COLD", "Eau de Paris", "EDP-75011-204417", "EDP-PDS-093315"),
]

GATEWAYS: dict[str, dict[str, Any]] = {
    LYON: {
        "name": "Tilleuls wM-Bus concentrator",
        "communication_type": "WMBUS",
        "identifier": "LYO-TIL-WMBUS-01",
    },
    PARIS: {
        "name": "Roquette LoRaWAN gateway",
        "communication_type": "LORAWAN",
        "identifier": "70B3D5E75E01A2B3",
    },
}


# --- tariffs and tenants ----------------------------------------------------------------------

# Electricity changes price on 2025-08-01, so a billing period across that day is split in two.
_SUMMER_2025 = dt.date(2025, 8, 1)
_FROM_2023 = dt.date(2023, 1, 1)

TARIFFS: dict[str, dict[str, Any]] = {
    "electricity-ht-2023": {
        "name": "Electricity, peak hours (HT) 2023",
        "meter_type": "ELECTRICITY",
        "tariff_slot": "HT",
        "unit_price": Decimal("0.2516"),
        # The subscription is charged once per meter: on the HT slot only.
        "standing_charge_per_day": Decimal("0.4250"),
        "vat_rate": Decimal("0.20"),
        "valid_from": _FROM_2023,
        "valid_to": _SUMMER_2025 - dt.timedelta(days=1),
    },
    "electricity-nt-2023": {
        "name": "Electricity, off-peak hours (NT) 2023",
        "meter_type": "ELECTRICITY",
        "tariff_slot": "NT",
        "unit_price": Decimal("0.1828"),
        "vat_rate": Decimal("0.20"),
        "valid_from": _FROM_2023,
        "valid_to": _SUMMER_2025 - dt.timedelta(days=1),
    },
    "electricity-ht-2025": {
        "name": "Electricity, peak hours (HT) from August 2025",
        "meter_type": "ELECTRICITY",
        "tariff_slot": "HT",
        "unit_price": Decimal("0.2146"),
        "standing_charge_per_day": Decimal("0.4480"),
        "vat_rate": Decimal("0.20"),
        "valid_from": _SUMMER_2025,
    },
    "electricity-nt-2025": {
        "name": "Electricity, off-peak hours (NT) from August 2025",
        "meter_type": "ELECTRICITY",
        "tariff_slot": "NT",
        "unit_price": Decimal("0.1696"),
        "vat_rate": Decimal("0.20"),
        "valid_from": _SUMMER_2025,
    },
    # A slot no register carries: it serves only the meters that name it (the shops).
    "electricity-base-shops": {
        "name": "Electricity, single rate for shops",
        "meter_type": "ELECTRICITY",
        "tariff_slot": "BASE",
        "unit_price": Decimal("0.2276"),
        "standing_charge_per_day": Decimal("0.5210"),
        "vat_rate": Decimal("0.20"),
        "valid_from": _FROM_2023,
    },
    "water-cold": {
        "name": "Cold water (supply and sewerage)",
        "meter_type": "WATER_COLD",
        "unit_price": Decimal("4.3500"),
        "standing_charge_per_day": Decimal("0.0450"),
        "vat_rate": Decimal("0.055"),
        "valid_from": _FROM_2023,
    },
    "water-hot": {
        "name": "Domestic hot water (water and heating energy)",
        "meter_type": "WATER_HOT",
        "unit_price": Decimal("9.6000"),
        "vat_rate": Decimal("0.055"),
        "valid_from": _FROM_2023,
    },
    "heating": {
        "name": "Collective heating",
        "meter_type": "HEATING",
        "unit_price": Decimal("0.1180"),
        "vat_rate": Decimal("0.055"),
        "valid_from": _FROM_2023,
    },
    "gas": {
        "name": "Natural gas (per kWh, 11.2 kWh/m³)",
        "meter_type": "GAS",
        "unit_price": Decimal("0.1095"),
        "standing_charge_per_day": Decimal("0.6120"),
        "vat_rate": Decimal("0.20"),
        "valid_from": _FROM_2023,
    },
    "ev-charging": {
        "name": "EV charging",
        "meter_type": "EV",
        "unit_price": Decimal("0.3200"),
        "vat_rate": Decimal("0.20"),
        "valid_from": dt.date(2023, 4, 1),
    },
}

# (external reference, name, email, phone); phone numbers are in ARCEP's fictional range.
TENANTS: list[tuple[str, str, str, str]] = [
    ("T-0001", "Camille Martin", "camille.martin@example.com", "+33 6 39 98 00 01"),
    ("T-0002", "Julien Bernard", "julien.bernard@example.com", "+33 6 39 98 00 02"),
    ("T-0003", "Sophie Lefèvre", "sophie.lefevre@example.com", "+33 6 39 98 00 03"),
    ("T-0004", "Nicolas Roux", "nicolas.roux@example.com", "+33 6 39 98 00 04"),
    (
        "T-0005",
        "Boulangerie de la Roquette SARL",
        "contact@boulangerie.example",
        "+33 1 99 00 10 05",
    ),
    ("T-0006", "Atelier Nomade SAS", "bonjour@atelier-nomade.example", "+33 1 99 00 10 06"),
    ("T-0007", "Inès Moreau", "ines.moreau@example.com", "+33 6 39 98 00 07"),
    ("T-0008", "Thomas Girard", "thomas.girard@example.com", "+33 6 39 98 00 08"),
    ("T-0009", "Léa Dubois", "lea.dubois@example.com", "+33 6 39 98 00 09"),
    ("T-0010", "Hugo Laurent", "hugo.laurent@example.com", "+33 6 39 98 00 10"),
    ("T-0011", "Chloé Simon", "chloe.simon@example.com", "+33 6 39 98 00 11"),
    ("T-0012", "Lucas Michel", "lucas.michel@example.com", "+33 6 39 98 00 12"),
    ("T-0013", "Manon Garcia", "manon.garcia@example.com", "+33 6 39 98 00 13"),
    ("T-0014", "Antoine Fournier", "antoine.fournier@example.com", "+33 6 39 98 00 14"),
    ("T-0015", "Emma Mercier", "emma.mercier@example.com", "+33 6 39 98 00 15"),
    ("T-0016", "Paul Blanc", "paul.blanc@example.com", "+33 6 39 98 00 16"),
    ("T-0017", "Lyon Parc Auto SAS", "exploitation@lyonparcauto.example", "+33 4 65 71 00 17"),
    ("T-0018", "Sarah Faure", "sarah.faure@example.com", "+33 6 39 98 00 18"),
    ("T-0019", "Maxime André", "maxime.andre@example.com", "+33 6 39 98 00 19"),
    ("T-0020", "Louise Lambert", "louise.lambert@example.com", "+33 6 39 98 00 20"),
    ("T-0021", "Gabriel Bonnet", "gabriel.bonnet@example.com", "+33 6 39 98 00 21"),
    ("T-0022", "Zoé Fontaine", "zoe.fontaine@example.com", "+33 6 39 98 00 22"),
    ("T-0023", "Jade Rousseau", "jade.rousseau@example.com", "+33 6 39 98 00 23"),
]


# --- meters -----------------------------------------------------------------------------------

# Registers of the dual-rate electricity meters: the default register becomes the HT one.
HT_REGISTER = {"code": "1.8.1", "obis_code": "1-0:1.8.1", "name": "Peak hours", "tariff_slot": "HT"}
NT_REGISTER = {
    "code": "1.8.2",
    "obis_code": "1-0:1.8.2",
    "name": "Off-peak hours",
    "tariff_slot": "NT",
}
# Gas is read in m³ and billed in kWh (PCS of the GRDF network).
GAS_CONVERSION = {"conversion_factor": Decimal("11.2"), "name": "Volume (billed in kWh)"}

LYON_APARTMENTS = [f"A{n:02d}" for n in range(1, 11)]
PARIS_APARTMENTS = ["A11", "A12", "A21", "A22", "A31"]


@dataclass
class MeterSpec:
    """A meter to create: its values plus references by code and register changes.

    ``default_register`` updates the register every meter is created with; ``registers`` adds
    further ones.
    """

    serial_number: str
    name: str
    meter_type: str
    place: str
    estate: str | None = None
    parent: str | None = None  # serial number of the parent meter, created before
    service_place: bool = False  # the place's service place of the meter's type
    gateway: bool = False  # the place's gateway
    tariff: str | None = None  # a key of TARIFFS
    values: dict[str, Any] = field(default_factory=dict)
    default_register: dict[str, Any] = field(default_factory=dict)
    registers: list[dict[str, Any]] = field(default_factory=list)


def _lyon_meters() -> list[MeterSpec]:
    wmbus = {"communication_type": "WMBUS", "reading_interval": 86400}
    specs = [
        MeterSpec(
            "LYO-W-MAIN",
            "Main cold water meter",
            "WATER_COLD",
            LYON,
            service_place=True,
            values={
                "is_main_meter": True,
                "billing_type": "COLLECTIVE",
                "billing_direction": "ACCPAY",
                "manufacturer": "Itron",
                "model_reference": "Woltex M DN50",
                "location": "Basement, water inlet room",
                "installation_date": dt.date(2016, 3, 14),
                "precision_digits": 1,
                "max_value": Decimal("1000000"),
                "properties": {"diameter_mm": 50},
            },
        ),
        MeterSpec(
            "LYO-HW-MAIN",
            "Domestic hot water production",
            "WATER_HOT",
            LYON,
            estate="COM",
            gateway=True,
            values={
                **wmbus,
                "is_main_meter": True,
                "billing_type": "COLLECTIVE",
                "billing_direction": "ACCREC",
                "manufacturer": "Diehl Metering",
                "model_reference": "HYDRUS 2.0 DN25",
                "location": "Boiler room, hot water tank outlet",
                "installation_date": dt.date(2018, 9, 24),
                "max_value": Decimal("100000"),
            },
        ),
        MeterSpec(
            "LYO-HEAT-MAIN",
            "Boiler room heat meter",
            "HEATING",
            LYON,
            estate="COM",
            gateway=True,
            values={
                **wmbus,
                "is_main_meter": True,
                "billing_type": "COLLECTIVE",
                "billing_direction": "ACCREC",
                "manufacturer": "Kamstrup",
                "model_reference": "MULTICAL 603",
                "location": "Boiler room, primary circuit",
                "installation_date": dt.date(2018, 9, 24),
                "last_inspection_date": dt.date(2023, 9, 12),
                "next_inspection_date": dt.date(2028, 9, 12),
                "precision_digits": 0,
                "max_value": Decimal("100000000"),
            },
        ),
        MeterSpec(
            "LYO-GAS-01",
            "Boiler gas supply",
            "GAS",
            LYON,
            estate="COM",
            service_place=True,
            values={
                "is_main_meter": True,
                # The boiler's gas is the landlord's supply cost, recovered through the heat
                # and hot water meters' tariffs: billing it too would bill the heat twice.
                "billing_type": "INCLUDED",
                "billing_direction": "ACCPAY",
                "manufacturer": "Itron",
                "model_reference": "Gallus G25",
                "location": "Boiler room",
                "installation_date": dt.date(2018, 9, 24),
                "max_value": Decimal("100000"),
            },
            default_register={**GAS_CONVERSION, "obis_code": "7-0:3.0.0"},
        ),
        MeterSpec(
            "LYO-ELEC-COM",
            "Common areas electricity",
            "ELECTRICITY",
            LYON,
            estate="COM",
            service_place=True,
            values={
                "is_main_meter": True,
                "billing_type": "COLLECTIVE",
                "billing_direction": "ACCPAY",
                "manufacturer": "Landis+Gyr",
                "model_reference": "E450 CT-connected",
                # An older CT installation: the dial shows half the secondary energy.
                "multiplier": Decimal("2"),
                "location": "Ground floor, meter cupboard",
                "installation_date": dt.date(2017, 5, 2),
                "notes": "Current transformers 200/5 A (ratio 40); meter constant ×2.",
            },
            default_register={
                "obis_code": "1-0:1.8.0",
                "name": "Active energy import (CT 200/5)",
                "transformer_ratio": Decimal("40"),
            },
        ),
        MeterSpec(
            "LYO-EV-01",
            "EV charging station, car park",
            "EV",
            LYON,
            estate="P01",
            tariff="ev-charging",
            values={
                "billing_type": "INDIVIDUAL",
                "billing_direction": "ACCREC",
                "communication_type": "HTTP",
                "reading_interval": 900,
                "manufacturer": "Schneider Electric",
                "model_reference": "EVlink Pro AC 22 kW",
                "location": "Car park, space 7",
                "installation_date": dt.date(2023, 4, 3),
                "properties": {"charge_point_id": "FR*RBA*E0007", "max_power_kw": 22},
            },
        ),
    ]
    families = [
        ("CW", "Cold water", "WATER_COLD", "LYO-W-MAIN", "ALTAIR V4 + IZAR RC i G4"),
        ("HW", "Hot water", "WATER_HOT", "LYO-HW-MAIN", "ALTAIR V4 + IZAR RC i G4"),
    ]
    for kind, label, meter_type, parent, model in families:
        specs += [
            MeterSpec(
                f"LYO-{kind}-{lot}",
                f"{label} {lot}",
                meter_type,
                LYON,
                estate=lot,
                parent=parent,
                gateway=True,
                values={
                    **wmbus,
                    "billing_type": "INDIVIDUAL",
                    "billing_direction": "ACCREC",
                    "manufacturer": "Diehl Metering",
                    "model_reference": model,
                    "location": "Bathroom, service duct",
                    "installation_date": dt.date(2019, 6, 17),
                    # Five-digit counters: they roll over at 100 000 m³.
                    "max_value": Decimal("100000"),
                },
            )
            for lot in LYON_APARTMENTS
        ]
    specs += [
        MeterSpec(
            f"LYO-HEAT-{lot}",
            f"Heating {lot}",
            "HEATING",
            LYON,
            estate=lot,
            parent="LYO-HEAT-MAIN",
            gateway=True,
            values={
                **wmbus,
                "billing_type": "INDIVIDUAL",
                "billing_direction": "ACCREC",
                "manufacturer": "Kamstrup",
                "model_reference": "MULTICAL 403",
                "location": "Entrance, heating manifold",
                "installation_date": dt.date(2019, 6, 17),
                "last_inspection_date": dt.date(2024, 6, 10),
                "next_inspection_date": dt.date(2029, 6, 10),
                "precision_digits": 0,
            },
        )
        for lot in LYON_APARTMENTS
    ]
    return specs


def _paris_meters() -> list[MeterSpec]:
    lorawan = {"communication_type": "LORAWAN", "reading_interval": 86400}
    specs = [
        MeterSpec(
            "PAR-W-MAIN",
            "Main cold water meter",
            "WATER_COLD",
            PARIS,
            service_place=True,
            values={
                "is_main_meter": True,
                "billing_type": "COLLECTIVE",
                "billing_direction": "ACCPAY",
                "manufacturer": "Sensus",
                "model_reference": "WP-Dynamic DN40",
                "location": "Cellar, water inlet",
                "installation_date": dt.date(2015, 11, 5),
                "precision_digits": 1,
                "max_value": Decimal("1000000"),
                "properties": {"diameter_mm": 40},
            },
        ),
        MeterSpec(
            "PAR-CW-SHOPS",
            "Cold water, shops C01 and C02",
            "WATER_COLD",
            PARIS,
            parent="PAR-W-MAIN",
            values={
                # One meter feeds both shops: its cost is split by the meter shares.
                "billing_type": "SHARED",
                "billing_direction": "ACCREC",
                "manufacturer": "Sensus",
                "model_reference": "620",
                "location": "Courtyard, technical room",
                "installation_date": dt.date(2020, 2, 11),
                "max_value": Decimal("100000"),
            },
        ),
        MeterSpec(
            "PAR-HEAT-MAIN",
            "Boiler room heat meter",
            "HEATING",
            PARIS,
            estate="COM",
            gateway=True,
            values={
                **lorawan,
                "is_main_meter": True,
                "billing_type": "COLLECTIVE",
                "billing_direction": "ACCREC",
                "manufacturer": "Diehl Metering",
                "model_reference": "SHARKY 775",
                "location": "Cellar, boiler room",
                "installation_date": dt.date(2020, 10, 1),
                "precision_digits": 0,
                "max_value": Decimal("100000000"),
            },
        ),
        MeterSpec(
            "PAR-GAS-01",
            "Boiler gas supply",
            "GAS",
            PARIS,
            estate="COM",
            service_place=True,
            values={
                "is_main_meter": True,
                # The boiler's gas is the landlord's supply cost, recovered through the heat
                # and hot water meters' tariffs: billing it too would bill the heat twice.
                "billing_type": "INCLUDED",
                "billing_direction": "ACCPAY",
                "manufacturer": "Itron",
                "model_reference": "Gallus G16",
                "location": "Cellar, boiler room",
                "installation_date": dt.date(2020, 10, 1),
                "max_value": Decimal("100000"),
            },
            default_register={**GAS_CONVERSION, "obis_code": "7-0:3.0.0"},
        ),
        MeterSpec(
            "PAR-GAS-C01",
            "Bakery oven gas",
            "GAS",
            PARIS,
            estate="C01",
            parent="PAR-GAS-01",
            tariff="gas",
            values={
                "billing_type": "INDIVIDUAL",
                "billing_direction": "ACCREC",
                "manufacturer": "Itron",
                "model_reference": "Gallus G6",
                "location": "Bakery, behind the oven",
                "installation_date": dt.date(2020, 10, 1),
                "max_value": Decimal("100000"),
            },
            default_register={**GAS_CONVERSION, "obis_code": "7-0:3.0.0"},
        ),
        MeterSpec(
            "PAR-ELEC-COM",
            "Common areas electricity",
            "ELECTRICITY",
            PARIS,
            estate="COM",
            service_place=True,
            values={
                "is_main_meter": True,
                "billing_type": "COLLECTIVE",
                "billing_direction": "ACCPAY",
                "manufacturer": "Itron",
                "model_reference": "Linky three-phase",
                "location": "Hall, meter cupboard",
                "installation_date": dt.date(2019, 3, 21),
            },
        ),
        MeterSpec(
            "PAR-PV-01",
            "Rooftop solar installation (9 kWp)",
            "SOLAR",
            PARIS,
            service_place=True,
            gateway=True,
            values={
                **lorawan,
                # Production is shown to the occupants, not billed to them.
                "billing_type": "INCLUDED",
                "manufacturer": "Socomec",
                "model_reference": "Countis E23",
                "location": "Roof, inverter cabinet",
                "installation_date": dt.date(2022, 7, 18),
                "properties": {"peak_power_kwp": 9, "panels": 24},
            },
            default_register={
                "code": "2.8.0",
                "obis_code": "1-0:2.8.0",
                "name": "Energy fed into the grid",
                "direction": "FEED_IN",
            },
            registers=[
                {
                    "code": "1.8.0",
                    "obis_code": "1-0:1.8.0",
                    "name": "Energy drawn (inverter standby)",
                    "direction": "CONSUMPTION",
                }
            ],
        ),
    ]
    for lot in PARIS_APARTMENTS:
        # The furnished studio is let with its charges included in the rent.
        included = lot == "A31"
        specs.append(
            MeterSpec(
                f"PAR-ELEC-{lot}",
                f"Electricity {lot}",
                "ELECTRICITY",
                PARIS,
                estate=lot,
                values={
                    "billing_type": "INCLUDED" if included else "INDIVIDUAL",
                    "billing_direction": None if included else "ACCREC",
                    "manufacturer": "Sagemcom",
                    "model_reference": "Linky single-phase",
                    "location": "Entrance, electrical panel",
                    "installation_date": dt.date(2019, 3, 21),
                },
                default_register=HT_REGISTER,
                registers=[NT_REGISTER],
            )
        )
    for lot in ("C01", "C02"):
        specs.append(
            MeterSpec(
                f"PAR-ELEC-{lot}",
                f"Electricity {lot}",
                "ELECTRICITY",
                PARIS,
                estate=lot,
                tariff="electricity-base-shops",
                values={
                    "billing_type": "INDIVIDUAL",
                    "billing_direction": "ACCREC",
                    "manufacturer": "Landis+Gyr",
                    "model_reference": "Linky three-phase",
                    "location": "Shop, back room",
                    "installation_date": dt.date(2019, 3, 21),
                },
            )
        )
    for lot in PARIS_APARTMENTS:
        specs.append(
            MeterSpec(
                f"PAR-CW-{lot}",
                f"Cold water {lot}",
                "WATER_COLD",
                PARIS,
                estate=lot,
                parent="PAR-W-MAIN",
                values={
                    # Read by the tenants (portal) or the caretaker: no radio module.
                    "billing_type": "INDIVIDUAL",
                    "billing_direction": "ACCREC",
                    "manufacturer": "Sensus",
                    "model_reference": "620",
                    "location": "Kitchen, under the sink",
                    "installation_date": dt.date(2020, 2, 11),
                    "max_value": Decimal("100000"),
                },
            )
        )
        specs.append(
            MeterSpec(
                f"PAR-HEAT-{lot}",
                f"Heating {lot}",
                "HEATING",
                PARIS,
                estate=lot,
                parent="PAR-HEAT-MAIN",
                gateway=True,
                values={
                    **lorawan,
                    "billing_type": "INDIVIDUAL",
                    "billing_direction": "ACCREC",
                    "manufacturer": "Diehl Metering",
                    "model_reference": "SHARKY 775 LoRaWAN",
                    "location": "Landing, heating manifold",
                    "installation_date": dt.date(2020, 10, 1),
                    "precision_digits": 0,
                },
            )
        )
    return specs


def meter_specs() -> list[MeterSpec]:
    """Every meter of the demo, parents before their sub-meters."""
    return _lyon_meters() + _paris_meters()


# --- readings ---------------------------------------------------------------------------------
#
# Two years of index readings up to "today" in the account's time zone, generated on a daily
# grid from a seeded random stream per meter (``random.Random(serial number)``), so a given day
# always gives the same data. Each meter's daily use is modelled in the unit its consumption is
# computed in (index difference × multiplier × transformer ratio), then accumulated into an
# index, truncated to the meter's precision like a counter's drums and wrapped at its
# ``max_value``. Automatic meters (any communication type but NONE) are read every day at
# 00:00; manual ones on the 1st of each month at 00:00, the same instants as the daily readings,
# so a manual main meter can be balanced against its automatic sub-meters month by month. The
# readings of 1 January, April, July and October (quarter ends) are billing readings.
#
# The flags are the engine's (CONTRACT §4.2): its baseline is a flat 365-day average rate, with
# no notion of season. A heat meter that reads zero all summer, or solar panels on a grey
# December day, would be flagged DROP day after day; so the demo's seasonal swings stay inside
# the SPIKE and DROP thresholds (heat meters keep a summer base: towel-rail radiators and
# standing losses of the loop, which runs all year), DEVIATION marks the seasons, and SPIKE,
# DROP, NEGATIVE and rollovers point only at the deliberate anomalies below.

READINGS_ACTOR = readings_services.Actor("system:load_demo", "IMPORT")
HISTORY_YEARS = 2


@dataclass(frozen=True)
class Leak:
    """Water running through a sub-meter: ``m3_per_day`` on top of its normal use."""

    serial_number: str
    days_before: int  # its first day, counted back from today
    days: int
    m3_per_day: float


@dataclass(frozen=True)
class Vacancy:
    """A lot left empty between two tenants: its meters' use is scaled by ``VACANT_USE``."""

    place: str
    lot: str
    days_before: int  # its first day, counted back from today
    days: int


LEAKS = [
    # A toilet flush valve left running until the caretaker noticed: SPIKE every day.
    Leak("LYO-CW-A06", days_before=118, days=5, m3_per_day=1.1),
    # A leaking washing-machine hose, repaired after three days.
    Leak("LYO-CW-A09", days_before=430, days=3, m3_per_day=1.8),
]
VACANCIES = [
    Vacancy(LYON, "A03", days_before=235, days=40),
    # Nine weeks, so that the monthly readings of the Paris lot see a whole empty month.
    Vacancy(PARIS, "A21", days_before=340, days=63),
]
# Use of a vacant lot, relative to its normal use: a dripping tap, a fridge left on, and
# thermostats on frost protection (the neighbours' heat keeps the flat warm).
VACANT_USE = {"WATER_COLD": 0.004, "WATER_HOT": 0.004, "ELECTRICITY": 0.03, "HEATING": 0.3}
# Refurbished five-digit counters fitted with a high index: they pass their ``max_value`` after
# this many days of use within the two years, and the engine counts the rollover.
ROLLOVERS = {"LYO-HW-MAIN": 420, "LYO-GAS-01": 250, "PAR-GAS-C01": 300}
# Manual readings the reader could not take, estimated from the previous period's rate; in
# months counted back from the current one (the reading of its 1st).
ESTIMATES = [("LYO-W-MAIN", 13), ("PAR-CW-A12", 5), ("PAR-CW-A12", 4), ("PAR-ELEC-C02", 9)]
ESTIMATE_NOTE = "Meter not accessible: estimated from the previous period's consumption."
# A manual reading noted below the previous one, on a meter without ``max_value``: NEGATIVE.
MISREADS = [("PAR-ELEC-COM", 7)]


@dataclass(frozen=True)
class DeviceReplacement:
    """A meter whose device was replaced (CONTRACT §4.6): its readings from ``days_before``
    (10:00, mid-month) are the new device's, which started at ``initial_value``."""

    serial_number: str
    days_before: int
    new_serial_number: str
    initial_value: Decimal = Decimal(0)


# A cold water meter with a jammed register, swapped by the caretaker between two monthly
# readings: the consumption of that month is the old device's part plus the new one's.
REPLACEMENTS = [DeviceReplacement("PAR-CW-A22", days_before=200, new_serial_number="PAR-CW-A22-R")]

LOSSES = {  # what a main meter counts beyond its sub-meters, as a share of their sum
    "LYO-W-MAIN": 0.05,  # leaks and under-registration of the apartment meters
    "LYO-HW-MAIN": 0.04,
    "LYO-HEAT-MAIN": 0.08,  # heat lost by the distribution pipes in the common parts
    "PAR-W-MAIN": 0.05,
    "PAR-HEAT-MAIN": 0.08,
}
GAS_KWH_PER_M3 = 11.2
BOILER_EFFICIENCY = 0.92
HOT_WATER_KWH_PER_M3 = 58.0  # heating water from 10 °C to 60 °C
HEATING_KWH_PER_M2_YEAR = {LYON: 95.0, PARIS: 110.0}


def history_start(today: dt.date) -> dt.date:
    """``HISTORY_YEARS`` before ``today`` (29 February gives 28 February)."""
    try:
        return today.replace(year=today.year - HISTORY_YEARS)
    except ValueError:
        return today.replace(year=today.year - HISTORY_YEARS, day=28)


def _clip(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))


def _noise(rng: random.Random, spread: float, low: float, high: float) -> float:
    """A factor around 1, bounded so that no ordinary day comes near the SPIKE/DROP ratios."""
    return _clip(rng.gauss(1.0, spread), low, high)


def _winter(day: dt.date) -> float:
    """+1 in mid-January, −1 in mid-July."""
    return math.cos(2 * math.pi * (day.timetuple().tm_yday - 15) / 365.25)


def _summer(day: dt.date) -> float:
    """+1 at the summer solstice, −1 at the winter one."""
    return math.cos(2 * math.pi * (day.timetuple().tm_yday - 172) / 365.25)


def _weather(place: str, days: list[dt.date]) -> tuple[list[float], list[float]]:
    """Each day's (cold, sun) factors at ``place``: spells of a few days, shared by its meters."""
    rng = random.Random(f"weather {place}")  # noqa: S311 (simulation, not security)
    cold, sun = [], []
    cold_spell = sunny_spell = 0.0
    for _ in days:
        cold_spell = 0.8 * cold_spell + 0.6 * rng.gauss(0, 1)
        sunny_spell = 0.5 * sunny_spell + 0.87 * rng.gauss(0, 1)
        cold.append(_clip(1 + 0.1 * cold_spell, 0.8, 1.25))
        sun.append(_clip(0.9 + 0.15 * sunny_spell, 0.6, 1.15))
    return cold, sun


def _bakery_open(day: dt.date) -> bool:
    """Closed on Mondays and for the first two weeks of August."""
    return day.weekday() != 0 and not (day.month == 8 and day.day <= 14)


def _shop_open(day: dt.date) -> bool:
    return day.weekday() not in (0, 6)


DailyUse = dict[tuple[str, str], list[float]]  # by (serial number, register code)


def _varied(
    seed: str, expected: list[float], spread: float = 0.15, low: float = 0.6, high: float = 1.5
) -> list[float]:
    """``expected`` day by day, times a random factor drawn from ``random.Random(seed)``."""
    rng = random.Random(seed)  # noqa: S311 (simulation, not security)
    return [amount * _noise(rng, spread, low, high) for amount in expected]


def daily_use(days: list[dt.date], today: dt.date) -> DailyUse:
    """Each register's use on each day of ``days`` but the last (day i runs to day i + 1).

    In the unit of the consumption the engine computes. Sub-meters first, with the deliberate
    leaks and vacancies; then main meters (their sub-meters' sum plus ``LOSSES``) and boilers.
    """
    use: DailyUse = {}
    intervals = days[:-1]
    winter = [_winter(day) for day in intervals]
    weekend = [day.weekday() >= 5 for day in intervals]
    default = Register.DEFAULT_CODE

    for place, lots in ((LYON, LYON_APARTMENTS), (PARIS, PARIS_APARTMENTS)):
        cold, sun = _weather(place, intervals)
        estates = {row[0]: row for row in ESTATES[place]}
        top_floor = max(int(row[2]) for row in ESTATES[place] if row[2])
        prefix = place[:3]
        for lot in lots:
            _, _, floor, surface_text, _, _ = estates[lot]
            surface = float(surface_text)
            occupants = 0.5 + surface / 25  # water use follows the size of the flat
            exposure = 1.12 if floor == "0" else 1.15 if int(floor) == top_floor else 1.0
            heat = surface * HEATING_KWH_PER_M2_YEAR[place] * exposure / 365.25
            # A steady base of 0.4 × the yearly average (see above), plus heating that follows
            # the season and the cold spells: about 1.6 × the average in mid-January.
            serial = f"{prefix}-HEAT-{lot}"
            base = _varied(f"{serial} base", [0.4 * heat] * len(intervals), 0.03, 0.95, 1.05)
            expected = [0.6 * heat * (1 + w) * c for w, c in zip(winter, cold, strict=True)]
            seasonal = _varied(serial, expected, spread=0.1, low=0.8, high=1.25)
            use[serial, default] = [b + s for b, s in zip(base, seasonal, strict=True)]
            busier = [1.1 if end else 1.0 for end in weekend]
            if place == LYON:
                seasons = list(zip(winter, busier, strict=True))
                # More cold water in summer (showers, plants), more hot water in winter.
                expected = [occupants * 0.085 * (1 - 0.08 * w) * b for w, b in seasons]
                use[f"LYO-CW-{lot}", default] = _varied(f"LYO-CW-{lot}", expected)
                expected = [occupants * 0.040 * (1 + 0.1 * w) * b for w, b in seasons]
                use[f"LYO-HW-{lot}", default] = _varied(f"LYO-HW-{lot}", expected)
            else:
                # No collective hot water in Paris: electric water heaters, fed by cold water
                # and run on off-peak hours (the NT register).
                expected = [occupants * 0.125 * b for b in busier]
                use[f"PAR-CW-{lot}", default] = _varied(f"PAR-CW-{lot}", expected)
                electricity = (1100 + 32 * surface) / 365.25
                expected = [
                    electricity * (1 + 0.18 * w) * (1.15 if end else 1.0)
                    for w, end in zip(winter, weekend, strict=True)
                ]
                total = _varied(f"PAR-ELEC-{lot}", expected, spread=0.12)
                use[f"PAR-ELEC-{lot}", HT_REGISTER["code"]] = [0.58 * e for e in total]
                use[f"PAR-ELEC-{lot}", NT_REGISTER["code"]] = [0.42 * e for e in total]
        if place == PARIS:
            # 9 kWp × 1 050 kWh/kWp a year: 1.5 × the average at midsummer, 0.5 × at Christmas.
            expected = [
                9 * 1050 / 365.25 * (1 + 0.5 * _summer(day)) * s
                for day, s in zip(intervals, sun, strict=True)
            ]
            use["PAR-PV-01", "2.8.0"] = _varied("PAR-PV-01", expected, 0.05, 0.9, 1.1)
            # The inverter's standby: longer nights, more of it.
            expected = [0.16 * (1 + 0.3 * w) for w in winter]
            use["PAR-PV-01", "1.8.0"] = _varied("PAR-PV-01 1.8.0", expected, 0.05, 0.9, 1.1)

    bakery = [_bakery_open(day) for day in intervals]
    shop = [_shop_open(day) for day in intervals]
    expected = [62 * (1 + 0.2 * w) for w in winter]  # lift, lighting, boiler-room pumps
    use["LYO-ELEC-COM", default] = _varied("LYO-ELEC-COM", expected, spread=0.08)
    expected = [12 * 0.75 if end else 16 * 1.1 for end in weekend]
    use["LYO-EV-01", default] = _varied("LYO-EV-01", expected, spread=0.2)
    expected = [12 * (1 + 0.25 * w) for w in winter]
    use["PAR-ELEC-COM", default] = _varied("PAR-ELEC-COM", expected, spread=0.08)
    expected = [85 if is_open else 14 for is_open in bakery]  # cold rooms stay on
    use["PAR-ELEC-C01", default] = _varied("PAR-ELEC-C01", expected, spread=0.08)
    expected = [18 if is_open else 4 for is_open in shop]
    use["PAR-ELEC-C02", default] = _varied("PAR-ELEC-C02", expected, spread=0.1)
    expected = [
        (0.32 if b else 0.02) + (0.03 if s else 0) for b, s in zip(bakery, shop, strict=True)
    ]
    use["PAR-CW-SHOPS", default] = _varied("PAR-CW-SHOPS", expected)
    expected = [11 if is_open else 0.2 for is_open in bakery]  # the oven's pilot flame
    use["PAR-GAS-C01", default] = _varied("PAR-GAS-C01", expected, spread=0.1)

    _add_anomalies(use, days, today)

    for main, subs in (
        ("LYO-W-MAIN", [f"LYO-CW-{lot}" for lot in LYON_APARTMENTS]),
        ("LYO-HW-MAIN", [f"LYO-HW-{lot}" for lot in LYON_APARTMENTS]),
        ("LYO-HEAT-MAIN", [f"LYO-HEAT-{lot}" for lot in LYON_APARTMENTS]),
        ("PAR-W-MAIN", ["PAR-CW-SHOPS", *(f"PAR-CW-{lot}" for lot in PARIS_APARTMENTS)]),
        ("PAR-HEAT-MAIN", [f"PAR-HEAT-{lot}" for lot in PARIS_APARTMENTS]),
    ):
        totals = [
            sum(amounts) for amounts in zip(*(use[sub, default] for sub in subs), strict=True)
        ]
        losses = _varied(main, [LOSSES[main] * total for total in totals], 0.3, 0.4, 1.6)
        use[main, default] = [t + loss for t, loss in zip(totals, losses, strict=True)]
    # Boilers: heat and hot water from gas, plus the boiler's standing losses (kWh a day).
    to_m3 = BOILER_EFFICIENCY * GAS_KWH_PER_M3
    use["LYO-GAS-01", default] = [
        (heat + hot_water * HOT_WATER_KWH_PER_M3 + 40) / to_m3
        for heat, hot_water in zip(
            use["LYO-HEAT-MAIN", default], use["LYO-HW-MAIN", default], strict=True
        )
    ]
    # The Paris gas supply feeds the boiler and the bakery's oven, its one sub-meter.
    use["PAR-GAS-01", default] = [
        (heat + 25) / to_m3 + oven
        for heat, oven in zip(
            use["PAR-HEAT-MAIN", default], use["PAR-GAS-C01", default], strict=True
        )
    ]
    return use


def _add_anomalies(use: DailyUse, days: list[dt.date], today: dt.date) -> None:
    """Apply ``LEAKS`` and ``VACANCIES`` to the sub-meters' daily use."""
    first = days[0]

    def span(days_before: int, length: int) -> range:
        start = (today - dt.timedelta(days=days_before) - first).days
        return range(max(start, 0), min(start + length, len(days) - 1))

    for leak in LEAKS:
        daily = use[leak.serial_number, Register.DEFAULT_CODE]
        for i in span(leak.days_before, leak.days):
            daily[i] += leak.m3_per_day
    for vacancy in VACANCIES:
        for spec in meter_specs():
            if (spec.place, spec.estate) != (vacancy.place, vacancy.lot):
                continue
            factor = VACANT_USE[spec.meter_type]
            for (serial, _), daily in use.items():
                if serial == spec.serial_number:
                    for i in span(vacancy.days_before, vacancy.days):
                        daily[i] *= factor


def _month_start(today: dt.date, months_before: int) -> dt.date:
    months = today.year * 12 + today.month - 1 - months_before
    return dt.date(months // 12, months % 12 + 1, 1)


def reading_plan(*, today: dt.date, time_zone: ZoneInfo) -> dict[str, list[ReadingInput]]:
    """Every demo meter's readings, by serial number, from two years before ``today`` to it.

    A pure function of ``today``: the same day gives the same readings.
    """
    start = history_start(today)
    days = [start + dt.timedelta(days=n) for n in range((today - start).days + 1)]
    use = daily_use(days, today)
    estimates = {(serial, _month_start(today, months)) for serial, months in ESTIMATES}
    misreads = {(serial, _month_start(today, months)) for serial, months in MISREADS}
    plan: dict[str, list[ReadingInput]] = {}
    for spec in meter_specs():
        automatic = spec.values.get("communication_type", "NONE") != "NONE"
        multiplier = spec.values.get("multiplier", Decimal(1))
        max_value: Decimal | None = spec.values.get("max_value")
        step = Decimal(1).scaleb(-spec.values.get("precision_digits", 3))
        taken = [k for k, day in enumerate(days) if automatic or day.day == 1]
        items: list[ReadingInput] = []
        for register in [spec.default_register, *spec.registers]:
            code = register.get("code", Register.DEFAULT_CODE)
            factor = float(multiplier * register.get("transformer_ratio", Decimal(1)))
            daily = [amount / factor for amount in use[spec.serial_number, code]]
            indexes = list(
                itertools.accumulate(
                    daily, initial=_initial_index(spec, code, daily, start, max_value)
                )
            )
            noted: list[float] = []  # the unwrapped indexes written down, in order
            for position, k in enumerate(taken):
                day = days[k]
                index, reading_type, notes = indexes[k], "AUTOMATIC" if automatic else "MANUAL", ""
                if (spec.serial_number, day) in estimates and len(noted) >= 2:
                    # The previous period's daily rate, carried over; never beyond the index
                    # the next reading finds.
                    before, last = taken[position - 2], taken[position - 1]
                    rate = (noted[-1] - noted[-2]) / (last - before)
                    index = noted[-1] + rate * (k - last)
                    if position + 1 < len(taken):
                        index = min(index, indexes[taken[position + 1]])
                    index = max(index, noted[-1])
                    reading_type, notes = "ESTIMATED", ESTIMATE_NOTE
                elif (spec.serial_number, day) in misreads and noted:
                    index = max(0.0, noted[-1] - 0.1 * (index - noted[-1]))
                noted.append(index)
                value = Decimal(index).quantize(step, rounding=ROUND_DOWN)
                if max_value is not None:
                    value %= max_value
                items.append(
                    ReadingInput(
                        reading_date=dt.datetime.combine(day, dt.time(0), tzinfo=time_zone),
                        value=value,
                        register_code=code,
                        reading_type=reading_type,
                        is_billing_reading=day.day == 1 and day.month in (1, 4, 7, 10),
                        notes=notes,
                    )
                )
        plan[spec.serial_number] = items
    return plan


def _initial_index(
    spec: MeterSpec, code: str, daily: list[float], start: dt.date, max_value: Decimal | None
) -> float:
    """The index on the first day: the years in service at the average rate, or, for the
    ``ROLLOVERS`` meters, ``ROLLOVERS[serial]`` days of use below ``max_value``."""
    average = sum(daily) / len(daily)
    if spec.serial_number in ROLLOVERS and max_value is not None:
        return float(max_value) - average * ROLLOVERS[spec.serial_number]
    rng = random.Random(f"{spec.serial_number} {code} index")  # noqa: S311 (simulation)
    in_service = (start - spec.values["installation_date"]).days
    index = in_service * average * rng.uniform(0.85, 1.15)
    return index % float(max_value) if max_value is not None else index


# --- steps ------------------------------------------------------------------------------------


def delete_demo_account() -> bool:
    """Delete the ``demo`` account and, by cascade, everything in it; whether there was one."""
    account = Account.objects.filter(slug=DEMO_SLUG).first()
    if account is None:
        return False
    # Readings restrict their meter and register, so the cascade would load every one of them
    # to check; one DELETE first is much faster (the audit triggers still record each row).
    Reading.objects.for_account(account).delete()
    PeriodReading.objects.for_account(account).delete()
    account.delete()
    return True


def build_places(demo: Demo) -> None:
    for values in PLACES:
        place = services.create_object(model=Place, account=demo.account, values=values)
        demo.places[place.code] = place


def build_estates(demo: Demo) -> None:
    for place_code, rows in ESTATES.items():
        place = demo.places[place_code]
        for code, name, floor, surface, shares, usage in rows:
            values = {
                "place": place,
                "code": code,
                "name": name,
                "floor": floor,
                "surface_m2": Decimal(surface),
                "shares": shares,
                "usage": usage,
            }
            estate = services.create_object(model=Estate, account=demo.account, values=values)
            demo.estates[place_code, code] = estate


def build_service_places(demo: Demo) -> None:
    for place_code, meter_type, provider, contract, delivery_point in SERVICE_PLACES:
        values = {
            "place": demo.places[place_code],
            "meter_type": meter_type,
            "provider": provider,
            "contract_reference": contract,
            "delivery_point": delivery_point,
        }
        service_place = services.create_object(
            model=ServicePlace, account=demo.account, values=values
        )
        demo.service_places[place_code, meter_type] = service_place


def build_gateways(demo: Demo) -> None:
    for place_code, values in GATEWAYS.items():
        gateway = services.create_object(
            model=Gateway,
            account=demo.account,
            values={**values, "place": demo.places[place_code]},
        )
        demo.gateways[place_code] = gateway


def build_tariffs(demo: Demo) -> None:
    for key, values in TARIFFS.items():
        demo.tariffs[key] = services.create_object(
            model=Tariff,
            account=demo.account,
            values={"currency": demo.account.currency, **values},
        )


def build_tenants(demo: Demo) -> None:
    for reference, name, email, phone in TENANTS:
        values = {"name": name, "email": email, "phone": phone, "external_reference": reference}
        demo.tenants[reference] = services.create_object(
            model=Tenant, account=demo.account, values=values
        )


def build_meters(demo: Demo) -> None:
    """Create each meter through the service, then shape its registers."""
    for spec in meter_specs():
        values: dict[str, Any] = {
            "name": spec.name,
            "serial_number": spec.serial_number,
            "meter_type": spec.meter_type,
            "place": demo.places[spec.place],
            **spec.values,
        }
        if spec.estate:
            values["estate"] = demo.estates[spec.place, spec.estate]
        if spec.parent:
            values["parent_meter"] = demo.meters[spec.parent]
        if spec.service_place:
            values["service_place"] = demo.service_places[spec.place, spec.meter_type]
        if spec.gateway:
            values["gateway"] = demo.gateways[spec.place]
        if spec.tariff:
            values["tariff"] = demo.tariffs[spec.tariff]
        meter = services.create_meter(account=demo.account, values=values)
        if spec.default_register:
            default = meter.registers.get(is_default=True)
            services.update_register(register=default, values=dict(spec.default_register))
        for register in spec.registers:
            services.create_register(meter=meter, values=dict(register))
        demo.meters[meter.serial_number] = meter


def build_readings(demo: Demo, *, today: dt.date | None = None) -> None:
    """Two years of readings up to ``today`` (default: today in the account's time zone).

    One ``create_readings`` call per meter with all its readings: the engine derives the chain,
    the rollovers and the flags, and keeps each meter's last reading.
    """
    time_zone = ZoneInfo(demo.account.timezone)
    if today is None:
        today = timezone.now().astimezone(time_zone).date()
    replacements = {r.serial_number: r for r in REPLACEMENTS}
    for serial_number, items in reading_plan(today=today, time_zone=time_zone).items():
        meter = demo.meters[serial_number]
        replacement = replacements.get(serial_number)
        if replacement is None:
            _create_readings(meter, items)
            continue
        at = dt.datetime.combine(
            today - dt.timedelta(days=replacement.days_before), dt.time(10), tzinfo=time_zone
        )
        before = [item for item in items if item.reading_date < at]
        after = [item for item in items if item.reading_date > at]
        # The old device's index at ``at``: its use runs evenly between the readings around it.
        previous, following = before[-1], after[0]
        share = Decimal(
            (at - previous.reading_date) / (following.reading_date - previous.reading_date)
        )
        step = Decimal(1).scaleb(-meter.precision_digits)
        final = (previous.value + (following.value - previous.value) * share).quantize(
            step, rounding=ROUND_DOWN
        )
        _create_readings(meter, before)
        readings_services.replace_device(
            meter=meter,
            replaced_at=at,
            final_value=final,
            new_serial_number=replacement.new_serial_number,
            initial_value=replacement.initial_value,
            manufacturer=meter.manufacturer,
            model_reference=meter.model_reference,
            actor=READINGS_ACTOR,
        )
        for item in after:  # the new device counts from its initial value
            item.value = item.value - final + replacement.initial_value
        _create_readings(meter, after)


def _create_readings(meter: Meter, items: list[ReadingInput]) -> None:
    result = readings_services.create_readings(meter=meter, items=items, actor=READINGS_ACTOR)
    if result.errors:
        error = result.errors[0]
        raise DemoError(
            f"Reading {error.index} of meter {meter.serial_number} is refused: "
            f"{error.message} {error.details}"
        )


# --- utility bills ----------------------------------------------------------------------------
#
# The suppliers' monthly bills of the supplies the manager pays (``ACCPAY`` meters), stored as
# period readings (CONTRACT §4.4): one per calendar month of the history, with the consumption
# the supplier measured (the meter's simulated use over the month, in its unit, in whole units)
# and the cost net of VAT (units × price + days × standing charge). The electricity bills carry
# the month's peak demand. One bill is the supplier's estimate.


@dataclass(frozen=True)
class SupplyContract:
    """What a supplier charges for one meter's supply, net of VAT."""

    unit_price: Decimal  # per unit of the meter (m³ of gas: 11.2 kWh)
    standing_charge_per_day: Decimal
    with_demand: bool = False  # the bill states the month's peak demand (kW)


SUPPLY_CONTRACTS: dict[str, SupplyContract] = {
    "LYO-W-MAIN": SupplyContract(Decimal("4.1200"), Decimal("0.9500")),
    "LYO-GAS-01": SupplyContract(Decimal("1.3100"), Decimal("2.4000")),
    "LYO-ELEC-COM": SupplyContract(Decimal("0.2210"), Decimal("1.1200"), with_demand=True),
    "PAR-W-MAIN": SupplyContract(Decimal("4.3500"), Decimal("0.6000")),
    "PAR-GAS-01": SupplyContract(Decimal("1.3400"), Decimal("1.9000")),
    "PAR-ELEC-COM": SupplyContract(Decimal("0.2290"), Decimal("0.5500"), with_demand=True),
}
# Bills the supplier estimated (no reading that month), in months counted back from the current
# one: the previous bill's daily rate carried over.
ESTIMATED_BILLS = [("LYO-GAS-01", 9)]
ESTIMATED_BILL_NOTE = "Estimated by the supplier: the meter could not be read."
BILLS_ACTOR = readings_services.Actor("system:load_demo", "IMPORT")


def bill_plan(*, today: dt.date) -> dict[str, list[readings_periods.PeriodInput]]:
    """Each supplied meter's monthly bills, by serial number: the calendar months of the
    history that end before ``today``. A pure function of ``today``."""
    start = history_start(today)
    days = [start + dt.timedelta(days=n) for n in range((today - start).days + 1)]
    use = daily_use(days, today)
    estimated = {(serial, _month_start(today, months)) for serial, months in ESTIMATED_BILLS}
    # The 1st of each month of the history, and of the current month, which ends the last bill.
    firsts = [
        first
        for back in range(HISTORY_YEARS * 12, -1, -1)
        if (first := _month_start(today, back)) >= start
    ]
    plan: dict[str, list[readings_periods.PeriodInput]] = {}
    for serial, contract in SUPPLY_CONTRACTS.items():
        daily = use[serial, Register.DEFAULT_CODE]
        bills: list[readings_periods.PeriodInput] = []
        for first, following in itertools.pairwise(firsts):
            month = daily[(first - start).days : (following - start).days]
            consumption = Decimal(sum(month)).quantize(Decimal(1))
            notes = f"Bill {first:%Y-%m}"
            is_estimated = (serial, first) in estimated and bool(bills)
            if is_estimated:
                previous = bills[-1]
                days = (previous.end_date - previous.start_date).days + 1
                consumption = (previous.consumption / days * len(month)).quantize(Decimal(1))
                notes = f"{notes}. {ESTIMATED_BILL_NOTE}"
            cost = consumption * contract.unit_price + len(month) * contract.standing_charge_per_day
            demand = None
            if contract.with_demand:
                # The peak quarter-hour: about three times the day's average power.
                demand = Decimal(max(month) / 24 * 3).quantize(Decimal("0.1"))
            bills.append(
                readings_periods.PeriodInput(
                    start_date=first,
                    end_date=following - dt.timedelta(days=1),
                    consumption=consumption,
                    cost=cost.quantize(Decimal("0.01")),
                    demand_kw=demand,
                    is_estimated=is_estimated,
                    notes=notes,
                )
            )
        plan[serial] = bills
    return plan


def build_utility_bills(demo: Demo, *, today: dt.date | None = None) -> None:
    """The monthly bills of the supplied meters, through the period readings' services."""
    if today is None:
        today = timezone.now().astimezone(ZoneInfo(demo.account.timezone)).date()
    for serial_number, bills in bill_plan(today=today).items():
        result = readings_periods.create_period_readings(
            meter=demo.meters[serial_number], items=bills, actor=BILLS_ACTOR
        )
        if result.errors:
            error = result.errors[0]
            raise DemoError(
                f"Bill {error.index} of meter {serial_number} is refused: "
                f"{error.message} {error.details}"
            )


# --- leases, meter shares, allocation rules and billing periods ------------------------------
#
# The leases are dated around "today", like the readings: the lots emptied by ``VACANCIES``
# change tenant around their empty weeks; in the quarter left as a draft one flat changes tenant
# from one day to the next and another is given back and stays empty for weeks; in the closed
# quarter the furnished studio is empty between two tenants. So both periods are split at lease
# changes and have vacancy lines (the owner's share). The periods are the last two whole
# quarters before today's: the older one computed and closed (forced, with its issues if it
# has any), the newer one computed and left as a draft.


@dataclass(frozen=True)
class LeaseSpec:
    """A lease of lot ``lot`` of ``place`` to the tenant with external reference ``tenant``."""

    place: str
    lot: str
    tenant: str
    start_date: dt.date
    end_date: dt.date | None = None

    @property
    def reference(self) -> str:
        return f"{self.place}-{self.lot}-{self.start_date:%Y%m%d}"


def billing_quarters(today: dt.date) -> tuple[tuple[dt.date, dt.date], tuple[dt.date, dt.date]]:
    """The first and last days of the quarter to close and of the quarter left as a draft: the
    two whole quarters before the one of ``today``."""
    current = dt.date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    draft_start, closed_start = _month_start(current, 3), _month_start(current, 6)
    one_day = dt.timedelta(days=1)
    return (closed_start, draft_start - one_day), (draft_start, current - one_day)


def lease_plan(*, today: dt.date) -> list[LeaseSpec]:
    """Every demo lease; a pure function of ``today`` (see above)."""
    (closed_start, _), (draft_start, draft_end) = billing_quarters(today)

    def days(n: int) -> dt.timedelta:
        return dt.timedelta(days=n)

    def vacancy(place: str, lot: str) -> tuple[dt.date, dt.date]:
        """The last day of the old lease and the first of the new one around a vacancy."""
        (empty,) = [v for v in VACANCIES if (v.place, v.lot) == (place, lot)]
        first = today - days(empty.days_before)
        return first - days(1), first + days(empty.days)

    a03_left, a03_let = vacancy(LYON, "A03")
    a21_left, a21_let = vacancy(PARIS, "A21")
    a07_change = draft_start + days(40)  # a new tenant the day after the old one left
    a10_left = draft_start + days(60)  # given back; let again in the following quarter
    a31_left, a31_let = closed_start + days(9), closed_start + days(30)
    return [
        LeaseSpec(LYON, "A01", "T-0001", dt.date(2019, 9, 1)),
        LeaseSpec(LYON, "A02", "T-0002", dt.date(2021, 3, 15)),
        LeaseSpec(LYON, "A03", "T-0003", dt.date(2018, 7, 1), a03_left),
        LeaseSpec(LYON, "A03", "T-0009", a03_let),
        LeaseSpec(LYON, "A04", "T-0004", dt.date(2017, 1, 15)),
        LeaseSpec(LYON, "A05", "T-0010", dt.date(2022, 5, 1)),
        LeaseSpec(LYON, "A06", "T-0011", dt.date(2020, 2, 1)),
        LeaseSpec(LYON, "A07", "T-0012", dt.date(2019, 11, 1), a07_change - days(1)),
        LeaseSpec(LYON, "A07", "T-0013", a07_change),
        LeaseSpec(LYON, "A08", "T-0014", dt.date(2023, 9, 1)),
        LeaseSpec(LYON, "A09", "T-0015", dt.date(2016, 4, 1)),
        LeaseSpec(LYON, "A10", "T-0016", dt.date(2021, 10, 1), a10_left),
        LeaseSpec(LYON, "A10", "T-0022", draft_end + days(46)),
        LeaseSpec(LYON, "P01", "T-0017", dt.date(2018, 1, 1)),
        LeaseSpec(PARIS, "C01", "T-0005", dt.date(2012, 4, 1)),
        LeaseSpec(PARIS, "C02", "T-0006", dt.date(2021, 6, 1)),
        LeaseSpec(PARIS, "A11", "T-0007", dt.date(2020, 9, 1)),
        LeaseSpec(PARIS, "A12", "T-0008", dt.date(2022, 1, 15)),
        LeaseSpec(PARIS, "A21", "T-0018", dt.date(2019, 5, 1), a21_left),
        LeaseSpec(PARIS, "A21", "T-0019", a21_let),
        LeaseSpec(PARIS, "A22", "T-0020", dt.date(2023, 3, 1)),
        LeaseSpec(PARIS, "A31", "T-0023", _month_start(closed_start, 20), a31_left),
        LeaseSpec(PARIS, "A31", "T-0021", a31_let),
    ]


# The shops' cold water meter: the bakery uses most of it.
METER_SHARES: dict[str, dict[str, Decimal]] = {
    "PAR-CW-SHOPS": {"C01": Decimal(85), "C02": Decimal(15)},
}

# (basis, consumption part %) of each COLLECTIVE meter. Heating: 70 % by the flats' heat
# meters, 30 % by surface; the water mains: 100 % by the flats' sub-meters, which are then
# allocation devices (they give no lines of their own; the shops' shared sub-meter counts for
# the shops by its ratios); the common parts' electricity: by shares. The boilers' gas is
# INCLUDED (see the meters).
ALLOCATION_RULES: dict[str, tuple[str, Decimal]] = {
    "LYO-W-MAIN": ("SHARES", Decimal(100)),
    "LYO-HW-MAIN": ("SHARES", Decimal(100)),
    "LYO-HEAT-MAIN": ("SURFACE", Decimal(70)),
    "LYO-ELEC-COM": ("SHARES", Decimal(0)),
    "PAR-W-MAIN": ("SHARES", Decimal(100)),
    "PAR-HEAT-MAIN": ("SURFACE", Decimal(70)),
    "PAR-ELEC-COM": ("SHARES", Decimal(0)),
}
PERIODS_ACTOR = "system:load_demo"


def quarter_name(start: dt.date, place: Place) -> str:
    return f"Q{(start.month - 1) // 3 + 1} {start.year} – {place.name}"


def build_leases(demo: Demo, *, today: dt.date) -> None:
    for spec in lease_plan(today=today):
        values = {
            "tenant": demo.tenants[spec.tenant],
            "estate": demo.estates[spec.place, spec.lot],
            "reference": spec.reference,
            "start_date": spec.start_date,
            "end_date": spec.end_date,
        }
        try:
            lease = billing_services.create_object(model=Lease, account=demo.account, values=values)
        except Overlap as exc:
            raise DemoError(f"Lease {spec.reference} is refused: {exc.detail}") from None
        demo.leases[spec.reference] = lease


def build_meter_shares(demo: Demo) -> None:
    for serial_number, ratios in METER_SHARES.items():
        meter = demo.meters[serial_number]
        for lot, ratio in ratios.items():
            values = {"meter": meter, "estate": demo.estates[meter.place.code, lot], "ratio": ratio}
            billing_services.create_object(model=MeterShare, account=demo.account, values=values)


def build_allocation_rules(demo: Demo) -> None:
    collective = {
        s.serial_number for s in meter_specs() if s.values["billing_type"] == "COLLECTIVE"
    }
    if collective != set(ALLOCATION_RULES):
        raise DemoError(
            "Every COLLECTIVE meter of the demo needs an allocation rule, and only those: "
            f"{sorted(collective ^ set(ALLOCATION_RULES))}."
        )
    for serial_number, (basis, part) in ALLOCATION_RULES.items():
        values = {
            "meter": demo.meters[serial_number],
            "basis": basis,
            "consumption_part_percent": part,
        }
        billing_services.create_object(model=AllocationRule, account=demo.account, values=values)


def build_billing_periods(demo: Demo, *, today: dt.date) -> None:
    """For each place, the older quarter computed then closed (forced when it has issues) and
    the newer one computed, left as a draft."""
    closed, draft = billing_quarters(today)
    for place in demo.places.values():
        for (start, end), close in ((closed, True), (draft, False)):
            period = billing_services.create_period(
                account=demo.account,
                values={
                    "place": place,
                    "name": quarter_name(start, place),
                    "start_date": start,
                    "end_date": end,
                },
            )
            period = billing_services.compute_period(period=period)
            if close:
                period = billing_services.close_period(
                    period=period, force=bool(period.issues), closed_by=PERIODS_ACTOR
                )
            demo.periods.append(period)


def reusable_demo_user() -> AbstractUser | None:
    """The existing ``demo`` user, if the demo may take it over (None when there is none).

    It may unless it is a superuser or a member of an account other than the demo one: that is
    someone's real login. Checked before anything is deleted or built, and again when the login
    is set up.
    """
    user = get_user_model().objects.filter(username=DEMO_USERNAME).first()
    if user is None:
        return None
    if user.is_superuser:
        raise DemoError(
            f"User {DEMO_USERNAME!r} exists and is a superuser: rename or delete it first."
        )
    others = user.memberships.exclude(account__slug=DEMO_SLUG).count()
    if others:
        raise DemoError(
            f"User {DEMO_USERNAME!r} exists and is a member of {others} other account(s): "
            "rename or delete it first."
        )
    return user


def build_staff_login(demo: Demo, *, password: str) -> None:
    """The ``demo`` user: staff, not superuser, ADMIN of the demo account and of no other.

    An existing ``demo`` user is reused (its memberships went with the old demo account) when
    ``reusable_demo_user`` allows it.
    """
    user = reusable_demo_user() or get_user_model()(username=DEMO_USERNAME)
    user.first_name = "Demo"
    user.last_name = "Manager"
    user.email = "demo@example.com"
    user.is_staff = True
    user.is_superuser = False
    user.is_active = True
    user.set_password(password)
    user.save()
    membership = Membership(user=user, account=demo.account, role=domain.Role.ADMIN.value)
    membership.full_clean(validate_unique=False)
    membership.save()
    demo.user = user


def build_api_key(demo: Demo) -> None:
    _, demo.api_key = services.create_api_key(
        account=demo.account,
        name="demo (load_demo)",
        scopes=list(domain.SCOPES),
        created_by=demo.user,
    )


def build_demo(*, password: str, today: dt.date | None = None) -> Demo:
    """Replace the demo account with a fresh one; the caller holds the transaction.

    Deleting the old account first (cascading to all its data) makes the command repeatable.
    A ``demo`` login that is not the demo's to take stops it before anything is done.
    """
    reusable_demo_user()
    delete_demo_account()
    account = services.create_account(
        name=DEMO_ACCOUNT_NAME, slug=DEMO_SLUG, currency="EUR", timezone="Europe/Paris"
    )
    if today is None:
        today = account.today()
    demo = Demo(account=account)
    build_places(demo)
    build_estates(demo)
    build_service_places(demo)
    build_gateways(demo)
    build_tariffs(demo)
    build_tenants(demo)
    build_meters(demo)
    build_readings(demo, today=today)
    build_utility_bills(demo, today=today)
    build_leases(demo, today=today)
    build_meter_shares(demo)
    build_allocation_rules(demo)
    build_billing_periods(demo, today=today)
    build_staff_login(demo, password=password)
    build_api_key(demo)
    return demo


def summary(account: Account) -> dict[str, int]:
    """Counts of what the account holds, read back from the database."""
    meters = Meter.objects.for_account(account)
    charges = Charge.objects.for_account(account)
    return {
        "places": Place.objects.for_account(account).count(),
        "estates": Estate.objects.for_account(account).count(),
        "service places": ServicePlace.objects.for_account(account).count(),
        "gateways": Gateway.objects.for_account(account).count(),
        "meters": meters.count(),
        "meters with sub-meters": meters.filter(sub_meters__isnull=False).distinct().count(),
        "sub-meters": meters.filter(parent_meter__isnull=False).count(),
        "registers": Register.objects.filter(meter__account=account).count(),
        "tariffs": Tariff.objects.for_account(account).count(),
        "tenants": Tenant.objects.for_account(account).count(),
        "automatic meters": meters.exclude(communication_type="NONE").count(),
        **Reading.objects.for_account(account).aggregate(
            readings=Count("pk"),
            rollovers=Count("pk", filter=Q(is_rollover=True)),
            spikes=Count("pk", filter=Q(flag_spike=True)),
            drops=Count("pk", filter=Q(flag_drop=True)),
            negative=Count("pk", filter=Q(flag_negative=True)),
            deviations=Count("pk", filter=Q(flag_deviation=True)),
        ),
        "period readings": PeriodReading.objects.for_account(account).count(),
        "device replacements": MeterDevice.objects.for_account(account)
        .filter(initial_value__isnull=False)
        .count(),
        "billed meters": meters.filter(period_readings__isnull=False).distinct().count(),
        "leases": Lease.objects.for_account(account).count(),
        "meter shares": MeterShare.objects.for_account(account).count(),
        "allocation rules": AllocationRule.objects.for_account(account).count(),
        **{
            f"{key} periods": value
            for key, value in BillingPeriod.objects.for_account(account)
            .aggregate(
                billing=Count("pk"),
                closed=Count("pk", filter=Q(status=BillingPeriod.CLOSED)),
                draft=Count("pk", filter=Q(status=BillingPeriod.DRAFT)),
            )
            .items()
        },
        "charges": charges.count(),
        "vacancy charges": charges.filter(is_vacancy=True).count(),
    }

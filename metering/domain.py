"""Pure rules of the metering domain: meter types, units, families, roles and scopes.

Nothing here touches the database; models, serializers, services and the admin all read these
tables so that each rule has one source of truth.
"""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from enum import StrEnum
from functools import cache


class Dimension(StrEnum):
    ENERGY = "energy"
    VOLUME = "volume"
    MASS = "mass"


# meter_type -> (dimension, default unit)
METER_TYPES: dict[str, tuple[Dimension, str]] = {
    "ELECTRICITY": (Dimension.ENERGY, "kWh"),
    "GAS": (Dimension.VOLUME, "m3"),
    "WATER": (Dimension.VOLUME, "m3"),
    "WATER_COLD": (Dimension.VOLUME, "m3"),
    "WATER_HOT": (Dimension.VOLUME, "m3"),
    "HEATING": (Dimension.ENERGY, "kWh"),
    "COOLING": (Dimension.ENERGY, "kWh"),
    "SOLAR": (Dimension.ENERGY, "kWh"),
    "EV": (Dimension.ENERGY, "kWh"),
    "GENSET": (Dimension.ENERGY, "kWh"),
    "HVAC": (Dimension.ENERGY, "kWh"),
    "CHP": (Dimension.ENERGY, "kWh"),
    "STEAM": (Dimension.MASS, "kg"),
    "FUEL_OIL": (Dimension.VOLUME, "L"),
    "DIESEL": (Dimension.VOLUME, "L"),
    "LPG": (Dimension.VOLUME, "L"),
    "CARBON": (Dimension.MASS, "kg"),
    "WASTE_LANDFILL": (Dimension.MASS, "kg"),
    "WASTE_RECYCLING": (Dimension.MASS, "kg"),
    "WASTE_COMPOST": (Dimension.MASS, "kg"),
}

# The units a meter or register may be read in, by dimension.
UNITS: dict[Dimension, tuple[str, ...]] = {
    Dimension.ENERGY: ("Wh", "kWh", "MWh", "GWh", "kJ", "MJ", "GJ", "therm", "kBTU", "MMBTU"),
    Dimension.VOLUME: ("L", "m3", "hL", "ft3", "ccf", "gal"),
    Dimension.MASS: ("g", "kg", "t", "lb"),
}

# Water meters of any temperature form one family for sub-meter hierarchies; every other
# type is a family of its own.
_FAMILIES = {"WATER": "WATER", "WATER_COLD": "WATER", "WATER_HOT": "WATER"}


def default_unit(meter_type: str) -> str:
    """The unit a meter of this type is read in when none is given."""
    return METER_TYPES[meter_type][1]


def dimension_of(meter_type: str) -> Dimension:
    return METER_TYPES[meter_type][0]


def unit_fits(meter_type: str, unit: str) -> bool:
    """Whether ``unit`` measures the same physical quantity as meters of ``meter_type``."""
    return unit in UNITS[dimension_of(meter_type)]


def family_of(meter_type: str) -> str:
    return _FAMILIES.get(meter_type, meter_type)


def same_family(meter_type: str, other_type: str) -> bool:
    """Whether a meter of ``meter_type`` may be a sub-meter of one of ``other_type``."""
    return family_of(meter_type) == family_of(other_type)


# --- members and keys -----------------------------------------------------------------------


class Role(StrEnum):
    ADMIN = "ADMIN"
    MANAGER = "MANAGER"
    OPERATOR = "OPERATOR"
    VIEWER = "VIEWER"


SCOPE_AREAS = ("meters", "readings", "billing")
SCOPES = tuple(f"{area}:{access}" for area in SCOPE_AREAS for access in ("read", "write"))

ROLE_SCOPES: dict[Role, frozenset[str]] = {
    Role.ADMIN: frozenset(SCOPES),
    Role.MANAGER: frozenset(SCOPES),
    Role.OPERATOR: frozenset({"meters:read", "readings:read", "readings:write"}),
    Role.VIEWER: frozenset({"meters:read", "readings:read", "billing:read"}),
}


def effective_scopes(scopes: list[str] | tuple[str, ...] | frozenset[str]) -> frozenset[str]:
    """The scopes a key holds, with each ``area:write`` implying ``area:read``."""
    granted = set(scopes)
    for scope in scopes:
        area, _, access = scope.partition(":")
        if access == "write":
            granted.add(f"{area}:read")
    return frozenset(granted)


def unknown_scopes(scopes: list[str] | tuple[str, ...]) -> list[str]:
    return [scope for scope in scopes if scope not in SCOPES]


# --- account settings -----------------------------------------------------------------------

# ISO 4217 active codes (2024 list).
_ISO_4217_CODES = """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP
    BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP
    GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR
    KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK
    MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR
    SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS
    UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
"""
CURRENCIES = frozenset(_ISO_4217_CODES.split())


@cache
def time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def is_time_zone(name: str) -> bool:
    return name in time_zones()


# --- the calendar the product accepts ---------------------------------------------------------

# Every date the product takes in (a body, a query parameter, a CSV cell), and the calendar day
# of every datetime as written (in its own offset, or the account's zone without one), lies in
# these years. Python's dates end at years 1 and 9999: a time-zone conversion, a "next day" or
# a baseline window near them overflows. A year of margin on each side keeps every computation
# of the product (day ± 1, ± 7 days, the anomaly baseline's 365 days, week and year buckets,
# offsets of ±14 h) inside what Python and PostgreSQL represent; outside is a 400.
FIRST_DATE = dt.date(1900, 1, 1)
LAST_DATE = dt.date(9998, 12, 31)
DATE_RANGE_MESSAGE = f"Dates must lie between {FIRST_DATE} and {LAST_DATE}."


def date_in_range(day: dt.date | dt.datetime) -> bool:
    """Whether ``day`` (a date, or a datetime's calendar day as written) is a supported date."""
    if isinstance(day, dt.datetime):
        day = day.date()
    return FIRST_DATE <= day <= LAST_DATE


def instant_in_range(instant: dt.datetime) -> bool:
    """Whether an aware ``instant`` can be a time of a supported date in some time zone: its
    UTC day within a day of them (UTC offsets are under a day). For the paths that get an
    instant, not the text it was written in (the engine's own check, the admin's forms)."""
    try:
        day = instant.astimezone(dt.UTC).date()
    except OverflowError:  # before year 1 or after year 9999 in UTC
        return False
    return FIRST_DATE - dt.timedelta(days=1) <= day <= LAST_DATE + dt.timedelta(days=1)


def value_in_range(value: dt.date | dt.datetime) -> bool:
    """A stored date or datetime (aware: :func:`instant_in_range`) of the supported calendar."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return instant_in_range(value)
    return date_in_range(value)


def date_range_errors(day: dt.date | dt.datetime) -> list[str]:
    """``[DATE_RANGE_MESSAGE]`` when ``day`` is outside the supported dates, else ``[]``."""
    return [] if date_in_range(day) else [DATE_RANGE_MESSAGE]


# --- free JSON ------------------------------------------------------------------------------

MAX_JSON_DEPTH = 64


def json_problem(value: object, *, null_characters: bool = False) -> str | None:
    """Why ``value`` (parsed JSON) cannot be stored in PostgreSQL's ``jsonb``, or None.

    Nesting deeper than :data:`MAX_JSON_DEPTH`, a string that is not UTF-8 text (a lone
    surrogate), an infinite number (JSON's ``1e400``) and, unless ``null_characters``, U+0000
    (neither text nor jsonb holds it; the API's parser leaves it to the fields, which name it).
    """
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if not null_characters and "\x00" in item:
                return "Null characters are not allowed."
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "Strings must be valid Unicode text: a lone surrogate."
        elif isinstance(item, float) and not math.isfinite(item):
            return "Numbers must be finite."
        elif isinstance(item, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                return f"Nesting deeper than {MAX_JSON_DEPTH} levels."
            children = [*item, *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return None

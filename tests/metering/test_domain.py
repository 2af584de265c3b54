"""Pure rules of metering.domain, without a database."""

from metering import domain


def test_write_implies_read():
    assert domain.effective_scopes(["meters:write"]) == {"meters:write", "meters:read"}
    assert domain.effective_scopes(["billing:read"]) == {"billing:read"}


def test_unknown_scopes():
    assert domain.unknown_scopes(["meters:read", "meters:delete", "x"]) == ["meters:delete", "x"]


def test_water_types_form_one_family():
    assert domain.same_family("WATER_HOT", "WATER_COLD")
    assert domain.same_family("WATER", "WATER_HOT")
    assert not domain.same_family("WATER", "GAS")
    assert domain.same_family("GAS", "GAS")


def test_units_fit_dimensions():
    assert domain.unit_fits("GAS", "m3") and not domain.unit_fits("GAS", "kWh")
    assert domain.unit_fits("ELECTRICITY", "MWh")
    assert domain.unit_fits("WASTE_COMPOST", "t")


def test_roles():
    assert domain.ROLE_SCOPES[domain.Role.VIEWER] == {
        "meters:read",
        "readings:read",
        "billing:read",
    }
    assert "readings:write" in domain.ROLE_SCOPES[domain.Role.OPERATOR]
    assert "meters:write" not in domain.ROLE_SCOPES[domain.Role.OPERATOR]


def test_currencies_and_time_zones():
    assert "EUR" in domain.CURRENCIES and "XXX" not in domain.CURRENCIES
    assert domain.is_time_zone("Europe/Paris") and not domain.is_time_zone("Paris")

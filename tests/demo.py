"""The demo as tests and CI use it: building it, and the objects they pick from it.

``portal_objects`` serves the tests (tests/test_schema_truthful.py) and the schemathesis run
(.ci/schemathesis_ids.py) alike, so that both call the portal with the same tenant.
"""

from __future__ import annotations

from io import StringIO

from django.core.management import call_command

from billing import selectors
from billing.models import Charge, Tenant
from metering.models import Account

PASSWORD = "Tilleuls-Roquette-2026"


def load_demo(**options) -> list[str]:
    """``manage.py load_demo`` with ``options``: the lines it printed."""
    out = StringIO()
    call_command("load_demo", stdout=out, **options)
    return out.getvalue().splitlines()


def portal_objects(account: Account) -> dict | None:
    """The first tenant with a current lease that has a meter read by hand with readings (so
    that portal readings reach the engine, not the 409 of automatic meters), and a statement of
    a closed period: ``{"tenant", "meter", "statement"}`` (a charge line), or None."""
    today = account.today()
    for tenant in Tenant.objects.filter(account=account).order_by("id"):
        current = [lease for lease in tenant.leases.order_by("id") if lease.is_current(today)]
        by_lease = selectors.lease_meters(leases=current)
        manual = [
            meter
            for lease in current
            for meter in by_lease[lease.pk]
            if meter.billing_type == "INDIVIDUAL"
            and meter.communication_type == "NONE"
            and meter.readings.exists()
        ]
        statement = (
            Charge.objects.filter(lease__tenant=tenant, billing_period__status="CLOSED")
            .order_by("billing_period_id", "lease_id")
            .first()
        )
        if manual and statement:
            return {"tenant": tenant, "meter": manual[0], "statement": statement}
    return None

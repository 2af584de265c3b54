"""Print `export ST_...=<id>` lines naming demo objects for .ci/schemathesis.toml.

Run with `manage.py shell < .ci/schemathesis_ids.py` after load_demo.
"""

from billing.models import AllocationRule, BillingPeriod, Charge, MeterShare, Tariff, Tenant
from metering.models import Account, Estate, Gateway, Meter, Register, ServicePlace
from readings.models import PeriodReading, Reading
from tests.demo import portal_objects

demo = {"account__slug": "demo"}
main = Meter.objects.filter(**demo, sub_meters__isnull=False).order_by("id").first()
register = Register.objects.filter(meter__account__slug="demo", is_default=False).order_by("id")[0]
estate = Estate.objects.filter(**demo, meters__isnull=False).order_by("id").first()
ids = {
    "ST_METER_ID": main.pk,
    "ST_REGISTER_METER_ID": register.meter_id,
    "ST_REGISTER_ID": register.pk,
    "ST_ESTATE_ID": estate.pk,
    "ST_PLACE_ID": estate.place_id,
    "ST_SERVICE_PLACE_ID": ServicePlace.objects.filter(**demo).order_by("id")[0].pk,
    "ST_GATEWAY_ID": Gateway.objects.filter(**demo).order_by("id")[0].pk,
    # The latest reading of a meter, which fuzzed writes may change without a lock.
    "ST_READING_METER_ID": (
        latest := Reading.objects.filter(**demo).latest("reading_date")
    ).meter_id,
    "ST_READING_ID": latest.pk,
    # The latest utility bill of a supplied meter that no closed billing period used (an
    # INCLUDED boiler gas meter), so that fuzzed writes are not all refused as locked.
    "ST_PERIOD_METER_ID": (
        bill := PeriodReading.objects.filter(**demo, meter__billing_type="INCLUDED")
        .order_by("-end_date", "-id")
        .first()
    ).meter_id,
    "ST_PERIOD_READING_ID": bill.pk,
    # A tenant with leases and a tariff that charges use: fuzzed deletes answer 409.
    "ST_TENANT_ID": Tenant.objects.filter(**demo, leases__isnull=False).order_by("id")[0].pk,
    "ST_TARIFF_ID": Tariff.objects.filter(**demo, charges__isnull=False).order_by("id")[0].pk,
    "ST_METER_SHARE_ID": MeterShare.objects.filter(**demo).order_by("id")[0].pk,
    "ST_ALLOCATION_RULE_ID": AllocationRule.objects.filter(**demo).order_by("id")[0].pk,
    # The draft period (a closed one answers 409 to every write) and two leases with lines in
    # it: one whose statement is read, another that fuzzed writes may change.
    "ST_BILLING_PERIOD_ID": (
        draft := BillingPeriod.objects.filter(**demo, status="DRAFT").order_by("id")[0]
    ).pk,
    "ST_STATEMENT_LEASE_ID": (
        leases := list(
            Charge.objects.filter(billing_period=draft, lease__isnull=False)
            .order_by("lease_id")
            .values_list("lease_id", flat=True)
            .distinct()
        )
    )[0],
    "ST_LEASE_ID": leases[-1],
}


# The portal run (a portal key): a tenant with a current lease that has a meter read by hand
# with readings (fuzzed readings reach the engine, not the 409 of automatic meters), and a
# statement of a closed period; the one tests/test_schema_truthful.py uses.
def portal_ids() -> dict[str, object]:
    portal = portal_objects(Account.objects.get(slug="demo"))
    if portal is None:
        raise SystemExit("No demo tenant has a current lease, a manual meter and a statement.")
    meter, statement = portal["meter"], portal["statement"]
    return {
        "ST_PORTAL_TENANT_ID": portal["tenant"].pk,
        "ST_PORTAL_METER_ID": meter.pk,
        "ST_PORTAL_READING_ID": (latest := meter.readings.latest("reading_date")).pk,
        # The value of the reading .ci/schemathesis sends with a photo, after it.
        "ST_PORTAL_METER_VALUE": latest.value,
        "ST_PORTAL_PERIOD_ID": statement.billing_period_id,
        "ST_PORTAL_LEASE_ID": statement.lease_id,
    }


ids.update(portal_ids())
for name, value in ids.items():
    print(f"export {name}={value}")

"""Portal keys: a tenant's bearer key, which opens only ``/api/v1/portal/``."""

from billing.models import PortalKey
from metering import keys
from metering.api.authentication import BearerKeyAuthentication


class PortalKeyAuthentication(BearerKeyAuthentication):
    kind_prefix = keys.PORTAL_KEY_PREFIX
    model = PortalKey
    related = ("account", "tenant")

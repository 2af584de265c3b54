"""Rate limits per credential: each key (or member, or anonymous address) has its own budget.

Rates are settings (``API_RATE_LIMIT_*``); past one, the API answers 429 ``rate_limited`` with
``Retry-After``. Counts live in Django's cache: set ``CACHE_URL`` to a shared cache (Redis,
database) when several processes serve the API, or each process counts on its own.
"""

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from metering.models import ApiKey, KeyBase


class KeyRateThrottle(SimpleRateThrottle):
    scope = "account_key"

    def get_rate(self) -> str | None:
        # Read at each request (DRF's base reads once at import), so settings can change.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request, view) -> str:
        auth = request.auth
        if isinstance(auth, ApiKey):
            self.scope, ident = "account_key", f"key{auth.pk}"
        elif isinstance(auth, KeyBase):
            self.scope, ident = "portal_key", f"portal{auth.pk}"
        elif request.user and request.user.is_authenticated:
            self.scope, ident = "session", f"user{request.user.pk}"
        else:
            self.scope, ident = "anonymous", self.get_ident(request)
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return self.cache_format % {"scope": self.scope, "ident": ident}

"""Rate limits per credential: each key (or member, or anonymous address) has its own budget.

Rates are settings (``API_RATE_LIMIT_*``); past one, the API answers 429 ``rate_limited`` with
``Retry-After``. Counts live in Django's cache: set ``CACHE_URL`` to a shared cache (Redis,
database) when several processes serve the API, or each process counts on its own.

Two additions to DRF's throttling:
- DRF checks throttles after authentication and permissions, so a request refused there (no
  credentials, a portal key on an account route, a missing scope) would never count. The
  exception handler runs the throttles for such requests (``count_refused_request``): every
  request counts against its credential's budget, or its address's.
- Failed key authentications count per client address (``AuthFailureThrottle``); past
  ``API_RATE_LIMIT_AUTH_FAILURES``, every key from that address is refused with 429 before it is
  looked up, valid or not, so keys cannot be guessed by trying them.

The client address is ``REMOTE_ADDR``, or with ``API_NUM_PROXIES`` = n > 0 the n-th address
from the right of ``X-Forwarded-For`` (DRF's ``NUM_PROXIES``): set it to the number of proxies
in front of gunicorn, never more, or clients could choose their address.
"""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from metering.models import ApiKey, KeyBase

# Set on a request once its throttles have run, so that they never count it twice.
THROTTLES_RAN = "_metering_throttles_ran"


class KeyRateThrottle(SimpleRateThrottle):
    scope = "account_key"

    def get_rate(self) -> str | None:
        # Read at each request (DRF's base reads once at import), so settings can change.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request, view) -> bool:
        setattr(request, THROTTLES_RAN, True)
        return super().allow_request(request, view)

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


def count_refused_request(request, view) -> exceptions.Throttled | None:
    """Run the view's throttles for a request refused before they ran; their 429, if any.

    Called by the exception handler: a refused request costs its credential (or address) one
    request of its budget like any other, and past the budget the answer is 429, not the refusal.
    """
    if request is None or view is None or getattr(request, THROTTLES_RAN, False):
        return None
    if "_user" not in vars(request):
        # Refused before authentication (e.g. an unknown ``?format=``): authenticating now
        # could raise inside the exception handler. Such a request is not counted.
        return None
    try:
        view.check_throttles(request)
    except exceptions.Throttled as throttled:
        return throttled
    return None


class AuthFailureThrottle(SimpleRateThrottle):
    """Failed key authentications per client address (``API_RATE_LIMIT_AUTH_FAILURES``).

    ``check`` refuses while the address is past its budget; ``record`` counts one failure.
    """

    scope = "auth_failures"

    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request, view=None) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def _load(self, request) -> bool:
        """Load the address's recent failures; False when no rate is set."""
        if self.rate is None:
            return False
        self.key = self.get_cache_key(request)
        self.history = self.cache.get(self.key, [])
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()
        return True

    def check(self, request) -> None:
        """Raise 429 ``rate_limited`` while the address is past its budget of failures."""
        if self._load(request) and len(self.history) >= self.num_requests:
            raise exceptions.Throttled(
                wait=self.wait(),
                detail="Too many failed authentications from your address.",
            )

    def record(self, request) -> None:
        if self._load(request):
            self.history.insert(0, self.now)
            self.cache.set(self.key, self.history, self.duration)

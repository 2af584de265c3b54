"""``Authorization: Bearer <key>`` for account keys (and, in billing, portal keys)."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Q
from django.utils import timezone
from rest_framework import authentication, exceptions

from metering import keys
from metering.api.throttling import AuthFailureThrottle
from metering.models import ApiKey, KeyBase

# last_used_at is refreshed at most this often, so a busy key does not write on every request.
LAST_USED_RESOLUTION = timedelta(seconds=60)


class KeyPrincipal:
    """The ``request.user`` of a request made with a key: authenticated, not a Django user."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = id = None

    def __init__(self, key: KeyBase):
        self.key = key
        self.username = f"key:{key.prefix}"

    def __str__(self) -> str:
        return self.username


class BearerKeyAuthentication(authentication.BaseAuthentication):
    """Authenticates keys of one kind, recognised by their prefix; other bearers pass through."""

    kind_prefix: str
    model: type[KeyBase]
    related: tuple[str, ...] = ("account",)

    def authenticate(self, request):
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].lower() != b"bearer":
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Use the header 'Authorization: Bearer <key>'.")
        try:
            raw = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("The key is not valid.") from None
        if not raw.startswith(self.kind_prefix):
            return None

        # Past its budget of failures an address gets 429 before its key is even looked up:
        # a valid key is refused too, so guessing keys teaches nothing.
        failures = AuthFailureThrottle()
        failures.check(request)
        now = timezone.now()
        key = (
            self.model.objects.select_related(*self.related)
            .filter(key_hash=keys.digest(raw))
            .first()
        )
        if key is None:
            failures.record(request)
            raise exceptions.AuthenticationFailed("The key is not valid.")
        if not key.is_usable(now):
            failures.record(request)
            raise exceptions.AuthenticationFailed("The key has been revoked or has expired.")
        # One conditional UPDATE: a constant number of queries per request.
        self.model.objects.filter(pk=key.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
        ).update(last_used_at=now)
        return KeyPrincipal(key), key

    def authenticate_header(self, request) -> str:
        return "Bearer"


class AccountKeyAuthentication(BearerKeyAuthentication):
    kind_prefix = keys.ACCOUNT_KEY_PREFIX
    model = ApiKey

"""Bearer keys: generation and hashing.

A key is ``<kind prefix><40 random url-safe characters>``. Only its SHA-256 digest and its first
12 characters are stored: the key itself is shown once, when it is created. SHA-256 without a
salt is enough because the keys carry 240 bits of randomness (unlike passwords).
"""

from __future__ import annotations

import hashlib
import secrets

ACCOUNT_KEY_PREFIX = "mtr_"
PORTAL_KEY_PREFIX = "mtp_"
# The one-time token of a member invitation's link (metering.services.invite_member).
INVITATION_KEY_PREFIX = "mti_"
CLEAR_PREFIX_LENGTH = 12


def generate(kind_prefix: str) -> tuple[str, str, str]:
    """A new key: ``(raw key, clear prefix, digest)``."""
    raw = kind_prefix + secrets.token_urlsafe(30)
    return raw, raw[:CLEAR_PREFIX_LENGTH], digest(raw)


def digest(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()

"""The test suite: PostgreSQL, as in production."""

import tempfile

from .base import *  # noqa: F403
from .base import REST_FRAMEWORK, database, env

SECRET_KEY = env("DJANGO_SECRET_KEY", default="test-key-not-secret")
DATABASES = {"default": database("postgres://postgres@127.0.0.1:5432/metering")}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Mails stay in django.core.mail.outbox; tests of the SMTP path point the SMTP backend at a sink.
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
SITE_URL = "http://testserver"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# No test but tests/test_api_docs.py (which sets production's values) has static files served,
# and scanning the apps' folders would cost each test client 30 ms.
WHITENOISE_USE_FINDERS = False
# Uploaded photos go to a directory of this run, never into the checkout.
MEDIA_ROOT = tempfile.mkdtemp(prefix="metering-test-media-")
# Tests that exercise rate limiting set their own rates; the others must never hit one.
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {
        "account_key": "100000/min",
        "portal_key": "100000/min",
        "session": "100000/min",
        "anonymous": "100000/min",
        "auth_failures": "100000/min",
    },
}

"""Production: secrets, hosts and a shared cache from the environment, HTTPS everywhere.

``manage.py check --deploy --settings=config.settings.production`` passes with no warning (with
``CACHE_URL`` set to a shared cache, as ``make lint`` sets it).
"""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import CACHES, env

DEBUG = False
SECRET_KEY = env("DJANGO_SECRET_KEY", default="")
if len(SECRET_KEY) < 50:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY must be set to a random string of 50+ characters."
    )
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")

# The rate limits and the failed-authentication counts live in the default cache. A cache of
# each process's own would let every gunicorn worker (WEB_CONCURRENCY) count on its own: each
# limit multiplied by the workers, and nothing counted at all with the dummy cache.
PER_PROCESS_CACHES = {
    "django.core.cache.backends.locmem.LocMemCache": "locmemcache://",
    "django.core.cache.backends.dummy.DummyCache": "dummycache://",
    "django.core.cache.backends.filebased.FileBasedCache": "filecache://",
}
if CACHES["default"]["BACKEND"] in PER_PROCESS_CACHES:
    _given = PER_PROCESS_CACHES[CACHES["default"]["BACKEND"]]
    raise ImproperlyConfigured(
        "CACHE_URL must name a cache that every process shares, e.g. "
        "CACHE_URL=redis://127.0.0.1:6379/1 (or dbcache://metering_cache after "
        "`manage.py createcachetable`): the rate limits count there, and with "
        f"{_given}{' (the default when CACHE_URL is unset)' if _given == 'locmemcache://' else ''}"
        " each process would count on its own."
    )

# The product runs behind a TLS-terminating proxy that sets X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

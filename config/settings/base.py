"""Settings shared by every environment.

The environment is read here, and only here, through django-environ; the other settings
modules import ``env`` from this one. Every setting read below is documented in
``.env.example`` and in the README.
"""

from pathlib import Path

import environ
import pghistory

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    env.read_env(str(BASE_DIR / ".env"))

# --- core ---------------------------------------------------------------------------------
DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env("DJANGO_SECRET_KEY", default="")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# The audit events' references (account, meter, register, lease...) get no index each: a
# history is read by object or by meter, through the indexes the tracked models declare
# (``readings.models``); every further index would slow each write of readings.
PGHISTORY_FOREIGN_KEY_FIELD = pghistory.ForeignKey(db_index=False)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "pgtrigger",
    "pghistory",
    "metering",
    "readings",
    "billing",
]

MIDDLEWARE = [
    # First: the probes answer whatever the Host header and scheme (no ALLOWED_HOSTS check, no
    # HTTPS redirect, no session).
    "metering.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Every request (static files aside) gets REQUEST_TIME_LIMIT_SECONDS, in the database too.
    "metering.time_limit.RequestTimeLimitMiddleware",
    # Oversized API bodies are refused before anything reads them.
    "metering.api.middleware.ApiRequestSizeLimitMiddleware",
    "metering.api.middleware.ApiTrailingSlashMiddleware",
    "metering.api.middleware.ApiNoStoreMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database -----------------------------------------------------------------------------


def database(default_url: str) -> dict:
    """The `default` database from DATABASE_URL, with the settings every environment shares."""
    config = env.db("DATABASE_URL", default=default_url)
    config["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    config["CONN_HEALTH_CHECKS"] = True
    # A request's writes stand or fall together: an error or the time limit rolls back all.
    config["ATOMIC_REQUESTS"] = True
    if config["ENGINE"] == "django.db.backends.postgresql":
        # The audit triggers (pgtrigger) look `pgtrigger.ignore` up on every row; when it is
        # unset the lookup raises and catches an error, a subtransaction per row (measured:
        # 30,000 reading inserts in 14.6 s without this, 2.5 s with it). Set it, empty.
        options = config.setdefault("OPTIONS", {})
        options["options"] = f"{options.get('options', '')} -c pgtrigger.ignore={{}}".strip()
    return config


# Unset DATABASE_URL means the embedded SQLite database, for trying the product.
DATABASES = {"default": database(f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- i18n ---------------------------------------------------------------------------------
# Stored datetimes are UTC; each account's own time zone is applied where the contract says.
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- static files -------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = env("DJANGO_STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))
# Hashed, compressed names after collectstatic, cached forever; before it (DEBUG off without
# collectstatic: trying the product, CI's live server) the plain names, which WhiteNoise finds
# in the apps' static folders, so that /admin/ and /api/docs/ never fail (config.staticfiles).
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "config.staticfiles.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# Uploaded files: the photos of readings sent through the portal. Not served as static files:
# the API hands them out to those who may see the reading.
MEDIA_ROOT = env("DJANGO_MEDIA_ROOT", default=str(BASE_DIR / "media"))
MEDIA_URL = "/media/"
PORTAL_PHOTO_MAX_BYTES = env.int("PORTAL_PHOTO_MAX_BYTES", default=10 * 1024 * 1024)
# A photo is decoded in full, then re-encoded (readings.photos): its pixels are bounded too, so
# that a few KB declaring a huge image (a decompression bomb) are refused before decoding.
# 50 megapixels take a 48 MP phone photo; decoding one holds about 150 MB.
PORTAL_PHOTO_MAX_PIXELS = env.int("PORTAL_PHOTO_MAX_PIXELS", default=50_000_000)

# --- request time ---------------------------------------------------------------------------
# metering.time_limit: past this a request is cancelled (in PostgreSQL too), rolled back and
# answered 503 `timeout`; 0 turns the limit off. Keep it below gunicorn's --timeout (60 s in the
# Dockerfile).
REQUEST_TIME_LIMIT_SECONDS = env.float("REQUEST_TIME_LIMIT_SECONDS", default=30.0)

# --- request size ---------------------------------------------------------------------------
# metering.api.middleware refuses a larger API body (by its Content-Length) with a 413 before
# reading it: API_MAX_BODY_BYTES for JSON (a batch of 500 readings is about 150 KB), and
# PORTAL_PHOTO_MAX_BYTES plus 64 KB of form for multipart uploads. Django's own limits agree:
# form fields and any body read whole are held to the same size; uploaded files above 1 MB are
# spooled to a temporary file rather than kept in memory.
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=2 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES
DATA_UPLOAD_MAX_NUMBER_FIELDS = 1000
DATA_UPLOAD_MAX_NUMBER_FILES = 10
FILE_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
# Outside the API (the admin's import page), each uploaded file is at most IMPORT_MAX_BYTES:
# metering.uploads stops reading it there, before the CSRF check or a view would spool it whole.
IMPORT_MAX_BYTES = env.int("IMPORT_MAX_BYTES", default=50 * 1024 * 1024)
FILE_UPLOAD_HANDLERS = [
    "metering.uploads.UploadSizeLimitHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# --- API ----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "metering.api.authentication.AccountKeyAuthentication",
        "billing.api.authentication.PortalKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["metering.api.permissions.AccountScopePermission"],
    "DEFAULT_THROTTLE_CLASSES": ["metering.api.throttling.KeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "account_key": env("API_RATE_LIMIT_ACCOUNT_KEY", default="1200/min"),
        "portal_key": env("API_RATE_LIMIT_PORTAL_KEY", default="120/min"),
        "session": env("API_RATE_LIMIT_SESSION", default="600/min"),
        "anonymous": env("API_RATE_LIMIT_ANONYMOUS", default="60/min"),
        # Failed key authentications per client address (metering.api.throttling).
        "auth_failures": env("API_RATE_LIMIT_AUTH_FAILURES", default="30/min"),
    },
    # Proxies in front of gunicorn that append to X-Forwarded-For: the client address used by
    # the per-address limits is REMOTE_ADDR with 0, else the n-th X-Forwarded-For entry from
    # the right. Never more than there are, or clients could choose their address.
    "NUM_PROXIES": env.int("API_NUM_PROXIES", default=0),
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["metering.api.parsers.JSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "metering.api.negotiation.JsonFallbackNegotiation",
    "DEFAULT_PAGINATION_CLASS": "metering.api.pagination.PageNumberPagination",
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "metering.api.filters.SearchFilter",
        "metering.api.filters.StrictOrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "metering.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "metering.api.errors.exception_handler",
    "COERCE_DECIMAL_TO_STRING": False,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Metering API",
    "DESCRIPTION": (
        "Meters, sub-meters, registers, readings, consumption and billing for property "
        "managers. Authenticate with `Authorization: Bearer <key>`. Every response is an "
        'envelope: `{"data": ...}` (lists add `meta`), errors are `{"error": {"code", '
        '"message", "details"}}`.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No call to validator.swagger.io: the docs work with no internet access.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- mail ---------------------------------------------------------------------------------
# EMAIL_URL in django-environ's form: smtp://user:password@host:587 (smtp+tls://, smtp+ssl://),
# consolemail:// prints mails (the default: trying the product), dummymail:// drops them.
# Sets EMAIL_BACKEND, EMAIL_HOST, EMAIL_PORT, EMAIL_HOST_USER, EMAIL_HOST_PASSWORD, EMAIL_USE_*.
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="metering@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Where the product is reached from outside: links in mails (invitations) start with it.
SITE_URL = env("SITE_URL", default="http://localhost:8000").rstrip("/")

# --- logging ------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("DJANGO_LOG_LEVEL", default="INFO")},
}

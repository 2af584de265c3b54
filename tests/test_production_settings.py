"""The production settings refuse a cache of each process's own (locmem, dummy, file).

Rate limits (and the failed-authentication counts) live in the default cache: with a cache per
process, each gunicorn worker would count on its own, multiplying every limit by the number of
workers. Each case loads the settings in a subprocess, from the environment only, as gunicorn
and ``manage.py check --deploy`` do.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest
from django.conf import settings

LOAD = (
    "import django; django.setup(); from django.conf import settings; "
    "print(settings.CACHES['default']['BACKEND'])"
)


def run(*args: str, cache_url: str | None) -> subprocess.CompletedProcess:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "CACHE_URL"))
    }
    env |= {
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_ALLOWED_HOSTS": "metering.example.com",
    }
    if cache_url is not None:
        env["CACHE_URL"] = cache_url
    return subprocess.run(  # noqa: S603 (our own interpreter and arguments)
        [sys.executable, *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    "cache_url",
    [None, "locmemcache://", "dummycache://", "filecache:///tmp/metering-cache"],
    ids=["unset", "locmem", "dummy", "file"],
)
def test_a_per_process_cache_is_refused_with_a_clear_message(cache_url):
    result = run("-c", LOAD, cache_url=cache_url)
    assert result.returncode != 0, result.stdout
    assert "ImproperlyConfigured" in result.stderr
    assert "CACHE_URL" in result.stderr and "redis://" in result.stderr, result.stderr[-2000:]


@pytest.mark.parametrize(
    ("cache_url", "backend"),
    [
        ("redis://127.0.0.1:6379/1", "django.core.cache.backends.redis.RedisCache"),
        ("dbcache://metering_cache", "django.core.cache.backends.db.DatabaseCache"),
    ],
)
def test_a_shared_cache_is_accepted(cache_url, backend):
    result = run("-c", LOAD, cache_url=cache_url)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == backend


def test_the_redis_backend_can_be_loaded():
    """Django's RedisCache needs the ``redis`` package (a dependency of ours)."""
    code = (
        "import django; django.setup(); from django.core.cache import caches; "
        "print(type(caches['default']._cache.get_client(write=True)).__module__)"
    )
    result = run("-c", code, cache_url="redis://127.0.0.1:6379/1")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().startswith("redis")


def test_check_deploy_passes_with_a_shared_cache():
    """What ``make lint`` runs (the Makefile gives CACHE_URL=redis://127.0.0.1:6379/1)."""
    result = run(
        "manage.py",
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        cache_url="redis://127.0.0.1:6379/1",
    )
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]

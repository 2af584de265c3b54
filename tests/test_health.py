"""Health probes: ``/healthz`` (the process) and ``/readyz`` (the database).

Probes call the container by its address, over plain HTTP, with no credentials: the answers
must not depend on the Host header, the scheme, a session or a CSRF token.
"""

from __future__ import annotations

import logging
from unittest import mock

import pytest
from django.db import DEFAULT_DB_ALIAS, OperationalError, connections
from django.test import Client, override_settings

PROBES = ["/healthz", "/readyz"]

# What config.settings.production sets that could get in a probe's way.
production = override_settings(
    DEBUG=False,
    ALLOWED_HOSTS=["metering.example.com"],
    SECURE_SSL_REDIRECT=True,
    SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
    SECURE_HSTS_SECONDS=31536000,
    SESSION_COOKIE_SECURE=True,
    CSRF_COOKIE_SECURE=True,
)


def test_healthz_answers_without_the_database():
    # No django_db mark: a query would fail the test.
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    assert not response.cookies


@pytest.mark.django_db
def test_readyz_answers_when_the_database_does():
    response = Client().get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


@pytest.mark.django_db
def test_readyz_is_503_when_the_database_fails(caplog):
    down = OperationalError("could not connect to server: Connection refused")
    with (
        mock.patch.object(connections[DEFAULT_DB_ALIAS], "cursor", side_effect=down),
        caplog.at_level(logging.WARNING, logger="metering.health"),
    ):
        response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "unavailable"}
    # The cause goes to the log, not to whoever calls the probe.
    assert "Connection refused" not in response.content.decode()
    assert "database does not answer" in caplog.text


@pytest.mark.django_db
@production
@pytest.mark.parametrize("path", PROBES)
@pytest.mark.parametrize("host", ["10.0.0.7:8000", "evil.example.org", "metering.example.com"])
def test_probes_answer_any_host_over_plain_http_with_production_settings(path, host):
    response = Client().get(path, HTTP_HOST=host)
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "ok"


@pytest.mark.django_db
@production
def test_other_paths_still_check_the_host_and_the_scheme():
    """The control of the test above: those settings are in force for every other path."""
    assert Client().get("/api/v1/account/", HTTP_HOST="10.0.0.7:8000").status_code == 400
    response = Client().get("/api/v1/account/", HTTP_HOST="metering.example.com")
    assert response.status_code == 301
    assert response["Location"] == "https://metering.example.com/api/v1/account/"


@pytest.mark.django_db
@pytest.mark.parametrize("path", PROBES)
def test_head_answers_with_no_body(path):
    response = Client().head(path)
    assert response.status_code == 200
    assert response.content == b""


@pytest.mark.django_db
@pytest.mark.parametrize("path", PROBES)
def test_trailing_slash_is_the_same_probe(path):
    assert Client().get(f"{path}/").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("path", PROBES)
@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_other_methods_are_405_not_a_csrf_failure(path, method):
    response = getattr(Client(enforce_csrf_checks=True), method)(path)
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    assert response.json() == {"status": "method_not_allowed"}

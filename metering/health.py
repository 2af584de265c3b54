"""Health probes for load balancers and orchestrators: ``/healthz`` and ``/readyz``.

- ``GET /healthz``: the process answers (200 ``{"status": "ok"}``); it touches nothing else.
- ``GET /readyz``: the database answers a ``SELECT 1`` (200), or not (503).

They are answered by the first middleware, before Django checks the Host header
(``ALLOWED_HOSTS``), redirects to HTTPS, opens a session or checks CSRF: probes call the
container by its address, over plain HTTP, without credentials. They say nothing that is not
public (no version, no error text), so they need no authentication.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import Error as DatabaseError
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)

PROBE_METHODS = ("GET", "HEAD")


def liveness() -> tuple[int, dict[str, str]]:
    return 200, {"status": "ok"}


def readiness() -> tuple[int, dict[str, str]]:
    """200 when the database answers a query, 503 when it does not (the cause is logged)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        logger.warning("Readiness probe: the database does not answer.", exc_info=True)
        return 503, {"status": "unavailable", "database": "unavailable"}
    return 200, {"status": "ok", "database": "ok"}


PROBES: dict[str, Callable[[], tuple[int, dict[str, str]]]] = {
    "/healthz": liveness,
    "/readyz": readiness,
}


class HealthCheckMiddleware:
    """Answers the probes itself; every other request goes on. First in ``MIDDLEWARE``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = PROBES.get(request.path_info.rstrip("/"))
        if probe is None:
            return self.get_response(request)
        if request.method not in PROBE_METHODS:
            response = JsonResponse({"status": "method_not_allowed"}, status=405)
            response["Allow"] = ", ".join(PROBE_METHODS)
        else:
            status, body = probe()
            response = JsonResponse(body, status=status)
        response["Cache-Control"] = "no-store"
        if request.method == "HEAD":
            # Nothing after this middleware strips the body of a HEAD response.
            response.content = b""
        return response

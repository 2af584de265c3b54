"""A time limit on every request (CONTRACT §2 ``timeout``), enforced in the database too.

``REQUEST_TIME_LIMIT_SECONDS`` (30 s by default) after a request starts:

- the database refuses to run any of its statements longer (``statement_timeout``, set on the
  request's connection when it starts and reset when it ends), so a statement keeps nothing
  running on the server even if the worker dies;
- a watchdog cancels the statement running at the deadline (psycopg's ``cancel_safe``), and no
  new statement starts past it;
- the request's transaction (``ATOMIC_REQUESTS``) is rolled back and the answer is 503
  ``timeout`` (JSON under ``/api/``, a page elsewhere).

The answer leaves only once the cancelled statement has returned: nothing the request started
is still running in PostgreSQL then. Long work belongs in jobs (§9).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, OperationalError, connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from metering.errors import RequestTimeout

logger = logging.getLogger(__name__)

QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for statement_timeout and a cancel request


def is_timeout(exc: BaseException) -> bool:
    """Whether an exception is a request cut by its time limit (ours or the database's)."""
    if isinstance(exc, RequestTimeout):
        return True
    return (
        isinstance(exc, OperationalError)
        and getattr(exc.__cause__, "sqlstate", None) == QUERY_CANCELED
    )


class _Deadline:
    """One request's deadline on one connection: the watchdog and the check before queries."""

    def __init__(self, connection, limit: float):
        self.connection = connection
        self.limit = limit
        self.expires = time.monotonic() + limit
        self.finished = False
        self.lock = threading.Lock()
        self.watchdog = threading.Timer(limit, self.cancel)
        self.watchdog.daemon = True

    def start(self) -> None:
        if self.connection.vendor == "postgresql":
            self._set_statement_timeout(int(self.limit * 1000))
        self.watchdog.start()

    def finish(self) -> None:
        with self.lock:
            self.finished = True
        self.watchdog.cancel()
        if self.connection.vendor == "postgresql":
            self._set_statement_timeout(None)

    def cancel(self) -> None:
        """At the deadline (the watchdog's thread): stop the statement now running, if any."""
        with self.lock:
            if self.finished:
                return
            raw = self.connection.connection
            if raw is not None and hasattr(raw, "cancel_safe"):
                try:
                    raw.cancel_safe(timeout=5)
                except Exception:  # the check before each query still holds
                    logger.warning(
                        "Could not cancel a statement past the time limit", exc_info=True
                    )

    def __call__(self, execute, sql, params, many, context):
        """Django's ``execute_wrapper``: no statement starts past the deadline."""
        if time.monotonic() >= self.expires:
            raise RequestTimeout(time_limit_message())
        return execute(sql, params, many, context)

    def _set_statement_timeout(self, milliseconds: int | None) -> None:
        """Through psycopg's own cursor: it is the connection's setting, not the request's
        work, and stays out of Django's query log (and of the query-count tests)."""
        value = "0" if milliseconds is None else str(milliseconds)
        try:
            self.connection.ensure_connection()
            with self.connection.connection.cursor() as cursor:
                cursor.execute("SELECT set_config('statement_timeout', %s, false)", [value])
        except DatabaseError:
            # A connection that cannot take a setting is not worth keeping.
            self.connection.close()


def time_limit_message() -> str:
    return (
        f"The request ran past the server's time limit ({settings.REQUEST_TIME_LIMIT_SECONDS:g} "
        "s) and was cancelled; nothing was stored. Send less at once, or use a job for long work."
    )


class RequestTimeLimitMiddleware:
    """Puts every request under ``REQUEST_TIME_LIMIT_SECONDS`` (see the module's docstring)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.REQUEST_TIME_LIMIT_SECONDS
        if not limit:
            return self.get_response(request)
        connection = connections[DEFAULT_DB_ALIAS]
        deadline = _Deadline(connection, limit)
        deadline.start()
        try:
            with connection.execute_wrapper(deadline):
                return self.get_response(request)
        finally:
            deadline.finish()

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """A page's view cut by the limit (the API's views answer through their handler)."""
        if not is_timeout(exception):
            return None
        if request.path_info.startswith("/api/"):
            from metering.api.errors import error_body

            return JsonResponse(error_body("timeout", time_limit_message()), status=503)
        return render(
            request,
            "503.html",
            {"time_limit": f"{settings.REQUEST_TIME_LIMIT_SECONDS:g}"},
            status=503,
        )

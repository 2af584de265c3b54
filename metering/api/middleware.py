"""API paths answer with or without their trailing slash.

The seeds' clients call ``/api/v1/meters``; the contract writes ``/api/v1/meters/``. Rather than
redirect (which loses a POST body), the path is completed before URL resolution.
"""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse


class ApiTrailingSlashMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith("/api/") and not request.path_info.endswith("/"):
            request.path_info += "/"
            request.path += "/"
        return self.get_response(request)

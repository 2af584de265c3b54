"""Page-number pagination with the contract's ``meta`` (CONTRACT §2)."""

from __future__ import annotations

import math

from rest_framework import exceptions
from rest_framework.pagination import BasePagination
from rest_framework.response import Response

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 500


def _positive_int(request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise exceptions.ValidationError({name: ["Must be a whole number ≥ 1."]})
    return value


class PageNumberPagination(BasePagination):
    """``page`` from 1; ``per_page`` (alias ``limit``) default 50, capped at 500.

    A page past the last answers an empty ``data`` with the true ``meta``.
    """

    def paginate_queryset(self, queryset, request, view=None):
        page = _positive_int(request, "page") or 1
        per_page = _positive_int(request, "per_page") or _positive_int(request, "limit")
        per_page = min(per_page or DEFAULT_PER_PAGE, MAX_PER_PAGE)
        total = queryset.count()
        offset = (page - 1) * per_page
        self.meta = {
            "total": total,
            "page": page,
            "per_page": per_page,
            "total_pages": max(1, math.ceil(total / per_page)),
        }
        if offset >= total:
            return []
        return list(queryset[offset : offset + per_page])

    def get_paginated_response(self, data) -> Response:
        response = Response({"data": data, "meta": self.meta})
        response.enveloped = True
        return response

    def get_paginated_response_schema(self, schema: dict) -> dict:
        return {
            "type": "object",
            "required": ["data", "meta"],
            "properties": {
                "data": schema,
                "meta": {
                    "type": "object",
                    "required": ["total", "page", "per_page", "total_pages"],
                    "properties": {
                        "total": {"type": "integer", "minimum": 0},
                        "page": {"type": "integer", "minimum": 1},
                        "per_page": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE},
                        "total_pages": {"type": "integer", "minimum": 1},
                    },
                },
            },
        }

    def get_schema_operation_parameters(self, view) -> list[dict]:
        def integer(name: str, description: str, maximum: int | None = None) -> dict:
            schema = {"type": "integer", "minimum": 1}
            if maximum:
                schema["maximum"] = maximum
            return {
                "name": name,
                "in": "query",
                "required": False,
                "description": description,
                "schema": schema,
            }

        return [
            integer("page", "Page number, from 1."),
            integer("per_page", "Items per page (default 50, at most 500).", MAX_PER_PAGE),
            integer("limit", "Alias of per_page.", MAX_PER_PAGE),
        ]

"""Every API route and method, read from the URL resolver, for tests that cover them all.

Tests that must hold "for every route" iterate over ``api_routes()``: a route added later is
covered without editing them (or fails loudly if the test cannot fill in its path).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver

METHODS = ("get", "post", "put", "patch", "delete")
# Custom actions that answer a paginated list (besides the viewsets' own ``list``).
LIST_ACTIONS = {"sub_meters"}
_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")


@dataclass(frozen=True, eq=False)
class Route:
    template: str  # e.g. "/api/v1/meters/{meter_id}/registers/{pk}/"
    view_class: type
    methods: tuple[str, ...]
    basename: str | None
    actions: dict[str, str]

    @property
    def is_list(self) -> bool:
        action = self.actions.get("get")
        return action == "list" or action in LIST_ACTIONS

    @property
    def params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.template)

    def path(self, **values) -> str:
        return self.template.format(**values)

    def __str__(self) -> str:
        return self.template


def _regex(pattern) -> str:
    if hasattr(pattern.pattern, "regex"):
        return pattern.pattern.regex.pattern
    return str(pattern.pattern)


def _walk(patterns, prefix: str = ""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + _regex(pattern).lstrip("^"))
        elif isinstance(pattern, URLPattern):
            yield prefix + _regex(pattern).lstrip("^"), pattern


def api_routes(prefix: str = "/api/v1/") -> list[Route]:
    routes = []
    for regex, pattern in _walk(get_resolver().url_patterns):
        template = "/" + _GROUP.sub(r"{\1}", regex).removesuffix("\\Z").rstrip("$").replace(
            "\\", ""
        )
        callback = pattern.callback
        view_class = getattr(callback, "cls", None)
        if not template.startswith(prefix) or view_class is None:
            continue
        actions = getattr(callback, "actions", None)
        if actions:
            methods = tuple(m for m in METHODS if m in actions)
        else:
            methods = tuple(m for m in METHODS if hasattr(view_class, m))
        basename = getattr(callback, "initkwargs", {}).get("basename")
        routes.append(Route(template, view_class, methods, basename, dict(actions or {})))
    return routes

"""The JSON request parser: any body it cannot turn into values the product can store is a
400 ``validation_error`` (CONTRACT §2: malformed JSON is a validation error, never a 500).

DRF's own parser already refuses what is not JSON and the ``NaN``/``Infinity`` literals. This
one also refuses, with the same 400:

- a body nested deeper than :data:`MAX_JSON_DEPTH` (a body nested 100,000 deep made Python's
  decoder raise ``RecursionError``, a 500; no body of the API is more than a few levels deep,
  a meter's free ``properties`` included);
- a number beyond a float's range (``1e400``): Python reads it as infinity, which no field,
  no ``jsonb`` column and no JSON response can hold;
- a string with a lone UTF-16 surrogate (``"\\ud800"``): valid JSON escapes, but no UTF-8
  text, so PostgreSQL and the response's encoder would fail on it.
"""

from __future__ import annotations

import codecs
import json
import math

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError

MAX_JSON_DEPTH = 64


def _refuse_constant(name: str):
    raise ValueError(f"Out of range float values are not JSON compliant: {name}")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"Out of range float values are not JSON compliant: {text}")
    return number


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def check_storable(data: object) -> None:
    """Raise ``ValueError`` when ``data`` (parsed JSON) nests deeper than
    :data:`MAX_JSON_DEPTH` or holds a string that is not valid Unicode text."""
    stack = [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if _has_lone_surrogate(item):
                raise ValueError("Strings must be valid Unicode text: a lone surrogate.")
        elif isinstance(item, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"Nesting deeper than {MAX_JSON_DEPTH} levels.")
            if isinstance(item, dict):
                stack.extend((key, depth) for key in item)
                stack.extend((value, depth + 1) for value in item.values())
            else:
                stack.extend((value, depth + 1) for value in item)


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with the limits of this module's doc."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.getreader(encoding)(stream).read()
            data = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
            check_storable(data)
        except RecursionError:
            raise ParseError(
                f"JSON parse error - nesting deeper than {MAX_JSON_DEPTH} levels."
            ) from None
        except (ValueError, LookupError) as exc:  # not JSON, not the encoding, out of range
            raise ParseError(f"JSON parse error - {exc}") from None
        return data

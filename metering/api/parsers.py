"""The JSON request parser: any body it cannot turn into values the product can store is a
400 ``validation_error`` (CONTRACT §2: malformed JSON is a validation error, never a 500).

DRF's own parser already refuses what is not JSON and the ``NaN``/``Infinity`` literals. This
one also refuses, with the same 400:

- a body nested deeper than ``metering.domain.MAX_JSON_DEPTH`` (a body nested 100,000 deep
  made Python's decoder raise ``RecursionError``, a 500; no body of the API is more than a
  few levels deep, a meter's free ``properties`` included);
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

from metering import domain


def _refuse_constant(name: str):
    raise ValueError(f"Out of range float values are not JSON compliant: {name}")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"Out of range float values are not JSON compliant: {text}")
    return number


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with the limits of this module's doc."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.getreader(encoding)(stream).read()
            data = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
            # Infinite numbers were refused above; U+0000 is left to the fields, which name it.
            if (problem := domain.json_problem(data, null_characters=True)) is not None:
                raise ValueError(problem)
        except RecursionError:
            raise ParseError(
                f"JSON parse error - nesting deeper than {domain.MAX_JSON_DEPTH} levels."
            ) from None
        except (ValueError, LookupError) as exc:  # not JSON, not the encoding, out of range
            raise ParseError(f"JSON parse error - {exc}") from None
        return data

"""Request bodies as JSON objects, parsed with limits, and the small field rules they share.

Why not ``json.loads`` as is: Python turns a 401-digit number into an ``int``
that the daemon's parsers then convert with ``float()``, which raises
``OverflowError`` — a 500 where the client deserved a 4xx. No quantity,
price, Greek or id needs more than :data:`MAX_INT_DIGITS` digits, and every
integer with at most that many converts to a finite float, so integers are
capped while parsing (422) and nothing downstream can overflow. The body's
size is capped before parsing (:mod:`supervisor.api.security`), which also
bounds the nesting depth, the number of fields and the length of strings.

``NaN`` and ``Infinity`` are accepted as Python's json module (and so
``replay``) reads them; what they mean is the parser's business (a non-finite
order field is ``invalid_order``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Mapping
from typing import Any, Final

from fastapi import Request

from supervisor.api.responses import Problem

__all__ = [
    "MAX_DETAIL_CHARS",
    "MAX_INT_DIGITS",
    "MAX_NAME_CHARS",
    "json_type",
    "name_field",
    "only_fields",
    "parse_object",
    "read_object",
    "text_field",
    "whole_number",
]

MAX_INT_DIGITS: Final = 200
"""The longest integer literal accepted, in digits (10**200 is still a finite float)."""

MAX_NAME_CHARS: Final = 200
"""Ids (of checks, strategies) and operator names: at most this many characters."""

MAX_DETAIL_CHARS: Final = 2000
"""Free-text details of failures and successes: at most this many characters."""

_JSON_TYPES: Final[dict[type, str]] = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


def json_type(v: object) -> str:
    """How a JSON value is named in error messages ("a string", "null", ...)."""
    return _JSON_TYPES.get(type(v), type(v).__name__)


class _LongInteger(ValueError):
    pass


def _bounded_int(text: str) -> int:
    digits = len(text) - (1 if text.startswith("-") else 0)
    if digits > MAX_INT_DIGITS:
        raise _LongInteger(digits)
    return int(text)


def _bad_unicode(obj: object) -> str | None:
    """The path of the first string holding a lone surrogate, else None.

    ``json.loads`` turns ``"\\ud800"`` into a str that is not valid Unicode:
    it cannot be written as UTF-8 anywhere downstream, so it is refused here
    rather than failing later. Iterative, because the body may nest as deep
    as the JSON parser allows.
    """
    stack: list[tuple[str, object]] = [("body", obj)]
    while stack:
        path, v = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return path
        elif isinstance(v, dict):
            for k, x in v.items():
                key_path = k if path == "body" else f"{path}.{k}"
                stack.append((key_path, k))
                stack.append((key_path, x))
        elif isinstance(v, list):
            stack.extend((f"{path}[{i}]", x) for i, x in enumerate(v))
    return None


def parse_object(raw: bytes, *, required: bool) -> dict[str, Any]:
    """``raw`` as a JSON object, or a :class:`Problem` naming what is wrong with it.

    An empty body is ``{}`` unless ``required``. Pure: no I/O, so it is tested
    without a server.
    """
    if not raw.strip():
        if required:
            raise Problem(422, "body: required, a JSON object")
        return {}
    try:
        obj = json.loads(raw, parse_int=_bounded_int)
    except _LongInteger as exc:
        raise Problem(
            422, f"body: an integer of {exc.args[0]} digits; at most {MAX_INT_DIGITS} are accepted"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise Problem(400, f"body: not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise Problem(422, f"body: must be a JSON object, got {json_type(obj)}")
    bad = _bad_unicode(obj)
    if bad is not None:
        raise Problem(422, f"{bad}: not valid Unicode (a lone surrogate escape)")
    return obj


async def read_object(request: Request, *, required: bool) -> dict[str, Any]:
    """The request body as a JSON object (its size already capped by the guard)."""
    return parse_object(await request.body(), required=required)


def only_fields(obj: Mapping[str, Any], allowed: Collection[str], where: str = "") -> None:
    """Refuse unknown fields: a typo (``"mdoe": "flatten"``) must not silently mean the default."""
    for key in obj:
        if key not in allowed:
            names = ", ".join(sorted(allowed)) or "none"
            raise Problem(422, f"{where}{key}: unknown field (allowed: {names})")


def whole_number(
    obj: Mapping[str, Any], name: str, lo: int, hi: int, *, where: str = ""
) -> int | None:
    """An integer field in [lo, hi], or None when absent or null.

    ``2.0`` counts as 2, as JSON Schema's ``integer`` says; ``2.5``, ``true``
    and non-finite numbers do not.
    """
    v = obj.get(name)
    if v is None:
        return None
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise Problem(422, f"{where}{name}: must be an integer, got {json_type(v)} {v!r:.40}")
    if not lo <= v <= hi:
        raise Problem(422, f"{where}{name}: must be in [{lo}, {hi}], got {v}")
    return v


def text_field(
    obj: Mapping[str, Any],
    name: str,
    *,
    default: str,
    max_chars: int,
    non_empty: bool,
    where: str = "",
) -> str:
    """An optional string field (null or absent: ``default``), bounded in length."""
    v = obj.get(name)
    if v is None:
        return default
    if not isinstance(v, str) or (non_empty and not v):
        kind = "a non-empty string" if non_empty else "a string"
        raise Problem(422, f"{where}{name}: must be {kind}, got {json_type(v)}")
    if len(v) > max_chars:
        raise Problem(422, f"{where}{name}: at most {max_chars} characters, got {len(v)}")
    return v


def name_field(obj: Mapping[str, Any], name: str, *, default: str) -> str:
    """An operator name or similar: a non-empty string of at most MAX_NAME_CHARS."""
    return text_field(obj, name, default=default, max_chars=MAX_NAME_CHARS, non_empty=True)

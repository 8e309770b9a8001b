"""JSON for the store: strict for journal payloads, exact for saved state.

Two encodings because the two kinds of text have different readers. A
journal payload is read by more than Python (SQLite's JSON functions, polars,
jq), none of which accept ``NaN`` tokens, so it is strict JSON with
non-finite numbers as ``null``. Saved state (breaker, money, kill, strategy,
a stop's ``extra``) is read back only by this package and must come back
exactly: a breaker restored with an ``inf`` deadline turned into ``null``
could reopen for entries sooner than it was told to, so it keeps Python's
``NaN``/``Infinity`` tokens.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import numbers
from collections.abc import Mapping
from typing import Any, Final

import msgspec

__all__ = ["decode_state", "encode_payload", "encode_state"]

_MAX_DEPTH: Final = 64


def _json_default(o: Any) -> Any:
    """Make a value journalable rather than refuse it.

    A decision that cannot be journaled cannot be acted on, so an odd value in
    a payload (a dataclass, an enum, a numpy scalar, a set) is converted, and
    as a last resort written as its ``str``, instead of raising.
    """
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return {f.name: getattr(o, f.name) for f in dataclasses.fields(o)}
    if isinstance(o, msgspec.Struct):  # the per-quote messages (Greeks in a check's legs)
        return {name: getattr(o, name) for name in o.__struct_fields__}
    if isinstance(o, enum.Enum):
        return o.value
    if isinstance(o, Mapping):
        return dict(o)
    if isinstance(o, set | frozenset):
        try:
            return sorted(o)
        except TypeError:
            return list(o)
    if isinstance(o, bool | numbers.Integral):
        return int(o)
    if isinstance(o, numbers.Real):
        return float(o)
    tolist = getattr(o, "tolist", None)  # numpy scalars and arrays
    if callable(tolist):
        try:
            return tolist()
        except (TypeError, ValueError):
            pass
    iso = getattr(o, "isoformat", None)
    if callable(iso):
        return iso()
    return str(o)


def _strict(o: Any, depth: int = 0) -> Any:
    """Plain strict-JSON values, non-finite floats as null (the slow path)."""
    if depth > _MAX_DEPTH:
        return "<too deep>"
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if o is None or isinstance(o, str | int):
        return o
    if isinstance(o, dict):
        return {
            k if isinstance(k, str) else str(_strict(k, depth + 1)): _strict(v, depth + 1)
            for k, v in o.items()
        }
    if isinstance(o, list | tuple):
        return [_strict(v, depth + 1) for v in o]
    return _strict(_json_default(o), depth + 1)


def encode_payload(payload: Mapping[str, Any]) -> str:
    """Strict JSON with NaN and ±inf written as ``null``.

    ``null`` rather than a string because the non-finite values that reach a
    payload are IB's "no data" NaNs, for which null is the honest meaning, and
    a string would turn numeric columns of the analytics into text. The fast
    path is one ``json.dumps``; only a payload holding a non-finite float or a
    non-string key pays for the recursive clean-up.
    """
    try:
        return json.dumps(payload, allow_nan=False, default=_json_default, separators=(",", ":"))
    except (ValueError, TypeError):
        return json.dumps(_strict(payload), allow_nan=False, separators=(",", ":"))


def encode_state(state: Mapping[str, Any]) -> str:
    """Saved state as JSON that round-trips exactly, NaN and ±inf included."""
    return json.dumps(state, allow_nan=True, default=_json_default, separators=(",", ":"))


def decode_state(text: str, what: str) -> dict[str, Any]:
    """Saved state back; ValueError when it is not a JSON object (``what`` names it)."""
    state = json.loads(text)
    if not isinstance(state, dict):
        raise ValueError(f"stored {what} is not a JSON object")
    return state

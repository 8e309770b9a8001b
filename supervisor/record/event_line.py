"""One input event as one line of a recording (the replay format, DESIGN §6).

Python's own encoder is used, not orjson: orjson writes NaN and Infinity as
``null``, which would turn a quote the stop *ignored as non-finite* into one
it ignored as *missing* — the replay would still agree, but the recording
would no longer say what IB sent. ``float.__repr__`` is the shortest string
that reads back to the same double, so every price round-trips exactly, and
NaN / Infinity / -Infinity are the tokens Python's json module reads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

_ENCODER = json.JSONEncoder(
    separators=(",", ":"), allow_nan=True, ensure_ascii=False, check_circular=False
)


def encode(event: Mapping[str, Any]) -> bytes:
    """The event as one UTF-8 JSON line ending in ``\\n``; raises on a value JSON cannot hold."""
    if not isinstance(event, Mapping):
        raise TypeError(f"an event must be a mapping, got {type(event).__name__}")
    text = _ENCODER.encode(dict(event))
    return text.encode("utf-8") + b"\n"


def event_time(event: Mapping[str, Any]) -> float | None:
    """The event's ``t`` when it is a usable number; the file it lands in follows it."""
    t = event.get("t")
    if isinstance(t, bool) or not isinstance(t, int | float):
        return None
    t = float(t)
    return t if t == t and abs(t) < 1e11 else None

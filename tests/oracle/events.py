"""Reading replay lines: what makes a line bad, and typed access to fields.

Facts (DESIGN §6 "Replay input" and the semantics doc):

- One JSON object a line with `t` (epoch s, non-decreasing; equal times keep
  file order; a line that goes back in time is a bad line) and `type`.
- Numbers may be null or NaN / Infinity (Python's json reads them).
- A bad line (not JSON, not an object, unknown type, a missing or ill-typed
  field, t going back in time) is reported on stderr as `line N: ...`,
  changes nothing (the clock does not move) and makes the exit code 1.
- In quotes non-finite numbers are data; in an `account` line they make a bad
  line; in a check they make the order invalid_order (so check legs are not
  validated here); `whatif` values are never a reason for a bad line.
- `pnl` with a null, non-finite or DBL_MAX `daily` is missing data, not bad.
- `market` without its contract fields is a bad line.
- `failure` may not name stop_guard or loss_limit; `admin` kill with an
  unknown mode is a bad line.

Where the contract is silent the readings are listed in AMBIGUITIES.md.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any, TypeGuard

EVENT_TYPES = frozenset(
    {
        "position",
        "quote",
        "close",
        "account",
        "pnl",
        "market",
        "failure",
        "success",
        "check",
        "heartbeat",
        "admin",
    }
)

#: Kinds a `failure` line may name (stop_guard and loss_limit are the supervisor's own).
LINE_FAILURE_KINDS = frozenset(
    {"order_rejected", "data_feed", "connectivity", "margin", "slippage", "other"}
)

ADMIN_ACTIONS = frozenset({"force_open", "reset", "kill"})
KILL_MODES = frozenset({"halt", "cancel", "flatten"})

#: IB's "unset" marker for numbers (DBL_MAX).
DBL_MAX = 1.7976931348623157e308


class BadLine(Exception):
    """A line that is reported on stderr and changes nothing."""


def is_number(value: object) -> TypeGuard[int | float]:
    """A JSON number (bool is not a number, although Python says it is an int)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_line(text: str) -> dict[str, Any]:
    """Parse one line into an object with a numeric finite `t` and a known `type`."""
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise BadLine(f"not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise BadLine("not an object")
    t = obj.get("t")
    if not is_number(t) or not math.isfinite(t):
        raise BadLine("t must be a finite number")
    if obj.get("type") not in EVENT_TYPES:
        raise BadLine(f"unknown type {obj.get('type')!r}")
    return obj


def req_str(obj: dict[str, Any], key: str) -> str:
    """A required string field."""
    value = obj.get(key)
    if not isinstance(value, str):
        raise BadLine(f"{key} must be a string")
    return value


def req_finite(obj: dict[str, Any], key: str) -> float:
    """A required finite number."""
    value = obj.get(key)
    if not is_number(value) or not math.isfinite(value):
        raise BadLine(f"{key} must be a finite number")
    return float(value)


def opt_num(obj: dict[str, Any], key: str) -> float | None:
    """An optional number that may be null or non-finite (quote data): float, NaN or None."""
    value = obj.get(key)
    if value is None:
        return None
    if not is_number(value):
        raise BadLine(f"{key} must be a number or null")
    return float(value)


def valid_expiry(value: object) -> bool:
    """`YYYY-MM-DD`, a real date."""
    if not isinstance(value, str) or len(value) != 10:
        return False
    try:
        datetime.strptime(value, "%Y-%m-%d")
    except ValueError:
        return False
    return True


def contract_of(obj: dict[str, Any]) -> tuple[Any, ...]:
    """The contract of a position or market line: (STK, symbol) or (OPT, sym, right, K, exp, mult).

    Numbers are compared by value (100 = 100.0), so they are stored as floats.
    """
    symbol = req_str(obj, "symbol")
    sec_type = obj.get("sec_type")
    if sec_type == "STK":
        return ("STK", symbol)
    if sec_type != "OPT":
        raise BadLine("sec_type must be STK or OPT")
    right = obj.get("right")
    if right not in ("C", "P"):
        raise BadLine("right must be C or P")
    strike = req_finite(obj, "strike")
    if strike <= 0:
        raise BadLine("strike must be > 0")
    expiry = obj.get("expiry")
    if not valid_expiry(expiry):
        raise BadLine("expiry must be YYYY-MM-DD")
    multiplier = req_finite(obj, "multiplier")
    if multiplier <= 0:
        raise BadLine("multiplier must be > 0")
    return ("OPT", symbol, right, strike, expiry, multiplier)


def unset_ib_value(value: object) -> float | None:
    """IB data (pnl daily, whatif): None when null, missing, non-finite, DBL_MAX, not a number."""
    if not is_number(value):
        return None
    number = float(value)
    if not math.isfinite(number) or number == DBL_MAX:
        return None
    return number

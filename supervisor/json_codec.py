"""JSON ↔ messages: the one place outside input enters the actors.

Replay lines and API requests share these parsers, so a check posted to the
API and a check line in a replay file mean exactly the same thing. Parsing
never raises anything but :class:`BadInput`, whose message names the field.
Bad *values* inside a well-formed quote (NaN, ∞, negative prices, crossed
quotes) are not bad input: they are data the trailing stop ignores and counts.
A malformed *order* is not bad input either: it is answered with
``invalid_order``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from actors.messages import (
    AccountUpdate,
    Admin,
    AdminAction,
    BreakerTransition,
    CheckAnswer,
    CheckRequest,
    Contract,
    Failure,
    FailureKind,
    Greeks,
    Leg,
    PositionUpdate,
    Quote,
    Right,
    SecType,
    StopEvent,
    Success,
)

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class BadInput(ValueError):
    """Input that cannot be understood; the message names the offending field."""


def _number(obj: Mapping[str, Any], name: str, *, required: bool = False) -> float | None:
    """A JSON number (NaN and Infinity included, as Python's json reads them) or null."""
    if name not in obj or obj[name] is None:
        if required:
            raise BadInput(f"{name} is required")
        return None
    v = obj[name]
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise BadInput(f"{name} must be a number or null, got {v!r}")
    return float(v)


def _finite(obj: Mapping[str, Any], name: str, *, positive: bool = False) -> float:
    v = _number(obj, name, required=True)
    assert v is not None
    if not math.isfinite(v):
        raise BadInput(f"{name} must be finite, got {v!r}")
    if positive and v <= 0:
        raise BadInput(f"{name} must be > 0, got {v!r}")
    return v


def _string(obj: Mapping[str, Any], name: str, *, required: bool = True) -> str:
    v = obj.get(name)
    if v is None and not required:
        return ""
    if isinstance(v, int) and not isinstance(v, bool) and name == "id":
        return str(v)
    if not isinstance(v, str) or (required and not v):
        raise BadInput(f"{name} must be a non-empty string, got {v!r}")
    return v


def _enum(obj: Mapping[str, Any], name: str, enum: Any) -> Any:
    v = obj.get(name)
    try:
        return enum(v)
    except ValueError:
        allowed = ", ".join(repr(e.value) for e in enum)
        raise BadInput(f"{name} must be one of {allowed}, got {v!r}") from None


def event_time(obj: Mapping[str, Any]) -> float:
    return _finite(obj, "t")


def greeks(obj: Any, where: str = "greeks") -> Greeks | None:
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise BadInput(f"{where} must be an object or null")
    unknown = set(obj) - {"delta", "gamma", "vega", "theta", "iv", "und_price"}
    if unknown:
        raise BadInput(f"{where}.{sorted(unknown)[0]}: unknown field")
    try:
        return Greeks(
            _number(obj, "delta"),
            _number(obj, "gamma"),
            _number(obj, "vega"),
            _number(obj, "theta"),
            _number(obj, "iv"),
            _number(obj, "und_price"),
        )
    except BadInput as exc:
        raise BadInput(f"{where}.{exc}") from None


def contract(obj: Mapping[str, Any]) -> Contract:
    sec_type = _enum(obj, "sec_type", SecType)
    symbol = _string(obj, "symbol")
    if sec_type is SecType.STK:
        return Contract(symbol, sec_type)
    right = _enum(obj, "right", Right)
    strike = _finite(obj, "strike", positive=True)
    expiry = _string(obj, "expiry")
    if not _DATE.match(expiry):
        raise BadInput(f"expiry must be a date YYYY-MM-DD, got {expiry!r}")
    multiplier = _finite(obj, "multiplier", positive=True)
    return Contract(symbol, sec_type, right, strike, expiry, multiplier)


def position(obj: Mapping[str, Any], t: float) -> PositionUpdate:
    qty = _finite(obj, "qty")
    entry = (
        _finite(obj, "entry_price", positive=True)
        if qty != 0
        else (_number(obj, "entry_price") or 0.0)
    )
    return PositionUpdate(t, _string(obj, "id"), contract(obj), qty, entry)


def quote(obj: Mapping[str, Any], t: float) -> Quote:
    return Quote(
        t,
        _string(obj, "id"),
        _number(obj, "bid"),
        _number(obj, "ask"),
        _number(obj, "last"),
        greeks(obj.get("greeks")),
    )


def account(obj: Mapping[str, Any], t: float) -> AccountUpdate:
    return AccountUpdate(t, _finite(obj, "net_liquidation", positive=True))


def failure(obj: Mapping[str, Any], t: float) -> Failure:
    kind = _enum(obj, "kind", FailureKind)
    code = obj.get("code")
    if code is not None and (isinstance(code, bool) or not isinstance(code, int)):
        raise BadInput(f"code must be an integer or null, got {code!r}")
    detail = obj.get("detail")
    if detail is not None and not isinstance(detail, str):
        raise BadInput(f"detail must be a string or null, got {detail!r}")
    return Failure(t, kind, code, detail or "")


def success(obj: Mapping[str, Any], t: float) -> Success:
    detail = obj.get("detail")
    if detail is not None and not isinstance(detail, str):
        raise BadInput(f"detail must be a string or null, got {detail!r}")
    return Success(t, detail or "")


def admin(obj: Mapping[str, Any], t: float, operator: str = "operator") -> Admin:
    return Admin(t, _enum(obj, "action", AdminAction), operator)


def leg(obj: Any, i: int) -> Leg:
    where = f"legs[{i}]"
    if not isinstance(obj, dict):
        raise BadInput(f"{where} must be an object")
    try:
        sec_type = _enum(obj, "sec_type", SecType)
        right = None if obj.get("right") is None else _enum(obj, "right", Right)
        expiry = obj.get("expiry")
        if expiry is not None and not isinstance(expiry, str):
            raise BadInput(f"expiry must be a string, got {expiry!r}")
        qty = _number(obj, "qty", required=True)
        assert qty is not None
        return Leg(
            _string(obj, "symbol"),
            sec_type,
            qty,
            _number(obj, "price"),
            right,
            _number(obj, "strike"),
            expiry,
            _number(obj, "multiplier"),
            greeks(obj.get("greeks")),
        )
    except BadInput as exc:
        raise BadInput(f"{where}.{exc}") from None


def check(obj: Mapping[str, Any], t: float, reply_to: Any = None) -> CheckRequest:
    """A check request; a malformed order becomes a request marked invalid, not an error."""
    id = _string(obj, "id")
    raw = obj.get("legs")
    if not isinstance(raw, list):
        return CheckRequest(t, id, (), reply_to, "legs must be a list")
    try:
        legs = tuple(leg(x, i) for i, x in enumerate(raw))
    except BadInput as exc:
        return CheckRequest(t, id, (), reply_to, str(exc))
    return CheckRequest(t, id, legs, reply_to)


# ------------------------------------------------------------------ output


def contract_fields(c: Contract) -> dict[str, Any]:
    """A contract as the flat fields replay lines, the API and the journal use."""
    return {
        "symbol": c.symbol,
        "sec_type": c.sec_type.value,
        "right": None if c.right is None else c.right.value,
        "strike": c.strike,
        "expiry": c.expiry,
        "multiplier": c.multiplier,
    }


def stop_line(e: StopEvent) -> dict[str, Any]:
    return {
        "t": e.t,
        "type": "stop",
        "id": e.id,
        "action": e.action.value,
        "stop": e.stop,
        "ref_price": e.ref_price,
        "extreme": e.extreme,
    }


def breaker_line(tr: BreakerTransition) -> dict[str, Any]:
    return {
        "t": tr.t,
        "type": "breaker",
        "from": tr.from_state.value,
        "to": tr.to_state.value,
        "cause": tr.cause.to_json(),
    }


def check_line(a: CheckAnswer) -> dict[str, Any]:
    return {
        "t": a.t,
        "type": "check",
        "id": a.id,
        "allowed": a.allowed,
        "reasons": [{"code": r.code.value, "value": r.value, "limit": r.limit} for r in a.reasons],
    }

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

import msgspec

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
    Heartbeat,
    Kill,
    KillMode,
    Leg,
    MarketQuote,
    PnlUpdate,
    PositionClosed,
    PositionUpdate,
    Quote,
    Right,
    SecType,
    StopEvent,
    Success,
    WhatIf,
)

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

#: IB's unset value for a double: missing data wherever IB data come in.
DBL_MAX = 1.7976931348623157e308


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
        raise BadInput(f"{name} must be a number or null, got {_short(v)}")
    try:
        return float(v)
    except OverflowError:  # an integer beyond any float: as good as infinite
        return math.copysign(math.inf, v)


def _short(v: Any, limit: int = 60) -> str:
    """A value for an error message: never a megabyte of it."""
    try:
        text = repr(v)
    except ValueError:  # an int too long to print
        return "<a number too long to print>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _finite(obj: Mapping[str, Any], name: str, *, positive: bool = False) -> float:
    v = _number(obj, name, required=True)
    assert v is not None
    if not math.isfinite(v):
        raise BadInput(f"{name} must be finite, got {_short(v)}")
    if positive and v <= 0:
        raise BadInput(f"{name} must be > 0, got {_short(v)}")
    return v


def _string(obj: Mapping[str, Any], name: str, *, required: bool = True) -> str:
    v = obj.get(name)
    if v is None and not required:
        return ""
    if isinstance(v, int) and not isinstance(v, bool) and name == "id":
        return str(v)
    if not isinstance(v, str) or (required and not v):
        raise BadInput(f"{name} must be a non-empty string, got {_short(v)}")
    return v


def _enum(obj: Mapping[str, Any], name: str, enum: Any) -> Any:
    v = obj.get(name)
    try:
        return enum(v)
    except ValueError:
        allowed = ", ".join(repr(e.value) for e in enum)
        raise BadInput(f"{name} must be one of {allowed}, got {_short(v)}") from None


def position_id(obj: Mapping[str, Any]) -> str:
    return _string(obj, "id")


def close(obj: Mapping[str, Any], t: float) -> PositionClosed:
    return PositionClosed(t, _string(obj, "id"))


def event_time(obj: Mapping[str, Any]) -> float:
    return _finite(obj, "t")


def _quoted(obj: Mapping[str, Any], name: str) -> float | None:
    """A quote's number as IB data: DBL_MAX is IB's unset value, missing like null."""
    v = _number(obj, name)
    return None if v is not None and abs(v) == DBL_MAX else v


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
            _quoted(obj, "delta"),
            _quoted(obj, "gamma"),
            _quoted(obj, "vega"),
            _quoted(obj, "theta"),
            _quoted(obj, "iv"),
            _quoted(obj, "und_price"),
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


class _Keep:
    """A position line without ``strategy``: the leg keeps its strategy."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP_STRATEGY: Any = _Keep()


def strategy_of(obj: Mapping[str, Any]) -> str | Any | None:
    """A position line's ``strategy``: an id, None (``null``: leave it) or KEEP_STRATEGY."""
    if "strategy" not in obj:
        return KEEP_STRATEGY
    v = obj["strategy"]
    if v is None:
        return None
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    if not isinstance(v, str) or not v:
        raise BadInput(f"strategy must be a non-empty string or null, got {_short(v)}")
    return v


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
        _quoted(obj, "bid"),
        _quoted(obj, "ask"),
        _quoted(obj, "last"),
        greeks(obj.get("greeks")),
    )


class _GreeksLine(Greeks, forbid_unknown_fields=True, frozen=True, gc=False):
    """Greeks as a quote line spells them: an unknown one is the general path's error."""


class _QuoteLine(msgspec.Struct, tag_field="type", tag="quote", gc=False):
    t: float
    id: str | int
    bid: float | None = None
    ask: float | None = None
    last: float | None = None
    greeks: _GreeksLine | None = None


_decode_quote_line = msgspec.json.Decoder(_QuoteLine).decode


def _ib(v: float | None) -> float | None:
    return None if v is not None and (v == DBL_MAX or v == -DBL_MAX) else v


def fast_quote(line: str | bytes) -> Quote | None:
    """A ``quote`` line decoded straight into its message, or None: the general path decides.

    Most of a recording is quotes, and decoding one into a dict and then
    checking each field by hand costs more than the actors' work on it. This
    decodes a well-formed quote line in one typed pass and gives exactly what
    ``quote(decoded dict, event_time(dict))`` gives; anything it is not sure
    of (another type, NaN, a bool, an integer beyond a float, an unknown
    Greek, an empty id, invalid UTF-8 …) returns None, and the general path
    reads the line with its own rules and error messages.
    """
    try:
        q = _decode_quote_line(line)
    except msgspec.DecodeError:  # (ValidationError is one)
        return None
    t, raw_id = q.t, q.id
    pid = str(raw_id) if isinstance(raw_id, int) else raw_id
    if not (pid and math.isfinite(t)):
        return None
    g = q.greeks
    greeks = None
    if g is not None:
        values: tuple[float | None, ...] = (g.delta, g.gamma, g.vega, g.theta, g.iv, g.und_price)
        if DBL_MAX in values or -DBL_MAX in values:  # IB's unset value: missing
            values = tuple(map(_ib, values))
        greeks = Greeks(*values)
    prices: tuple[float | None, ...] = (q.bid, q.ask, q.last)
    if DBL_MAX in prices or -DBL_MAX in prices:
        prices = tuple(map(_ib, prices))
    return Quote(t, pid, prices[0], prices[1], prices[2], greeks)


def account(obj: Mapping[str, Any], t: float) -> AccountUpdate:
    """IB's NLV; DBL_MAX is its unset value: an account event without a new NLV."""
    v = _number(obj, "net_liquidation", required=True)
    if v is not None and abs(v) == DBL_MAX:
        return AccountUpdate(t, None)
    return AccountUpdate(t, _finite(obj, "net_liquidation", positive=True))


def _ib_value(obj: Mapping[str, Any], name: str) -> float | None:
    """An IB number: null, NaN, ±∞ and DBL_MAX are unset values (missing), not errors."""
    v = _number(obj, name)
    if v is None or not math.isfinite(v) or abs(v) >= DBL_MAX:
        return None
    return v


def pnl(obj: Mapping[str, Any], t: float) -> PnlUpdate:
    """IB's reqPnL values; an unset ``daily`` is missing data (DESIGN §4.3), not a bad line.

    ``daily`` must be there (null is its unset value); a line without it is bad.
    """
    if "daily" not in obj:
        raise BadInput("daily is required (null when IB has not set it)")
    return PnlUpdate(
        t, _ib_value(obj, "daily"), _ib_value(obj, "unrealized"), _ib_value(obj, "realized")
    )


def market(obj: Mapping[str, Any], t: float) -> MarketQuote:
    """A quote of any contract: its fields are required (a missing one is a bad line)."""
    return MarketQuote(
        t, contract(obj), _quoted(obj, "bid"), _quoted(obj, "ask"), _quoted(obj, "last")
    )


def heartbeat(obj: Mapping[str, Any], t: float) -> Heartbeat:
    return Heartbeat(t)


_WHATIF_FIELDS = (
    "init_margin_before",
    "init_margin_after",
    "maint_margin_before",
    "maint_margin_after",
    "equity_with_loan_before",
    "equity_with_loan_after",
)


def whatif(obj: Any) -> WhatIf | None:
    """A check's ``whatif``: IB data, so anything unusable in it is an unset value.

    Not an object (or null): no answer. A field that is null, missing,
    non-finite, DBL_MAX or not a number: unset (the margin rules then fail
    closed with ``stale_data``, DESIGN §4.4). Never ``invalid_order``.
    """
    if not isinstance(obj, dict):
        return None
    values: list[float | None] = []
    for name in _WHATIF_FIELDS:
        v = obj.get(name)
        number: float | None = None
        if isinstance(v, int | float) and not isinstance(v, bool):
            try:
                number = float(v)
            except OverflowError:
                number = None
        if number is not None and math.isfinite(number) and abs(number) < DBL_MAX:
            values.append(number)
        else:
            values.append(None)
    return WhatIf(values[0], values[1], values[2], values[3], values[4], values[5])


def failure(obj: Mapping[str, Any], t: float) -> Failure:
    kind = _enum(obj, "kind", FailureKind)
    if kind.internal:
        raise BadInput(f"kind {kind.value!r} is raised by the supervisor itself, not reported")
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


def admin(obj: Mapping[str, Any], t: float, operator: str = "operator") -> Admin | Kill:
    """An operator action; ``kill`` (any mode) acts as ``halt`` in replay (DESIGN §4.5).

    A recording names the ``operator`` (a string); replay keeps it in the causes.
    """
    action = _enum(obj, "action", AdminAction)
    who = obj.get("operator")
    if isinstance(who, str) and who:
        operator = who[:200]
    if action is AdminAction.KILL:
        mode = KillMode.HALT if obj.get("mode") is None else _enum(obj, "mode", KillMode)
        return Kill(t, mode, operator, kill_id=f"admin@{t!r}")
    return Admin(t, action, operator)


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
    what = whatif(obj.get("whatif"))
    raw = obj.get("legs")
    if not isinstance(raw, list):
        return CheckRequest(t, id, (), reply_to, "legs must be a list", what)
    try:
        legs = tuple(leg(x, i) for i, x in enumerate(raw))
    except BadInput as exc:
        return CheckRequest(t, id, (), reply_to, str(exc), what)
    return CheckRequest(t, id, legs, reply_to, None, what)


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


def whatif_fields(w: WhatIf) -> dict[str, Any]:
    """A what-if as the journal and the API show it (``error`` when IB gave no answer)."""
    return {
        "init_margin_before": w.init_margin_before,
        "init_margin_after": w.init_margin_after,
        "maint_margin_before": w.maint_margin_before,
        "maint_margin_after": w.maint_margin_after,
        "equity_with_loan_before": w.equity_with_loan_before,
        "equity_with_loan_after": w.equity_with_loan_after,
        "error": w.error or None,
    }


def leg_fields(leg: Leg) -> dict[str, Any]:
    """A leg as a check line has it (without Greeks): what a restart needs for duplicates."""
    return {
        "symbol": leg.symbol,
        "sec_type": leg.sec_type.value,
        "qty": leg.qty,
        "price": leg.price,
        "right": None if leg.right is None else leg.right.value,
        "strike": leg.strike,
        "expiry": leg.expiry,
        "multiplier": leg.multiplier,
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


# ------------------------------------------------------------ recording
#
# Input events in the replay format (DESIGN §6), for the daemon's recording:
# replaying them gives the decisions the daemon made.


def quote_event(q: Quote) -> dict[str, Any]:
    out: dict[str, Any] = {"t": q.t, "type": "quote", "id": q.id, "bid": q.bid, "ask": q.ask}
    out["last"] = q.last
    if q.greeks is not None:
        g = q.greeks
        out["greeks"] = {
            "delta": g.delta,
            "gamma": g.gamma,
            "vega": g.vega,
            "theta": g.theta,
            "iv": g.iv,
            "und_price": g.und_price,
        }
    return out


def position_event(u: PositionUpdate, strategy: str | Any | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"t": u.t, "type": "position", "id": u.id}
    out.update((k, v) for k, v in contract_fields(u.contract).items() if v is not None)
    out["qty"] = u.qty
    out["entry_price"] = u.entry_price
    if strategy is not None and strategy is not KEEP_STRATEGY:
        out["strategy"] = strategy
    return out


def market_event(q: MarketQuote) -> dict[str, Any]:
    out: dict[str, Any] = {"t": q.t, "type": "market"}
    out.update((k, v) for k, v in contract_fields(q.contract).items() if v is not None)
    out.update(bid=q.bid, ask=q.ask, last=q.last)
    return out


def check_event(obj: Mapping[str, Any], t: float, w: WhatIf | None) -> dict[str, Any]:
    out: dict[str, Any] = {"t": t, "type": "check", **{k: v for k, v in obj.items() if k != "t"}}
    out.pop("whatif", None)
    if w is not None and not w.error:
        out["whatif"] = {k: v for k, v in whatif_fields(w).items() if k != "error"}
    return out

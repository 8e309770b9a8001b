"""What the OpenAPI document says the API takes and gives.

Pydantic models describe responses in the document only: handlers build
plain dicts and render them with :class:`~supervisor.api.responses.SafeJSONResponse`,
so a value that pydantic would choke on (a NaN, a lone surrogate) can never
turn an answer into a 500. The tests check that responses conform to these
models, and schemathesis generates requests from the request-body schemas.

Request bodies are parsed by hand (the check by ``supervisor.json_codec``,
exactly as replay parses a check line), so their schemas are written here as
JSON Schema rather than derived from models.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from actors.messages import BreakerState, FailureKind, KillMode, ReasonCode, Right, SecType
from supervisor.api.json_body import MAX_DETAIL_CHARS, MAX_NAME_CHARS

# Limits of the strategy and failure parsers, here so the document states them.
MAX_STRATEGY_LEGS: Final = 32
MAX_RATIO: Final = 10_000
MAX_CON_ID: Final = 2**31 - 1  # IB's conId is a 32-bit int
IB_CODE_RANGE: Final = (-(2**31), 2**31 - 1)

# ------------------------------------------------------------------ responses


class ErrorOut(BaseModel):
    """Every error: one line naming the field (``query.limit: ...``)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"detail": "kind must be one of 'order_rejected', …"}]}
    )
    detail: str


class HealthOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ok",
                    "breaker": "closed",
                    "store": "ok",
                    "ib": "connected",
                    "detail": "",
                }
            ]
        }
    )
    status: str = Field(description='Always "ok": the daemon answers.')
    breaker: BreakerState
    store: str = Field(description='"ok", "unavailable" (writes fail) or "none" (no store).')
    ib: str | None = Field(description="The IB adapter's connection state; null without one.")
    detail: str = Field(description="Why a part is not ok, for a human.")


class BreakerOut(BaseModel):
    state: BreakerState
    snapshot: dict[str, Any] = Field(
        description="The breaker's full state: trips, day_trips, opened_at, due, forced, "
        "latched, permits_used, successes and the failure window."
    )


class LimitUsageOut(BaseModel):
    limit: str = Field(description="The limit key, e.g. max_portfolio_delta.")
    value: float | None = Field(description="The configured limit.")
    usage: float | None = Field(description="The current usage (largest, for per-symbol limits).")
    utilization: float | None = Field(description="usage / limit.")


class PortfolioOut(BaseModel):
    delta: float | None = Field(description="Σ delta, share-equivalents (null if not finite).")
    dollar_delta: float | None
    gamma: float | None
    vega: float | None
    theta: float | None
    beta_weighted_delta: float | None = Field(
        description="Σ dollar delta × β ÷ index price, in index shares (DESIGN §4.1); "
        "null when a β or the index price is missing."
    )
    net_liquidation: float | None = Field(description="The NLV the % limits use (estimated).")
    data_problem: str | None = Field(description="Why checks would be denied stale_data now.")
    limits: list[LimitUsageOut]
    by_underlying: list[dict[str, Any]] = Field(
        description="Per underlying: symbol, positions, delta, dollar_delta, gamma, vega, "
        "theta, notional."
    )
    holdings: list[dict[str, Any]] = Field(description="Per position, as the gate sees it.")


class StopOut(BaseModel):
    id: str
    symbol: str
    sec_type: SecType
    right: Right | None
    strike: float | None
    expiry: str | None
    multiplier: float | None
    qty: float | None
    entry_price: float | None
    active: bool
    extreme: float | None
    stop: float | None
    breaches: int
    triggered: bool
    trigger_id: str | None
    ignored_quotes: int
    strategy: str | None = None  # the strategy this position is a leg of (its own stop off)
    state: str = "idle"  # idle | active | triggered — what trailing_stops_active counts


class MoneyOut(BaseModel):
    """Daily P&L, the estimated NLV and its high-water mark (DESIGN §4.3)."""

    daily_pnl: float | None
    unrealized_pnl: float | None
    realized_pnl: float | None
    pnl_t: float | None = Field(description="Event time of the last daily P&L.")
    nlv_reported: float | None = Field(description="The last NLV IB reported (or the config's).")
    nlv_reported_t: float | None
    nlv_estimate: float | None = Field(description="Reported NLV + daily P&L since it came.")
    high_water: float | None = Field(description="Highest estimate since the last reset.")
    loss_latched: bool = Field(description="A loss limit latched the breaker open.")


class HeartbeatOut(BaseModel):
    """The dead-man switch (DESIGN §4.5): nulls when it is off or not yet armed."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "timeout_s": 10.0,
                    "last_t": 1767225600.0,
                    "deadline": 1767225610.0,
                    "fired": False,
                    "age_s": 0.0,
                }
            ]
        }
    )
    timeout_s: float | None = Field(description="[api] heartbeat_timeout_s; null when off.")
    last_t: float | None = Field(description="The last heartbeat or check.")
    deadline: float | None = Field(description="When the daemon kills without another one.")
    fired: bool
    age_s: float | None = Field(description="Seconds since last_t, as of the answer.")


class KillOrderOut(BaseModel):
    position_id: str = Field(description="A position id, or a strategy id for a combo order.")
    status: str = Field(
        description="claimed, placed, filled, rejected, cancelled, error or unplaced."
    )
    order_id: int | None
    detail: str


class KillOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "kill_id": "kill-1767225600000",
                    "t": 1767225600.0,
                    "mode": "flatten",
                    "cause": "kill",
                    "operator": "alice",
                    "breaker": "open",
                    "cancel": "confirmed",
                    "orders": [
                        {
                            "position_id": "SPY-C600",
                            "status": "placed",
                            "order_id": 41,
                            "detail": "",
                        }
                    ],
                }
            ]
        }
    )
    kill_id: str
    t: float
    mode: KillMode
    cause: str = Field(description='"kill" (operator or trader) or "heartbeat_lost".')
    operator: str
    breaker: BreakerState
    cancel: str = Field(description='"", "requested", "confirmed" or "error: …".')
    orders: list[KillOrderOut] = Field(description="Flatten orders, one per position.")


class StrategyLegOut(BaseModel):
    position_id: str | None = Field(description="The held position; null while not held.")
    ratio: int
    qty: float | None
    symbol: str | None
    sec_type: SecType | None
    right: Right | None
    strike: float | None
    expiry: str | None
    multiplier: float | None


class StrategyOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "spy-bull-call",
                    "symbol": "SPY",
                    "state": "live",
                    "legs": [],
                    "entry": 3.1,
                    "net_price": 3.4,
                    "stop": 3.2,
                    "extreme": 3.5,
                    "active": True,
                    "credit": False,
                    "detail": "",
                }
            ]
        }
    )
    id: str
    symbol: str
    state: str = Field(description="waiting, live, triggered, ended or refused.")
    legs: list[StrategyLegOut]
    entry: float | None = Field(description="E in the stop's units (−E for a credit).")
    net_price: float | None = Field(description="The last net price, in the stop's units.")
    stop: float | None
    extreme: float | None
    active: bool
    credit: bool
    detail: str


class StateOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "t": 1767225600.0,
                    "breaker": {"state": "closed", "snapshot": {"state": "closed", "trips": 0}},
                    "portfolio": {
                        "delta": 100.0,
                        "dollar_delta": 15000.0,
                        "gamma": 0.0,
                        "vega": 0.0,
                        "theta": 0.0,
                        "beta_weighted_delta": None,
                        "net_liquidation": 1000000.0,
                        "data_problem": None,
                        "limits": [
                            {
                                "limit": "max_portfolio_delta",
                                "value": 500.0,
                                "usage": 100.0,
                                "utilization": 0.2,
                            }
                        ],
                        "by_underlying": [],
                        "holdings": [],
                    },
                    "positions": [],
                    "money": {
                        "daily_pnl": -1200.0,
                        "unrealized_pnl": None,
                        "realized_pnl": None,
                        "pnl_t": 1767225599.0,
                        "nlv_reported": 1000000.0,
                        "nlv_reported_t": 1767225000.0,
                        "nlv_estimate": 998800.0,
                        "high_water": 1000000.0,
                        "loss_latched": False,
                    },
                    "heartbeat": {
                        "timeout_s": None,
                        "last_t": None,
                        "deadline": None,
                        "fired": False,
                        "age_s": None,
                    },
                    "kill": None,
                    "strategies": [],
                }
            ]
        }
    )
    t: float
    breaker: BreakerOut
    portfolio: PortfolioOut
    positions: list[StopOut]
    money: MoneyOut
    heartbeat: HeartbeatOut
    kill: KillOut | None = Field(description="The last kill; null if there was none.")
    strategies: list[StrategyOut]


class ReasonOut(BaseModel):
    code: ReasonCode
    value: float | None = Field(description="Projected usage; null for breaker/data codes.")
    limit: float | None = Field(description="The configured limit; null for breaker/data codes.")


class CheckOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "ord-42",
                    "allowed": False,
                    "reasons": [{"code": "max_portfolio_delta", "value": 550.0, "limit": 500.0}],
                    "risk_reducing": False,
                    "breaker_state": "closed",
                    "detail": "",
                    "t": 1767225600.0,
                }
            ]
        }
    )
    id: str = Field(description="The check's id, as a string (an integer id as its digits).")
    allowed: bool
    reasons: list[ReasonOut]
    risk_reducing: bool
    breaker_state: BreakerState | None
    detail: str
    t: float


class AcceptedOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"accepted": True}]})
    accepted: bool


class AdminOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"state": "open"}]})
    state: BreakerState


class DeletedOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"id": "spy-bull-call", "deleted": True}]}
    )
    id: str
    deleted: bool


class JournalRowOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "seq": 7,
                    "t": 1767225600.0,
                    "wall_t": 1767225600.01,
                    "kind": "check",
                    "position_id": None,
                    "payload": {"id": "ord-42", "allowed": True, "reasons": []},
                }
            ]
        }
    )
    seq: int
    t: float | None = Field(description="Event time (null if it was not finite).")
    wall_t: float | None = Field(description="Wall clock when written; null if not known.")
    kind: str
    position_id: str | None
    payload: dict[str, Any]


# -------------------------------------------------------------- request bodies


def _json_body(schema: dict[str, Any], example: dict[str, Any]) -> dict[str, Any]:
    # Every body is required: POST and PUT carry a JSON object, ``{}`` when
    # there is nothing to say, as application/json (see security.py).
    return {
        "required": True,
        "content": {"application/json": {"schema": schema, "example": example}},
    }


_NUMBER_OR_NULL: Final[dict[str, Any]] = {"type": ["number", "null"]}
_NAME: Final[dict[str, Any]] = {"type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS}
_DETAIL: Final[dict[str, Any]] = {
    "anyOf": [{"type": "string", "maxLength": MAX_DETAIL_CHARS}, {"type": "null"}]
}
_OPERATOR: Final[dict[str, Any]] = {
    "anyOf": [{**_NAME, "description": "Who acts; journaled with the action."}, {"type": "null"}]
}

_GREEKS_SCHEMA: Final[dict[str, Any]] = {
    "anyOf": [
        {"type": "null"},
        {
            "type": "object",
            "description": "Per-share Greeks as IB's modelGreeks gives them.",
            "additionalProperties": False,
            "properties": {
                k: _NUMBER_OR_NULL for k in ("delta", "gamma", "vega", "theta", "iv", "und_price")
            },
        },
    ]
}

_POSITIVE_OR_NULL: Final[dict[str, Any]] = {
    "anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "null"}]
}
_EXPIRY: Final[dict[str, Any]] = {"type": "string", "format": "date", "description": "YYYY-MM-DD"}
_OPTION_FIELDS: Final[dict[str, Any]] = {
    "right": {"type": "string", "enum": [r.value for r in Right]},
    "strike": {"type": "number", "exclusiveMinimum": 0},
    "expiry": _EXPIRY,
    "multiplier": {"type": "number", "exclusiveMinimum": 0},
}
_OPTION_REQUIRED: Final = ["right", "strike", "expiry", "multiplier"]
_SYMBOL: Final[dict[str, Any]] = {
    "type": "string",
    "minLength": 1,
    "description": "For an option: the underlying.",
}
_LEG_COMMON: Final[dict[str, Any]] = {
    "symbol": _SYMBOL,
    "qty": {
        "type": "number",
        "not": {"const": 0},
        "description": "Signed, non-zero: > 0 buys, < 0 sells.",
    },
    "price": _POSITIVE_OR_NULL,
    "greeks": _GREEKS_SCHEMA,
}

# A valid leg is a stock leg or an option leg with all its contract fields.
# Anything else still gets a 200, denied with invalid_order.
_LEG_SCHEMA: Final[dict[str, Any]] = {
    "anyOf": [
        {
            "type": "object",
            "title": "StockLeg",
            "required": ["symbol", "sec_type", "qty"],
            "properties": {**_LEG_COMMON, "sec_type": {"const": SecType.STK.value}},
        },
        {
            "type": "object",
            "title": "OptionLeg",
            "required": ["symbol", "sec_type", "qty", *_OPTION_REQUIRED],
            "properties": {
                **_LEG_COMMON,
                "sec_type": {"const": SecType.OPT.value},
                **_OPTION_FIELDS,
            },
        },
    ]
}

CHECK_BODY: Final = _json_body(
    {
        "type": "object",
        "required": ["id", "legs"],
        "properties": {
            "id": {
                "anyOf": [_NAME, {"type": "integer"}],
                "description": "The order's id, echoed in the answer and the journal: a "
                f"non-empty string of at most {MAX_NAME_CHARS} characters, or an integer "
                "(taken as its decimal digits), exactly as replay reads a check line.",
            },
            "legs": {"type": "array", "items": _LEG_SCHEMA},
        },
    },
    {
        "id": "ord-42",
        "legs": [
            {
                "symbol": "SPY",
                "sec_type": "OPT",
                "qty": 2,
                "price": 4.35,
                "right": "C",
                "strike": 600.0,
                "expiry": "2026-06-19",
                "multiplier": 100,
                "greeks": {"delta": 0.52, "gamma": 0.011, "vega": 0.45, "theta": -0.12, "iv": 0.18},
            }
        ],
    },
)

FAILURE_BODY: Final = _json_body(
    {
        "type": "object",
        "required": ["kind"],
        "properties": {
            "kind": {
                "type": "string",
                "enum": [k.value for k in FailureKind if not k.internal],
                "description": "stop_guard and loss_limit are raised by the supervisor only.",
            },
            "code": {
                "anyOf": [
                    {
                        "type": "integer",
                        "minimum": IB_CODE_RANGE[0],
                        "maximum": IB_CODE_RANGE[1],
                    },
                    {"type": "null"},
                ],
                "description": "IB error code.",
            },
            "detail": _DETAIL,
        },
    },
    {"kind": "order_rejected", "code": 201, "detail": "margin exceeded"},
)

SUCCESS_BODY: Final = _json_body(
    {"type": "object", "properties": {"detail": _DETAIL}},
    {"detail": "order 1234 filled"},
)

ADMIN_BODY: Final = _json_body(
    {"type": "object", "additionalProperties": False, "properties": {"operator": _OPERATOR}},
    {"operator": "alice"},
)

KILL_BODY: Final = _json_body(
    {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "mode": {
                "anyOf": [
                    {"type": "string", "enum": [m.value for m in KillMode]},
                    {"type": "null"},
                ],
                "description": "halt (default): breaker open, sticky; cancel: halt, then cancel "
                "every open order; flatten: cancel, then close every position.",
            },
            "operator": _OPERATOR,
        },
    },
    {"mode": "flatten", "operator": "alice"},
)

HEARTBEAT_BODY: Final = _json_body(
    {"type": "object", "additionalProperties": False, "properties": {}}, {}
)

_RATIO: Final[dict[str, Any]] = {
    "type": "integer",
    "minimum": -MAX_RATIO,
    "maximum": MAX_RATIO,
    "not": {"const": 0},
    "description": "Signed, whole, non-zero: + long, − short (1:-1 for a vertical).",
}

STRATEGY_LEG_SCHEMA: Final[dict[str, Any]] = {
    "anyOf": [
        {
            "type": "object",
            "title": "LegByConId",
            "additionalProperties": False,
            "required": ["con_id", "ratio"],
            "properties": {
                "con_id": {"type": "integer", "minimum": 1, "maximum": MAX_CON_ID},
                "ratio": _RATIO,
            },
        },
        {
            "type": "object",
            "title": "StockLegByContract",
            "additionalProperties": False,
            "required": ["symbol", "sec_type", "ratio"],
            "properties": {
                "symbol": _SYMBOL,
                "sec_type": {"const": SecType.STK.value},
                "ratio": _RATIO,
            },
        },
        {
            "type": "object",
            "title": "OptionLegByContract",
            "additionalProperties": False,
            "required": ["symbol", "sec_type", *_OPTION_REQUIRED, "ratio"],
            "properties": {
                "symbol": _SYMBOL,
                "sec_type": {"const": SecType.OPT.value},
                **_OPTION_FIELDS,
                "ratio": _RATIO,
            },
        },
    ]
}

STRATEGY_BODY: Final = _json_body(
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["legs"],
        "properties": {
            "legs": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_STRATEGY_LEGS,
                "items": STRATEGY_LEG_SCHEMA,
            }
        },
    },
    {
        "legs": [
            {
                "symbol": "SPY",
                "sec_type": "OPT",
                "right": "C",
                "strike": 600.0,
                "expiry": "2026-06-19",
                "multiplier": 100,
                "ratio": 1,
            },
            {"con_id": 765432109, "ratio": -1},
        ]
    },
)

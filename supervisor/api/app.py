"""The daemon's HTTP API (DESIGN §6): what the trader and operators talk to.

The trader asks the pre-trade gate here and reports failures and successes to
the circuit breaker; operators read the state and the journal and force the
breaker open or reset it. Every endpoint is a thin shell over the
:class:`~supervisor.core.daemon.Daemon` facade, so the API decides nothing itself:

* ``POST /v1/checks`` hands the request body, as parsed JSON, to
  ``Daemon.check``, which parses it with the same ``supervisor.json_codec`` parser as
  ``replay``. A check posted here and a check line in a replay file therefore
  mean exactly the same thing. A malformed *order* (no legs, quantity 0, a
  missing option field) is the gate's business and is answered 200 with
  ``invalid_order``; only a body that cannot be a check at all (not JSON, not
  an object, no string id) is refused with a 4xx.
* The verdict is journaled by the daemon before it is returned, so a journal
  read right after the answer already holds it.

Errors are always JSON ``{"detail": "<field>: <what is wrong>"}``. Bad input is
a 4xx naming the field, never a 5xx; 503 means the daemon itself could not
answer (an actor timed out, the store is unavailable). Responses are written
as ASCII JSON with non-finite numbers as ``null``, so no input and no market
value can make rendering fail.

Auth: when a token is configured, every POST (everything that changes or asks
the daemon to decide) needs ``Authorization: Bearer <token>``. GETs stay open:
they are read-only and a monitoring probe must not need the trading secret.
The API listens on loopback by default, and a non-loopback bind without a
token is refused (:func:`check_bind`).
"""

import contextlib
import hmac
import ipaddress
import json
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Final, Self

import pykka
import uvicorn
from fastapi import Depends, FastAPI, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from actors.messages import (
    AdminAction,
    BreakerState,
    CheckAnswer,
    FailureKind,
    ReasonCode,
    Right,
    SecType,
    StopSnapshot,
)
from supervisor import json_codec
from supervisor.config import ApiConfig, Listen
from supervisor.core.daemon import Daemon
from supervisor.store.journal_kind import JournalKind
from supervisor.store.sqlite_store import StoreUnavailable
from supervisor.version import package_version

__all__ = [
    "ServedApi",
    "check_bind",
    "create_app",
    "serve",
    "start",
    "token_from_env",
]

log = logging.getLogger(__name__)

DEFAULT_OPERATOR: Final = "api"
MAX_JOURNAL_LIMIT: Final = 10_000
_MAX_SEQ: Final = 2**63 - 1  # SQLite INTEGER: a larger cursor cannot be bound

# ------------------------------------------------------------------ rendering


def _finite(o: Any) -> Any:
    """The value with NaN and ±inf replaced by None (JSON has no such numbers)."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_finite(v) for v in o]
    return o


class SafeJSONResponse(JSONResponse):
    """ASCII JSON, non-finite numbers as null.

    Starlette's JSONResponse refuses NaN (a 500) and writes UTF-8, which fails
    on a lone surrogate that came in through a ``\\ud800`` escape. A risk API
    must be able to render whatever the market or a client put into its
    state, so this one cannot fail on either.
    """

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        try:
            text = json.dumps(content, ensure_ascii=True, allow_nan=False, default=str)
        except ValueError:
            text = json.dumps(_finite(content), ensure_ascii=True, allow_nan=False, default=str)
        return text.encode("ascii")


class Problem(Exception):
    """A request the API refuses, answered ``{"detail": ...}`` with ``status``."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers


def _problem(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    return SafeJSONResponse({"detail": detail}, status_code=status, headers=headers)


# ------------------------------------------------------------- documentation
#
# Pydantic models below describe responses in the OpenAPI document only: the
# handlers build plain dicts and render them with SafeJSONResponse, so a value
# that pydantic would choke on (a NaN, a lone surrogate) can never turn an
# answer into a 500. The tests check that responses conform to these models.


class ErrorOut(BaseModel):
    """Every error: one line naming the field (``query.limit: ...``)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"detail": "kind must be one of 'order_rejected', …"}]}
    )
    detail: str


class HealthOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"status": "ok", "breaker": "closed", "store": "ok", "ib": "connected"}]
        }
    )
    status: str = Field(description='Always "ok": the daemon answers.')
    breaker: BreakerState
    store: str = Field(description='"ok", "unavailable" (writes fail) or "none" (no store).')
    ib: str | None = Field(description="The IB adapter's connection state; null without one.")


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
    net_liquidation: float | None
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
                }
            ]
        }
    )
    t: float
    breaker: BreakerOut
    portfolio: PortfolioOut
    positions: list[StopOut]


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
    id: str
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
    wall_t: float
    kind: str
    position_id: str | None
    payload: dict[str, Any]


# Request bodies are parsed by hand (see the module docstring); these schemas
# document them, and let schemathesis generate requests.

_NUMBER_OR_NULL: Final[dict[str, Any]] = {"type": ["number", "null"]}

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
_LEG_COMMON: Final[dict[str, Any]] = {
    "symbol": {"type": "string", "minLength": 1, "description": "For an option: the underlying."},
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
            "required": ["symbol", "sec_type", "qty", "right", "strike", "expiry", "multiplier"],
            "properties": {
                **_LEG_COMMON,
                "sec_type": {"const": SecType.OPT.value},
                "right": {"type": "string", "enum": [r.value for r in Right]},
                "strike": {"type": "number", "exclusiveMinimum": 0},
                "expiry": {
                    "type": "string",
                    "format": "date",
                    "description": "YYYY-MM-DD",
                },
                "multiplier": {"type": "number", "exclusiveMinimum": 0},
            },
        },
    ]
}

_CHECK_EXAMPLE: Final[dict[str, Any]] = {
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
}

_CHECK_BODY: Final[dict[str, Any]] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["id", "legs"],
                "properties": {
                    "id": {
                        "type": "string",
                        "minLength": 1,
                        "description": "The order's id, echoed in the answer and the journal.",
                    },
                    "legs": {"type": "array", "items": _LEG_SCHEMA},
                },
            },
            "example": _CHECK_EXAMPLE,
        }
    },
}

_FAILURE_BODY: Final[dict[str, Any]] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["kind"],
                "properties": {
                    "kind": {
                        "type": "string",
                        "enum": [k.value for k in FailureKind if not k.internal],
                    },
                    "code": {"type": ["integer", "null"], "description": "IB error code."},
                    "detail": {"type": ["string", "null"]},
                },
            },
            "example": {"kind": "order_rejected", "code": 201, "detail": "margin exceeded"},
        }
    },
}

_SUCCESS_BODY: Final[dict[str, Any]] = {
    "required": False,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"detail": {"type": ["string", "null"]}},
            },
            "example": {"detail": "order 1234 filled"},
        }
    },
}

_ADMIN_BODY: Final[dict[str, Any]] = {
    "required": False,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "operator": {
                        "type": "string",
                        "minLength": 1,
                        "description": "Who acts; journaled with the transition.",
                    }
                },
            },
            "example": {"operator": "alice"},
        }
    },
}

# ------------------------------------------------------------------ parsing

_JSON_TYPES: Final[dict[type, str]] = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


def _json_type(v: Any) -> str:
    return _JSON_TYPES.get(type(v), type(v).__name__)


def _bad_unicode(obj: Any) -> str | None:
    """The path of the first string holding a lone surrogate, else None.

    ``json.loads`` turns ``"\\ud800"`` into a str that is not valid Unicode:
    it cannot be written as UTF-8 anywhere downstream, so it is refused here
    rather than failing later. Iterative, because the body may nest as deep
    as the JSON parser allows.
    """
    stack: list[tuple[str, Any]] = [("body", obj)]
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


async def _body(request: Request, *, required: bool) -> dict[str, Any]:
    """The request body as a JSON object, or a Problem naming what is wrong with it."""
    raw = await request.body()
    if not raw.strip():
        if required:
            raise Problem(422, "body: required, a JSON object")
        return {}
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise Problem(400, f"body: not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise Problem(422, f"body: must be a JSON object, got {_json_type(obj)}")
    bad = _bad_unicode(obj)
    if bad is not None:
        raise Problem(422, f"{bad}: not valid Unicode (a lone surrogate escape)")
    return obj


def _check_out(answer: CheckAnswer) -> dict[str, Any]:
    out = json_codec.check_line(answer)
    del out["type"]
    out["risk_reducing"] = answer.risk_reducing
    out["breaker_state"] = None if answer.breaker_state is None else answer.breaker_state.value
    out["detail"] = answer.detail
    return out


def _stop_out(s: StopSnapshot) -> dict[str, Any]:
    return {
        "id": s.id,
        **json_codec.contract_fields(s.contract),
        "qty": s.qty,
        "entry_price": s.entry_price,
        "active": s.active,
        "extreme": s.extreme,
        "stop": s.stop,
        "breaches": s.breaches,
        "triggered": s.triggered,
        "trigger_id": s.trigger_id,
        "ignored_quotes": s.ignored_quotes,
    }


def _field_errors(exc: RequestValidationError) -> str:
    """FastAPI's validation errors as one line, each naming its field (``query.limit: …``)."""
    parts = []
    for e in exc.errors():
        loc = ".".join(str(x) for x in e.get("loc", ()))
        parts.append(f"{loc}: {e.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


# --------------------------------------------------------------------- app

_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    422: {"model": ErrorOut, "description": "The request is malformed; detail names the field."},
    503: {"model": ErrorOut, "description": "The daemon could not answer (timeout, store down)."},
}
_BODY_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    400: {"model": ErrorOut, "description": "The body is not valid JSON."},
    **_ERRORS,
}


def create_app(daemon: Daemon, *, token: str | None) -> FastAPI:
    """The API over ``daemon``; with a ``token`` every POST needs it as a bearer token.

    ``app.state.ib_status`` may be set later (by the IB adapter) to a callable
    returning the connection state that ``/healthz`` reports.
    """
    app = FastAPI(
        title="risk-supervisor",
        version=package_version(),
        description=(
            "Pre-trade gate, circuit breaker and state of the risk supervisor. "
            + (
                "Every POST needs `Authorization: Bearer <token>`; GETs are read-only and open."
                if token
                else "No token is configured: the API must only listen on loopback."
            )
        ),
        default_response_class=SafeJSONResponse,
    )
    app.state.daemon = daemon
    app.state.ib_status = None
    _install_handlers(app)

    post_guard: list[Any] = []
    post_errors: dict[int | str, dict[str, Any]] = dict(_BODY_ERRORS)
    if token:
        expected = token.encode("utf-8")
        bearer = HTTPBearer(
            auto_error=False,
            description="The token from the environment variable named by api.token_env.",
        )

        def require_token(
            credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
        ) -> None:
            # Header values reach us decoded as latin-1; back to the bytes sent,
            # so compare_digest never sees a non-ASCII str (it raises on those).
            given = b"" if credentials is None else credentials.credentials.encode("latin-1")
            if credentials is None or not hmac.compare_digest(given, expected):
                raise Problem(
                    401,
                    "authorization: a valid 'Authorization: Bearer <token>' header is required",
                    {"WWW-Authenticate": "Bearer"},
                )

        post_guard.append(Depends(require_token))
        post_errors[401] = {"model": ErrorOut, "description": "Missing or wrong bearer token."}

    @app.get("/healthz", response_model=HealthOut, responses=_ERRORS, tags=["read"])
    def healthz() -> Response:
        """Liveness and the state of the parts: breaker, store, IB. Open to all."""
        state = daemon.breaker_view().state
        store = daemon.store
        store_state = "none" if store is None else "ok" if store.healthy() else "unavailable"
        ib_status: Callable[[], str] | None = app.state.ib_status
        ib: str | None = None
        if ib_status is not None:
            try:
                ib = str(ib_status())
            except Exception:  # a broken probe must not hide the rest of the health
                log.exception("ib_status failed")
                ib = "unknown"
        return SafeJSONResponse(
            {"status": "ok", "breaker": state.value, "store": store_state, "ib": ib}
        )

    @app.get("/v1/state", response_model=StateOut, responses=_ERRORS, tags=["read"])
    def state() -> Response:
        """Breaker, portfolio (Greeks, limits, per-underlying table) and every stop."""
        breaker = daemon.breaker_view()
        view = daemon.portfolio_view()
        stops = sorted(daemon.stop_snapshots(), key=lambda s: s.id)
        portfolio = view.to_json()
        portfolio["by_underlying"] = view.by_underlying().to_dicts()
        portfolio["holdings"] = view.positions().to_dicts()
        return SafeJSONResponse(
            {
                "t": daemon.clock(),
                "breaker": {"state": breaker.state.value, "snapshot": breaker.snapshot},
                "portfolio": portfolio,
                "positions": [_stop_out(s) for s in stops],
            }
        )

    @app.post(
        "/v1/checks",
        response_model=CheckOut,
        responses=post_errors,
        openapi_extra={"requestBody": _CHECK_BODY},
        dependencies=post_guard,
        tags=["gate"],
    )
    async def check(request: Request) -> Response:
        """Ask the pre-trade gate about a proposed order.

        Always 200 with the gate's answer once the body is a JSON object with
        a string id; a malformed order is denied with ``invalid_order``. The
        answer is journaled before it is returned. The body is parsed by
        ``supervisor.json_codec`` (as in replay), not by FastAPI.
        """
        obj = await _body(request, required=True)
        ident = obj.get("id")
        if not isinstance(ident, str) or not ident:
            raise Problem(422, f"id: required, a non-empty string; got {_json_type(ident)}")
        try:
            answer = await run_in_threadpool(daemon.check, obj)
        except json_codec.BadInput as exc:
            raise Problem(422, str(exc)) from None
        return SafeJSONResponse(_check_out(answer))

    @app.post(
        "/v1/failures",
        status_code=202,
        response_model=AcceptedOut,
        responses=post_errors,
        openapi_extra={"requestBody": _FAILURE_BODY},
        dependencies=post_guard,
        tags=["breaker"],
    )
    async def failure(request: Request) -> Response:
        """Report a systemic failure to the circuit breaker (counted asynchronously)."""
        obj = await _body(request, required=True)
        try:
            f = json_codec.failure(obj, daemon.clock())
        except json_codec.BadInput as exc:
            raise Problem(422, str(exc)) from None
        daemon.failure(f.kind, f.code, f.detail)
        return SafeJSONResponse({"accepted": True}, status_code=202)

    @app.post(
        "/v1/successes",
        status_code=202,
        response_model=AcceptedOut,
        responses=post_errors,
        openapi_extra={"requestBody": _SUCCESS_BODY},
        dependencies=post_guard,
        tags=["breaker"],
    )
    async def success(request: Request) -> Response:
        """Report a success (what closes a half-open breaker)."""
        obj = await _body(request, required=False)
        try:
            s = json_codec.success(obj, daemon.clock())
        except json_codec.BadInput as exc:
            raise Problem(422, str(exc)) from None
        daemon.success(s.detail)
        return SafeJSONResponse({"accepted": True}, status_code=202)

    async def _admin(request: Request, action: AdminAction) -> Response:
        obj = await _body(request, required=False)
        operator = obj.get("operator", DEFAULT_OPERATOR)
        if not isinstance(operator, str) or not operator:
            raise Problem(422, f"operator: must be a non-empty string, got {_json_type(operator)}")
        new_state = await run_in_threadpool(daemon.admin, action, operator)
        return SafeJSONResponse({"state": new_state.value})

    @app.post(
        "/v1/breaker/force-open",
        response_model=AdminOut,
        responses=post_errors,
        openapi_extra={"requestBody": _ADMIN_BODY},
        dependencies=post_guard,
        tags=["breaker"],
    )
    async def force_open(request: Request) -> Response:
        """Force the breaker open until reset (no timer)."""
        return await _admin(request, AdminAction.FORCE_OPEN)

    @app.post(
        "/v1/breaker/reset",
        response_model=AdminOut,
        responses=post_errors,
        openapi_extra={"requestBody": _ADMIN_BODY},
        dependencies=post_guard,
        tags=["breaker"],
    )
    async def reset(request: Request) -> Response:
        """Close the breaker and clear its history, the day's trip count included."""
        return await _admin(request, AdminAction.RESET)

    @app.get("/v1/journal", response_model=list[JournalRowOut], responses=_ERRORS, tags=["read"])
    def journal(
        since: Annotated[
            int | None,
            Query(ge=0, le=_MAX_SEQ, description="Rows after this journal seq (exclusive)."),
        ] = None,
        limit: Annotated[
            int, Query(ge=1, le=MAX_JOURNAL_LIMIT, description="At most this many rows.")
        ] = 100,
        kind: Annotated[JournalKind | None, Query(alias="type", description="One kind.")] = None,
        position: Annotated[
            str | None, Query(min_length=1, description="Rows of one position id.")
        ] = None,
    ) -> Response:
        """Journal rows in seq order; page forward with ``since`` = the last seq read."""
        store = daemon.store
        if store is None:
            raise Problem(503, "journal: this daemon runs without a store")
        rows = store.journal(
            since_seq=since,
            kind=None if kind is None else kind.value,
            position_id=position,
            limit=limit,
        )
        return SafeJSONResponse(
            [
                {
                    "seq": r.seq,
                    "t": r.t,
                    "wall_t": r.wall_t,
                    "kind": r.kind,
                    "position_id": r.position_id,
                    "payload": r.payload,
                }
                for r in rows
            ]
        )

    return app


def _install_handlers(app: FastAPI) -> None:
    """Errors as JSON naming the field; 503 for daemon trouble; never a 5xx for input."""

    async def problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        if exc.status >= 500:
            log.warning("%s %s: %s", request.method, request.url.path, exc.detail)
        return _problem(exc.status, exc.detail, exc.headers)

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return _problem(422, _field_errors(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return _problem(exc.status_code, str(exc.detail), dict(exc.headers or {}) or None)

    async def daemon_timeout(request: Request, exc: Exception) -> Response:
        log.warning("%s %s: the daemon did not answer: %r", request.method, request.url.path, exc)
        return _problem(503, "daemon: did not answer in time, try again")

    async def store_down(request: Request, exc: Exception) -> Response:
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return _problem(503, f"store: unavailable ({exc})")

    async def unexpected(request: Request, exc: Exception) -> Response:
        # A bug, not bad input: logged with its traceback, answered without one.
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return _problem(500, "internal error (logged by the daemon)")

    app.add_exception_handler(Problem, problem)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(pykka.Timeout, daemon_timeout)
    app.add_exception_handler(pykka.ActorDeadError, daemon_timeout)
    app.add_exception_handler(StoreUnavailable, store_down)
    app.add_exception_handler(Exception, unexpected)


# ------------------------------------------------------------ binding, auth


def token_from_env(api: ApiConfig) -> str | None:
    """The bearer token, from the environment variable ``api.token_env`` names.

    None when no ``token_env`` is configured. When one is configured but the
    variable is missing or empty, raise: the operator asked for auth, and
    silently serving without it would open every POST to anyone who can reach
    the port.
    """
    if not api.token_env:
        return None
    value = os.environ.get(api.token_env, "").strip()
    if not value:
        raise ValueError(
            f"api.token_env: the environment variable {api.token_env} is not set or empty; "
            "refusing to start without the API token it should hold"
        )
    return value


def check_bind(api: ApiConfig, token: str | None) -> None:
    """Refuse a non-loopback listen address without a token.

    Anyone who can reach the API can force the breaker open or reset it, so
    the API is exposed beyond this host only when it is guarded.
    """
    if not api.listen.loopback and not token:
        raise ValueError(
            f"api.listen: {api.listen} is not a loopback address and no token is configured; "
            "set api.token_env to an environment variable holding a bearer token, "
            "or listen on 127.0.0.1"
        )


# ------------------------------------------------------------------ serving


@dataclass
class ServedApi:
    """The API running in a background thread; ``close()`` stops it."""

    app: FastAPI
    server: uvicorn.Server
    thread: threading.Thread
    sock: socket.socket
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting, let requests in flight finish briefly, then force it down."""
        self.server.should_exit = True
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(1.0)
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _family(host: str) -> socket.AddressFamily:
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return socket.AF_INET  # a name such as "localhost"


def _listening_socket(listen: Listen) -> socket.socket:
    """A bound, listening TCP socket.

    Created with ``proto=IPPROTO_TCP`` on purpose: asyncio sets TCP_NODELAY on
    accepted connections only when the socket says it is TCP, and without it
    every response waits ~40 ms for Nagle and the peer's delayed ACK
    (``socket.create_server`` leaves ``proto`` at 0).
    """
    family = _family(listen.host)
    host = "127.0.0.1" if listen.host == "localhost" else listen.host
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, listen.port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def serve(app: FastAPI, listen: Listen, *, ready_timeout_s: float = 10.0) -> ServedApi:
    """Serve ``app`` with uvicorn in a daemon thread; return once it accepts connections.

    The socket is bound here, in the caller's thread, so a port in use fails
    at once with the real OSError (uvicorn would log it and exit its thread)
    and port 0 gives the actual port. uvicorn is given ``log_config=None`` so
    it does not reconfigure the daemon's logging.
    """
    sock = _listening_socket(listen)
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"api-{port}", daemon=True
    )
    served = ServedApi(app, server, thread, sock, listen.host, port)
    thread.start()
    deadline = time.monotonic() + ready_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            served.close(timeout=1.0)
            raise RuntimeError(f"api: could not start serving on {listen.host}:{port}")
        time.sleep(0.01)
    return served


def start(daemon: Daemon, api: ApiConfig) -> ServedApi:
    """Token from the environment, bind check, app, server: what ``run`` calls."""
    token = token_from_env(api)
    check_bind(api, token)
    return serve(create_app(daemon, token=token), api.listen)

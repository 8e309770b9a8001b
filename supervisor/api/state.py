"""The read side: ``/healthz``, ``/v1/state`` and ``/v1/journal``. Open without a token.

Reads change nothing, and a monitoring probe must not need the trading
secret; the Host and Origin checks keep other web pages from reading them
(DNS rebinding). Everything comes from the daemon port: ``health()``,
``state()`` (one consistent moment) and ``journal(...)``.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Protocol, runtime_checkable

from fastapi import APIRouter, Query
from starlette.responses import Response

from actors.messages import StopSnapshot
from actors.portfolio_view import PortfolioView
from supervisor import json_codec
from supervisor.api.json_body import MAX_NAME_CHARS
from supervisor.api.kill import heartbeat_out, kill_out
from supervisor.api.port import Port
from supervisor.api.responses import Problem, SafeJSONResponse
from supervisor.api.schemas import HealthOut, JournalRowOut, StateOut
from supervisor.api.strategies import strategy_out
from supervisor.core.facade import DaemonState, JournalEntry, MoneyStatus
from supervisor.store.journal_kind import JournalKind

__all__ = ["MAX_JOURNAL_LIMIT", "router", "state_out"]

MAX_JOURNAL_LIMIT: Final = 10_000
_MAX_SEQ: Final = 2**63 - 1  # SQLite INTEGER: a larger cursor cannot be bound


@runtime_checkable
class _BetaWeighted(Protocol):
    """A portfolio view that knows its beta-weighted delta (DESIGN §4.1)."""

    @property
    def beta_weighted_delta(self) -> float | None: ...


def _stop_out(s: StopSnapshot) -> dict[str, Any]:
    return {
        "id": s.id,
        **json_codec.contract_fields(s.contract),
        "qty": s.qty,
        "entry_price": s.entry_price,
        "active": s.active,  # armed (stays so once triggered: the level it fired at)
        # one word for it, as the metric trailing_stops_active counts ("active"):
        # idle (not armed), active (armed, watching), triggered (done)
        "state": "triggered" if s.triggered else "active" if s.active else "idle",
        "extreme": s.extreme,
        "stop": s.stop,
        "breaches": s.breaches,
        "triggered": s.triggered,
        "trigger_id": s.trigger_id,
        "ignored_quotes": s.ignored_quotes,
        "strategy": s.strategy,
    }


def _portfolio_out(view: PortfolioView) -> dict[str, Any]:
    out = view.to_json()
    out.setdefault(
        "beta_weighted_delta",
        view.beta_weighted_delta if isinstance(view, _BetaWeighted) else None,
    )
    out["by_underlying"] = view.by_underlying().to_dicts()
    out["holdings"] = view.positions().to_dicts()
    return out


def _money_out(m: MoneyStatus) -> dict[str, Any]:
    return {
        "daily_pnl": m.daily_pnl,
        "unrealized_pnl": m.unrealized_pnl,
        "realized_pnl": m.realized_pnl,
        "pnl_t": m.pnl_t,
        "nlv_reported": m.nlv_reported,
        "nlv_reported_t": m.nlv_reported_t,
        "nlv_estimate": m.nlv_estimate,
        "high_water": m.high_water,
        "loss_latched": m.loss_latched,
    }


def state_out(s: DaemonState) -> dict[str, Any]:
    """The whole state as ``/v1/state`` gives it (positions sorted by id)."""
    return {
        "t": s.t,
        "breaker": {"state": s.breaker.state.value, "snapshot": dict(s.breaker.snapshot)},
        "portfolio": _portfolio_out(s.portfolio),
        "positions": [_stop_out(p) for p in sorted(s.positions, key=lambda p: p.id)],
        "money": _money_out(s.money),
        "heartbeat": heartbeat_out(s.heartbeat, s.t),
        "kill": None if s.kill is None else kill_out(s.kill),
        "strategies": [strategy_out(x) for x in s.strategies],
    }


def _journal_row(e: JournalEntry) -> dict[str, Any]:
    # The facade's entry may not carry the wall clock yet (asked of the core).
    wall_t: float | None = getattr(e, "wall_t", None)
    return {
        "seq": e.seq,
        "t": e.t,
        "wall_t": wall_t,
        "kind": e.kind,
        "position_id": e.position_id,
        "payload": dict(e.payload),
    }


def healthz(daemon: Port) -> Response:
    """Liveness and the state of the parts: breaker, store, IB."""
    h = daemon.health()
    return SafeJSONResponse(
        {
            "status": "ok",
            "breaker": h.breaker.value,
            "store": h.store,
            "ib": h.ib,
            "detail": h.detail,
        }
    )


def state(daemon: Port) -> Response:
    """Breaker, portfolio, stops, money, heartbeat, the last kill and the strategies."""
    return SafeJSONResponse(state_out(daemon.state()))


def journal(
    daemon: Port,
    since: Annotated[
        int | None,
        Query(ge=0, le=_MAX_SEQ, description="Rows after this journal seq (exclusive)."),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_JOURNAL_LIMIT, description="At most this many rows.")
    ] = 100,
    kinds: Annotated[
        list[JournalKind] | None,
        Query(alias="type", description="Only these kinds (repeat the parameter for several)."),
    ] = None,
    position: Annotated[
        str | None,
        Query(min_length=1, max_length=MAX_NAME_CHARS, description="Rows of one position id."),
    ] = None,
    t_from: Annotated[
        float | None,
        Query(alias="from", allow_inf_nan=False, description="Event time ≥ this (epoch s)."),
    ] = None,
    t_until: Annotated[
        float | None,
        Query(alias="until", allow_inf_nan=False, description="Event time < this (epoch s)."),
    ] = None,
) -> Response:
    """Journal rows in seq order; page forward with ``since`` = the last seq read."""
    try:
        rows = daemon.journal(
            since=t_from,
            until=t_until,
            kinds=[k.value for k in kinds or ()],
            position_id=position,
            limit=limit,
            after_seq=since,
        )
    except LookupError:
        raise Problem(503, "journal: this daemon runs without a store") from None
    return SafeJSONResponse([_journal_row(r) for r in rows])


def router(reads: dict[int | str, Any]) -> APIRouter:
    r = APIRouter(tags=["read"])
    r.add_api_route("/healthz", healthz, methods=["GET"], response_model=HealthOut, responses=reads)
    r.add_api_route("/v1/state", state, methods=["GET"], response_model=StateOut, responses=reads)
    r.add_api_route(
        "/v1/journal",
        journal,
        methods=["GET"],
        response_model=list[JournalRowOut],
        responses=reads,
    )
    return r

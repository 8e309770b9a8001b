"""The daemon's one way in: what the API, the CLI, the IB adapter and the views may ask.

Nothing outside ``supervisor.core`` reaches into the daemon's store, actors or
threads: they hold a :class:`DaemonPort` and call it. The real implementation
is :class:`supervisor.core.daemon.Daemon`; tests of the API run the same
requests against a fake port as well, so the HTTP layer is tested without
actors, and the real daemon is tested without HTTP.

Every method is safe to call from any thread. Methods that need an actor's
answer wait at most the daemon's gate timeout and raise
:class:`DaemonTimeout` past it; methods that must write the journal raise
:class:`~supervisor.store.sqlite_store.StoreUnavailable` when they could not
(the caller answers 503 and nothing was decided).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from actors.messages import (
    BreakerState,
    CheckAnswer,
    Contract,
    FailureKind,
    KillMode,
    StopSnapshot,
)
from actors.portfolio_view import PortfolioView


class DaemonTimeout(RuntimeError):
    """An actor did not answer within the daemon's gate timeout."""


class StrategyRefused(ValueError):
    """A strategy declaration the daemon will not take; the message says why (422)."""


# ---------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class Health:
    """What ``/healthz`` reports: the daemon answers, and the state of its parts."""

    breaker: BreakerState
    store: str  # "ok", "unavailable" (writes fail, or the file was replaced), "none"
    ib: str | None  # the IB adapter's connection state; None without an adapter
    detail: str = ""


@dataclass(frozen=True, slots=True)
class BreakerStatus:
    state: BreakerState
    snapshot: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class MoneyStatus:
    """Daily P&L, the NLV estimate and its high-water mark (DESIGN §4.3)."""

    daily_pnl: float | None = None
    unrealized_pnl: float | None = None
    realized_pnl: float | None = None
    pnl_t: float | None = None  # event time of the last daily P&L
    nlv_reported: float | None = None  # the last NLV IB reported (or the config's)
    nlv_reported_t: float | None = None
    nlv_estimate: float | None = None
    high_water: float | None = None
    loss_latched: bool = False


@dataclass(frozen=True, slots=True)
class KillOrderStatus:
    """One closing (flatten) order of a kill, position by position."""

    position_id: str  # a position id, or a strategy id for a combo
    status: str  # "claimed", "placed", "filled", "rejected", "cancelled", "error", "unplaced"
    order_id: int | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class KillStatus:
    """The last kill and what it did; a kill is never undone by a restart."""

    kill_id: str
    t: float
    mode: KillMode
    cause: str  # "kill" (an operator or the trader) or "heartbeat_lost"
    operator: str
    breaker: BreakerState
    cancel: str = ""  # "", "requested", "confirmed", "error: …"
    orders: tuple[KillOrderStatus, ...] = ()


@dataclass(frozen=True, slots=True)
class HeartbeatStatus:
    """The dead-man switch: None fields when it is off or not yet armed."""

    timeout_s: float | None
    last_t: float | None
    deadline: float | None
    fired: bool = False


@dataclass(frozen=True, slots=True)
class StrategyLegSpec:
    """One leg of a declared strategy: by IB conId or by contract fields, with a ratio.

    ``ratio`` is signed (+ long, − short) and whole; the legs' held quantities
    must be one multiple of the ratios for the strategy to be live.
    """

    ratio: int
    con_id: int | None = None
    contract: Contract | None = None


@dataclass(frozen=True, slots=True)
class StrategyLegStatus:
    position_id: str | None  # None while the leg is not held
    contract: Contract | None
    ratio: int
    qty: float | None


@dataclass(frozen=True, slots=True)
class StrategyStatus:
    """A strategy and its one stop on the net price (DESIGN §3.1)."""

    id: str
    symbol: str
    state: str  # "waiting" (legs not all held/quoted), "live", "triggered", "ended", "refused"
    legs: tuple[StrategyLegStatus, ...]
    entry: float | None = None  # E in the stop's units (−E for a credit)
    net_price: float | None = None  # the last net price in the stop's units
    stop: float | None = None
    extreme: float | None = None
    active: bool = False
    credit: bool = False
    detail: str = ""


@dataclass(frozen=True, slots=True)
class DaemonState:
    """Everything ``/v1/state``, ``status`` and the live view show, at one moment."""

    t: float
    breaker: BreakerStatus
    portfolio: PortfolioView
    positions: tuple[StopSnapshot, ...]
    money: MoneyStatus = field(default_factory=MoneyStatus)
    heartbeat: HeartbeatStatus = field(default_factory=lambda: HeartbeatStatus(None, None, None))
    kill: KillStatus | None = None
    strategies: tuple[StrategyStatus, ...] = ()


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One row of the decision journal, as the API and the journal table show it."""

    seq: int
    t: float
    kind: str
    position_id: str | None
    payload: Mapping[str, Any]
    wall_t: float | None = None  # when the row was written (how far behind events)


# ------------------------------------------------------------------ port


class DaemonPort(Protocol):
    """The daemon as everything outside its core sees it."""

    clock: Callable[[], float]

    def health(self) -> Health: ...

    def state(self) -> DaemonState: ...

    def check(self, obj: Mapping[str, Any]) -> CheckAnswer:
        """The pre-trade gate on a JSON body (parsed exactly like a replay ``check`` line).

        Raises ``json_codec.BadInput`` only when the body has no usable id.
        """
        ...

    def failure(self, kind: FailureKind, code: int | None = None, detail: str = "") -> None: ...

    def success(self, detail: str = "") -> None: ...

    def force_open(self, operator: str) -> BreakerState: ...

    def reset(self, operator: str) -> BreakerState: ...

    def kill(self, mode: KillMode, operator: str) -> KillStatus: ...

    def heartbeat(self) -> HeartbeatStatus: ...

    def strategies(self) -> Sequence[StrategyStatus]: ...

    def put_strategy(self, strategy_id: str, legs: Sequence[StrategyLegSpec]) -> StrategyStatus:
        """Declare (or redeclare) a strategy; raises :class:`StrategyRefused`."""
        ...

    def delete_strategy(self, strategy_id: str) -> bool:
        """Dissolve a strategy: its legs get their own stops back. False: unknown id."""
        ...

    def journal(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        kinds: Sequence[str] = (),
        position_id: str | None = None,
        limit: int = 1000,
        after_seq: int | None = None,
    ) -> Sequence[JournalEntry]:
        """Journal rows, oldest first (``after_seq``: only rows after that seq).

        Raises ``LookupError`` when there is no store.
        """
        ...

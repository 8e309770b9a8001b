"""The actors and how every input reaches them: built alike for the daemon and replay.

Built from a dispatcher (a pool of threads, or the calling thread for
replay), a scheduler (the wall clock, or event time) and a sink (the
daemon's journal hub, or replay's output). Spawning, the routing of position
updates, quotes and closes, strategies and their legs (DESIGN §3.1), and the
close rules exist here once.

Inputs are validated here before anything changes: a position line that
breaks a strategy rule raises :class:`Refused` (replay: a bad line) and
leaves every actor untouched.

Every long-lived actor is reached through a :class:`~actors.handle.Handle`,
so the daemon's supervisor can restart one behind the others' backs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pykka

from actors.breaker_actor import BreakerActor
from actors.circuit_breaker import BreakerParams, CircuitBreaker
from actors.gate.params import GateParams
from actors.handle import Handle, Recipient
from actors.messages import (
    AccountUpdate,
    Admin,
    AdminAction,
    AttachLeg,
    Contract,
    Failure,
    GetStrategyState,
    Heartbeat,
    Kill,
    KillMode,
    LegChanged,
    LegJoined,
    LegLeft,
    MarketQuote,
    PnlUpdate,
    PositionClosed,
    PositionUpdate,
    Quote,
    ResetHighWater,
    SetLeg,
    StopSnapshot,
    Success,
)
from actors.portfolio_actor import PortfolioActor
from actors.position_actor import PositionActor
from actors.runtime import Dispatcher
from actors.scheduler import Scheduler
from actors.stop_guard import StopGuardParams
from actors.strategy_actor import StrategyActor, StrategyView
from actors.strategy_stop import StrategyState
from actors.trailing_stop import StopParams


class Refused(ValueError):
    """An input that breaks a routing rule (e.g. a strategy's); nothing was changed."""


class TopologyParams(Protocol):
    """What the topology needs of the configuration (``supervisor.config.Config`` fits)."""

    @property
    def gate(self) -> GateParams: ...

    @property
    def breaker(self) -> BreakerParams: ...

    @property
    def net_liquidation(self) -> float | None: ...

    @property
    def stop_guard(self) -> StopGuardParams | None: ...

    @property
    def heartbeat_timeout_s(self) -> float | None: ...

    @property
    def heartbeat_action(self) -> KillMode: ...

    def stop_params(self, symbol: str) -> StopParams: ...


class _Keep:
    """The ``strategy`` of a position update that does not name one: keep the leg's."""


KEEP: Any = _Keep()


@dataclass(slots=True)
class StrategyRecord:
    id: str
    symbol: str
    handle: Handle
    created_t: float
    legs: list[str] = field(default_factory=list)


OnSpawn = Callable[[Handle], None]


class Topology:
    def __init__(
        self,
        params: TopologyParams,
        *,
        dispatcher: Dispatcher,
        scheduler: Scheduler,
        sink: Recipient,
        restored_breaker: CircuitBreaker | None = None,
        on_spawn: OnSpawn | None = None,
        ask_timeout_s: float = 5.0,
    ) -> None:
        self.params = params
        self.dispatcher = dispatcher
        self.scheduler = scheduler
        self.sink = sink
        self.on_spawn = on_spawn
        self.ask_timeout_s = ask_timeout_s
        self.lock = threading.RLock()
        self.breaker = Handle("breaker", "breaker")
        self.portfolio = Handle("portfolio", "portfolio")
        self.positions: dict[str, Handle] = {}
        self.symbol_of: dict[str, str] = {}
        self.contract_of: dict[str, Contract] = {}
        self.leg_of: dict[str, str] = {}
        self.strategies: dict[str, StrategyRecord] = {}
        self.spent: set[str] = set()
        self.start_breaker(restored_breaker)
        self.start_portfolio()

    # ------------------------------------------------------------ spawning

    def _spawned(self, handle: Handle, ref: pykka.ActorRef[Any]) -> Handle:
        handle.ref = ref
        if self.on_spawn is not None:
            self.on_spawn(handle)
        return handle

    def start_breaker(self, restored: CircuitBreaker | None = None) -> Handle:
        p = self.params
        ref = BreakerActor.start(
            p.breaker,
            dispatcher=self.dispatcher,
            scheduler=self.scheduler,
            subscriber=self.sink,
            restored=restored,
            gate=p.gate,
            stop_guard=p.stop_guard,
            heartbeat_timeout_s=p.heartbeat_timeout_s,
            heartbeat_action=p.heartbeat_action,
        )
        return self._spawned(self.breaker, ref)

    def start_portfolio(self) -> Handle:
        ref = PortfolioActor.start(
            self.params.gate,
            dispatcher=self.dispatcher,
            breaker=self.breaker,
            subscriber=self.sink,
            net_liquidation=self.params.net_liquidation,
        )
        return self._spawned(self.portfolio, ref)

    def spawn_position(
        self, update: PositionUpdate, restored: StopSnapshot | None = None
    ) -> Handle:
        ref = PositionActor.start(
            update,
            self.params.stop_params(update.contract.symbol),
            dispatcher=self.dispatcher,
            portfolio=self.portfolio,
            subscriber=self.sink,
            restored=restored,
        )
        with self.lock:
            handle = self.positions.get(update.id)
            if handle is None:
                handle = self.positions[update.id] = Handle("position", update.id)
            self.symbol_of[update.id] = update.contract.symbol
            self.contract_of[update.id] = update.contract
        return self._spawned(handle, ref)

    def _spawn_strategy(self, sid: str, symbol: str, t: float) -> StrategyRecord:
        handle = Handle("strategy", sid)
        ref = StrategyActor.start(
            sid,
            symbol,
            self.params.stop_params(symbol),
            t,
            dispatcher=self.dispatcher,
            portfolio=self.portfolio,
            subscriber=self.sink,
        )
        record = StrategyRecord(sid, symbol, self._spawned(handle, ref), t)
        self.strategies[sid] = record
        return record

    # ----------------------------------------------------------- positions

    def position(
        self,
        update: PositionUpdate,
        strategy: str | Any | None = KEEP,
        *,
        restart_strategy: bool = True,
    ) -> None:
        """A position opened, changed or closed (qty 0); ``strategy`` per DESIGN §3.1.

        ``restart_strategy=False``: a leg's new quantity that breaks its declared
        ratio (the daemon reports it) does not restart the strategy's stop,
        which keeps its last valid state.
        """
        with self.lock:
            self.validate(update, strategy)
            pid = update.id
            handle = self.positions.get(pid)
            current = self.leg_of.get(pid)
            if update.qty == 0:
                if handle is not None:
                    self._close(update.t, pid, update)
                return
            target = current if strategy is KEEP else strategy
            if handle is None:
                handle = self.spawn_position(update)
            else:
                handle.tell(update)
            if current is not None and target != current:
                self._leave(update.t, pid)
            if target is not None and target != current:
                self._join(update, target, handle)
            elif target is not None and restart_strategy:
                record = self.strategies[target]
                record.handle.tell(LegChanged(update.t, pid, update.qty, update.entry_price))

    def validate(self, update: PositionUpdate, strategy: str | Any | None = KEEP) -> None:
        """Raise :class:`Refused` if this update breaks a rule; changes nothing."""
        pid = update.id
        if pid in self.strategies or pid in self.spent:
            raise Refused(f"id {pid!r} is a strategy's id (ids share one namespace)")
        if strategy is KEEP or strategy is None:
            return
        assert isinstance(strategy, str)
        if update.qty == 0:
            return
        if strategy in self.positions or strategy == pid:
            raise Refused(f"strategy {strategy!r} is a position's id (ids share one namespace)")
        if strategy in self.spent:
            raise Refused(f"strategy {strategy!r} has ended: its id is spent")
        current = self.leg_of.get(pid)
        if current is not None and current != strategy:
            raise Refused(f"position {pid!r} is already a leg of strategy {current!r}")
        record = self.strategies.get(strategy)
        if record is not None and record.symbol != update.contract.symbol:
            raise Refused(
                f"strategy {strategy!r} is on {record.symbol}; "
                f"a leg on {update.contract.symbol} would give it a second symbol"
            )

    def _join(self, update: PositionUpdate, sid: str, handle: Handle) -> None:
        record = self.strategies.get(sid)
        if record is None:
            record = self._spawn_strategy(sid, update.contract.symbol, update.t)
        record.legs.append(update.id)
        self.leg_of[update.id] = sid
        handle.tell(SetLeg(update.t, sid, record.handle))
        record.handle.tell(
            LegJoined(update.t, update.id, update.contract, update.qty, update.entry_price, handle)
        )

    def _leave(self, t: float, pid: str) -> None:
        """A leg closes or leaves: before the TRIGGER that ends its strategy (§3.1)."""
        sid = self.leg_of.pop(pid)
        record = self.strategies[sid]
        view = self.strategy_view(sid)
        triggered = view is not None and view.state is StrategyState.TRIGGERED
        record.legs.remove(pid)
        record.handle.tell(LegLeft(t, pid))
        if pid in self.positions:
            # Out of its strategy (closing, or ``"strategy": null``): its own stop, fresh.
            self.positions[pid].tell(SetLeg(t, None, None, fresh_stop=True))
        if not triggered or not record.legs:
            # Ended (its remaining legs get their own stops back from the strategy
            # actor), or its last leg closed after the trigger: the id is spent.
            for leg in record.legs:
                self.leg_of.pop(leg, None)
            del self.strategies[sid]
            self.spent.add(sid)

    def restore_strategy(
        self, sid: str, symbol: str, created_t: float, snapshot: dict[str, Any]
    ) -> None:
        """After a restart: the strategy's actor with its saved stop, its legs re-attached.

        The legs' position actors must already be spawned (restored with
        ``strategy`` in their snapshot).
        """
        with self.lock:
            handle = Handle("strategy", sid)
            ref = StrategyActor.start(
                sid,
                symbol,
                self.params.stop_params(symbol),
                created_t,
                dispatcher=self.dispatcher,
                portfolio=self.portfolio,
                subscriber=self.sink,
                restored=snapshot,
            )
            record = StrategyRecord(sid, symbol, self._spawned(handle, ref), created_t)
            self.strategies[sid] = record
            for leg in snapshot.get("legs", []):
                pid = str(leg["id"])
                position = self.positions.get(pid)
                if position is None:
                    continue
                record.legs.append(pid)
                self.leg_of[pid] = sid
                position.tell(SetLeg(created_t, sid, record.handle))
                record.handle.tell(AttachLeg(pid, self.contract_of.get(pid), position))

    def quote(self, q: Quote) -> bool:
        handle = self.positions.get(q.id)
        if handle is None:
            return False
        handle.tell(q)
        return True

    def close(self, t: float, position_id: str) -> bool:
        with self.lock:
            if position_id not in self.positions:
                return False
            self._close(t, position_id, None)
            return True

    def _close(self, t: float, pid: str, update: PositionUpdate | None) -> None:
        if pid in self.leg_of:
            self._leave(t, pid)
        handle = self.positions.pop(pid)
        self.symbol_of.pop(pid, None)
        self.contract_of.pop(pid, None)
        handle.tell(update if update is not None else PositionClosed(t, pid))

    def position_ids(self) -> list[str]:
        with self.lock:
            return list(self.positions)

    def strategy_view(self, sid: str) -> StrategyView | None:
        record = self.strategies.get(sid)
        if record is None:
            return None
        try:
            view: StrategyView = record.handle.ask(GetStrategyState(), timeout=self.ask_timeout_s)
        except (pykka.ActorDeadError, pykka.Timeout):
            return None
        return view

    # --------------------------------------------------------------- money

    def market(self, q: MarketQuote) -> None:
        self.portfolio.tell(q)

    def account(self, a: AccountUpdate) -> None:
        self.portfolio.tell(a)

    def pnl(self, p: PnlUpdate) -> None:
        self.portfolio.tell(p)

    # -------------------------------------------------------------- system

    def failure(self, f: Failure) -> None:
        self.breaker.tell(f)

    def success(self, s: Success) -> None:
        self.breaker.tell(s)

    def heartbeat(self, h: Heartbeat) -> None:
        self.breaker.tell(h)

    def admin(self, a: Admin) -> None:
        """Operator actions; a reset also restarts the high-water mark (DESIGN §4.3)."""
        self.breaker.tell(a)
        if a.action is AdminAction.RESET:
            self.portfolio.tell(ResetHighWater(a.t))

    def kill(self, k: Kill) -> None:
        self.breaker.tell(k)

    def stop(self) -> None:
        with self.lock:
            handles = [
                *self.positions.values(),
                *(r.handle for r in self.strategies.values()),
                self.portfolio,
                self.breaker,
            ]
        for h in handles:
            try:
                h.stop()
            except pykka.ActorDeadError:
                continue

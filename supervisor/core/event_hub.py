"""EventHub: where decisions become durable, visible and acted on — in that order.

Every actor tells the hub what it decided. For each decision the hub
journals it first (through the one :class:`JournalWriter`), then updates the
metrics, and only then acts (an exit order on a TRIGGER, cancel/flatten on a
kill, a global cancel on an OPEN). It runs on its own I/O dispatcher so a
slow disk never stalls the position actors.

Stops keep working in memory while the store is down. Exits of triggers
decided meanwhile wait for it: without the store, "never a second exit order
for the same trigger" could not be promised.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from actors.breaker_actor import BreakerStateChanged
from actors.messages import (
    BreakerState,
    BreakerTransition,
    FailureRecorded,
    Kill,
    KillFired,
    PositionClosed,
    PositionUpdate,
    StopAction,
    StopEvent,
    StopSnapshot,
    StrategyEvent,
    Success,
)
from actors.portfolio_actor import MoneyView
from actors.runtime import Dispatcher, PooledActor
from supervisor import json_codec
from supervisor.core.journal_writer import JournalWriter, Row
from supervisor.metrics import Metrics
from supervisor.store.journal_kind import JournalKind

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Tick:
    """Housekeeping: retry a failed store."""

    t: float


class Memory:
    """The latest state the hub has seen, shared with the supervisor for restarts and views."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.stops: dict[str, StopSnapshot] = {}
        self.strategies: dict[str, dict[str, Any]] = {}
        self.breaker: dict[str, Any] | None = None
        self.money: MoneyView | None = None
        self.kill: KillFired | None = None


def _known(x: float | None) -> float:
    return math.nan if x is None else x


class EventHub(PooledActor):
    def __init__(
        self,
        *,
        dispatcher: Dispatcher,
        writer: JournalWriter,
        metrics: Metrics,
        memory: Memory,
        on_trigger: Callable[[StopEvent], None] | None = None,
        on_transition: Callable[[BreakerTransition], None] | None = None,
        on_kill: Callable[[Kill], None] | None = None,
    ) -> None:
        super().__init__(dispatcher=dispatcher)
        self.writer = writer
        self.metrics = metrics
        self.memory = memory
        self.on_trigger = on_trigger
        self.on_transition = on_transition
        self.on_kill = on_kill
        self.deferred_triggers: list[StopEvent] = []

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, StopEvent):
            self._stop_event(message)
        elif isinstance(message, StopSnapshot):
            with self.memory.lock:
                self.memory.stops[message.id] = message
            self.writer.write(Row(message.opened_t, None, {}, stop=message))
        elif isinstance(message, PositionUpdate):
            self.metrics.position_opened(message.id)
            payload = {
                "id": message.id,
                **json_codec.contract_fields(message.contract),
                "qty": message.qty,
                "entry_price": message.entry_price,
            }
            self.writer.write(Row(message.t, JournalKind.POSITION, payload, message.id))
        elif isinstance(message, PositionClosed):
            with self.memory.lock:
                self.memory.stops.pop(message.id, None)
            self.writer.write(
                Row(
                    message.t,
                    JournalKind.POSITION,
                    {"id": message.id, "qty": 0.0},
                    message.id,
                    delete_stop=message.id,
                )
            )
            self.metrics.position_closed(message.id)
        elif isinstance(message, BreakerTransition):
            self._remember_breaker(message.snapshot)
            self.writer.write(
                Row(
                    message.t,
                    JournalKind.BREAKER,
                    json_codec.breaker_line(message),
                    breaker=message.snapshot,
                )
            )
            self.metrics.breaker_transition(message)
            self._loss_latch()
            if self.on_transition is not None:
                self.on_transition(message)
        elif isinstance(message, FailureRecorded):
            f = message.failure
            self._remember_breaker(message.snapshot)
            payload = {
                "kind": f.kind.value,
                "code": f.code,
                "detail": f.detail,
                "state": message.state.value,
            }
            self.writer.write(Row(f.t, JournalKind.FAILURE, payload, breaker=message.snapshot))
            self.metrics.failure(message)
        elif isinstance(message, BreakerStateChanged):
            self._remember_breaker(message.snapshot)
            self.writer.write(
                Row(
                    message.t,
                    JournalKind.BREAKER_STATE,
                    {"state": message.snapshot.get("state")},
                    breaker=message.snapshot,
                )
            )
            self._loss_latch()
        elif isinstance(message, Success):
            self.writer.write(Row(message.t, JournalKind.SUCCESS, {"detail": message.detail}))
        elif isinstance(message, KillFired):
            self._kill(message)
        elif isinstance(message, MoneyView):
            self._money(message)
        elif isinstance(message, StrategyEvent):
            self._strategy(message)
        elif isinstance(message, Tick):
            self._retry_store()
        return None

    # -------------------------------------------------------------- decisions

    def _stop_event(self, e: StopEvent) -> None:
        with self.memory.lock:
            if e.snapshot is not None:
                self.memory.stops[e.id] = e.snapshot
            if e.strategy_snapshot is not None:
                self.memory.strategies[e.id] = e.strategy_snapshot
        payload: dict[str, Any] = {**json_codec.stop_line(e), "trigger_id": e.trigger_id}
        if e.contract is not None:
            payload["symbol"] = e.contract.symbol
        if e.strategy_snapshot is not None:
            payload["symbol"] = e.strategy_snapshot.get("symbol")
            payload["strategy"] = e.strategy_snapshot
        durable = self.writer.write(Row(e.t, JournalKind.STOP, payload, e.id, stop=e.snapshot))
        self.metrics.stop_event(e)
        if e.action is StopAction.TRIGGER and self.on_trigger is not None:
            if durable:
                self.on_trigger(e)
            else:
                self.deferred_triggers.append(e)

    def _kill(self, message: KillFired) -> None:
        k = message.kill
        with self.memory.lock:
            self.memory.kill = message
        payload = {
            "kill_id": k.kill_id,
            "mode": k.mode.value,
            "cause": k.cause.value,
            "operator": k.operator,
            "from": message.state.value,
        }
        self.writer.write(Row(k.t, JournalKind.KILL, payload))
        self.metrics.kill(k.mode.value)
        if k.cause.value == "heartbeat_lost":
            self.metrics.heartbeat_lost()
        if self.on_kill is not None:
            self.on_kill(k)

    def _money(self, m: MoneyView) -> None:
        with self.memory.lock:
            self.memory.money = m
        if m.daily is not None:
            self.metrics.daily_pnl(m.daily)
        if m.estimate is not None:
            self.metrics.net_liquidation(m.estimate, _known(m.high_water))
        if m.nlv is not None and m.nlv_from_ib:
            self.metrics.net_liquidation_reported(m.nlv)
        if m.high_water_moved:  # the high-water mark is persisted (DESIGN §4.3)
            self.writer.write(Row(m.t, JournalKind.MONEY, m.snapshot))

    def _strategy(self, e: StrategyEvent) -> None:
        with self.memory.lock:
            if e.snapshot is not None:
                self.memory.strategies[e.id] = e.snapshot
        level = logging.ERROR if e.what == "no_stop" else logging.INFO
        log.log(level, "strategy %s %s: %s", e.id, e.what, e.detail)
        payload = {"id": e.id, "what": e.what, "detail": e.detail, "state": e.snapshot}
        self.writer.write(Row(e.t, JournalKind.STRATEGY, payload, e.id))

    def _remember_breaker(self, snapshot: dict[str, Any] | None) -> None:
        if snapshot is not None:
            with self.memory.lock:
                self.memory.breaker = snapshot

    def _loss_latch(self) -> None:
        with self.memory.lock:
            snap = self.memory.breaker
        latched = bool(
            snap is not None
            and snap.get("state") == BreakerState.OPEN.value
            and snap.get("latched")
            and any(e.get("kind") == "loss_limit" for e in snap.get("window", []))
        )
        self.metrics.loss_latch(latched)

    # ------------------------------------------------------------- the store

    def _retry_store(self) -> None:
        if not self.writer.retry():
            return
        deferred, self.deferred_triggers = self.deferred_triggers, []
        for e in deferred:
            if self.on_trigger is not None:
                self.on_trigger(e)

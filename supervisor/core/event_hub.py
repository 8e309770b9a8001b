"""EventHub: where decisions become durable, visible and acted on — in that order.

Every position actor and the breaker tell the hub what they decided. For each
decision the hub journals it first, then updates the metrics, and only then
acts (an exit order on a TRIGGER, a global cancel on an OPEN). It runs on its
own I/O dispatcher so a slow disk never stalls the position actors.

When the store fails (locked, read-only, full) the hub keeps every journal row
in memory, tells the daemon (which halts new entries with cause
``store_unavailable``) and writes the backlog as soon as the store is back.
Stops keep working in memory meanwhile. Exits of triggers decided while the
store was down wait for it: without the store, "never a second exit order for
the same trigger" could not be promised.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from actors.messages import (
    BreakerTransition,
    FailureRecorded,
    PositionClosed,
    PositionUpdate,
    StopAction,
    StopEvent,
    StopSnapshot,
    Success,
)
from actors.runtime import Dispatcher, PooledActor
from supervisor import json_codec
from supervisor.metrics import Metrics
from supervisor.store.sqlite_store import Store, StoreUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Tick:
    """Housekeeping: retry a failed store."""

    t: float


@dataclass(slots=True)
class _Row:
    t: float
    kind: str
    payload: dict[str, Any]
    position_id: str | None = None
    stop: StopSnapshot | None = None
    breaker: dict[str, Any] | None = None


class Memory:
    """The latest state the hub has seen, shared with the supervisor for restarts."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.stops: dict[str, StopSnapshot] = {}
        self.breaker: dict[str, Any] | None = None


class EventHub(PooledActor):
    def __init__(
        self,
        *,
        dispatcher: Dispatcher,
        store: Store | None,
        metrics: Metrics,
        memory: Memory,
        on_trigger: Callable[[StopEvent], None] | None = None,
        on_transition: Callable[[BreakerTransition], None] | None = None,
        on_store_fault: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(dispatcher=dispatcher)
        self.store = store
        self.metrics = metrics
        self.memory = memory
        self.on_trigger = on_trigger
        self.on_transition = on_transition
        self.on_store_fault = on_store_fault
        self.backlog: list[_Row] = []
        self.deferred_triggers: list[StopEvent] = []
        self.store_down: str | None = None

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, StopEvent):
            self._stop_event(message)
        elif isinstance(message, StopSnapshot):
            with self.memory.lock:
                self.memory.stops[message.id] = message
            self._write(lambda s: s.save_stop(message))
        elif isinstance(message, PositionUpdate):
            self.metrics.position_opened(message.id)
            self._journal(message.t, "position", _position_payload(message), message.id)
        elif isinstance(message, PositionClosed):
            with self.memory.lock:
                self.memory.stops.pop(message.id, None)
            self._journal(message.t, "position", {"id": message.id, "qty": 0.0}, message.id)
            self._write(lambda s: s.delete_stop(message.id))
            self.metrics.position_closed(message.id)
        elif isinstance(message, BreakerTransition):
            if message.snapshot is not None:
                with self.memory.lock:
                    self.memory.breaker = message.snapshot
            self._journal(
                message.t, "breaker", json_codec.breaker_line(message), breaker=message.snapshot
            )
            self.metrics.breaker_transition(message)
            if self.on_transition is not None:
                self.on_transition(message)
        elif isinstance(message, FailureRecorded):
            f = message.failure
            self._journal(
                f.t,
                "failure",
                {
                    "kind": f.kind.value,
                    "code": f.code,
                    "detail": f.detail,
                    "state": message.state.value,
                },
            )
            self.metrics.failure(message)
        elif isinstance(message, Success):
            self._journal(message.t, "success", {"detail": message.detail})
        elif isinstance(message, Tick):
            self._retry_store()
        return None

    def _stop_event(self, e: StopEvent) -> None:
        if e.snapshot is not None:
            with self.memory.lock:
                self.memory.stops[e.id] = e.snapshot
        payload = {**json_codec.stop_line(e), "trigger_id": e.trigger_id}
        durable = self._journal(e.t, "stop", payload, e.id, stop=e.snapshot)
        self.metrics.stop_event(e)
        if e.action is StopAction.TRIGGER and self.on_trigger is not None:
            if durable:
                self.on_trigger(e)
            else:
                self.deferred_triggers.append(e)

    # ------------------------------------------------------------ the store

    def _journal(
        self,
        t: float,
        kind: str,
        payload: dict[str, Any],
        position_id: str | None = None,
        *,
        stop: StopSnapshot | None = None,
        breaker: dict[str, Any] | None = None,
    ) -> bool:
        """Journal a row and the state it leaves in one transaction; False: held in memory."""
        row = _Row(t, kind, payload, position_id, stop, breaker)
        if self.store is None:
            return True
        if self.store_down is None:
            try:
                self._record(self.store, row)
                return True
            except StoreUnavailable as exc:
                self._went_down(str(exc))
        self.backlog.append(row)
        return False

    @staticmethod
    def _record(store: Store, r: _Row) -> None:
        store.record(
            t=r.t,
            kind=r.kind,
            payload=r.payload,
            position_id=r.position_id,
            stop=r.stop,
            breaker=r.breaker,
        )

    def _write(self, op: Callable[[Store], None]) -> None:
        if self.store is None or self.store_down is not None:
            return
        try:
            op(self.store)
        except StoreUnavailable as exc:
            self._went_down(str(exc))

    def _went_down(self, why: str) -> None:
        self.store_down = why
        log.error("store unavailable: %s", why)
        if self.on_store_fault is not None:
            self.on_store_fault(why)

    def _retry_store(self) -> None:
        store = self.store
        if store is None or self.store_down is None or not store.healthy():
            return
        try:
            while self.backlog:  # oldest first, each row with its state, atomically
                self._record(store, self.backlog[0])
                self.backlog.pop(0)
            with self.memory.lock:
                stops = list(self.memory.stops.values())
                breaker = self.memory.breaker
            store.save_stops(stops)
            if breaker is not None:
                store.save_breaker(breaker)
        except StoreUnavailable as exc:
            self.store_down = str(exc)
            return
        log.warning("store available again: the journal rows held in memory are written")
        self.store_down = None
        deferred, self.deferred_triggers = self.deferred_triggers, []
        for e in deferred:
            if self.on_trigger is not None:
                self.on_trigger(e)


def _position_payload(u: PositionUpdate) -> dict[str, Any]:
    return {
        "id": u.id,
        **json_codec.contract_fields(u.contract),
        "qty": u.qty,
        "entry_price": u.entry_price,
    }

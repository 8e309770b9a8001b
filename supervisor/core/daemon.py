"""The daemon's core: actors wired together, restored, supervised and fed.

Everything outside — the IB adapter, the HTTP API, the CLI — talks to the
actors through this one facade, from any thread. Time comes from the injected
clock and is stamped on each message as it enters.

Start-up restores before anything can be asked: position actors resume with
their saved stops, and the breaker resumes in the state it was in, its open
timer measured on the wall clock across the downtime — never less strict.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sized
from typing import Any

import pykka

from actors.breaker_actor import BreakerActor, BreakerView
from actors.circuit_breaker import CircuitBreaker
from actors.messages import (
    AccountUpdate,
    Admin,
    AdminAction,
    BreakerState,
    BreakerTransition,
    CheckAnswer,
    Failure,
    FailureKind,
    GetBreakerState,
    GetPortfolio,
    GetStopState,
    PositionClosed,
    PositionUpdate,
    Quote,
    Reason,
    ReasonCode,
    Resync,
    StopEvent,
    StopSnapshot,
    Success,
    SystemHalt,
    TransitionReason,
)
from actors.portfolio_actor import PortfolioActor
from actors.portfolio_view import PortfolioView
from actors.position_actor import PositionActor
from actors.runtime import PoolDispatcher
from supervisor import json_codec
from supervisor.config import Config
from supervisor.core.event_hub import EventHub, Memory, Tick
from supervisor.core.supervision import Handle, RestartPolicy
from supervisor.core.wall_clock_scheduler import ThreadScheduler
from supervisor.metrics import Metrics
from supervisor.store.sqlite_store import Store, StoreUnavailable

log = logging.getLogger(__name__)

EXIT_RESTART_INTENSITY = 3


class Daemon:
    def __init__(
        self,
        config: Config,
        *,
        clock: Callable[[], float] = time.time,
        store: Store | None = None,
        metrics: Metrics | None = None,
        gate_timeout_s: float = 2.0,
        housekeeping_s: float = 1.0,
    ) -> None:
        self.config = config
        self.clock = clock
        self.store = store
        self.metrics = metrics if metrics is not None else Metrics()
        self.gate_timeout_s = gate_timeout_s
        self.housekeeping_s = housekeeping_s
        self.memory = Memory()
        self.restarts = RestartPolicy(clock)
        self.exit_code: int | None = None
        self.stopped = threading.Event()
        self.on_trigger: Callable[[StopEvent], None] | None = None
        self.on_transition: Callable[[BreakerTransition], None] | None = None
        self._lock = threading.RLock()
        self._positions: dict[str, Handle] = {}
        self._by_urn: dict[str, Handle] = {}
        self._started = False
        self.dispatcher = PoolDispatcher(name="actors")
        self.io_dispatcher = PoolDispatcher(threads=1, name="io")
        self.dispatcher.on_failure = self._actor_failed
        self.io_dispatcher.on_failure = self._actor_failed
        self.scheduler = ThreadScheduler(clock)
        self._housekeeper: threading.Thread | None = None

    # ---------------------------------------------------------------- life

    def start(self) -> None:
        store = self.store
        saved_breaker = store.load_breaker() if store is not None else None
        saved_stops = store.load_stops() if store is not None else []
        self.hub = Handle("hub", "hub")
        self.breaker = Handle("breaker", "breaker")
        self.portfolio = Handle("portfolio", "portfolio")
        self.hub.ref = self._start_hub()
        self._watch(self.hub)
        restored = (
            CircuitBreaker.restore(self.config.breaker, saved_breaker) if saved_breaker else None
        )
        if restored is not None:
            self.memory.breaker = saved_breaker
            self.metrics.breaker_state(restored.state)
        self.breaker.ref = self._start_breaker(restored)
        self._watch(self.breaker)
        self.portfolio.ref = self._start_portfolio()
        self._watch(self.portfolio)
        for snap in saved_stops:
            self.memory.stops[snap.id] = snap
            self.metrics.stop_restored(snap)
            self._spawn_position(self._update_of(snap), snap)
        if store is not None:
            store.append(
                t=self.clock(),
                kind="restart",
                payload={
                    "positions": len(saved_stops),
                    "breaker": None if restored is None else restored.state.value,
                },
            )
        self._started = True
        self._housekeeper = threading.Thread(
            target=self._housekeeping, name="housekeeping", daemon=True
        )
        self._housekeeper.start()

    def stop(self) -> None:
        self.stopped.set()
        if self._housekeeper is not None:
            self._housekeeper.join(timeout=5)
        self.scheduler.stop()
        with self._lock:
            handles = [*self._positions.values()]
        for h in (*handles, getattr(self, "portfolio", None), getattr(self, "breaker", None)):
            if h is not None:
                _quietly(h.stop)
        hub = getattr(self, "hub", None)
        if hub is not None:
            _quietly(hub.stop)
        self.dispatcher.shutdown()
        self.io_dispatcher.shutdown()

    def fatal(self, code: int, why: str) -> None:
        """Stop the whole daemon with an exit code (systemd restarts it clean)."""
        log.critical("%s: stopping with exit code %d", why, code)
        if self.exit_code is None:
            self.exit_code = code
        self.stopped.set()

    # ------------------------------------------------------------ actors

    def _start_hub(self) -> pykka.ActorRef[Any]:
        return EventHub.start(
            dispatcher=self.io_dispatcher,
            store=self.store,
            metrics=self.metrics,
            memory=self.memory,
            on_trigger=self._trigger,
            on_transition=self._transition,
            on_store_fault=self._store_fault,
        )

    def _start_breaker(self, restored: CircuitBreaker | None) -> pykka.ActorRef[Any]:
        return BreakerActor.start(
            self.config.breaker,
            dispatcher=self.dispatcher,
            scheduler=self.scheduler,
            subscriber=self.hub,
            restored=restored,
        )

    def _start_portfolio(self) -> pykka.ActorRef[Any]:
        return PortfolioActor.start(
            self.config.gate,
            dispatcher=self.dispatcher,
            breaker=self.breaker,
            net_liquidation=self.config.net_liquidation,
        )

    def _spawn_position(
        self, update: PositionUpdate, restored: StopSnapshot | None = None
    ) -> Handle:
        ref = PositionActor.start(
            update,
            self.config.stop_params(update.contract.symbol),
            dispatcher=self.dispatcher,
            portfolio=self.portfolio,
            subscriber=self.hub,
            restored=restored,
        )
        with self._lock:
            old = self._positions.get(update.id)
            if old is not None:
                self._by_urn.pop(old.ref.actor_urn, None)
                old.ref = ref
                handle = old
            else:
                handle = self._positions[update.id] = Handle("position", update.id, ref)
            self._by_urn[ref.actor_urn] = handle
        return handle

    def _watch(self, handle: Handle) -> Handle:
        with self._lock:
            self._by_urn[handle.ref.actor_urn] = handle
        return handle

    @staticmethod
    def _update_of(snap: StopSnapshot) -> PositionUpdate:
        return PositionUpdate(snap.opened_t, snap.id, snap.contract, snap.qty, snap.entry_price)

    def _actor_failed(self, ref: pykka.ActorRef[Any], exc: BaseException) -> None:
        """Never a silent dead actor: restart it with its last state, or stop the daemon."""
        with self._lock:
            handle = self._by_urn.pop(ref.actor_urn, None)
        if handle is None or self.stopped.is_set():
            return
        log.error("%s actor %s crashed: %r", handle.kind, handle.name, exc)
        if not self.restarts.allow(handle.kind):
            self.fatal(EXIT_RESTART_INTENSITY, f"{handle.kind} actors restart too often")
            return
        self.metrics.actor_restart(handle.kind)
        threading.Thread(target=self._restart, args=(handle,), daemon=True).start()

    def _restart(self, handle: Handle) -> None:
        kind = handle.kind
        if kind != "hub":
            # The dead actor told the hub its last state before dying; an ask to
            # the hub is answered after those messages, so memory is current.
            try:
                self.hub.ask(Tick(self.clock()), timeout=self.gate_timeout_s)
            except (pykka.Timeout, pykka.ActorDeadError):
                log.warning("hub did not answer before a %s restart", kind)
        if kind == "position":
            with self.memory.lock:
                snap = self.memory.stops.get(handle.name)
            if snap is not None:
                self._spawn_position(self._update_of(snap), snap)
            return
        if kind == "breaker":
            with self.memory.lock:
                saved = self.memory.breaker
            restored = CircuitBreaker.restore(self.config.breaker, saved) if saved else None
            handle.ref = self._start_breaker(restored)
        elif kind == "portfolio":
            handle.ref = self._start_portfolio()
            with self._lock:
                positions = [*self._positions.values()]
            for p in positions:
                p.tell(Resync())
        elif kind == "hub":
            handle.ref = self._start_hub()
        self._watch(handle)

    # ------------------------------------------------------------ inputs

    def position(self, update: PositionUpdate) -> None:
        with self._lock:
            handle = self._positions.get(update.id)
            if handle is None:
                if update.qty != 0:
                    self._spawn_position(update)
                return
            if update.qty == 0:
                del self._positions[update.id]
        handle.tell(update)

    def close_position(self, position_id: str) -> None:
        with self._lock:
            handle = self._positions.pop(position_id, None)
        if handle is not None:
            handle.tell(PositionClosed(self.clock(), position_id))

    def position_ids(self) -> list[str]:
        with self._lock:
            return list(self._positions)

    def quote(self, q: Quote) -> bool:
        with self._lock:
            handle = self._positions.get(q.id)
        if handle is None:
            return False
        handle.tell(q)
        return True

    def account(self, net_liquidation: float) -> None:
        self.portfolio.tell(AccountUpdate(self.clock(), net_liquidation))

    def failure(self, kind: FailureKind, code: int | None = None, detail: str = "") -> None:
        self.breaker.tell(Failure(self.clock(), kind, code, detail))

    def success(self, detail: str = "") -> None:
        self.breaker.tell(Success(self.clock(), detail))

    def admin(self, action: AdminAction, operator: str = "operator") -> BreakerState:
        t = self.clock()
        self._journal(t, "admin", {"action": action.value, "operator": operator})
        state: BreakerState = self.breaker.ask(
            Admin(t, action, operator), timeout=self.gate_timeout_s
        )
        return state

    def check(self, obj: Mapping[str, Any]) -> CheckAnswer:
        """The pre-trade gate. Raises json_codec.BadInput when the request has no usable id."""
        started = time.perf_counter()
        t = self.clock()
        future: pykka.Future[CheckAnswer] = pykka.ThreadingFuture()
        request = json_codec.check(obj, t, future)
        self.portfolio.tell(request)
        try:
            answer = future.get(timeout=self.gate_timeout_s)
        except pykka.Timeout:
            answer = CheckAnswer(
                t,
                request.id,
                False,
                (Reason(ReasonCode.STALE_DATA),),
                detail="the gate did not answer in time",
            )
        if not self._journal(
            t, "check", {**json_codec.check_line(answer), "detail": answer.detail}
        ):
            answer = (
                CheckAnswer(
                    t,
                    request.id,
                    False,
                    (*answer.reasons, Reason(ReasonCode.BREAKER_OPEN)),
                    answer.risk_reducing,
                    BreakerState.OPEN,
                    "the journal is unavailable",
                )
                if answer.allowed
                else answer
            )
        self.metrics.check(answer, time.perf_counter() - started)
        return answer

    # ------------------------------------------------------------ reading

    def breaker_view(self) -> BreakerView:
        view: BreakerView = self.breaker.ask(GetBreakerState(), timeout=self.gate_timeout_s)
        return view

    def portfolio_view(self) -> PortfolioView:
        view: PortfolioView = self.portfolio.ask(
            GetPortfolio(self.clock()), timeout=self.gate_timeout_s
        )
        return view

    def stop_snapshots(self) -> list[StopSnapshot]:
        with self._lock:
            handles = list(self._positions.values())
        futures = []
        for h in handles:
            try:
                futures.append(h.ref.ask(GetStopState(), block=False))
            except pykka.ActorDeadError:
                continue
        out = []
        for f in futures:
            try:
                out.append(f.get(timeout=self.gate_timeout_s))
            except (pykka.Timeout, pykka.ActorDeadError):
                continue
        return out

    # ------------------------------------------------------------- effects

    def _journal(self, t: float, kind: str, payload: dict[str, Any]) -> bool:
        if self.store is None:
            return True
        try:
            self.store.append(t=t, kind=kind, payload=payload)
            return True
        except StoreUnavailable as exc:
            self._store_fault(str(exc))
            return False

    def _store_fault(self, why: str) -> None:
        self.breaker.tell(
            SystemHalt(self.clock(), TransitionReason.STORE_UNAVAILABLE, "store_unavailable")
        )
        log.error("store unavailable, new entries halted: %s", why)

    def _trigger(self, event: StopEvent) -> None:
        if self.on_trigger is not None:
            self.on_trigger(event)

    def _transition(self, tr: BreakerTransition) -> None:
        if self.on_transition is not None:
            self.on_transition(tr)

    def _housekeeping(self) -> None:
        while not self.stopped.wait(self.housekeeping_s):
            try:
                self.hub.tell(Tick(self.clock()))
                self._export()
            except Exception:  # never let a view problem kill housekeeping
                log.exception("housekeeping failed")

    def _export(self) -> None:
        m = self.metrics
        view = self.portfolio_view()
        m.portfolio(view.delta, view.dollar_delta, view.gamma, view.vega, view.theta)
        for limit, ratio in view.utilization.items():
            m.utilization(limit, ratio)
        with self._lock:
            handles = list(self._positions.values())
        m.mailbox_depth("position", sum(_depth(h) for h in handles))
        m.mailbox_depth("portfolio", _depth(self.portfolio))
        m.mailbox_depth("breaker", _depth(self.breaker))
        m.coalesced(self.dispatcher.coalesced)


def _depth(handle: Handle) -> int:
    inbox = handle.ref.actor_inbox
    return len(inbox) if isinstance(inbox, Sized) else 0


def _quietly(fn: Callable[[], None]) -> None:
    with contextlib.suppress(pykka.ActorDeadError):
        fn()

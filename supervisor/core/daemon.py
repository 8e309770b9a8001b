"""The daemon's core: the actors wired, restored, supervised and fed — and its one facade.

Everything outside — the IB adapter, the HTTP API, the CLI, the live view —
talks to the daemon through the methods here (:class:`~supervisor.core.facade.DaemonPort`
for the API, :class:`~supervisor.core.ports.BrokerInputs` for the adapter),
from any thread. Time comes from the injected clock and is stamped on each
message as it enters.

The actors are the same :class:`~actors.topology.Topology` that ``replay``
builds, on a thread pool and the wall clock; every check passes the same
:class:`~supervisor.core.gate.Gate`; every decision is journaled by the one
:class:`~supervisor.core.journal_writer.JournalWriter`.

Start-up restores before anything can be asked: position actors resume with
their saved stops, the breaker in the state it was in (its open timer
measured on the wall clock across the downtime), the high-water mark, and the
windows that decisions depend on (recent TRIGGERs for the cooldown and the
stop guard, recent allowed orders for the rate and duplicate controls) from
the journal — never less strict than before the restart.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence, Sized
from dataclasses import replace
from typing import Any, Protocol

import pykka

from actors.breaker_actor import BreakerView, SeedAdmission
from actors.circuit_breaker import CircuitBreaker
from actors.gate.admission import AllowedOrder
from actors.gate.assessment import Admit
from actors.gate.order import order_key
from actors.handle import Handle
from actors.messages import (
    AccountUpdate,
    Admin,
    AdminAction,
    BreakerState,
    BreakerTransition,
    CheckAnswer,
    CheckRequest,
    Contract,
    Failure,
    FailureKind,
    GetBreakerState,
    GetPortfolio,
    GetStopState,
    Heartbeat,
    Kill,
    KillMode,
    Leg,
    MarketQuote,
    PnlUpdate,
    PositionUpdate,
    Quote,
    Resync,
    SecType,
    StopEvent,
    StopSnapshot,
    Success,
    SystemHalt,
    TransitionReason,
    Triggered,
    WhatIf,
)
from actors.portfolio_actor import RestoreMoney, SeedTriggers
from actors.portfolio_view import PortfolioView
from actors.runtime import PoolDispatcher
from actors.topology import KEEP, Refused, Topology
from supervisor import json_codec
from supervisor.config import Config
from supervisor.core.closing_orders import Held, flatten_key
from supervisor.core.event_hub import EventHub, Memory, Tick
from supervisor.core.facade import (
    BreakerStatus,
    DaemonState,
    DaemonTimeout,
    Health,
    HeartbeatStatus,
    JournalEntry,
    KillOrderStatus,
    KillStatus,
    MoneyStatus,
    StrategyLegSpec,
    StrategyLegStatus,
    StrategyRefused,
    StrategyStatus,
)
from supervisor.core.gate import Gate
from supervisor.core.journal_writer import JournalWriter, Row
from supervisor.core.kill_switch import KillSwitch
from supervisor.core.ports import BrokerPort
from supervisor.core.recording_order import RecordingOrder
from supervisor.core.strategy_book import Declaration, Readiness, assess, validate
from supervisor.core.supervision import RestartPolicy
from supervisor.core.wall_clock_scheduler import ThreadScheduler
from supervisor.metrics import Metrics
from supervisor.store.journal_kind import JournalKind
from supervisor.store.kill_record import KillRecord
from supervisor.store.sqlite_store import Store, StoreUnavailable
from supervisor.store.strategy_change import StrategyChange

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
        # The IB side: set by the adapter. Exits, kills and what-ifs go through them.
        self.on_trigger: Callable[[StopEvent], None] | None = None
        self.on_transition: Callable[[BreakerTransition], None] | None = None
        self.on_kill: Callable[[Kill], None] | None = None
        self._broker: BrokerPort | None = None
        # A TRIGGER's exit is claimed in the TRIGGER's own transaction (the IB
        # side then places it without claiming again).
        self.claims_exits = config.ib.exit_orders and not config.ib.readonly
        self._pending_kill: Kill | None = None  # an unfinished cancel/flatten from before
        self._pending_step = ""
        # Every input event in the replay format (DESIGN §8), or None: not recording.
        self._recorder: EventRecorder | None = None
        self._recording: RecordingOrder | None = None
        self.ib_status: Callable[[], str] | None = None
        self._lock = threading.RLock()
        self._by_urn: dict[str, Handle] = {}
        self._started = False
        self._kill_seq = itertools.count(1)
        self.dispatcher = PoolDispatcher(name="actors")
        self.io_dispatcher = PoolDispatcher(threads=1, name="io")
        self.dispatcher.on_failure = self._actor_failed
        self.io_dispatcher.on_failure = self._actor_failed
        # where a check waits: its mailbox (queue) and the two handlers (evaluate)
        self.dispatcher.on_priority = self._priority_timing
        self.scheduler = ThreadScheduler(clock)
        self.writer = JournalWriter(store, on_fault=self._store_fault)
        self.kill_switch = KillSwitch(
            writer=self.writer,
            clock=clock,
            broker=lambda: self.broker,
            held=self._held,
            slippage_pct=config.kill.flatten_slippage_pct,
        )
        self._housekeeper: threading.Thread | None = None
        # Trader-declared strategies (DESIGN §3.1) and the latest of each position.
        self._strategies_lock = threading.RLock()
        self.declarations: dict[str, Declaration] = {}
        self.latest: dict[str, PositionUpdate] = {}
        self._reported: dict[str, str] = {}

    # ---------------------------------------------------------------- life

    def start(self) -> None:
        store = self.store
        saved_breaker = store.load_breaker() if store is not None else None
        saved_stops = store.load_stops() if store is not None else []
        self.hub = Handle("hub", "hub")
        self.hub.ref = self._start_hub()
        self._watch(self.hub)
        restored = (
            CircuitBreaker.restore(self.config.breaker, saved_breaker) if saved_breaker else None
        )
        if restored is not None:
            self.memory.breaker = saved_breaker
            self.metrics.breaker_state(restored.state)
        self.topology = Topology(
            self.config,
            dispatcher=self.dispatcher,
            scheduler=self.scheduler,
            sink=self.hub,
            restored_breaker=restored,
            on_spawn=self._watch,
            ask_timeout_s=self.gate_timeout_s,
        )
        self.breaker = self.topology.breaker
        self.portfolio = self.topology.portfolio
        self.gate = Gate(
            self.portfolio,
            self.breaker,
            margin=self.config.gate.margin,
            timeout_s=self.gate_timeout_s,
            journal=self.writer,
            metrics=self.metrics,
            broker=_LateBroker(self),
            orders=self.config.gate.orders,
            quotes=_LateBroker(self),
        )
        self._reload_windows()
        self._reload_kill()
        now = self.clock()  # one time for every row of the restart: the journal never goes back
        for snap in saved_stops:
            self.memory.stops[snap.id] = snap
            self.metrics.stop_restored(snap)
            self.latest[snap.id] = _update_of(snap)
            # journaled at the restart's time: the journal never goes back in time
            # (the snapshot keeps its opening time for the trigger id)
            self.topology.spawn_position(replace(_update_of(snap), t=now), snap)
        self._restore_strategies(saved_stops)
        for sid, legs in self.config.strategies.items():
            if sid in self.declarations or sid in self.topology.spent:
                continue
            specs = [StrategyLegSpec(leg.ratio, leg.con_id, leg.contract) for leg in legs]
            try:
                self.put_strategy(sid, specs)
            except StrategyRefused as exc:
                log.error("strategies.%s: refused: %s", sid, exc)
        self.metrics.limit_values(self._limit_values())
        self.writer.write(
            Row(
                now,
                JournalKind.RESTART,
                {
                    "positions": len(saved_stops),
                    "breaker": None if restored is None else restored.state.value,
                },
            )
        )
        self._started = True
        self._housekeeper = threading.Thread(
            target=self._housekeeping, name="housekeeping", daemon=True
        )
        self._housekeeper.start()

    @property
    def recorder(self) -> EventRecorder | None:
        return self._recorder

    @recorder.setter
    def recorder(self, recorder: EventRecorder | None) -> None:
        self._recorder = recorder
        self._recording = None if recorder is None else RecordingOrder(recorder)

    @property
    def broker(self) -> BrokerPort | None:
        return self._broker

    @broker.setter
    def broker(self, broker: BrokerPort | None) -> None:
        """The IB side attaches here; an unfinished kill from before a restart resumes."""
        self._broker = broker
        pending, self._pending_kill = self._pending_kill, None
        if broker is not None and pending is not None:
            log.warning("resuming kill %s (%s) after a restart", pending.kill_id, pending.mode)
            self.kill_switch.resume(pending, self._pending_step)

    def _reload_kill(self) -> None:
        """A kill is never undone by a restart: an unfinished one is done on reconnect."""
        store = self.store
        if store is None:
            return
        last = store.last_kill()
        if last is None or last.mode == KillMode.HALT.value:
            return
        step = last.state.get("step")
        if last.mode == KillMode.CANCEL.value and step in ("flatten_done", "cancel_confirmed"):
            return
        if step == "flatten_done":
            unclaimed = self._flatten_unclaimed(store, last)
            if not unclaimed:
                return
            log.warning(
                "kill %s: the flatten was handed to IB but %s never claimed a closing order",
                last.id,
                ", ".join(unclaimed),
            )
        try:
            cause = TransitionReason(last.cause)
        except ValueError:
            cause = TransitionReason.KILL
        self._pending_kill = Kill(
            last.t, KillMode(last.mode), last.operator or "operator", cause, last.id
        )
        self._pending_step = str(last.state.get("step", ""))

    @staticmethod
    def _flatten_unclaimed(store: Store, kill: KillRecord) -> list[str]:
        """Positions a finished flatten handed to IB whose claim never reached the store.

        ``flatten_done`` is journaled once every closing order is *handed* to
        the IB side, which claims and places each one on its own loop: a
        SIGKILL in between leaves positions with no claim and no order. Such
        a flatten is not done; it resumes, and the claims keep every position
        to one closing order.
        """
        orders = kill.state.get("orders")
        if not isinstance(orders, Mapping):
            return []
        return [
            str(target)
            for target, status in orders.items()
            if status != "error" and store.exit_for(flatten_key(kill.id, str(target))) is None
        ]

    def _reload_windows(self) -> None:
        """What decisions depend on, from the journal: never less strict after a restart."""
        store = self.store
        if store is None:
            return
        now = self.clock()
        gate = self.config.gate
        horizons = [gate.cooldown_s or 0.0]
        if self.config.stop_guard is not None:
            horizons.append(self.config.stop_guard.window_s)
        since = now - max(horizons)
        triggers: list[Triggered] = []
        if max(horizons) > 0:
            for tr in store.triggers_since(since):
                symbol = tr.symbol or tr.position_id
                triggers.append(Triggered(tr.t, tr.position_id, symbol))
        orders = gate.orders
        horizon = max(orders.order_window_s, orders.duplicate_window_s or 0.0)
        allowed: list[AllowedOrder] = []
        if orders.max_orders_per_window is not None or orders.duplicate_window_s is not None:
            for row in store.journal(kind="check", since_t=now - horizon, limit=100_000):
                if row.payload.get("allowed") and isinstance(row.payload.get("legs"), list):
                    try:
                        legs = json_codec.check(
                            {"id": "x", "legs": row.payload["legs"]}, row.t
                        ).legs
                    except json_codec.BadInput:
                        continue
                    allowed.append(AllowedOrder(row.t, order_key(legs)))
        if triggers:
            self.portfolio.tell(SeedTriggers(tuple(triggers)))
        if triggers or allowed:
            self.breaker.tell(SeedAdmission(tuple(allowed), tuple(triggers)))
        money = store.load_money()
        if money is not None:
            self.portfolio.tell(RestoreMoney(dict(money)))

    def _limit_values(self) -> dict[str, float | None]:
        c = self.config
        g = c.gate
        values: dict[str, float | None] = {k.value: v for k, v in g.limits.values.items()}
        o = g.orders
        values.update(
            max_leg_contracts=o.max_leg_contracts,
            max_leg_shares=o.max_leg_shares,
            max_order_notional=o.max_order_notional,
            max_order_premium=o.max_order_premium,
            price_collar_pct=o.price_collar_pct,
            max_orders_per_window=None
            if o.max_orders_per_window is None
            else float(o.max_orders_per_window),
            max_daily_loss=g.loss.max_daily_loss,
            max_drawdown_pct=g.loss.max_drawdown_pct,
            max_pnl_age_s=g.loss.max_pnl_age_s,
            max_init_margin_pct=g.margin.max_init_margin_pct,
            min_excess_liquidity=g.margin.min_excess_liquidity,
            heartbeat_timeout_s=c.api.heartbeat_timeout_s,
            max_data_age_s=g.limits.max_data_age_s,
        )
        return values

    def stop(self) -> None:
        self.stopped.set()
        if self._housekeeper is not None:
            self._housekeeper.join(timeout=5)
        self.scheduler.stop()
        topology = getattr(self, "topology", None)
        if topology is not None:
            with contextlib.suppress(pykka.ActorDeadError):
                topology.stop()
        hub = getattr(self, "hub", None)
        if hub is not None:
            with contextlib.suppress(pykka.ActorDeadError):
                hub.stop()
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
            writer=self.writer,
            metrics=self.metrics,
            memory=self.memory,
            on_trigger=self._trigger,
            on_transition=self._transition,
            on_kill=self._kill_fired,
            claim_exits=self.claims_exits,
        )

    def _watch(self, handle: Handle) -> None:
        with self._lock:
            self._by_urn[handle.ref.actor_urn] = handle

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
            if snap is not None and handle.name in self.topology.positions:
                self.topology.spawn_position(replace(_update_of(snap), t=self.clock()), snap)
            return
        if kind == "breaker":
            with self.memory.lock:
                saved = self.memory.breaker
            restored = CircuitBreaker.restore(self.config.breaker, saved) if saved else None
            self.topology.start_breaker(restored)
        elif kind == "portfolio":
            self.topology.start_portfolio()
            for p in list(self.topology.positions.values()):
                p.tell(Resync())
        elif kind == "hub":
            handle.ref = self._start_hub()
            self._watch(handle)

    # ------------------------------------------------------------ inputs

    def _record(self, event: Mapping[str, Any]) -> None:
        recording = self._recording
        if recording is not None:
            recording.now(event)

    def _to_topology(
        self, update: PositionUpdate, strategy: Any = KEEP, *, restart_strategy: bool = True
    ) -> None:
        """Every position update reaches the topology here, recorded as replay will see it."""
        if self.recorder is not None:
            event = json_codec.position_event(update)
            if strategy is not KEEP:
                event["strategy"] = strategy
            if not update.contract.symbol:  # a close by id
                event = {"t": update.t, "type": "close", "id": update.id}
            self._record(event)
        try:
            self.topology.position(update, strategy, restart_strategy=restart_strategy)
        except Refused as exc:
            log.error("position %s not taken: %s", update.id, exc)
            self.writer.write(
                Row(update.t, JournalKind.POSITION, {"id": update.id, "refused": str(exc)})
            )

    def position(self, update: PositionUpdate) -> None:
        with self._strategies_lock:
            pid = update.id
            if update.qty == 0:
                self.latest.pop(pid, None)
            else:
                self.latest[pid] = update
            sid = self.topology.leg_of.get(pid)
            decl = None if sid is None else self.declarations.get(sid)
            if sid is not None and update.qty != 0 and decl is not None:
                a = assess(decl, self.latest)
                ok = a.readiness is Readiness.READY
                if not ok:
                    self._report(sid, "ratio_broken", a.detail, update.t)
                self._to_topology(update, restart_strategy=ok)
            else:
                self._to_topology(update)
                if sid is not None and update.qty == 0:
                    self._ended(sid, f"leg {pid} closed", update.t)
            self._apply_declarations(update.t)

    def close_position(self, position_id: str) -> None:
        self.position(PositionUpdate(self.clock(), position_id, _NO_CONTRACT, 0.0, 0.0))

    def position_ids(self) -> list[str]:
        return self.topology.position_ids()

    def quote(self, q: Quote) -> bool:
        if not self.topology.quote(q):
            return False
        if self.recorder is not None:
            self._record(json_codec.quote_event(q))
        return True

    def market_quote(self, q: MarketQuote) -> None:
        if self.recorder is not None:
            self._record(json_codec.market_event(q))
        self.topology.market(q)

    def account(self, net_liquidation: float) -> None:
        t = self.clock()
        self._record({"t": t, "type": "account", "net_liquidation": net_liquidation})
        self.topology.account(AccountUpdate(t, net_liquidation))

    def pnl(self, update: PnlUpdate) -> None:
        self._record(
            {
                "t": update.t,
                "type": "pnl",
                "daily": update.daily,
                "unrealized": update.unrealized,
                "realized": update.realized,
            }
        )
        self.topology.pnl(update)

    def failure(self, kind: FailureKind, code: int | None = None, detail: str = "") -> None:
        t = self.clock()
        self._record(
            {"t": t, "type": "failure", "kind": kind.value, "code": code, "detail": detail}
        )
        self.topology.failure(Failure(t, kind, code, detail))

    def success(self, detail: str = "") -> None:
        t = self.clock()
        self._record({"t": t, "type": "success", "detail": detail})
        self.topology.success(Success(t, detail))

    # --------------------------------------------------------- operators

    def _ask(self, handle: Handle, message: Any) -> Any:
        try:
            return handle.ask(message, timeout=self.gate_timeout_s)
        except pykka.Timeout as exc:
            raise DaemonTimeout(f"the {handle.kind} actor did not answer in time") from exc

    def admin(self, action: AdminAction, operator: str = "operator") -> BreakerState:
        if action is AdminAction.KILL:
            return self.kill(KillMode.HALT, operator).breaker
        t = self.clock()
        # Journaled first; while the store is down the row waits in the writer's
        # backlog like every decision (and the breaker is already held open).
        self.writer.write(Row(t, JournalKind.ADMIN, {"action": action.value, "operator": operator}))
        self._record({"t": t, "type": "admin", "action": action.value, "operator": operator})
        if action is AdminAction.RESET:
            self.topology.admin(Admin(t, action, operator))
        else:
            self.breaker.tell(Admin(t, action, operator))
        state: BreakerState = self._ask(self.breaker, GetBreakerState()).state
        return state

    def force_open(self, operator: str) -> BreakerState:
        return self.admin(AdminAction.FORCE_OPEN, operator)

    def reset(self, operator: str) -> BreakerState:
        return self.admin(AdminAction.RESET, operator)

    def kill(self, mode: KillMode, operator: str) -> KillStatus:
        """The kill switch: halt now; cancel/flatten follow on the IB side (DESIGN §4.5)."""
        t = self.clock()
        kill_id = f"{t!r}-{next(self._kill_seq)}"
        payload = {"kill_id": kill_id, "mode": mode.value, "operator": operator}
        self._record(
            {"t": t, "type": "admin", "action": "kill", "mode": mode.value, "operator": operator}
        )
        if not self.writer.write(Row(t, JournalKind.ADMIN, {"action": "kill", **payload})):
            # Still halt: a kill must never be refused because the disk is full.
            log.error("kill %s: the journal is unavailable; halting anyway", kill_id)
        state = self._ask(self.breaker, Kill(t, mode, operator, kill_id=kill_id))
        return KillStatus(kill_id, t, mode, "kill", operator, state)

    def heartbeat(self) -> HeartbeatStatus:
        t = self.clock()
        self._record({"t": t, "type": "heartbeat"})
        self.topology.heartbeat(Heartbeat(t))
        self.metrics.heartbeat()
        view: BreakerView = self._ask(self.breaker, GetBreakerState())
        return HeartbeatStatus(
            self.config.api.heartbeat_timeout_s,
            view.heartbeat_last,
            view.heartbeat_deadline,
            view.heartbeat_fired,
        )

    # --------------------------------------------------------------- gate

    def check(self, obj: Mapping[str, Any]) -> CheckAnswer:
        """The pre-trade gate. Raises json_codec.BadInput when the request has no usable id."""
        started = time.perf_counter()
        recording = self._recording
        slot = None if recording is None else recording.reserve()  # its place in time
        try:
            request = json_codec.check(obj, self.clock())
        except json_codec.BadInput:
            if recording is not None and slot is not None:
                recording.fill(slot, None)
            raise
        self.metrics.check_stage("parse", time.perf_counter() - started)
        self.metrics.heartbeat()
        answer: CheckAnswer | None = None
        try:
            answer = self.gate.check(request)
            return answer
        finally:
            if recording is not None and slot is not None:
                line = json_codec.check_event(obj, request.t, answer.whatif if answer else None)
                recording.fill(slot, line)

    # ------------------------------------------------------------ reading

    def breaker_view(self) -> BreakerView:
        view: BreakerView = self._ask(self.breaker, GetBreakerState())
        return view

    def portfolio_view(self) -> PortfolioView:
        view: PortfolioView = self._ask(self.portfolio, GetPortfolio(self.clock()))
        return view

    def stop_snapshots(self) -> list[StopSnapshot]:
        handles = list(self.topology.positions.values())
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

    @property
    def exit_claims(self) -> Store | None:
        """Where closing orders are claimed (the IB side's exit-orders object uses it)."""
        return self.store

    def triggered_stops(self) -> list[StopSnapshot]:
        """The durable triggered stops (their TRIGGER is journaled), for reconciling exits."""
        store = self.store
        if store is None:
            return []
        try:
            return [s for s in store.load_stops() if s.triggered]
        except StoreUnavailable as exc:
            log.error("cannot read the saved stops to reconcile exits: %s", exc)
            return []

    def health(self) -> Health:
        state = self.breaker_view().state
        store = self.store
        if store is None:
            store_state = "none"
        else:
            store_state = "ok" if self.writer.down is None and store.healthy() else "unavailable"
        ib: str | None = None
        if self.ib_status is not None:
            try:
                ib = str(self.ib_status())
            except Exception:  # a broken probe must not hide the rest of the health
                log.exception("ib_status failed")
                ib = "unknown"
        return Health(state, store_state, ib, self.writer.down or "")

    def state(self) -> DaemonState:
        breaker = self.breaker_view()
        view = self.portfolio_view()
        stops = tuple(sorted(self.stop_snapshots(), key=lambda s: s.id))
        with self.memory.lock:
            money = self.memory.money
            kill = self.memory.kill
        m = MoneyStatus()
        if money is not None:
            m = MoneyStatus(
                money.daily,
                money.unrealized,
                money.realized,
                money.pnl_t,
                money.nlv,
                money.nlv_t,
                money.estimate,
                money.high_water,
                bool(breaker.snapshot.get("latched"))
                and breaker.state is BreakerState.OPEN
                and any(e.get("kind") == "loss_limit" for e in breaker.snapshot["window"]),
            )
        k = None
        progress = self.kill_switch.progress
        if kill is not None:
            kk = kill.kill
            orders: tuple[KillOrderStatus, ...] = ()
            cancel = ""
            if progress is not None and progress.kill.kill_id == kk.kill_id:
                cancel = progress.cancel
                orders = tuple(KillOrderStatus(pid, st) for pid, st in progress.orders.items())
            k = KillStatus(
                kk.kill_id,
                kk.t,
                kk.mode,
                kk.cause.value,
                kk.operator,
                breaker.state,
                cancel,
                orders,
            )
        hb = HeartbeatStatus(
            self.config.api.heartbeat_timeout_s,
            breaker.heartbeat_last,
            breaker.heartbeat_deadline,
            breaker.heartbeat_fired,
        )
        return DaemonState(
            self.clock(),
            BreakerStatus(breaker.state, breaker.snapshot),
            view,
            stops,
            m,
            hb,
            k,
            tuple(self.strategies()),
        )

    def strategies(self) -> Sequence[StrategyStatus]:
        out: list[StrategyStatus] = []
        with self._strategies_lock:
            declared = dict(self.declarations)
            live = list(self.topology.strategies)
        for sid in live:
            v = self.topology.strategy_view(sid)
            if v is None:
                continue
            ratios = self._declared_ratios(sid)
            legs = tuple(
                StrategyLegStatus(
                    leg.position_id,
                    leg.contract,
                    ratios.get(leg.position_id, int(leg.qty)),
                    leg.qty,
                )
                for leg in v.legs
            )
            out.append(
                StrategyStatus(
                    v.id,
                    v.symbol,
                    v.state.value,
                    legs,
                    v.entry,
                    v.net_price,
                    v.stop,
                    v.extreme,
                    v.active,
                    v.credit,
                )
            )
        for sid, decl in declared.items():
            if sid in live:
                continue
            a = assess(decl, self.latest)
            legs = tuple(
                StrategyLegStatus(
                    pid,
                    spec.contract if pid is None else self.latest[pid].contract,
                    spec.ratio,
                    None if pid is None else self.latest[pid].qty,
                )
                for pid, spec in zip(a.legs, decl.legs, strict=True)
            )
            symbol = next((leg.contract.symbol for leg in legs if leg.contract), "")
            state = "refused" if a.readiness is Readiness.ZERO_ENTRY else "waiting"
            out.append(StrategyStatus(sid, symbol, state, legs, detail=a.detail))
        return sorted(out, key=lambda s: s.id)

    def _declared_ratios(self, sid: str) -> dict[str, int]:
        """Each held leg's declared ratio (a strategy from a replayed book: none)."""
        decl = self.declarations.get(sid)
        if decl is None:
            return {}
        a = assess(decl, self.latest)
        return {
            pid: spec.ratio for pid, spec in zip(a.legs, decl.legs, strict=True) if pid is not None
        }

    def put_strategy(self, strategy_id: str, legs: Sequence[StrategyLegSpec]) -> StrategyStatus:
        decl = validate(strategy_id, legs)
        t = self.clock()
        with self._strategies_lock:
            if strategy_id in self.topology.positions or strategy_id in self.topology.spent:
                raise StrategyRefused(f"id {strategy_id!r} is a position's or a spent strategy's")
            if strategy_id in self.topology.strategies:
                raise StrategyRefused(
                    f"strategy {strategy_id!r} is live: DELETE it before declaring it again"
                )
            a = assess(decl, self.latest)
            if a.readiness is Readiness.ZERO_ENTRY:
                raise StrategyRefused(a.detail)
            self.declarations[strategy_id] = decl
            self._journal_strategy(t, strategy_id, "declared", decl=decl, save=True)
            self._apply_declarations(t)
        return next(s for s in self.strategies() if s.id == strategy_id)

    def delete_strategy(self, strategy_id: str) -> bool:
        t = self.clock()
        with self._strategies_lock:
            decl = self.declarations.pop(strategy_id, None)
            record = self.topology.strategies.get(strategy_id)
            if decl is None and record is None:
                return False
            if record is not None:
                for pid in list(record.legs):
                    update = self.latest.get(pid)
                    if update is not None:
                        # leaving counts as a leg closing alone: the legs get their own stops
                        self._to_topology(replace(update, t=t), None)
            self._journal_strategy(t, strategy_id, "dissolved", save=True)
        return True

    def _apply_declarations(self, t: float) -> None:
        for sid, decl in list(self.declarations.items()):
            if sid in self.topology.strategies or sid in self.topology.spent:
                continue
            a = assess(decl, self.latest)
            if a.readiness is not Readiness.READY:
                if a.readiness is not Readiness.WAITING:
                    self._report(sid, a.readiness.value, a.detail, t)
                continue
            refused = None
            for pid in a.legs:
                assert pid is not None
                try:
                    self.topology.validate(self.latest[pid], sid)
                except Refused as exc:
                    refused = str(exc)
            if refused is not None:
                self._report(sid, "refused", refused, t)
                continue
            for pid in a.legs:
                assert pid is not None
                self._to_topology(replace(self.latest[pid], t=t), sid)
            self._journal_strategy(t, sid, "applied", detail=f"legs {list(a.legs)}")

    def _ended(self, sid: str, why: str, t: float) -> None:
        if sid in self.topology.spent:
            self.declarations.pop(sid, None)
            self._journal_strategy(t, sid, "ended", detail=why, save=True)

    def _report(self, sid: str, what: str, detail: str, t: float) -> None:
        if self._reported.get(sid) == detail:
            return  # said once per problem, not per quote
        self._reported[sid] = detail
        log.error("strategy %s %s: %s", sid, what, detail)
        self._journal_strategy(t, sid, what, detail=detail)

    def _journal_strategy(
        self,
        t: float,
        sid: str,
        what: str,
        *,
        decl: Declaration | None = None,
        detail: str = "",
        save: bool = False,
    ) -> None:
        """A strategy event; ``save``: the declaration (or its end) is durable with it."""
        payload: dict[str, Any] = {"id": sid, "what": what, "detail": detail}
        if decl is not None:
            payload["legs"] = [
                {
                    "ratio": leg.ratio,
                    "con_id": leg.con_id,
                    "contract": None
                    if leg.contract is None
                    else json_codec.contract_fields(leg.contract),
                }
                for leg in decl.legs
            ]
        change = None
        if save:
            spec = {"what": what, "legs": payload.get("legs")} if decl is not None else None
            if spec is None and what in ("dissolved", "ended"):
                spec = {"what": what}  # spent: kept so the id is never reused
            change = StrategyChange(sid, spec)
        self.writer.write(Row(t, JournalKind.STRATEGY, payload, sid, strategy=change))

    def _restore_strategies(self, saved: Sequence[StopSnapshot]) -> None:
        """Declarations, and the live strategies' stops, as they were before the restart."""
        store = self.store
        if store is None:
            return
        for sid, spec in store.load_strategies().items():
            what = spec.get("what")
            if what == "declared" and isinstance(spec.get("legs"), list):
                try:
                    self.declarations[sid] = validate(sid, [_leg_spec(x) for x in spec["legs"]])
                except (StrategyRefused, json_codec.BadInput, KeyError, TypeError, ValueError):
                    log.error("strategy %s: its saved declaration cannot be read", sid)
            elif what in ("dissolved", "ended"):
                self.topology.spent.add(sid)
        for sid in dict.fromkeys(s.strategy for s in saved if s.strategy is not None):
            assert sid is not None
            snapshot = _latest_strategy_snapshot(store, sid)
            if snapshot is None:
                log.error("strategy %s: no saved stop state; its legs keep their stops off", sid)
                continue
            created = _created_t(store, sid)
            self.topology.restore_strategy(sid, str(snapshot.get("symbol", "")), created, snapshot)

    def journal(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        kinds: Sequence[str] = (),
        position_id: str | None = None,
        limit: int = 1000,
        after_seq: int | None = None,
        newest: bool = False,
    ) -> Sequence[JournalEntry]:
        store = self.store
        if store is None:
            raise LookupError("this daemon runs without a store")
        rows = []
        wanted: list[str | None] = [*kinds] if kinds else [None]
        for kind in wanted:
            rows += store.journal(
                since_seq=after_seq,
                since_t=since,
                until_t=until,
                kind=kind,
                position_id=position_id,
                limit=limit,
                newest=newest,
            )
        rows.sort(key=lambda r: r.seq)
        rows = rows[-limit:] if newest else rows[:limit]
        return [JournalEntry(r.seq, r.t, r.kind, r.position_id, r.payload, r.wall_t) for r in rows]

    # ------------------------------------------------------------- effects

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

    def _kill_fired(self, kill: Kill) -> None:
        self.kill_switch.fired(kill)
        if self.on_kill is not None:
            self.on_kill(kill)

    def _held(self) -> tuple[list[Held], list[tuple[str, list[str]]]]:
        """Open positions with their quotes, and the strategies' legs (for a flatten)."""
        view = self.portfolio_view()
        held = []
        for row in view.rows:
            stop = self.memory.stops.get(str(row["id"]))
            if stop is None:
                continue
            held.append(
                Held(str(row["id"]), stop.contract, stop.qty, row["bid"], row["ask"], row["last"])
            )
        with self.topology.lock:
            strategies = [(s.id, list(s.legs)) for s in self.topology.strategies.values()]
        return held, strategies

    def _priority_timing(self, message: Any, waited_s: float, handled_s: float) -> None:
        if isinstance(message, CheckRequest | Admit):
            self.metrics.check_stage("queue", waited_s)
            self.metrics.check_stage("evaluate", handled_s)

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
        if view.beta_weighted_delta is not None:
            m.beta_weighted_delta(view.beta_weighted_delta)
        m.strategies(len(self.topology.strategies))
        handles = list(self.topology.positions.values())
        m.mailbox_depth("position", sum(_depth(h) for h in handles))
        m.mailbox_depth("portfolio", _depth(self.portfolio))
        m.mailbox_depth("breaker", _depth(self.breaker))
        m.coalesced(self.dispatcher.coalesced)


class EventRecorder(Protocol):
    """Takes one input event (a replay line as a dict); never blocks, never raises."""

    def record(self, event: Mapping[str, Any]) -> None: ...


class _LateBroker:
    """The broker the adapter sets on the daemon after start (what-ifs go through it)."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def whatif(self, legs: tuple[Leg, ...], timeout_s: float) -> WhatIf:
        broker = self.daemon.broker
        if broker is None:
            return WhatIf(error="no broker connected")
        return broker.whatif(legs, timeout_s)

    def ensure_quote(self, contract: Contract, wait_s: float) -> bool:
        broker = self.daemon.broker
        return False if broker is None else broker.ensure_quote(contract, wait_s)


_NO_CONTRACT = Contract("", SecType.STK)


def _leg_spec(obj: Any) -> StrategyLegSpec:
    contract = obj.get("contract")
    return StrategyLegSpec(
        int(obj["ratio"]),
        None if obj.get("con_id") is None else int(obj["con_id"]),
        None if contract is None else json_codec.contract(contract),
    )


def _latest_strategy_snapshot(store: Store, sid: str) -> dict[str, Any] | None:
    rows = store.journal(position_id=sid, limit=50, newest=True)
    for row in reversed(rows):
        snap = row.payload.get("strategy") if row.kind == "stop" else row.payload.get("state")
        if isinstance(snap, dict):
            return snap
    return None


def _created_t(store: Store, sid: str) -> float:
    rows = store.journal(position_id=sid, kind="strategy", limit=1)
    return rows[0].t if rows else 0.0


def _update_of(snap: StopSnapshot) -> PositionUpdate:
    return PositionUpdate(snap.opened_t, snap.id, snap.contract, snap.qty, snap.entry_price)


def _depth(handle: Handle) -> int:
    inbox = handle.ref.actor_inbox
    return len(inbox) if isinstance(inbox, Sized) else 0

"""The IB adapter: Interactive Brokers, through ib_async, into the daemon — and back.

It composes the parts, each in its own module with its own threading rule:

* :mod:`supervisor.ib.session` — the connection: connect, back off, probe,
  reconnect; the loop thread everything below runs on;
* :mod:`supervisor.ib.feed` — positions, market data (with the peaks between
  two events), Greeks, NLV into the daemon;
* :mod:`supervisor.ib.errors` — IB error codes → breaker failure kinds;
* :mod:`supervisor.ib.exit_orders` — closing orders, claim → place → record →
  reconcile, never two for one key; :mod:`supervisor.ib.ib_orders` — their
  IB side (single orders, BAG combos, open orders, executions);
* :mod:`supervisor.ib.kill` — a kill's global cancel and its confirmation;
* :mod:`supervisor.ib.what_if` — IB's what-if of a proposed order;
* :mod:`supervisor.ib.journal` — the one journal callable (the core's writer).

It is the daemon's :class:`~supervisor.core.ports.BrokerPort` (set as
``daemon.broker`` at start): closing orders, a kill's cancel, what-ifs and
quotes of contracts no position holds go through it.

A session is set up in a fixed order, before any market data is asked for:
positions, every open order of the account, the executions IB has, the
account's values; then the daemon's positions are reconciled with IB's, the
closing orders with IB's orders and fills, triggered stops that never got a
claim (a crash between TRIGGER and claim) get their exit, positions IB shows
already being (or having been) exited by an order this store does not know
are reported and get none, and only then are market-data subscriptions sent,
paced. Each set-up step has a timeout of its own (``sync_timeout_s``), not the
connect timeout, and a step that times out fails the connect saying which.

Threading: every public method may be called from any thread; they hop onto
the session's loop (``call_soon_threadsafe``; the blocking ones — what-if,
ensure_quote, cancel_all — wait for their answer, each within its timeout).
Everything else, ib_async's events included, runs on that loop thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import random
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import replace
from typing import Any, Final, Protocol

from ib_async import IB, Trade

from actors.messages import (
    BreakerState,
    BreakerTransition,
    Contract,
    FailureKind,
    Leg,
    StopAction,
    StopEvent,
    StopSnapshot,
    WhatIf,
)
from actors.trailing_stop import StopParams
from supervisor.config import Config, IbConfig
from supervisor.core.closing_orders import exit_for_trigger
from supervisor.core.ports import BrokerPort, CancelResult, ClosingOrder
from supervisor.ib.errors import ERROR_CLASSES, classify
from supervisor.ib.exit_orders import (
    EXIT_REF_PREFIX,
    ClaimStore,
    ClosingUpdate,
    ExitOrders,
    OrderUpdate,
    exit_limit_price,
    exit_order_ref,
    stop_exit,
)
from supervisor.ib.feed import Feed, FeedInputs, contract_of, ib_price
from supervisor.ib.ib_orders import IbOrderPort
from supervisor.ib.journal import Journal, RowWriter, WriterJournal
from supervisor.ib.kill import CancelAll, CancelOutcome, KillReport
from supervisor.ib.session import ConnectionMetrics, Session, backoff_delay
from supervisor.ib.what_if import WhatIfs

__all__ = [
    "ERROR_CLASSES",
    "EXIT_REF_PREFIX",
    "AdapterHost",
    "IbAdapter",
    "SyncFailed",
    "backoff_delay",
    "classify",
    "contract_of",
    "exit_limit_price",
    "exit_order_ref",
    "ib_price",
]

log = logging.getLogger(__name__)

#: Data-feed errors about the same thing arrive once per ticker (354 for each
#: of twenty positions); within this window one code counts as one failure, so
#: one broken subscription does not open the breaker by itself.
_DATA_FEED_DEDUPE_S: Final = 1.0
#: How often claims and records refused by a store that was down are retried.
_RETRY_S: Final = 1.0
#: The shortest set-up step timeout: a set-up is never cut off by a connect timeout.
_MIN_SYNC_TIMEOUT_S: Final = 30.0
#: IB errors refusing a market-data request (line limit, unknown contract, permissions).
_MARKET_REFUSALS: Final = frozenset({101, 200, 354, 10089, 10090, 10091, 10168, 10186, 10197})


class SyncFailed(ConnectionError):
    """A step of setting a session up was not answered in time; the message names it."""


class AdapterHost(FeedInputs, Protocol):
    """What the adapter needs of the daemon (``supervisor.core.daemon.Daemon`` is one)."""

    on_trigger: Callable[[StopEvent], None] | None
    on_transition: Callable[[BreakerTransition], None] | None
    broker: BrokerPort | None
    ib_status: Callable[[], str] | None

    @property
    def writer(self) -> RowWriter: ...

    @property
    def config(self) -> Config: ...

    @property
    def metrics(self) -> ConnectionMetrics: ...

    @property
    def exit_claims(self) -> ClaimStore | None: ...

    def triggered_stops(self) -> Sequence[StopSnapshot]: ...

    def failure(self, kind: FailureKind, code: int | None = None, detail: str = "") -> None: ...

    def success(self, detail: str = "") -> None: ...


class IbAdapter:
    """Keeps one ib_async connection alive, feeds the daemon from it, sends its orders.

    ``daemon`` provides the inputs, the config, the metrics, its journal
    writer and (unless given) the store behind ``claims``. ``journal`` is the
    one journal callable of the adapter (default: the daemon's writer);
    ``on_kill_step(kill_id, step, detail)`` is told of each step of a kill's
    cancel (default: a ``kill`` journal row); ``on_closing`` of each
    journaled step of a closing order; ``triggered_stops`` lists the durable
    triggered stops to reconcile (default: the store's saved stops).
    ``recover_quote_wait_s`` bounds the wait for a quote to price such a
    stop's exit; ``kill_attempts`` and ``kill_first_wait_s`` shape a kill's
    cancel retries (the wait doubles, up to 4 s).
    """

    def __init__(
        self,
        daemon: AdapterHost,
        config: IbConfig | None = None,
        *,
        rng: random.Random | None = None,
        stop_timeout_s: float = 5.0,
        journal: Journal | None = None,
        claims: ClaimStore | None = None,
        on_kill_step: KillReport | None = None,
        on_closing: Callable[[ClosingUpdate], None] | None = None,
        triggered_stops: Callable[[], Sequence[StopSnapshot]] | None = None,
        stop_params: Callable[[str], StopParams] | None = None,
        sync_timeout_s: float | None = None,
        recover_quote_wait_s: float = 5.0,
        kill_attempts: int = 5,
        kill_first_wait_s: float = 0.25,
    ) -> None:
        self.daemon = daemon
        self.config = config if config is not None else daemon.config.ib
        cfg = self.config
        self.journal: Journal = (
            journal if journal is not None else WriterJournal(daemon.writer, daemon.clock)
        )
        self.claims: ClaimStore | None = claims if claims is not None else daemon.exit_claims
        self.on_kill_step: KillReport = on_kill_step if on_kill_step is not None else self._kill_row
        self.sync_timeout_s = (
            sync_timeout_s
            if sync_timeout_s is not None
            else max(_MIN_SYNC_TIMEOUT_S, 3 * cfg.connect_timeout_s)
        )
        self.recover_quote_wait_s = recover_quote_wait_s
        self._triggered_stops = triggered_stops
        self.session = Session(
            cfg,
            self,
            failure=self._failure,
            metrics=daemon.metrics,
            rng=rng,
            stop_timeout_s=stop_timeout_s,
        )
        self.feed = Feed(
            daemon,
            account=cfg.account,
            stop_params=stop_params if stop_params is not None else daemon.config.stop_params,
            sync_timeout_s=self.sync_timeout_s,
        )
        self._ready = False  # the session is set up: orders may go
        self.orders = IbOrderPort(self.feed, cfg, lambda: self._ready)
        self.exits = ExitOrders(
            self.orders,
            self.claims,
            self.journal,
            daemon.clock,
            success=daemon.success,
            on_update=on_closing,
        )
        self.cancels = CancelAll(
            self.orders,
            self._kill_step,
            attempts=kill_attempts,
            first_wait_s=kill_first_wait_s,
            list_timeout_s=self.sync_timeout_s,
        )
        self.what_ifs = WhatIfs(cfg.account, self._con_id)
        self._ready_evt: asyncio.Event | None = None  # on the loop: set while ready
        self._feed_errors: dict[int, float] = {}
        self._early: list[ClosingOrder] = []  # closing orders before start(): sent at start
        self._early_lock = threading.Lock()
        self._pending_kills: list[str] = []  # kills waiting for a session
        self._hooked_trigger = False
        self._hooked_transition = False
        self._started = False
        self._attached: IB | None = None

    # ------------------------------------------------------------------ life

    @property
    def connects(self) -> int:
        """Successful connects so far (the first one included)."""
        return self.session.connects

    @property
    def quotes(self) -> int:
        """Quotes handed to the daemon so far."""
        return self.feed.quotes

    def start(self) -> None:
        """Start the loop thread and begin connecting; returns at once."""
        with self._early_lock:
            if self._started:
                return
            if self.config.exit_orders:
                self.daemon.on_trigger = self.on_trigger
                self._hooked_trigger = True
            if self.config.cancel_on_open:
                self.daemon.on_transition = self.on_transition
                self._hooked_transition = True
            self.daemon.broker = self
            self.daemon.ib_status = self.status
            self.session.start()
            self.session.call_soon(self._begin)
            self._started = True

    def _begin(self) -> None:
        self._ready_evt = asyncio.Event()
        self.session.spawn(self._retry_loop())
        with self._early_lock:
            early, self._early = self._early, []
        for order in early:
            self._submit(order)

    def stop(self) -> None:
        """Disconnect and stop the loop thread; bounded by ``stop_timeout_s``."""
        if self._hooked_trigger and self.daemon.on_trigger == self.on_trigger:
            self.daemon.on_trigger = None
        if self._hooked_transition and self.daemon.on_transition == self.on_transition:
            self.daemon.on_transition = None
        if self.daemon.broker is self:
            self.daemon.broker = None
        if self.daemon.ib_status == self.status:
            self.daemon.ib_status = None
        self.session.stop()

    # ---------------------------------------------------------------- status

    def status(self) -> str:
        """The connection state for /healthz: connected, connecting or disconnected."""
        return self.session.status()

    def wait_status(self, state: str, timeout: float) -> bool:
        """Block until the adapter is in ``state``; False after ``timeout`` seconds."""
        return self.session.wait_status(state, timeout)

    # --------------------------------------------------------- session hooks

    async def session_up(self, ib: IB, session: int) -> None:
        """Set up a fresh session; raises :class:`SyncFailed` naming a step that timed out."""
        self._set_ready(False)
        if self._attached is not ib:
            self._attached = ib
            self.feed.attach(ib)
            ib.orderStatusEvent += self._on_order_status
        self.feed.begin(ib, session)
        self.orders.ib = ib
        positions = await self._step("positions", self.feed.sync_positions())
        if not self.config.readonly:
            await self._step("open orders", self.orders.list_open_orders(self.sync_timeout_s))
        await self._step("executions", ib.reqExecutionsAsync())
        account = await self._account_updates(ib)
        self.feed.reconcile(positions)
        self.feed.account_values()
        self.feed.subscribe_pnl(account)
        self._set_ready(True)
        if not self.config.readonly:
            self.exits.follow(s.trigger_id for s in self._stops() if s.trigger_id)
            self.exits.on_ready()
            self.exits.report_refusals(self.feed.held_ids())
            if self.config.exit_orders:
                self.session.spawn(self._recover(session))
        self.feed.go_live()
        kills, self._pending_kills = self._pending_kills, []
        for kill_id in kills:
            self.session.spawn(self._resume_cancel(kill_id))

    def _set_ready(self, ready: bool) -> None:
        self._ready = ready
        if self._ready_evt is not None:
            if ready:
                self._ready_evt.set()
            else:
                self._ready_evt.clear()

    async def _step(self, name: str, awaitable: Coroutine[Any, Any, Any] | Any) -> Any:
        try:
            return await asyncio.wait_for(awaitable, self.sync_timeout_s)
        except TimeoutError:
            raise SyncFailed(
                f"session set-up: {name} not answered within {self.sync_timeout_s:g}s"
            ) from None

    async def _account_updates(self, ib: IB) -> str:
        """Subscribe to the account's values (NLV); a slow answer is logged, not fatal.

        The account: ``[ib] account``, else the only one IB manages ("" when
        there are several and none is configured).
        """
        account = self.config.account
        if not account:
            accounts = ib.client.getAccounts()
            account = accounts[0] if len(accounts) == 1 else ""
        if not account:
            log.warning("several IB accounts and no [ib] account: no account values, no P&L")
            return ""
        try:
            await asyncio.wait_for(ib.reqAccountUpdatesAsync(account), self.sync_timeout_s)
        except TimeoutError:
            log.warning(
                "account values of %s not complete within %gs", account, self.sync_timeout_s
            )
        return account

    def session_lost(self) -> None:
        self._set_ready(False)
        self.feed.end()

    def data_lost(self) -> None:
        self.feed.resubscribe()
        self.session.spawn(self.feed.refresh_positions())

    def error(self, req_id: int, code: int, message: str, contract: object) -> None:
        if self.what_ifs.owns(req_id):  # a what-if's answer, not an order rejection
            log.warning("IB error %d on a what-if (req %d): %s", code, req_id, message)
            self.what_ifs.on_error(req_id, code, message)
            return
        if code in _MARKET_REFUSALS and self.feed.market_refused(contract, message):
            log.warning("IB refused a market-data line (%d): %s", code, message)
        kind = classify(code, message)
        if kind is None:
            log.info("IB notice %d (req %d): %s", code, req_id, message)
            return
        if kind is FailureKind.DATA_FEED:
            now = asyncio.get_running_loop().time()
            last = self._feed_errors.get(code)
            self._feed_errors[code] = now
            if last is not None and now - last < _DATA_FEED_DEDUPE_S:
                log.info("IB error %d (req %d) repeated: %s", code, req_id, message)
                return
        log.warning("IB error %d (req %d) → %s failure: %s", code, req_id, kind.value, message)
        self.daemon.failure(kind, code, message[:500])
        if req_id > 0:
            self.exits.on_error(req_id, code, message)

    def _failure(self, kind: FailureKind, code: int | None, detail: str) -> None:
        self.daemon.failure(kind, code, detail)

    # --------------------------------------------------------------- orders

    def on_trigger(self, event: StopEvent) -> None:
        """A TRIGGER was journaled: its one exit order (called on the daemon's I/O thread)."""
        if event.action is not StopAction.TRIGGER:
            return
        if event.trigger_id is None:
            log.error("TRIGGER of %s has no trigger id: no exit order", event.id)
            return
        order = exit_for_trigger(event)
        if order is None:
            log.warning("TRIGGER of %s (%s): nothing to close", event.id, event.trigger_id)
            return
        if getattr(self.daemon, "claims_exits", False):
            order = replace(order, claimed=True)  # claimed in the TRIGGER's transaction
        self.place_closing(order)

    def place_closing(self, order: ClosingOrder) -> None:
        """Claim, place, record and reconcile one closing order (asynchronous, any thread)."""
        with self._early_lock:
            if not self._started:
                self._early.append(order)
                return
        if not self.session.call_soon(self._submit, order):
            log.error("IB adapter stopped: closing order %s not sent", order.key)
            self.journal(
                "exit_order",
                {"status": "not_sent", "trigger_id": order.key, "detail": "IB adapter stopped"},
                order.legs[0].position_id if len(order.legs) == 1 else None,
            )

    def _submit(self, order: ClosingOrder) -> None:
        """On the loop: qualify the legs a combo needs, then hand the order over."""
        if len(order.legs) > 1 and any(not leg.position_id.isdigit() for leg in order.legs):
            self.session.spawn(self._qualify_then_submit(order))
            return
        self.exits.submit(order)

    async def _qualify_then_submit(self, order: ClosingOrder) -> None:
        await self.orders.qualify(order.legs, self.sync_timeout_s)
        self.exits.submit(order)

    async def _retry_loop(self) -> None:
        while True:
            await asyncio.sleep(_RETRY_S)
            try:
                self.exits.tick()
            except Exception:
                log.exception("retrying closing orders failed")

    def _on_order_status(self, trade: Trade) -> None:
        try:
            order = trade.order
            if not self.exits.owns(order.orderId, order.clientId, order.orderRef or ""):
                return
            code, text = 0, ""
            if trade.log and trade.log[-1].errorCode:
                code, text = int(trade.log[-1].errorCode), trade.log[-1].message
            st = trade.orderStatus
            self.exits.on_status(
                OrderUpdate(
                    order_id=int(order.orderId),
                    client_id=int(order.clientId),
                    order_ref=order.orderRef or "",
                    status=st.status,
                    filled=float(st.filled),
                    remaining=float(st.remaining),
                    avg_fill_price=float(st.avgFillPrice),
                    error_code=code,
                    error_text=text,
                )
            )
        except Exception:
            log.exception("handling an order status failed")

    def _stops(self) -> Sequence[StopSnapshot]:
        """The durable triggered stops (their TRIGGER is journaled)."""
        if self._triggered_stops is not None:
            return self._triggered_stops()
        return self.daemon.triggered_stops()

    async def _recover(self, session: int) -> None:
        """Exits for triggered stops that were never claimed (a crash between TRIGGER and claim)."""
        todo = self.exits.unclaimed(self._stops())
        for snap in todo:
            self.session.spawn(self._recover_one(snap, session))

    async def _recover_one(self, snap: StopSnapshot, session: int) -> None:
        pid, tid = snap.id, snap.trigger_id
        assert tid is not None
        price, source = await self._exit_price(snap)
        if session != self.session.session or not self._ready:
            return  # the next session recovers it
        if not self.exits.unclaimed([snap]):
            return  # its TRIGGER's own exit got there meanwhile (it was only in flight)
        if price is None:
            log.error(
                "triggered stop %s (%s) has no exit claimed and no price to place one", pid, tid
            )
            self.journal(
                "exit_order",
                {
                    "status": "unplaced",
                    "trigger_id": tid,
                    "order_ref": exit_order_ref(tid),
                    "detail": "triggered without a claimed exit, and no price to place one",
                },
                pid,
            )
            return
        log.error(
            "triggered stop %s (%s) had no exit claimed (a crash between TRIGGER and claim): "
            "placing it now at %s (%s)",
            pid,
            tid,
            price,
            source,
        )
        self.journal(
            "exit_order",
            {
                "status": "recovering",
                "trigger_id": tid,
                "order_ref": exit_order_ref(tid),
                "price": price,
                "price_source": source,
            },
            pid,
        )
        self.exits.submit(stop_exit(tid, pid, snap.contract, snap.qty, price))

    async def _exit_price(self, snap: StopSnapshot) -> tuple[float | None, str]:
        """The exit-side price of the position now (bid for a long, ask for a short).

        Waits up to ``recover_quote_wait_s`` for a quote with that side; without
        one, the stop level itself (the price the stop decided to exit at).
        """
        pid = snap.id
        if self.feed.held(pid) is not None:
            # A first tick may carry only some sides (IB sends bid, ask and last
            # as separate messages): wait for the exit side itself, not any quote.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.recover_quote_wait_s
            while True:
                prices = self.feed.last_prices(pid)
                if prices is not None:
                    bid, ask, _ = prices
                    side = bid if snap.qty > 0 else ask
                    if side is not None and side == side and 0 < side < float("inf"):
                        return side, "bid" if snap.qty > 0 else "ask"
                left = deadline - loop.time()
                if left <= 0 or not await self.feed.wait_quote(pid, left):
                    break
        stop = snap.stop
        if stop is not None and stop == stop and 0 < stop < float("inf"):
            return stop, "stop level (no quote)"
        return None, "none"

    # ----------------------------------------------------------------- kill

    def cancel_all(self, kill_id: str, timeout_s: float) -> CancelResult:
        """Global cancel, then confirm from IB's open orders that none is left (retried).

        Blocks the calling thread (the kill switch's worker, never an actor)
        for at most ``timeout_s``. Without a connection the cancel is carried
        out when IB is back; past the timeout it goes on in the background.
        Every step goes to ``on_kill_step``.
        """
        if self.config.readonly:
            return CancelResult(False, 0, "a read-only IB session cannot cancel orders")
        fut = self.session.run_coroutine(self._cancel_all(kill_id, timeout_s))
        if fut is None:
            return CancelResult(False, 0, "the IB adapter is not running")
        try:
            return fut.result(timeout_s + 0.5)
        except concurrent.futures.TimeoutError:
            return CancelResult(False, 0, f"not confirmed within {timeout_s:g}s")

    async def _cancel_all(self, kill_id: str, timeout_s: float) -> CancelResult:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        if not self.orders.ready():
            self._kill_step(kill_id, "waiting_for_connection", {})
            if not await self._wait_ready(deadline - loop.time()):
                if kill_id not in self._pending_kills:
                    self._pending_kills.append(kill_id)
                return CancelResult(
                    False, 0, "IB is not connected: the global cancel goes when IB is back"
                )
        task = asyncio.ensure_future(self.cancels.run(kill_id))
        done, _ = await asyncio.wait({task}, timeout=max(deadline - loop.time(), 0.0))
        if not done:  # it goes on, and keeps reporting its steps
            self.session.spawn(self._finish_cancel(kill_id, task))
            return CancelResult(False, 0, f"not confirmed within {timeout_s:g}s (still trying)")
        return self._cancel_result(kill_id, task.result())

    async def _finish_cancel(self, kill_id: str, task: asyncio.Future[CancelOutcome]) -> None:
        self._cancel_result(kill_id, await task)

    async def _resume_cancel(self, kill_id: str) -> None:
        """A kill's cancel that waited for IB (or was cut by a lost session)."""
        self._cancel_result(kill_id, await self.cancels.run(kill_id))

    def _cancel_result(self, kill_id: str, outcome: CancelOutcome) -> CancelResult:
        if outcome.outcome == "interrupted" and kill_id not in self._pending_kills:
            self._pending_kills.append(kill_id)
        if outcome.outcome == "confirmed":
            return CancelResult(True, 0, f"no open order left after {outcome.attempts} attempt(s)")
        if outcome.outcome == "interrupted":
            return CancelResult(
                False,
                len(outcome.left),
                "IB was lost mid-way: the cancel goes again when it is back",
            )
        ids = ", ".join(f"{o.order_id}/{o.client_id}" for o in outcome.left)
        return CancelResult(
            False, len(outcome.left), f"still open after {outcome.attempts} attempts: {ids}"
        )

    async def _wait_ready(self, timeout_s: float) -> bool:
        evt = self._ready_evt
        if evt is None or timeout_s <= 0:
            return self.orders.ready()
        try:
            await asyncio.wait_for(evt.wait(), timeout_s)
        except TimeoutError:
            return False
        return self.orders.ready()

    def _kill_step(self, kill_id: str, step: str, detail: Mapping[str, Any]) -> None:
        try:
            self.on_kill_step(kill_id, step, detail)
        except Exception:
            log.exception("reporting kill step %s failed", step)

    def _kill_row(self, kill_id: str, step: str, detail: Mapping[str, Any]) -> None:
        self.journal("kill", {"kill_id": kill_id, "step": step, **detail}, None)

    # ------------------------------------------------------- what-if, quotes

    def whatif(self, legs: Sequence[Leg], timeout_s: float) -> WhatIf:
        """IB's what-if for the whole order (one combo for several legs), within ``timeout_s``."""
        fut = self.session.run_coroutine(self._whatif(tuple(legs), timeout_s))
        if fut is None:
            return WhatIf(error="the IB adapter is not running")
        try:
            return fut.result(timeout_s + 0.5)
        except concurrent.futures.TimeoutError:
            return WhatIf(error=f"no what-if answer within {timeout_s:g}s")

    async def _whatif(self, legs: tuple[Leg, ...], timeout_s: float) -> WhatIf:
        ib = self.orders.ib
        if ib is None or not self.orders.ready():
            return WhatIf(error="IB is not connected")
        try:
            return await asyncio.wait_for(self.what_ifs.ask(ib, legs, timeout_s), timeout_s)
        except TimeoutError:
            return WhatIf(error=f"no what-if answer within {timeout_s:g}s")

    async def _con_id(self, contract: Contract) -> int | None:
        return await self.orders.con_id(contract, self.sync_timeout_s)

    def ensure_quote(self, contract: Contract, wait_s: float) -> bool:
        """A first quote of ``contract`` within ``wait_s`` (subscribing if nothing quotes it).

        Quotes of a contract no position holds go to the daemon's
        ``market_quote``. False when none came in time, or IB refused the line.
        """
        fut = self.session.run_coroutine(self._ensure_quote(contract, wait_s))
        if fut is None:
            return False
        try:
            return fut.result(wait_s + 0.5)
        except concurrent.futures.TimeoutError:
            return False

    async def _ensure_quote(self, contract: Contract, wait_s: float) -> bool:
        if self.feed.quoted(contract):
            return True
        if not self.orders.ready():
            return False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        try:
            con_id = await asyncio.wait_for(self.orders.con_id(contract, wait_s), wait_s)
        except TimeoutError:
            return False
        if not con_id:
            log.warning("no IB contract for %s: no quote", contract)
            return False
        return await self.feed.ensure_quote(contract, con_id, max(deadline - loop.time(), 0.0))

    # --------------------------------------------------------------- breaker

    def on_transition(self, tr: BreakerTransition) -> None:
        """With ``cancel_on_open``: the breaker opened, cancel every working order.

        Called on the daemon's I/O thread. ``reqGlobalCancel`` cancels every
        open order of the account, our exit orders included.
        """
        if tr.to_state is not BreakerState.OPEN or tr.from_state is BreakerState.OPEN:
            return
        if not self.session.call_soon(self._global_cancel):
            log.error("breaker opened but the IB adapter is not running: no global cancel")

    def _global_cancel(self) -> None:
        try:
            self.orders.global_cancel()
        except ConnectionError:
            log.error("breaker opened while IB is disconnected: no global cancel sent")
            self.journal("exit_order", {"status": "global_cancel_not_sent"}, None)
            return
        log.warning("breaker opened: cancelling every open order (reqGlobalCancel)")
        self.journal("admin", {"action": "global_cancel", "operator": "ib_adapter"}, None)

    # -------------------------------------------------------------- helpers

    def __repr__(self) -> str:
        return f"IbAdapter({self.config.host}:{self.config.port}, {self.status()})"

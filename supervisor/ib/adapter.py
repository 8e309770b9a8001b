"""The IB adapter: Interactive Brokers, through ib_async, into the daemon's facade.

Why a thread and an event loop of its own: ib_async is asyncio and keeps state
tied to the loop it runs on, while the daemon's actors run on their own
threads. The adapter owns one loop in one thread; everything that touches the
``IB`` object runs there, and the two ways in from other threads —
:meth:`IbAdapter.on_trigger` / :meth:`IbAdapter.on_transition`, called on the
daemon's I/O thread — hop onto the loop with ``call_soon_threadsafe``.

What flows where:

* positions (``reqPositions`` after each connect, then ``positionEvent``) →
  ``Daemon.position``; position id = ``str(conId)``; an option's entry price
  is IB's ``avgCost`` divided by the multiplier (IB gives it per contract).
  After every (re)connect the daemon's positions are reconciled with IB's:
  what IB no longer reports is closed, what is new is opened.
* market data (``reqMktData`` per position, ``pendingTickersEvent``) →
  ``Daemon.quote`` with ``modelGreeks``. IB's "unset" sentinels (-1, the
  1.797e308 "unset double", -2 for an unset Greek) become None and NaN stays
  NaN: judging a quote is the trailing stop's job, so the adapter never
  drops one.
* ``NetLiquidation`` (account updates / account summary) → ``Daemon.account``.
* errors (``errorEvent``) → ``Daemon.failure`` through :func:`classify` and
  the :data:`ERROR_CLASSES` table; a lost socket, a refused or failed connect
  and an unanswered probe are ``connectivity`` failures.
* statuses of our own orders (accepted, filled) → ``Daemon.success``.
* a TRIGGER, with ``[ib] exit_orders = true`` → one closing limit order,
  claimed in the store first so that no trigger ever gets a second order,
  across reconnects and restarts.
* a breaker transition to OPEN, with ``[ib] cancel_on_open = true`` →
  ``reqGlobalCancel``.

Reconnection: exponential backoff with jitter between ``reconnect_min_s`` and
``reconnect_max_s``. A socket that stays open but no longer answers is found
by ``IB.setTimeout(probe_interval_s)``: after that long without any incoming
data the adapter asks for the server time and, without an answer within the
same interval, treats the connection as lost.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import copy
import datetime as dt
import hashlib
import logging
import math
import random
import re
import threading
from collections.abc import Callable, Coroutine, Iterable, Mapping
from types import MappingProxyType
from typing import Any, Final, cast

from ib_async import IB, AccountValue, LimitOrder, OptionComputation, Position, Ticker, Trade
from ib_async import Contract as IbContract

from actors.messages import (
    BreakerState,
    BreakerTransition,
    Contract,
    FailureKind,
    Greeks,
    PositionUpdate,
    Quote,
    Right,
    SecType,
    StopAction,
    StopEvent,
)
from supervisor.asyncio_thread import start_loop_thread
from supervisor.config import IbConfig
from supervisor.core.daemon import Daemon
from supervisor.store.sqlite_store import StoreUnavailable

__all__ = [
    "ERROR_CLASSES",
    "EXIT_REF_PREFIX",
    "IbAdapter",
    "backoff_delay",
    "classify",
    "contract_of",
    "exit_limit_price",
    "exit_order_ref",
    "ib_price",
]

log = logging.getLogger(__name__)

F = FailureKind

#: IB error code → the breaker failure kind it counts as (None: not a failure).
#:
#: The classes follow IB's message-code reference and what ib_async does with
#: each code. Everything an operator would want the breaker to react to is a
#: failure; the notices IB sends at every connect, and confirmations of our own
#: actions, are not — counting them would open the breaker on a healthy link.
#: A code not listed here is a failure of kind ``other`` below 2000 (errors) and
#: not a failure from 2000 up (IB's warning and notice range); see
#: :func:`classify`. 1101 is listed as None because it is not a failure by
#: itself: the adapter answers it by subscribing to market data again.
ERROR_CLASSES: Final[Mapping[int, FailureKind | None]] = MappingProxyType(
    {
        # -- orders: the broker refused an order or could not act on it
        103: F.ORDER_REJECTED,  # duplicate order id
        104: F.ORDER_REJECTED,  # cannot modify a filled order
        110: F.ORDER_REJECTED,  # price off the tick grid (ib_async: fatal for new orders)
        135: F.ORDER_REJECTED,  # order to modify or cancel not found
        161: F.ORDER_REJECTED,  # cancel attempted when not cancellable
        201: F.ORDER_REJECTED,  # order rejected (margin wording → margin, see classify)
        203: F.ORDER_REJECTED,  # security not allowed for this account
        434: F.ORDER_REJECTED,  # order size zero
        10147: F.ORDER_REJECTED,  # cancel of an unknown order id
        10148: F.ORDER_REJECTED,  # cancel of an order that cannot be cancelled
        # -- market data: missing, refused or broken
        101: F.DATA_FEED,  # max number of tickers reached
        102: F.DATA_FEED,  # duplicate ticker id
        200: F.DATA_FEED,  # no security definition
        300: F.DATA_FEED,  # unknown ticker id
        354: F.DATA_FEED,  # not subscribed to market data
        10089: F.DATA_FEED,  # additional subscription needed
        10090: F.DATA_FEED,  # part of the requested data not subscribed
        10091: F.DATA_FEED,  # additional subscription needed (delayed available)
        10168: F.DATA_FEED,  # delayed data not enabled
        10186: F.DATA_FEED,  # delayed data not available
        10197: F.DATA_FEED,  # no market data during a competing live session
        2103: F.DATA_FEED,  # market data farm connection broken
        2105: F.DATA_FEED,  # historical data farm connection broken
        2157: F.DATA_FEED,  # security definition farm connection broken
        # -- connectivity: the link to IB is down or unusable
        100: F.CONNECTIVITY,  # message rate exceeded (TWS may disconnect)
        326: F.CONNECTIVITY,  # client id already in use
        502: F.CONNECTIVITY,  # could not connect to TWS
        504: F.CONNECTIVITY,  # not connected
        507: F.CONNECTIVITY,  # bad message length (socket corrupted)
        1100: F.CONNECTIVITY,  # connectivity between IB and TWS lost
        1300: F.CONNECTIVITY,  # socket port reset, connection dropped
        2110: F.CONNECTIVITY,  # connectivity between TWS and server broken
        # -- informational: notices, confirmations of our own actions
        202: None,  # order cancelled (also confirms our own cancels)
        321: None,  # request validation warning (the order stays live)
        399: None,  # order message warning (e.g. held until market opens)
        404: None,  # shares not available for short sale: held, not rejected
        1101: None,  # restored, data lost: the adapter resubscribes
        1102: None,  # restored, data kept
        2100: None,  # account data unsubscribed
        2104: None,  # market data farm OK
        2106: None,  # historical data farm OK
        2107: None,  # historical data farm inactive, available on demand
        2108: None,  # market data farm inactive, available on demand
        2109: None,  # outside-RTH flag ignored
        2119: None,  # market data farm connecting
        2158: None,  # security definition farm OK
        10167: None,  # showing delayed market data
    }
)

#: Rejection texts that mean a margin or buying-power problem; IB reports those
#: as 201 ("Order rejected - reason: ...") and DESIGN's ``margin`` kind trips the
#: breaker at once, which is what a margin problem calls for.
_MARGIN_TEXT: Final = re.compile(
    r"margin|equity with loan|available funds|buying power", re.IGNORECASE
)

#: orderRef of our exit orders: the prefix, then the trigger id (hashed when long).
EXIT_REF_PREFIX: Final = "rs-exit:"
#: IB keeps orderRef to about 40 characters in practice.
_MAX_ORDER_REF: Final = 40

#: IB's "unset double" (Double.MAX_VALUE), sent where a price has no value.
_UNSET_DOUBLE: Final = 1.7976931348623157e308

#: Order statuses that mean IB accepted an order (a success for the breaker).
_ACCEPTED: Final = frozenset({"PreSubmitted", "Submitted"})
#: Final statuses of an exit order worth a journal line.
_FINAL: Final = frozenset({"Filled", "Cancelled", "ApiCancelled", "Inactive"})

#: Data-feed errors about the same thing arrive once per ticker (354 for each
#: of twenty positions); within this window one code counts as one failure, so
#: one broken subscription does not open the breaker by itself.
_DATA_FEED_DEDUPE_S: Final = 1.0


# ------------------------------------------------------------------ pure helpers


def classify(code: int, message: str = "") -> FailureKind | None:
    """The breaker failure kind of IB error ``code`` (None: not a failure).

    Listed codes follow :data:`ERROR_CLASSES`; an order rejection whose text
    speaks of margin or buying power is ``margin``. Unknown codes from 2000 up
    are IB's warnings and notices (None); other unknown codes are errors of
    kind ``other``, so nothing IB calls an error is ever silently dropped.
    """
    if code in ERROR_CLASSES:
        kind = ERROR_CLASSES[code]
        if kind is F.ORDER_REJECTED and message and _MARGIN_TEXT.search(message):
            return F.MARGIN
        return kind
    if code >= 2000:
        return None
    return F.OTHER


def backoff_delay(attempt: int, min_s: float, max_s: float, rng: random.Random) -> float:
    """Seconds to wait before reconnect attempt ``attempt`` (0 for the first).

    Exponential with jitter: uniform between ``min_s`` and
    ``min(max_s, min_s·2^(attempt+1))``. Jitter keeps several daemons that
    lost the same gateway from reconnecting in lockstep.
    """
    hi = min(max_s, min_s * 2.0 ** min(attempt + 1, 60))
    lo = min(min_s, hi)
    return rng.uniform(lo, hi)


def exit_order_ref(trigger_id: str) -> str:
    """The orderRef of the exit for ``trigger_id``: how it is found again at IB.

    ``rs-exit:<trigger id>``, or ``rs-exit:<sha1 prefix>`` when that would be
    longer than IB keeps, so the mapping stays deterministic across restarts.
    """
    ref = EXIT_REF_PREFIX + trigger_id
    if len(ref) <= _MAX_ORDER_REF:
        return ref
    digest = hashlib.sha1(trigger_id.encode("utf-8")).hexdigest()
    return EXIT_REF_PREFIX + digest[: _MAX_ORDER_REF - len(EXIT_REF_PREFIX)]


def exit_limit_price(price: float, action: str, tick: float = 0.01) -> float:
    """``price`` on the tick grid, rounded toward a fill (down to sell, up to buy).

    The trigger price is a quote and normally already on the grid; rounding
    only guards against float noise and against off-grid reference prices
    (``price_source = "mid"``), which IB would refuse with error 110.
    """
    steps = price / tick
    n = math.floor(steps + 1e-6) if action == "SELL" else math.ceil(steps - 1e-6)
    return round(n * tick, 8)


def ib_price(value: float | None) -> float | None:
    """An IB price as a Quote field: IB's "unset" markers become None, NaN stays NaN."""
    if value is None:
        return None
    v = float(value)
    if v == -1.0 or v >= _UNSET_DOUBLE:
        return None
    return v


def _greek(value: float | None, unset: float) -> float | None:
    if value is None:
        return None
    v = float(value)
    if v == unset or v >= _UNSET_DOUBLE:
        return None
    return v


def greeks_of(comp: OptionComputation | None) -> Greeks | None:
    """IB's model computation as Greeks (delta and the others: -2 is unset; iv, price: -1)."""
    if comp is None:
        return None
    return Greeks(
        delta=_greek(comp.delta, -2.0),
        gamma=_greek(comp.gamma, -2.0),
        vega=_greek(comp.vega, -2.0),
        theta=_greek(comp.theta, -2.0),
        iv=_greek(comp.impliedVol, -1.0),
        und_price=_greek(comp.undPrice, -1.0),
    )


def _iso_expiry(text: str) -> str | None:
    digits = text.strip()[:8]
    try:
        return dt.datetime.strptime(digits, "%Y%m%d").date().isoformat()
    except ValueError:
        return None


def _multiplier(text: str | float | None, default: float) -> float:
    try:
        m = float(text) if text not in (None, "") else default
    except (TypeError, ValueError):
        return default
    return m if math.isfinite(m) and m > 0 else default


def contract_of(c: IbContract) -> Contract | None:
    """The supervisor's Contract for an IB contract; None for what it does not supervise.

    Stocks and options only (futures, FX, combos are not positions the stops
    understand). An option's expiry becomes ``YYYY-MM-DD`` (IB: ``YYYYMMDD``).
    """
    if c.secType == "STK":
        return Contract(c.symbol, SecType.STK)
    if c.secType != "OPT":
        return None
    right = {"C": Right.CALL, "CALL": Right.CALL, "P": Right.PUT, "PUT": Right.PUT}.get(
        (c.right or "").upper()
    )
    expiry = _iso_expiry(c.lastTradeDateOrContractMonth or "")
    strike = float(c.strike or 0.0)
    if right is None or expiry is None or not (math.isfinite(strike) and strike > 0):
        return None
    return Contract(c.symbol, SecType.OPT, right, strike, expiry, _multiplier(c.multiplier, 100.0))


def _ib_contract(position_id: str, c: Contract) -> IbContract:
    """An IB contract for one of ours, when IB has not given us its own (restored position)."""
    con_id = int(position_id) if position_id.isdigit() else 0
    if c.is_option and c.right is not None and c.strike is not None and c.expiry is not None:
        m = c.multiplier
        return IbContract(
            conId=con_id,
            symbol=c.symbol,
            secType="OPT",
            lastTradeDateOrContractMonth=c.expiry.replace("-", ""),
            strike=c.strike,
            right=c.right.value,
            multiplier=str(int(m)) if float(m).is_integer() else str(m),
            exchange="SMART",
            currency="USD",
        )
    return IbContract(
        conId=con_id, symbol=c.symbol, secType="STK", exchange="SMART", currency="USD"
    )


# ------------------------------------------------------------------ the adapter


class IbAdapter:
    """Keeps one ib_async connection alive and feeds the daemon from it.

    ``start()`` returns at once and the adapter keeps connecting in the
    background; ``stop()`` disconnects and joins its thread within
    ``stop_timeout_s``. ``rng`` seeds the reconnect jitter (tests).
    """

    def __init__(
        self,
        daemon: Daemon,
        config: IbConfig | None = None,
        *,
        rng: random.Random | None = None,
        stop_timeout_s: float = 5.0,
    ) -> None:
        self.daemon = daemon
        self.config = config if config is not None else daemon.config.ib
        self.rng = rng if rng is not None else random.Random()
        self.stop_timeout_s = stop_timeout_s
        #: Successful connects so far (the first one included).
        self.connects = 0
        #: Quotes handed to the daemon so far.
        self.quotes = 0
        self._state = "disconnected"
        self._state_cv = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._main_task: concurrent.futures.Future[None] | None = None
        self._ib: IB | None = None
        self._stopping = threading.Event()
        self._stop_evt: asyncio.Event | None = None
        self._lost: asyncio.Event | None = None
        self._live = False  # a session is up and its loss not yet reported
        self._ready = False  # ... and set up: positions known, exits may be sent
        self._session = 0
        self._connecting = False
        self._connect_error: tuple[int | None, str] | None = None
        self._connect_abort: asyncio.Event | None = None
        self._probing = False
        self._tasks: set[asyncio.Task[Any]] = set()
        # positions and market data (loop thread only)
        self._ib_contracts: dict[str, IbContract] = {}
        self._sent: dict[str, tuple[Contract, float, float]] = {}
        self._ib_qty: dict[str, float] = {}
        self._tickers: dict[str, Ticker] = {}
        self._subscribing: set[str] = set()
        self._skipped: set[str] = set()
        self._feed_errors: dict[int, float] = {}
        # exits (any thread, under the lock)
        self._lock = threading.Lock()
        self._claimed: set[str] = set()  # claims without a store
        self._unsent: dict[str, StopEvent] = {}  # claimed, known not to have gone out
        self._unclaimed: dict[str, StopEvent] = {}  # claim failed: store down, retried
        self._reported_unplaced: set[str] = set()
        self._order_status: dict[int, str] = {}
        self._succeeded: set[tuple[str, str]] = set()
        self._hooked_trigger = False
        self._hooked_transition = False

    # ------------------------------------------------------------------ life

    def start(self) -> None:
        """Start the loop thread and begin connecting; returns at once."""
        if self._thread is not None:
            return
        if self.config.exit_orders:
            self.daemon.on_trigger = self.on_trigger
            self._hooked_trigger = True
        if self.config.cancel_on_open:
            self.daemon.on_transition = self.on_transition
            self._hooked_transition = True
        loop, self._thread = start_loop_thread(
            "ib-adapter", ready_timeout_s=self.stop_timeout_s, drain_s=1.0
        )
        self._loop = loop
        self._main_task = asyncio.run_coroutine_threadsafe(self._main(), loop)
        self._main_task.add_done_callback(self._main_ended)

    def _main_ended(self, fut: concurrent.futures.Future[None]) -> None:
        """Never a silently dead adapter: a crash of the connection loop is logged loudly."""
        if fut.cancelled() or self._stopping.is_set():
            return
        exc = fut.exception()
        if exc is not None:
            log.critical("the IB adapter's connection loop crashed", exc_info=exc)
            self._set_state("disconnected")

    def stop(self) -> None:
        """Disconnect and stop the loop thread; bounded by ``stop_timeout_s``."""
        self._stopping.set()
        if self._hooked_trigger and self.daemon.on_trigger == self.on_trigger:
            self.daemon.on_trigger = None
        if self._hooked_transition and self.daemon.on_transition == self.on_transition:
            self.daemon.on_transition = None
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            fut = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            try:
                fut.result(self.stop_timeout_s)
            except Exception:
                log.warning("IB adapter did not shut down cleanly in time", exc_info=True)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(self.stop_timeout_s)
        self._loop = None
        self._thread = None
        self._set_state("disconnected")

    async def _shutdown(self) -> None:
        if self._stop_evt is not None:
            self._stop_evt.set()
        self._live = False
        ib = self._ib
        if ib is not None:
            with contextlib.suppress(Exception):
                ib.disconnect()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=max(0.5, self.stop_timeout_s / 2))

    # ---------------------------------------------------------------- status

    def status(self) -> str:
        """The connection state for /healthz: connected, connecting or disconnected."""
        return self._state

    def wait_status(self, state: str, timeout: float) -> bool:
        """Block until the adapter is in ``state``; False after ``timeout`` seconds."""
        with self._state_cv:
            return self._state_cv.wait_for(lambda: self._state == state, timeout)

    def _set_state(self, state: str) -> None:
        with self._state_cv:
            if self._state == state:
                return
            self._state = state
            self._state_cv.notify_all()
        self.daemon.metrics.ib_state(state)

    # -------------------------------------------------------------- the loop

    async def _main(self) -> None:
        """Connect, serve the session until it is lost, back off, again — until stopped."""
        self._stop_evt = asyncio.Event()
        self._lost = asyncio.Event()
        self._connect_abort = asyncio.Event()
        ib = self._ib = IB()
        ib.errorEvent += self._on_error
        ib.disconnectedEvent += self._on_disconnected
        ib.positionEvent += self._on_position
        ib.pendingTickersEvent += self._on_tickers
        ib.accountValueEvent += self._on_account_value
        ib.accountSummaryEvent += self._on_account_value
        ib.orderStatusEvent += self._on_order_status
        ib.timeoutEvent += self._on_timeout
        ib.client.apiError += self._on_api_error
        retry_task = self._spawn(self._retry_claims())
        attempt = 0
        cfg = self.config
        stable_s = max(5.0, cfg.reconnect_max_s)
        try:
            while not self._stop_evt.is_set():
                self._set_state("connecting")
                try:
                    await self._connect(ib)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._set_state("disconnected")
                    assert self._lost is not None
                    reported = self._lost.is_set()  # lost mid-setup: already counted
                    code, detail = self._connect_error or (None, _describe(exc))
                    delay = backoff_delay(
                        attempt, cfg.reconnect_min_s, cfg.reconnect_max_s, self.rng
                    )
                    attempt += 1
                    log.error(
                        "IB connect to %s:%d (client id %d) failed: %s; retrying in %.2fs",
                        cfg.host,
                        cfg.port,
                        cfg.client_id,
                        detail,
                        delay,
                    )
                    if not reported:
                        self.daemon.failure(F.CONNECTIVITY, code, f"connect failed: {detail}")
                    await self._sleep(delay)
                    continue
                started = asyncio.get_running_loop().time()
                await self._wait_lost()
                if self._stop_evt.is_set():
                    break
                if asyncio.get_running_loop().time() - started >= stable_s:
                    attempt = 0
                delay = backoff_delay(attempt, cfg.reconnect_min_s, cfg.reconnect_max_s, self.rng)
                attempt += 1
                log.warning("IB connection lost; reconnecting in %.2fs", delay)
                await self._sleep(delay)
        finally:
            retry_task.cancel()
            self._live = False
            self._ready = False
            with contextlib.suppress(Exception):
                ib.disconnect()

    async def _sleep(self, seconds: float) -> None:
        assert self._stop_evt is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_evt.wait(), seconds)

    async def _wait_lost(self) -> None:
        assert self._stop_evt is not None and self._lost is not None
        lost = asyncio.ensure_future(self._lost.wait())
        stop = asyncio.ensure_future(self._stop_evt.wait())
        try:
            await asyncio.wait({lost, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            stop.cancel()

    async def _connect(self, ib: IB) -> None:
        """One connect attempt and the session's set-up; raises when either fails.

        ib_async answers a refused client id (326) only with a timeout; the
        adapter aborts the attempt as soon as IB says 326 or closes the socket.
        """
        cfg = self.config
        assert self._connect_abort is not None and self._lost is not None
        self._connect_error = None
        self._connect_abort.clear()
        self._lost.clear()
        self._connecting = True
        try:
            connect = asyncio.ensure_future(
                ib.connectAsync(
                    cfg.host,
                    cfg.port,
                    clientId=cfg.client_id,
                    timeout=cfg.connect_timeout_s,
                    readonly=cfg.readonly,
                    account=cfg.account,
                )
            )
            abort = asyncio.ensure_future(self._connect_abort.wait())
            try:
                await asyncio.wait({connect, abort}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                abort.cancel()
            if not connect.done():
                connect.cancel()
                with contextlib.suppress(BaseException):
                    await connect
                _, why = self._connect_error or (None, "aborted")
                raise ConnectionError(why)
            connect.result()
        finally:
            self._connecting = False
        self._session += 1
        self._live = True
        try:
            await self._setup(ib)
        except BaseException:
            self._live = False
            self._ready = False
            with contextlib.suppress(Exception):
                ib.disconnect()
            raise
        self.connects += 1
        self._set_state("connected")
        log.info("IB connected to %s:%d as client %d", cfg.host, cfg.port, cfg.client_id)

    async def _setup(self, ib: IB) -> None:
        """A fresh session: positions, reconciliation, market data, account, exits, probe."""
        timeout = self.config.connect_timeout_s
        self._tickers.clear()
        self._subscribing.clear()
        await asyncio.wait_for(ib.reqPositionsAsync(), timeout)
        self._reconcile_positions(ib.positions(self.config.account))
        for av in ib.accountValues(self.config.account):
            self._on_account_value(av)
        ib.setTimeout(self.config.probe_interval_s)
        for pid in list(self._ib_contracts):
            self._spawn(self._subscribe(pid))
        trades: list[Trade] = []
        if not self.config.readonly:
            trades = await asyncio.wait_for(ib.reqAllOpenOrdersAsync(), timeout)
        self._ready = True
        self._reconcile_exits([*trades, *ib.openTrades()])

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _lose(self, detail: str) -> None:
        """The session is gone: report it once, forget its subscriptions, reconnect."""
        if not self._live:
            return
        self._live = False
        self._ready = False
        log.error("IB connection lost: %s", detail)
        self.daemon.failure(F.CONNECTIVITY, None, detail)
        self.daemon.metrics.ib_disconnect()
        self._set_state("disconnected")
        self._tickers.clear()
        self._subscribing.clear()
        ib = self._ib
        if ib is not None and ib.isConnected():
            ib.disconnect()
        if self._lost is not None:
            self._lost.set()

    # ------------------------------------------------------------ IB events

    def _on_disconnected(self) -> None:
        if self._stopping.is_set():
            return
        self._lose("socket lost")

    def _on_api_error(self, msg: str) -> None:
        if self._connecting and self._connect_abort is not None:
            if self._connect_error is None:
                self._connect_error = (None, msg)
            self._connect_abort.set()

    def _on_timeout(self, idle: float) -> None:
        if self._live and not self._probing:
            self._spawn(self._probe(self._session, idle))

    async def _probe(self, session: int, idle: float) -> None:
        """No data for a while: ask for the server time; no answer means a hung socket."""
        ib = self._ib
        if ib is None:
            return
        self._probing = True
        interval = self.config.probe_interval_s
        try:
            await asyncio.wait_for(ib.reqCurrentTimeAsync(), interval)
        except (TimeoutError, ConnectionError) as exc:
            if session == self._session and self._live:
                self._lose(
                    f"IB did not answer a probe within {interval:g}s after {idle:.1f}s "
                    f"without data (hung socket): {_describe(exc)}"
                )
            return
        finally:
            self._probing = False
        if session == self._session and self._live and ib.isConnected():
            ib.setTimeout(interval)

    def _on_error(self, req_id: int, code: int, message: str, contract: Any) -> None:
        try:
            self._error(req_id, code, message)
        except Exception:
            log.exception("handling IB error %s failed", code)

    def _error(self, req_id: int, code: int, message: str) -> None:
        if code == 1101:
            log.warning("IB: %s; subscribing to market data again", message)
            self._resubscribe()
            self._spawn(self._refresh_positions())
            return
        kind = classify(code, message)
        if self._connecting and code == 326:
            self._connect_error = (
                code,
                f"client id {self.config.client_id} in use (326): {message}",
            )
            assert self._connect_abort is not None
            self._connect_abort.set()
            return
        if kind is None:
            log.info("IB notice %d (req %d): %s", code, req_id, message)
            return
        if kind is F.DATA_FEED:
            now = asyncio.get_running_loop().time()
            last = self._feed_errors.get(code)
            self._feed_errors[code] = now
            if last is not None and now - last < _DATA_FEED_DEDUPE_S:
                log.info("IB error %d (req %d) repeated: %s", code, req_id, message)
                return
        log.warning("IB error %d (req %d) → %s failure: %s", code, req_id, kind.value, message)
        self.daemon.failure(kind, code, message[:500])
        self._exit_error(req_id, code, message)

    def _on_position(self, pos: Position) -> None:
        try:
            if self.config.account and pos.account != self.config.account:
                return
            self._position(pos)
        except Exception:
            log.exception("handling a position update failed")

    def _position(self, pos: Position) -> None:
        c = pos.contract
        pid = str(c.conId)
        qty = float(pos.position)
        if qty == 0:
            self._ib_qty.pop(pid, None)
            self._ib_contracts.pop(pid, None)
            if self._sent.pop(pid, None) is not None or pid in self.daemon.position_ids():
                self.daemon.close_position(pid)
            self._unsubscribe(pid)
            return
        mapped = contract_of(c)
        if mapped is None:
            if pid not in self._skipped:
                self._skipped.add(pid)
                log.warning(
                    "not supervising %s %s (conId %s): not a stock or option",
                    c.secType,
                    c.symbol,
                    pid,
                )
            return
        mult = mapped.multiplier if mapped.is_option else 1.0
        entry = float(pos.avgCost) / mult
        if not (math.isfinite(entry) and entry > 0):
            log.warning("position %s (%s): IB reports avgCost %r", pid, c.symbol, pos.avgCost)
        self._ib_qty[pid] = qty
        self._ib_contracts[pid] = c
        key = (mapped, qty, entry)
        if self._sent.get(pid) != key or pid not in self.daemon.position_ids():
            self._sent[pid] = key
            self.daemon.position(PositionUpdate(self.daemon.clock(), pid, mapped, qty, entry))
        if self._live and pid not in self._tickers:
            self._spawn(self._subscribe(pid))

    async def _refresh_positions(self) -> None:
        """Ask IB for every position again and reconcile (after 1101: data was lost)."""
        ib = self._ib
        if ib is None or not self._ready:
            return
        session = self._session
        try:
            await asyncio.wait_for(ib.reqPositionsAsync(), self.config.connect_timeout_s)
        except (TimeoutError, ConnectionError) as exc:
            log.warning("positions not refreshed: %s", _describe(exc))
            return
        if session == self._session and self._ready:
            self._reconcile_positions(ib.positions(self.config.account))

    def _reconcile_positions(self, positions: Iterable[Position]) -> None:
        """Make the daemon hold exactly what IB reports: close the rest, open the new."""
        held: set[str] = set()
        for pos in positions:
            if pos.position != 0:
                held.add(str(pos.contract.conId))
                self._position(pos)
        for pid in self.daemon.position_ids():
            if pid not in held:
                log.warning("position %s is no longer reported by IB: closing it", pid)
                self._sent.pop(pid, None)
                self._ib_qty.pop(pid, None)
                self._ib_contracts.pop(pid, None)
                self.daemon.close_position(pid)
        for pid in list(self._ib_contracts):
            if pid not in held:
                self._ib_contracts.pop(pid, None)
                self._ib_qty.pop(pid, None)

    async def _subscribe(self, pid: str) -> None:
        """Stream market data for a position (qualifying its contract first if needed)."""
        ib = self._ib
        if ib is None or pid in self._tickers or pid in self._subscribing:
            return
        contract = self._ib_contracts.get(pid)
        if contract is None:
            return
        session = self._session
        self._subscribing.add(pid)
        try:
            if not contract.exchange:
                contract = await self._qualified(ib, contract)
            if session != self._session or not self._live or pid not in self._ib_contracts:
                return
            self._tickers[pid] = ib.reqMktData(contract, "", False, False)
        except (ConnectionError, TimeoutError) as exc:
            log.warning("market data for %s not requested: %s", pid, _describe(exc))
        finally:
            self._subscribing.discard(pid)

    async def _qualified(self, ib: IB, contract: IbContract) -> IbContract:
        """IB's own contract for a conId (positions may come without an exchange)."""
        try:
            found = await asyncio.wait_for(
                ib.qualifyContractsAsync(IbContract(conId=contract.conId)),
                self.config.connect_timeout_s,
            )
        except TimeoutError:
            found = []
        if found and isinstance(found[0], IbContract):
            q: IbContract = found[0]
            if not q.exchange:
                q.exchange = "SMART"
            return q
        return _with_exchange(contract)

    def _unsubscribe(self, pid: str) -> None:
        ticker = self._tickers.pop(pid, None)
        ib = self._ib
        if ticker is None or ib is None or not ib.isConnected() or ticker.contract is None:
            return
        with contextlib.suppress(ConnectionError):
            ib.cancelMktData(ticker.contract)

    def _resubscribe(self) -> None:
        """After 1101 TWS has dropped every subscription: cancel ours and ask again."""
        ib = self._ib
        if ib is None or not ib.isConnected():
            return
        for pid, ticker in list(self._tickers.items()):
            if ticker.contract is None:
                continue
            with contextlib.suppress(ConnectionError):
                ib.cancelMktData(ticker.contract)
                self._tickers[pid] = ib.reqMktData(ticker.contract, "", False, False)

    def _on_tickers(self, tickers: Iterable[Ticker]) -> None:
        try:
            self._quotes(list(tickers))
        except Exception:
            log.exception("handling market data failed")

    def _quotes(self, tickers: list[Ticker]) -> None:
        t = self.daemon.clock()
        for tk in tickers:
            if tk.contract is None:
                continue
            pid = str(tk.contract.conId)
            if pid not in self._tickers:
                continue
            q = Quote(
                t,
                pid,
                ib_price(tk.bid),
                ib_price(tk.ask),
                ib_price(tk.last),
                greeks_of(tk.modelGreeks),
            )
            if self.daemon.quote(q):
                self.quotes += 1

    def _on_account_value(self, av: AccountValue) -> None:
        if av.tag != "NetLiquidation" or not av.currency:
            return
        if self.config.account and av.account != self.config.account:
            return
        try:
            value = float(av.value)
        except ValueError:
            log.warning("unreadable NetLiquidation %r", av.value)
            return
        if math.isfinite(value) and value > 0:
            self.daemon.account(value)
        else:
            log.warning("ignoring NetLiquidation %r of account %s", av.value, av.account)

    def _on_order_status(self, trade: Trade) -> None:
        try:
            self._order_status_changed(trade)
        except Exception:
            log.exception("handling an order status failed")

    def _order_status_changed(self, trade: Trade) -> None:
        ref = trade.order.orderRef or ""
        if not ref.startswith(EXIT_REF_PREFIX):
            return
        status = trade.orderStatus.status
        order_id = trade.order.orderId
        stage = "accepted" if status in _ACCEPTED else "filled" if status == "Filled" else None
        if stage is not None and (ref, stage) not in self._succeeded:
            self._succeeded.add((ref, stage))
            self.daemon.success(f"exit order {order_id} ({ref}) {status}")
        if status in _FINAL and self._order_status.get(order_id) != status:
            self._order_status[order_id] = status
            level = logging.INFO if status == "Filled" else logging.WARNING
            log.log(level, "exit order %d (%s): %s", order_id, ref, status)
            self._journal(
                "exit_order",
                {
                    "status": status.lower(),
                    "order_id": order_id,
                    "order_ref": ref,
                    "filled": trade.orderStatus.filled,
                    "avg_fill_price": trade.orderStatus.avgFillPrice,
                },
                str(trade.contract.conId) if trade.contract is not None else None,
            )

    def _exit_error(self, req_id: int, code: int, message: str) -> None:
        """Journal an error about one of our exit orders (the failure is already counted)."""
        ib = self._ib
        if ib is None or req_id <= 0:
            return
        for trade in ib.trades():
            if trade.order.orderId == req_id and (trade.order.orderRef or "").startswith(
                EXIT_REF_PREFIX
            ):
                log.error(
                    "exit order %d (%s): IB error %d: %s",
                    req_id,
                    trade.order.orderRef,
                    code,
                    message,
                )
                self._journal(
                    "exit_order",
                    {
                        "status": "error",
                        "order_id": req_id,
                        "order_ref": trade.order.orderRef,
                        "code": code,
                        "detail": message,
                    },
                    str(trade.contract.conId) if trade.contract is not None else None,
                )
                return

    # --------------------------------------------------------------- exits

    def on_trigger(self, event: StopEvent) -> None:
        """A TRIGGER was journaled: claim its exit, then place it on the IB loop.

        Called on the daemon's I/O thread. The claim is made here, durably,
        before anything is sent: whoever gets True is the one sender of that
        trigger's exit, in this process or any later one.
        """
        if event.action is not StopAction.TRIGGER:
            return
        if event.trigger_id is None:
            log.error("TRIGGER of %s has no trigger id: no exit order", event.id)
            return
        if not self._claim(event):
            return
        self._call_soon(self._place_exit, event)

    def _claim(self, event: StopEvent) -> bool:
        tid = event.trigger_id
        assert tid is not None
        store = self.daemon.store
        if store is None:
            with self._lock:
                if tid in self._claimed:
                    claimed = False
                else:
                    self._claimed.add(tid)
                    claimed = True
        else:
            try:
                claimed = store.claim_exit(tid, event.id, event.t)
            except StoreUnavailable as exc:
                log.error("exit for %s not claimed (store unavailable, will retry): %s", tid, exc)
                with self._lock:
                    self._unclaimed[tid] = event
                return False
        with self._lock:
            self._unclaimed.pop(tid, None)
        if not claimed:
            log.info("exit for trigger %s already claimed: no second order", tid)
            self._journal(
                "exit_order",
                {"status": "already_claimed", "trigger_id": tid, "order_ref": exit_order_ref(tid)},
                event.id,
            )
        return claimed

    async def _retry_claims(self) -> None:
        """Claims that failed because the store was down are tried again every second."""
        while True:
            await asyncio.sleep(1.0)
            with self._lock:
                waiting = list(self._unclaimed.values())
            for event in waiting:
                if self._claim(event):
                    self._place_exit(event)

    def _call_soon(self, fn: Callable[[StopEvent], None], event: StopEvent) -> None:
        loop = self._loop
        try:
            if loop is None or not loop.is_running():
                raise RuntimeError("loop not running")
            loop.call_soon_threadsafe(fn, event)
        except RuntimeError:
            assert event.trigger_id is not None
            log.error("IB adapter not running: exit for %s waits", event.trigger_id)
            with self._lock:
                self._unsent[event.trigger_id] = event
            self._journal(
                "exit_order",
                {"status": "waiting_for_connection", "trigger_id": event.trigger_id},
                event.id,
            )

    def _place_exit(self, event: StopEvent) -> None:
        """Send the one closing order of a claimed trigger (IB loop thread)."""
        tid = event.trigger_id
        assert tid is not None
        ib = self._ib
        if ib is None or not self._ready or not ib.isConnected():
            with self._lock:
                self._unsent[tid] = event
            log.warning("exit for %s waits for the IB connection", tid)
            self._journal(
                "exit_order", {"status": "waiting_for_connection", "trigger_id": tid}, event.id
            )
            return
        with self._lock:
            self._unsent.pop(tid, None)
        pid = event.id
        qty = event.qty
        held = self._ib_qty.get(pid)
        ref = exit_order_ref(tid)
        action = "SELL" if qty > 0 else "BUY"
        base = {"trigger_id": tid, "order_ref": ref, "action": action, "qty": abs(qty)}
        # Close what IB holds now, never more: a position that is gone, or that
        # has changed side since the decision, is not the one the stop protected,
        # and "closing" it would open new risk.
        if held is None or pid not in self._ib_contracts:
            why = "IB no longer reports the position"
            self._exit_not_placed(event, {**base, "status": "not_needed", "detail": why})
            return
        if qty == 0 or (held > 0) != (qty > 0):
            why = f"the position changed side since the trigger (now {held:g})"
            self._exit_not_placed(event, {**base, "status": "not_needed", "detail": why})
            return
        qty = held
        base["qty"] = abs(qty)
        if not (math.isfinite(event.ref_price) and event.ref_price > 0):
            why = f"no usable limit price in the trigger: {event.ref_price!r}"
            self._exit_not_placed(event, {**base, "status": "failed", "detail": why})
            return
        contract = self._order_contract(pid, event)
        limit = exit_limit_price(event.ref_price, action)
        order = LimitOrder(
            action,
            abs(qty),
            limit,
            tif="DAY",
            orderRef=ref,
            account=self.config.account,
            transmit=True,
        )
        try:
            trade = ib.placeOrder(contract, order)
        except ConnectionError as exc:
            with self._lock:
                self._unsent[tid] = event
            log.error("exit for %s not sent (%s): retried after reconnect", tid, exc)
            self._journal("exit_order", {**base, "status": "waiting_for_connection"}, pid)
            return
        order_id = int(trade.order.orderId)
        detail = {
            **base,
            "status": "placed",
            "order_id": order_id,
            "limit": limit,
            "tif": "DAY",
            "ref_price": event.ref_price,
            "stop": event.stop,
            "symbol": contract.symbol,
            "sec_type": contract.secType,
            "con_id": contract.conId,
        }
        log.warning(
            "exit order %d placed for %s: %s %s %s @ %s (%s)",
            order_id,
            pid,
            action,
            abs(qty),
            contract.symbol,
            limit,
            ref,
        )
        store = self.daemon.store
        if store is not None:
            try:
                store.record_exit_order(tid, order_id, detail)
            except StoreUnavailable as exc:
                log.critical("exit order %d for %s sent but not recorded: %s", order_id, tid, exc)
        self._journal("exit_order", detail, pid)

    def _exit_not_placed(self, event: StopEvent, detail: dict[str, Any]) -> None:
        """Resolve a claim without an order (nothing to close, or nothing to close with)."""
        tid = event.trigger_id
        assert tid is not None
        log.error("exit for %s not placed: %s", tid, detail.get("detail"))
        store = self.daemon.store
        if store is not None:
            try:
                store.record_exit_order(tid, 0, detail)
            except StoreUnavailable as exc:
                log.error("could not record the unplaced exit of %s: %s", tid, exc)
        self._journal("exit_order", detail, event.id)

    def _order_contract(self, pid: str, event: StopEvent) -> IbContract:
        ticker = self._tickers.get(pid)
        if ticker is not None and ticker.contract is not None and ticker.contract.exchange:
            return ticker.contract
        c = self._ib_contracts.get(pid)
        if c is not None:
            return c if c.exchange else _with_exchange(c)
        if event.contract is None:
            return IbContract(conId=int(pid) if pid.isdigit() else 0, exchange="SMART")
        return _ib_contract(pid, event.contract)

    def _reconcile_exits(self, trades: Iterable[Trade]) -> None:
        """After a (re)connect: match claimed exits with the orders IB has.

        A claim with no order recorded either reached IB before a crash or
        never left: an open order with its orderRef settles it; an exit this
        process knows it never sent is sent now; a position IB no longer holds
        needs none; anything else is reported (journal and log) for an
        operator, never re-sent blindly.
        """
        live: dict[str, Trade] = {}
        for trade in trades:
            ref = trade.order.orderRef or ""
            if ref.startswith(EXIT_REF_PREFIX) and not trade.isDone():
                live[ref] = trade
        with self._lock:
            unsent = dict(self._unsent)
        store = self.daemon.store
        pending: list[dict[str, Any]] = []
        if store is not None:
            try:
                pending = store.pending_exits()
            except StoreUnavailable as exc:
                log.error("cannot reconcile exit orders (store unavailable): %s", exc)
        pending_ids = {p["trigger_id"] for p in pending}
        for tid, event in unsent.items():
            if tid not in pending_ids:
                pending.append({"trigger_id": tid, "position_id": event.id})
        for p in pending:
            tid = str(p["trigger_id"])
            pid = str(p.get("position_id") or "")
            ref = exit_order_ref(tid)
            working = live.get(ref)
            if working is not None:
                order_id = int(working.order.orderId)
                detail = {
                    "status": "reconciled",
                    "trigger_id": tid,
                    "order_ref": ref,
                    "order_id": order_id,
                }
                if store is not None:
                    with contextlib.suppress(StoreUnavailable):
                        store.record_exit_order(tid, order_id, detail)
                with self._lock:
                    self._unsent.pop(tid, None)
                self._journal("exit_order", detail, pid)
                continue
            if tid in unsent:
                self._place_exit(unsent[tid])
                continue
            if pid and pid not in self._ib_contracts:
                fake = StopEvent(0.0, pid, StopAction.TRIGGER, 0.0, 0.0, 0.0, trigger_id=tid)
                self._exit_not_placed(
                    fake,
                    {
                        "status": "not_needed",
                        "trigger_id": tid,
                        "order_ref": ref,
                        "detail": "IB no longer reports the position",
                    },
                )
                continue
            if tid not in self._reported_unplaced:
                self._reported_unplaced.add(tid)
                log.error(
                    "exit for trigger %s was claimed before a restart but IB has no open order "
                    "%s: it may have been rejected, cancelled, or never sent; position %s is "
                    "still held - an operator must decide",
                    tid,
                    ref,
                    pid,
                )
                self._journal(
                    "exit_order",
                    {"status": "unplaced", "trigger_id": tid, "order_ref": ref},
                    pid or None,
                )

    # --------------------------------------------------------------- breaker

    def on_transition(self, tr: BreakerTransition) -> None:
        """With ``cancel_on_open``: the breaker opened, cancel every working order.

        Called on the daemon's I/O thread. ``reqGlobalCancel`` cancels every
        open order of the account, our exit orders included.
        """
        if tr.to_state is not BreakerState.OPEN or tr.from_state is BreakerState.OPEN:
            return
        loop = self._loop
        if loop is None or not loop.is_running():
            log.error("breaker opened but the IB adapter is not running: no global cancel")
            return
        loop.call_soon_threadsafe(self._global_cancel)

    def _global_cancel(self) -> None:
        ib = self._ib
        if ib is None or not ib.isConnected():
            log.error("breaker opened while IB is disconnected: no global cancel sent")
            self._journal("exit_order", {"status": "global_cancel_not_sent"}, None)
            return
        log.warning("breaker opened: cancelling every open order (reqGlobalCancel)")
        cast(Any, ib).reqGlobalCancel()  # untyped in ib_async
        self._journal("admin", {"action": "global_cancel", "operator": "ib_adapter"}, None)

    # --------------------------------------------------------------- journal

    def _journal(self, kind: str, payload: dict[str, Any], position_id: str | None) -> None:
        store = self.daemon.store
        if store is None:
            return
        try:
            store.append(t=self.daemon.clock(), kind=kind, payload=payload, position_id=position_id)
        except StoreUnavailable as exc:
            log.error("journal %s not written: %s (%s)", kind, exc, payload)


def _with_exchange(c: IbContract) -> IbContract:
    """A copy routed through SMART (IB reports positions without an exchange)."""
    routed = copy.copy(c)
    routed.exchange = "SMART"
    return routed


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

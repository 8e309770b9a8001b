"""A loopback IB Gateway that the real ``ib_async`` client connects to.

Why a wire-level simulator rather than a mock of ``ib_async``: the supervisor's
failure handling (reconnects, error codes, hung sockets, order reconciliation)
lives at the boundary between ``ib_async`` and the socket. A mock would test
our idea of ``ib_async``; this server tests ``ib_async`` itself, through the
same code path as production, over a real TCP connection.

This module is the transport and the session layer: the handshake, one task
per connection, dispatch of client messages, subscriptions (market data,
positions, account values, P&L) and the timers that feed them, and the fault
knobs. What the account does lives in :mod:`.broker`, prices in
:mod:`.market`, message layouts in :mod:`.encoders` and
:mod:`.client_messages`.

Cadences, as on real IB: quotes on every tick (``tick_interval``), P&L every
``pnl_interval_s`` (1 s) and at once on a fill, account values and portfolio
updates every ``account_refresh_s`` (180 s; IB's cannot be changed) - so a
client sees P&L move between two NLV updates. A new subscription is answered
with values computed then.

Threading: a :class:`GatewaySimulator` lives on one asyncio loop, and its
control methods (``add_position``, ``inject_error``…) must run on that loop.
:class:`~.thread.SimulatorThread` runs one on a private loop in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from . import encoders as enc
from .broker import (
    Broker,
    PnlValues,
    SimFill,
    SimOrder,
    SimPosition,
    UnknownContract,
)
from .client_messages import (
    IN_CANCEL_ACCOUNT_SUMMARY,
    IN_CANCEL_ACCOUNT_UPDATES_MULTI,
    IN_CANCEL_MKT_DATA,
    IN_CANCEL_ORDER,
    IN_CANCEL_PNL,
    IN_CANCEL_PNL_SINGLE,
    IN_CANCEL_POSITIONS,
    IN_PLACE_ORDER,
    IN_REQ_ACCOUNT_SUMMARY,
    IN_REQ_ACCOUNT_UPDATES_MULTI,
    IN_REQ_ACCT_DATA,
    IN_REQ_ALL_OPEN_ORDERS,
    IN_REQ_AUTO_OPEN_ORDERS,
    IN_REQ_COMPLETED_ORDERS,
    IN_REQ_CONTRACT_DATA,
    IN_REQ_CURRENT_TIME,
    IN_REQ_EXECUTIONS,
    IN_REQ_GLOBAL_CANCEL,
    IN_REQ_IDS,
    IN_REQ_MANAGED_ACCTS,
    IN_REQ_MARKET_DATA_TYPE,
    IN_REQ_MKT_DATA,
    IN_REQ_OPEN_ORDERS,
    IN_REQ_PNL,
    IN_REQ_PNL_SINGLE,
    IN_REQ_POSITIONS,
    IN_START_API,
    ContractSpec,
    PlaceOrderRequest,
    int_field,
    parse_mkt_data,
    parse_place_order,
)
from .error_codes import (
    DATA_LOST_CODE,
    ERROR_MESSAGES,
    HALTING_CODES,
    RESUMING_CODES,
    error_text,
)
from .market import Instrument, Market
from .protocol import (
    API_PREFIX,
    SERVER_VERSION,
    Field,
    ProtocolError,
    decode_fields,
    encode_message,
    frame_length,
    handshake_reply,
    parse_version_range,
)
from .what_if import WhatIfFault, order_state

log = logging.getLogger(__name__)

#: A connection whose unsent output grows past this is a stuck consumer: drop it
#: rather than buffer without bound.
MAX_WRITE_BUFFER = 8 << 20

#: How long a client may take to complete the handshake.
HANDSHAKE_TIMEOUT = 10.0

#: IB's account-update cadence (it cannot be changed on a real account).
IB_ACCOUNT_REFRESH_S = 180.0

#: Market-data lines per connection on most IB accounts.
DEFAULT_MAX_TICKERS = 100

#: The longest a periodic task sleeps before re-reading its (changeable) interval.
_MAX_NAP_S = 0.5


# ------------------------------------------------------------------ sessions


@dataclass
class _Ticker:
    """A market-data line: one instrument, or a combo's (instrument, signed ratio) legs."""

    instrument: Instrument | None
    legs: tuple[tuple[Instrument, int], ...]
    symbols: frozenset[str]


@dataclass
class _PnlSub:
    """A ``reqPnL`` (``con_id`` None) or ``reqPnLSingle`` subscription."""

    start: float
    con_id: int | None


@dataclass
class _Session:
    """One client connection."""

    seq: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    client_id: int | None = None
    ready: bool = False
    closing: bool = False
    positions: bool = False
    account_updates: bool = False
    account_multi: set[int] = field(default_factory=set)
    summary_subs: dict[int, frozenset[str]] = field(default_factory=dict)
    pnl_subs: dict[int, _PnlSub] = field(default_factory=dict)
    tickers: dict[int, _Ticker] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None

    def close(self) -> None:
        self.closing = True
        with contextlib.suppress(Exception):
            self.writer.close()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Events:
    """The broker's events, routed to the server's private senders."""

    def __init__(self, sim: GatewaySimulator) -> None:
        self._sim = sim

    def order_filled(self, order: SimOrder, fills: Sequence[SimFill], last_price: float) -> None:
        self._sim._announce_fill(order, fills, last_price)

    def position_changed(self, inst: Instrument, qty: float, avg_cost: float) -> None:
        self._sim._push_position(inst, qty, avg_cost)

    def pnl_changed(self) -> None:
        self._sim.push_pnl()


# ----------------------------------------------------------------- simulator


class GatewaySimulator:
    """An asyncio TCP server speaking the TWS API to real ``ib_async`` clients.

    Bound to loopback only: it has no authentication and must never be
    reachable from another machine. Control methods are synchronous and must
    be called on the simulator's event loop (see ``SimulatorThread``).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        account: str = "DU1234567",
        net_liquidation: float = 1_000_000.0,
        seed: int = 0,
        tick_interval: float = 0.25,
        auto_walk: bool = False,
        walk_speed: float = 1.0,
        fill_orders: bool = False,
        fill_marketable: bool = False,
        pnl_interval_s: float = 1.0,
        pnl_unset_s: float = 0.0,
        account_refresh_s: float = IB_ACCOUNT_REFRESH_S,
        max_tickers: int = DEFAULT_MAX_TICKERS,
        echo_order_ref: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not _is_loopback(host):
            raise ValueError(f"the gateway simulator binds to loopback only, not {host!r}")
        for name, v in (
            ("tick_interval", tick_interval),
            ("pnl_interval_s", pnl_interval_s),
            ("account_refresh_s", account_refresh_s),
        ):
            if not v > 0:
                raise ValueError(f"{name} must be positive, got {v}")
        if max_tickers < 1:
            raise ValueError(f"max_tickers must be >= 1, got {max_tickers}")
        # "localhost" may resolve to both ::1 and 127.0.0.1, and with port 0
        # each would get its own port: bind one address.
        self.host = "127.0.0.1" if host == "localhost" else host
        self._requested_port = port
        self.account = account
        self.tick_interval = tick_interval
        self.auto_walk = auto_walk
        #: Seconds between P&L messages to each subscription.
        self.pnl_interval_s = pnl_interval_s
        #: A P&L subscription gets DBL_MAX values for this long after it is made.
        self.pnl_unset_s = pnl_unset_s
        #: Seconds between pushes of account values and portfolio updates.
        self.account_refresh_s = account_refresh_s
        #: Market-data lines a connection may hold; past it, error 101.
        self.max_tickers = max_tickers
        #: > 0: a new subscription's close tick goes alone, its bid, ask and last
        #: this many seconds later — what a client sees when a TCP read splits them.
        self.close_alone_s = 0.0
        #: ``False``: open orders and executions carry an empty orderRef.
        self.echo_order_ref = echo_order_ref
        self.market = Market(seed=seed, walk_speed=walk_speed, clock=clock)
        self.broker = Broker(
            self.market, account=account, cash=net_liquidation, clock=clock, events=_Events(self)
        )
        self.broker.fill_orders = fill_orders
        self.broker.fill_marketable = fill_marketable
        #: Every message clients sent, as ``(client_id, fields)``, bounded.
        self.requests: deque[tuple[int | None, list[str]]] = deque(maxlen=10_000)
        self._published: dict[tuple[str, str], str] = self.broker.account_values()
        self._sessions: dict[int, _Session] = {}
        self._session_seq = itertools.count(1)
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._busy_client_ids: set[int] = set()
        self._unhung: asyncio.Event | None = None
        self._hang_handle: asyncio.TimerHandle | None = None
        self._pnl_unset_until = 0.0
        self._what_if_fault = WhatIfFault()
        self._what_if_once: deque[WhatIfFault] = deque()
        self._what_if_timers: set[asyncio.TimerHandle] = set()
        #: True while the simulated data farm is down (after 1100/2103/10197).
        self.data_halted = False

    # ------------------------------------------------------- broker's state

    @property
    def positions(self) -> dict[int, SimPosition]:
        """Positions held, by conId (the broker's own dict)."""
        return self.broker.positions

    @property
    def orders(self) -> list[SimOrder]:
        """Every PLACE_ORDER received, in order (modifications are new records)."""
        return self.broker.orders

    @property
    def fills(self) -> list[SimFill]:
        """Every execution, in order (a combo: one per leg, then the BAG's)."""
        return self.broker.fills

    @property
    def what_ifs(self) -> list[SimOrder]:
        """Every what-if request received (never an order)."""
        return self.broker.what_ifs

    @property
    def fill_orders(self) -> bool:
        """Fill every accepted order at once (at its limit, or the touch for MKT)."""
        return self.broker.fill_orders

    @fill_orders.setter
    def fill_orders(self, on: bool) -> None:
        self.broker.fill_orders = on

    @property
    def fill_marketable(self) -> bool:
        """Fill LMT/MKT orders (single or combo) when marketable, at the touch."""
        return self.broker.fill_marketable

    @fill_marketable.setter
    def fill_marketable(self, on: bool) -> None:
        self.broker.fill_marketable = on
        if on:
            self.broker.match()

    @property
    def account_values(self) -> dict[tuple[str, str], str]:
        """The account values last computed for clients: (tag, currency) → text."""
        return self._published

    # -------------------------------------------------------------- lifecycle

    @property
    def port(self) -> int:
        """The TCP port actually bound (useful with ``port=0``)."""
        if self._port is None:
            raise RuntimeError("simulator not started")
        return self._port

    @property
    def running(self) -> bool:
        """Whether the listening socket is open."""
        return self._server is not None

    async def start(self) -> int:
        """Open the listening socket; return the bound port."""
        if self._server is not None:
            return self.port
        self._unhung = asyncio.Event()
        self._unhung.set()
        self._server = await asyncio.start_server(self._handle, self.host, self._requested_port)
        sock = self._server.sockets[0]
        self._port = int(sock.getsockname()[1])
        self._tasks = [
            asyncio.create_task(
                self._periodic(lambda: self.tick_interval, self._tick), name="sim-tick"
            ),
            asyncio.create_task(
                self._periodic(lambda: self.pnl_interval_s, self.push_pnl), name="sim-pnl"
            ),
            asyncio.create_task(
                self._periodic(lambda: self.account_refresh_s, self.refresh_account),
                name="sim-account",
            ),
        ]
        log.info("gateway simulator listening on %s:%d", self.host, self._port)
        return self._port

    async def stop(self) -> None:
        """Close the server and every client, cancel every task; bounded."""
        server, self._server = self._server, None
        if self._hang_handle is not None:
            self._hang_handle.cancel()
            self._hang_handle = None
        for h in self._what_if_timers:
            h.cancel()
        self._what_if_timers.clear()
        if self._unhung is not None:
            self._unhung.set()
        tasks: list[asyncio.Task[Any]] = []
        for t in self._tasks:
            t.cancel()
            tasks.append(t)
        self._tasks = []
        if server is not None:
            server.close()
        # Closing a socket ends its session task (its reader sees EOF); cancel
        # only the ones that do not end, so asyncio has no cancelled
        # connection callbacks to complain about.
        sessions: list[asyncio.Task[Any]] = []
        for s in list(self._sessions.values()):
            s.close()
            if s.task is not None and s.task is not asyncio.current_task():
                sessions.append(s.task)
        if sessions:
            _done, stuck = await asyncio.wait(sessions, timeout=2.0)
            for t in stuck:
                t.cancel()
            tasks.extend(stuck)
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)
        if server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 5.0)
        self._sessions.clear()
        log.info("gateway simulator stopped")

    async def __aenter__(self) -> GatewaySimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def client_ids(self) -> list[int]:
        """Client ids of connections that completed the API handshake."""
        return sorted(
            s.client_id for s in self._sessions.values() if s.ready and s.client_id is not None
        )

    async def _periodic(self, interval: Callable[[], float], action: Callable[[], object]) -> None:
        """Run ``action`` every ``interval()`` seconds; a changed interval applies at once."""
        last = time.monotonic()
        while True:
            due = last + interval()
            now = time.monotonic()
            if now < due:
                await asyncio.sleep(min(due - now, _MAX_NAP_S))
                continue
            last = now
            try:
                action()
            except Exception:
                log.exception("periodic simulator task failed")

    # -------------------------------------------------------------- positions

    def add_position(self, pos: SimPosition) -> None:
        """Hold (or replace) a position and tell every position subscriber.

        The instrument becomes quotable; an unknown underlying is created
        from ``und_price`` (or, for a stock, from ``avg_cost``). Neither NLV
        nor daily P&L moves (cash takes the other side at the mark).
        """
        self.broker.add_position(pos)

    def remove_position(self, con_id: int) -> None:
        """Close a position by hand: subscribers get it with quantity 0."""
        self.broker.remove_position(con_id)

    def _push_position(self, inst: Instrument, qty: float, avg_cost: float) -> None:
        realized = self.broker.pnl_single(inst.con_id).realized
        price = self.market.mark(inst) if inst.symbol in self.market.underlyings else 0.0
        for s in self._ready_sessions():
            if s.positions:
                self._send(s, *enc.position(self.account, inst, qty, avg_cost))
            if s.account_updates:
                self._send(s, *enc.portfolio(self.account, inst, qty, price, avg_cost, realized))

    # ----------------------------------------------------------------- prices

    def set_underlying(
        self, symbol: str, price: float, vol: float = 0.25, *, push: bool = True
    ) -> None:
        """Set an underlying's price and volatility by hand.

        With ``push`` (default) every subscription on it, and on its options,
        gets a fresh quote at once. Working orders made marketable fill (with
        ``fill_marketable``).
        """
        self.market.set_underlying(symbol, price, vol)
        if push:
            self.push_quotes(symbol)
        self.broker.match()

    def set_auto_walk(self, on: bool) -> None:
        """Start or stop the periodic random walk (and its quote pushes)."""
        self.auto_walk = on

    def crash(self, symbol: str, pct: float, over_s: float) -> None:
        """Make ``symbol`` fall ``pct`` % over ``over_s`` seconds (exponentially, from now).

        Deterministic (only elapsed time matters); it composes with the
        seeded random walk and hand-set prices. Quotes, P&L, what-ifs and
        marketable orders follow the falling marks.
        """
        self.market.crash(symbol, pct, over_s, time.monotonic())

    def drift(self, symbol: str, pct_per_min: float) -> None:
        """Move ``symbol`` by ``pct_per_min`` % a minute until stopped (0 stops it)."""
        self.market.drift(symbol, pct_per_min, time.monotonic())

    def stop_moves(self, symbol: str | None = None) -> None:
        """End the crash or drift of ``symbol`` (of all, if ``None``)."""
        self.market.stop_moves(symbol)

    def push_quotes(self, symbol: str | None = None) -> int:
        """Send a quote now to every subscription (on ``symbol`` only, if given).

        Nothing is sent while the data farm is halted or the gateway hangs.
        Returns how many subscriptions were quoted.
        """
        if self.data_halted or self._is_hung():
            return 0
        n = 0
        for s in self._ready_sessions():
            for req_id, tk in list(s.tickers.items()):
                if symbol is None or symbol in tk.symbols:
                    self._send_quote(s, req_id, tk, with_close=False)
                    n += 1
        return n

    def _tick(self) -> None:
        moved = set(self.market.advance(time.monotonic()))
        if self.auto_walk:
            self.market.walk(self.tick_interval)
            self.push_quotes()
        else:
            for symbol in sorted(moved):
                self.push_quotes(symbol)
        if moved or self.auto_walk:
            self.broker.match()

    def _send_quote(self, s: _Session, req_id: int, tk: _Ticker, *, with_close: bool) -> None:
        if tk.instrument is None:
            q = self.market.combo_quote(tk.legs)
        else:
            q = self.market.quote(tk.instrument)
        for fields in enc.quote_ticks(req_id, q, with_close=with_close):
            self._send(s, *fields)
        if tk.instrument is not None and tk.instrument.is_option:
            self._send(s, *enc.option_computation(req_id, self.market.model(tk.instrument)))

    def market_data_lines(self, client_id: int | None = None) -> int:
        """Streaming market-data lines held (by ``client_id``'s connections, if given)."""
        return sum(
            len(s.tickers)
            for s in self._ready_sessions()
            if client_id is None or s.client_id == client_id
        )

    # ---------------------------------------------------------------- account

    def refresh_account(self) -> None:
        """Recompute account values and push them, with portfolio updates, to every subscriber.

        Runs every ``account_refresh_s`` by itself; call it to force one now.
        """
        values = self._compute_account_values()
        now = dt.datetime.now().strftime("%H:%M")
        for s in self._ready_sessions():
            if s.account_updates:
                for (tag, cur), val in values.items():
                    self._send(s, *enc.account_value(self.account, tag, val, cur))
                for pos in list(self.positions.values()):
                    self._send(s, *self._portfolio_fields(pos))
                self._send(s, enc.OUT_ACCT_UPDATE_TIME, 1, now)
            for req_id in s.account_multi:
                for (tag, cur), val in values.items():
                    self._send(s, *enc.account_update_multi(req_id, self.account, tag, val, cur))
            for req_id, wanted in s.summary_subs.items():
                self._send_summary(s, req_id, wanted, values, end=False)

    def _compute_account_values(self) -> dict[tuple[str, str], str]:
        self._published = self.broker.account_values()
        return self._published

    def set_account_value(self, tag: str, value: float | str, currency: str = "USD") -> None:
        """Pin one account value (it wins over the computed one) and push it at once."""
        text = repr(float(value)) if isinstance(value, int | float) else value
        self.broker.account_overrides[(tag, currency)] = text
        self._published[(tag, currency)] = text
        for s in self._ready_sessions():
            if s.account_updates:
                self._send(s, *enc.account_value(self.account, tag, text, currency))
            for req_id in s.account_multi:
                self._send(s, *enc.account_update_multi(req_id, self.account, tag, text, currency))
            for req_id, wanted in s.summary_subs.items():
                if tag in wanted or "All" in wanted:
                    self._send(s, *enc.account_summary(req_id, self.account, tag, text, currency))

    def clear_account_value(self, tag: str, currency: str = "USD") -> None:
        """Un-pin an account value: it is computed again from the next refresh."""
        self.broker.account_overrides.pop((tag, currency), None)

    def set_net_liquidation(self, value: float) -> None:
        """Set NLV now (cash is re-based; NLV follows the marks from there) and push at once.

        Every account value is recomputed and pushed to every subscriber, as
        a refresh would.
        """
        self.broker.account_overrides.pop(("NetLiquidation", "USD"), None)
        self.broker.set_net_liquidation(value)
        self.refresh_account()

    def net_liquidation(self) -> float:
        """NLV now, from cash and marks (what the next refresh will publish)."""
        return self.broker.net_liquidation()

    # -------------------------------------------------------------------- P&L

    def pnl(self) -> PnlValues:
        """The account's P&L now (what ``reqPnL`` subscribers get next)."""
        return self.broker.pnl()

    def start_pnl_session(self) -> None:
        """A new trading day: daily P&L restarts at zero from the current marks."""
        self.broker.start_pnl_session()

    def set_pnl_unset(self, seconds: float) -> None:
        """For ``seconds`` from now every P&L message carries DBL_MAX (unset) values."""
        self._pnl_unset_until = time.monotonic() + max(seconds, 0.0)

    def push_pnl(self) -> int:
        """Send every P&L subscription its values now; return how many were sent.

        Runs every ``pnl_interval_s`` and after every fill by itself.
        """
        n = 0
        for s in self._ready_sessions():
            for req_id, sub in list(s.pnl_subs.items()):
                self._send_pnl(s, req_id, sub)
                n += 1
        return n

    def _send_pnl(self, s: _Session, req_id: int, sub: _PnlSub) -> None:
        now = time.monotonic()
        unset = now < max(sub.start + self.pnl_unset_s, self._pnl_unset_until)
        if sub.con_id is None:
            a = self.broker.pnl()
            values: list[float | None] = [a.daily, a.unrealized, a.realized]
            self._send(s, *enc.pnl(req_id, [None] * 3 if unset else values))
            return
        p = self.broker.pnl_single(sub.con_id)
        single: list[float | None] = [p.daily, p.unrealized, p.realized, p.value]
        self._send(s, *enc.pnl_single(req_id, p.position, [None] * 4 if unset else single))

    # ----------------------------------------------------------------- orders

    def reject_next_orders(self, n: int = 1, code: int = 201, msg: str | None = None) -> None:
        """Answer the next ``n`` PLACE_ORDERs with error ``code`` instead of accepting."""
        text = msg if msg is not None else error_text(code)
        for _ in range(n):
            self.broker.reject_next(code, text)

    def open_orders(self) -> list[SimOrder]:
        """Orders still working (latest record per order id)."""
        return self.broker.open_orders()

    def find_order(self, order_id: int, client_id: int | None = None) -> SimOrder | None:
        """The latest record for an order id (of ``client_id``, if given)."""
        return self.broker.find_order(order_id, client_id)

    def fill_order(
        self, order_id: int, price: float | None = None, client_id: int | None = None
    ) -> SimOrder:
        """Fill a working order completely now (at ``price``, net for a combo; else its limit)."""
        o = self.find_order(order_id, client_id)
        if o is None or not o.is_open:
            raise ValueError(f"order {order_id} is not open")
        self.broker.fill(o, price)
        return o

    def cancel_order(self, order_id: int, client_id: int | None = None) -> SimOrder:
        """Cancel a working order from the gateway side (as IB does at day end)."""
        o = self.find_order(order_id, client_id)
        if o is None or not o.is_open:
            raise ValueError(f"order {order_id} is not open")
        o.status = "Cancelled"
        self._announce_cancel(o)
        return o

    def add_tws_order(
        self, con_id: int, action: str, qty: float, lmt_price: float, *, order_ref: str = ""
    ) -> SimOrder:
        """A working limit order "placed from TWS" (client id 0, order id 0).

        API clients do not see it, except through ``reqAllOpenOrders`` and a
        client id 0 connection; only a global cancel reaches it.
        """
        o = self.broker.add_tws_order(con_id, action, qty, lmt_price, order_ref=order_ref)
        self._broadcast_open_order(o)
        self._broadcast_status(o)
        return o

    def refuse_cancel(self, perm_id: int, attempts: int | None = None) -> None:
        """Make the order with ``perm_id`` ignore cancels (global ones too).

        ``attempts``: how many cancels it ignores (``None``: every one).

        Nothing is sent for a refused cancel; the order stays working and
        open-order requests keep showing it. ``attempts=0`` lifts the refusal.
        """
        self.broker.refuse_cancel(perm_id, attempts)

    def set_echo_order_ref(self, on: bool) -> None:
        """``False``: open orders and executions carry an empty orderRef, as some gateways do."""
        self.echo_order_ref = on

    def set_what_if_fault(self, fault: WhatIfFault | None, count: int | None = None) -> None:
        """Misanswer what-ifs (see :mod:`.what_if`): the next ``count``, or all from now.

        ``set_what_if_fault(None)`` answers normally again (and forgets
        pending one-shot faults).
        """
        if fault is None:
            self._what_if_fault = WhatIfFault()
            self._what_if_once.clear()
            return
        if count is None:
            self._what_if_fault = fault
        else:
            self._what_if_once.extend([fault] * count)

    def _ref(self, order_ref: str) -> str:
        return order_ref if self.echo_order_ref else ""

    # ----------------------------------------------------------------- faults

    def inject_error(
        self,
        code: int,
        msg: str | None = None,
        req_id: int = -1,
        *,
        client_id: int | None = None,
    ) -> None:
        """Send ERR_MSG ``code`` to every connected client (or only ``client_id``'s).

        Side effects follow TWS: 1100/2103/10197 halt market data, 1101/1102/
        2104 resume it, and 1101 also drops every market data subscription
        ("data lost": clients must resubscribe). 201/202 with ``req_id`` equal
        to a working order's id cancel that order here too, so the simulator
        and the client agree on it.
        """
        text = msg if msg is not None else error_text(code)
        if code in HALTING_CODES:
            self.data_halted = True
        elif code in RESUMING_CODES:
            self.data_halted = False
        if code in (201, 202) and req_id > 0:
            for o in self.open_orders():
                if o.order_id == req_id and client_id in (None, o.client_id):
                    o.status, o.error_code = "Cancelled", code
        for s in self._ready_sessions():
            if client_id is not None and s.client_id != client_id:
                continue
            if code == DATA_LOST_CODE:
                s.tickers.clear()
            self._send_error(s, req_id, code, text)

    def drop_connections(self) -> int:
        """Close every client socket (the gateway restarted); return how many."""
        sessions = list(self._sessions.values())
        for s in sessions:
            s.close()
        return len(sessions)

    def client_id_in_use(self, client_id: int, in_use: bool = True) -> None:
        """Make connects with ``client_id`` fail with error 326 (or stop doing so)."""
        if in_use:
            self._busy_client_ids.add(client_id)
        else:
            self._busy_client_ids.discard(client_id)

    def hang(self, seconds: float) -> None:
        """Stop answering for ``seconds``: nothing is sent, requests wait.

        Requests that arrive meanwhile are answered when the hang ends, the
        way a stalled gateway catches up; streaming data of the hang is lost.
        ``hang(0)`` ends a hang early.
        """
        loop = asyncio.get_running_loop()
        if self._unhung is None:
            raise RuntimeError("start() the simulator first")
        if self._hang_handle is not None:
            self._hang_handle.cancel()
            self._hang_handle = None
        if seconds <= 0:
            self._unhung.set()
            return
        self._unhung.clear()
        self._hang_handle = loop.call_later(seconds, self._end_hang)

    def _end_hang(self) -> None:
        self._hang_handle = None
        if self._unhung is not None:
            self._unhung.set()

    def _is_hung(self) -> bool:
        return self._unhung is not None and not self._unhung.is_set()

    # -------------------------------------------------------------- transport

    def _ready_sessions(self) -> list[_Session]:
        return [s for s in self._sessions.values() if s.ready and not s.closing]

    def _sessions_of(self, *client_ids: int) -> list[_Session]:
        return [s for s in self._ready_sessions() if s.client_id in client_ids]

    def _send(self, s: _Session, *fields: Field) -> None:
        if s.closing or self._is_hung():
            return
        transport = s.writer.transport
        if transport.is_closing():
            return
        if transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            log.warning("client %s is not reading; dropping it", s.client_id)
            s.close()
            return
        s.writer.write(encode_message(*fields))

    def _send_error(self, s: _Session, req_id: int, code: int, msg: str) -> None:
        self._send(s, *enc.error(req_id, code, msg))

    async def _read_message(self, s: _Session) -> list[str]:
        n = frame_length(await s.reader.readexactly(4))
        return decode_fields(await s.reader.readexactly(n))

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        s = _Session(seq=next(self._session_seq), reader=reader, writer=writer)
        s.task = asyncio.current_task()
        self._sessions[s.seq] = s
        peer = writer.get_extra_info("peername")
        try:
            await self._wait_unhung()
            await asyncio.wait_for(self._handshake(s), HANDSHAKE_TIMEOUT)
            while not s.closing:
                fields = await self._read_message(s)
                await self._wait_unhung()
                if s.closing:
                    break
                self.requests.append((s.client_id, fields))
                try:
                    self._dispatch(s, fields)
                except (ValueError, IndexError) as e:
                    log.warning("bad request %s from client %s: %s", fields[:3], s.client_id, e)
        except asyncio.IncompleteReadError:
            log.debug("client %s (%s) closed the connection", s.client_id, peer)
        except (ConnectionError, ProtocolError, TimeoutError) as e:
            log.info("client %s (%s) dropped: %r", s.client_id, peer, e)
        finally:
            self._sessions.pop(s.seq, None)
            s.close()

    async def _wait_unhung(self) -> None:
        if self._unhung is not None:
            await self._unhung.wait()

    async def _handshake(self, s: _Session) -> None:
        prefix = await s.reader.readexactly(len(API_PREFIX))
        if prefix != API_PREFIX:
            raise ProtocolError(f"expected {API_PREFIX!r}, got {prefix!r}")
        n = frame_length(await s.reader.readexactly(4))
        lo, hi, _opts = parse_version_range((await s.reader.readexactly(n)).decode())
        if not lo <= SERVER_VERSION <= hi:
            raise ProtocolError(
                f"client speaks v{lo}..{hi}; simulator speaks only {SERVER_VERSION}"
            )
        now = dt.datetime.now(dt.UTC).strftime("%Y%m%d %H:%M:%S UTC")
        s.writer.write(handshake_reply(SERVER_VERSION, now))
        fields = await self._read_message(s)
        self.requests.append((None, fields))
        if not fields or fields[0] != str(IN_START_API) or len(fields) < 3:
            raise ProtocolError(f"expected START_API, got {fields[:3]}")
        client_id = int(fields[2])
        s.client_id = client_id
        # A session whose peer already hung up does not hold its id any more:
        # without the at_eof check a quick reconnect would race its own EOF.
        others = {
            o.client_id
            for o in self._sessions.values()
            if o is not s and o.ready and not o.closing and not o.reader.at_eof()
        }
        if client_id in self._busy_client_ids or client_id in others:
            s.writer.write(encode_message(*enc.error(-1, 326, ERROR_MESSAGES[326])))
            with contextlib.suppress(ConnectionError):
                await s.writer.drain()
            raise ConnectionError(f"client id {client_id} already in use")
        s.ready = True
        self._send(s, enc.OUT_MANAGED_ACCTS, 1, self.account)
        self._send(s, enc.OUT_NEXT_VALID_ID, 1, self.broker.next_order_id)
        for code in (2104, 2106, 2158):
            self._send_error(s, -1, code, ERROR_MESSAGES[code])
        log.info("client %d connected", client_id)

    # --------------------------------------------------------------- dispatch

    def _dispatch(self, s: _Session, f: list[str]) -> None:
        msg_id = int(f[0])
        handler = self._handlers.get(msg_id)
        if handler is None:
            log.debug("ignoring request %s from client %s", f[:3], s.client_id)
            return
        handler(self, s, f)

    def _resolve(self, c: ContractSpec) -> Instrument | None:
        return self.market.resolve(
            con_id=c.con_id,
            symbol=c.symbol,
            sec_type=c.sec_type,
            expiry=c.expiry,
            strike=c.strike,
            right=c.right,
            multiplier=int_field(c.multiplier) or None,
        )

    # ---------------------------------------------------------- market data

    def _on_req_mkt_data(self, s: _Session, f: list[str]) -> None:
        req = parse_mkt_data(f)
        tk: _Ticker | None = None
        if req.contract.sec_type == "BAG":
            legs = [(self.market.instruments.get(x.con_id), x) for x in req.legs]
            if legs and all(inst is not None for inst, _ in legs):
                signed = tuple(
                    (inst, x.ratio if x.action == "BUY" else -x.ratio)
                    for inst, x in legs
                    if inst is not None
                )
                tk = _Ticker(None, signed, frozenset(i.symbol for i, _ in signed))
        else:
            inst = self._resolve(req.contract)
            if inst is not None:
                tk = _Ticker(inst, (), frozenset({inst.symbol}))
        if tk is None:
            self._send_error(s, req.req_id, 200, ERROR_MESSAGES[200])
            return
        if not req.snapshot and req.req_id not in s.tickers and len(s.tickers) >= self.max_tickers:
            self._send_error(s, req.req_id, 101, ERROR_MESSAGES[101])
            return
        if not req.snapshot:
            s.tickers[req.req_id] = tk
        self._send(s, enc.OUT_TICK_REQ_PARAMS, req.req_id, 0.01, "9c0001", 3)
        self._send(s, enc.OUT_MARKET_DATA_TYPE, 1, req.req_id, 1)
        if not self.data_halted:
            if self.close_alone_s > 0 and not req.snapshot:
                self._send_close_alone(s, req.req_id, tk)
            else:
                self._send_quote(s, req.req_id, tk, with_close=True)
        if req.snapshot:
            self._send(s, enc.OUT_TICK_SNAPSHOT_END, 1, req.req_id)

    def _send_close_alone(self, s: _Session, req_id: int, tk: _Ticker) -> None:
        q = self.market.quote(tk.instrument) if tk.instrument is not None else None
        if q is None:
            self._send_quote(s, req_id, tk, with_close=True)
            return
        self._send(s, *enc.quote_ticks(req_id, q, with_close=True)[0])

        def rest() -> None:
            if s.tickers.get(req_id) is tk and not self.data_halted:
                self._send_quote(s, req_id, tk, with_close=False)

        asyncio.get_running_loop().call_later(self.close_alone_s, rest)

    def _on_cancel_mkt_data(self, s: _Session, f: list[str]) -> None:
        s.tickers.pop(int(f[2]), None)

    def _on_req_contract_data(self, s: _Session, f: list[str]) -> None:
        """REQ_CONTRACT_DATA (9, version 8): what ``qualifyContracts`` sends.

        Answers one CONTRACT_DATA for a contract the market can resolve (by
        conId, or fully specified: any strike of a known underlying is
        listed), else error 200 like TWS; then the end.
        """
        req_id = int(f[2])
        inst = self._resolve(ContractSpec.parse(f, 3))
        if inst is None:
            self._send_error(s, req_id, 200, ERROR_MESSAGES[200])
            return
        und = self.market.underlyings[inst.symbol]
        self._send(s, *enc.contract_data(req_id, inst, und.con_id))
        self._send(s, enc.OUT_CONTRACT_DATA_END, 1, req_id)

    # ---------------------------------------------------------------- orders

    def _on_place_order(self, s: _Session, f: list[str]) -> None:
        assert s.client_id is not None
        req = parse_place_order(f)
        if req.what_if:
            self._answer_what_if(s, req)
            return
        o, err = self.broker.place(req, s.client_id)
        if err is not None:
            self._send_error(s, o.order_id, *err)
            return
        self._broadcast_open_order(o)
        self._broadcast_status(o)
        self.broker.auto_fill(o)

    def _answer_what_if(self, s: _Session, req: PlaceOrderRequest) -> None:
        assert s.client_id is not None
        fault = self._what_if_once.popleft() if self._what_if_once else self._what_if_fault
        answer: list[Field]
        try:
            o, numbers = self.broker.what_if(req, s.client_id)
        except UnknownContract:
            answer = enc.error(req.order_id, 200, ERROR_MESSAGES[200])
        else:
            if fault.error_code is not None:
                text = fault.error_msg or error_text(fault.error_code)
                answer = enc.error(req.order_id, fault.error_code, text)
            else:
                state = order_state(numbers, fault.garble)
                answer = enc.open_order(
                    o, self.account, order_ref=self._ref(o.order_ref), state=state, what_if=True
                )
        if fault.drop:
            return
        if fault.delay_s <= 0:
            self._send(s, *answer)
            return
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def send_late() -> None:
            if handle is not None:
                self._what_if_timers.discard(handle)
            self._send(s, *answer)

        handle = loop.call_later(fault.delay_s, send_late)
        self._what_if_timers.add(handle)

    def _on_cancel_order(self, s: _Session, f: list[str]) -> None:
        order_id = int(f[2])
        o = self.find_order(order_id, s.client_id)
        if o is None:
            msg = ERROR_MESSAGES[10147].format(order_id=order_id)
            self._send_error(s, order_id, 10147, msg)
        elif not o.is_open:
            msg = ERROR_MESSAGES[10148].format(order_id=order_id, state=o.status)
            self._send_error(s, order_id, 10148, msg)
        elif self.broker.cancel(o):
            self._announce_cancel(o)

    def _on_global_cancel(self, s: _Session, f: list[str]) -> None:
        cancelled, _refused = self.broker.cancel_all()
        for o in cancelled:
            self._announce_cancel(o)

    def _announce_cancel(self, o: SimOrder) -> None:
        """Cancelled: status to its client and to client-0 (TWS) connections, 202 to the owner."""
        for s in self._sessions_of(o.client_id, 0):
            self._send(s, *enc.order_status(o))
            if s.client_id == o.client_id:
                self._send_error(s, o.order_id, 202, ERROR_MESSAGES[202])

    def _announce_fill(self, o: SimOrder, fills: Sequence[SimFill], last_price: float) -> None:
        for s in self._sessions_of(o.client_id):
            for x in fills:
                self._send(s, *enc.execution(-1, x, self.account, order_ref=self._ref(x.order_ref)))
            self._send(s, *enc.order_status(o, last_price))
            for x in fills:
                if not x.is_combo:
                    self._send(s, *enc.commission_report(x))

    def _broadcast_status(self, o: SimOrder, last_fill: float = 0.0) -> None:
        for s in self._sessions_of(o.client_id):
            self._send(s, *enc.order_status(o, last_fill))

    def _broadcast_open_order(self, o: SimOrder) -> None:
        for s in self._sessions_of(o.client_id):
            self._send(s, *self._open_order_fields(o))

    def _open_order_fields(self, o: SimOrder) -> list[Field]:
        state = enc.OrderStateFields(o.status)
        return enc.open_order(o, self.account, order_ref=self._ref(o.order_ref), state=state)

    def _on_req_open_orders(self, s: _Session, f: list[str]) -> None:
        self._send_open_orders(s, all_clients=s.client_id == 0)

    def _on_req_all_open_orders(self, s: _Session, f: list[str]) -> None:
        self._send_open_orders(s, all_clients=True)

    def _send_open_orders(self, s: _Session, *, all_clients: bool) -> None:
        for o in self.open_orders():
            if all_clients or o.client_id == s.client_id:
                self._send(s, *self._open_order_fields(o))
                self._send(s, *enc.order_status(o))
        self._send(s, enc.OUT_OPEN_ORDER_END, 1)

    def _on_req_completed_orders(self, s: _Session, f: list[str]) -> None:
        self._send(s, enc.OUT_COMPLETED_ORDERS_END)

    def _on_req_executions(self, s: _Session, f: list[str]) -> None:
        req_id = int(f[2])
        mine = [x for x in self.fills if s.client_id in (0, x.client_id)]
        for x in mine:
            self._send(s, *enc.execution(req_id, x, self.account, order_ref=self._ref(x.order_ref)))
        self._send(s, enc.OUT_EXECUTION_DATA_END, 1, req_id)
        for x in mine:
            if not x.is_combo:
                self._send(s, *enc.commission_report(x))

    # --------------------------------------------------------------- account

    def _portfolio_fields(self, pos: SimPosition) -> list[Field]:
        inst = self.broker.instrument_of(pos)
        price = self.market.mark(inst) if inst.symbol in self.market.underlyings else 0.0
        realized = self.broker.pnl_single(pos.con_id).realized
        return enc.portfolio(self.account, inst, pos.qty, price, pos.avg_cost, realized)

    def _on_req_acct_data(self, s: _Session, f: list[str]) -> None:
        subscribe = f[2] == "1"
        s.account_updates = subscribe
        if not subscribe:
            return
        for (tag, cur), val in self._compute_account_values().items():
            self._send(s, *enc.account_value(self.account, tag, val, cur))
        for pos in self.positions.values():
            self._send(s, *self._portfolio_fields(pos))
        self._send(s, enc.OUT_ACCT_UPDATE_TIME, 1, dt.datetime.now().strftime("%H:%M"))
        self._send(s, enc.OUT_ACCT_DOWNLOAD_END, 1, self.account)

    def _on_req_account_updates_multi(self, s: _Session, f: list[str]) -> None:
        req_id, account = int(f[2]), f[3]
        if account in (self.account, "All", ""):
            s.account_multi.add(req_id)
            for (tag, cur), val in self._compute_account_values().items():
                self._send(s, *enc.account_update_multi(req_id, self.account, tag, val, cur))
        self._send(s, enc.OUT_ACCOUNT_UPDATE_MULTI_END, 1, req_id)

    def _on_cancel_account_updates_multi(self, s: _Session, f: list[str]) -> None:
        s.account_multi.discard(int(f[2]))

    def _on_req_account_summary(self, s: _Session, f: list[str]) -> None:
        req_id, tags = int(f[2]), f[4]
        wanted = frozenset(t.strip() for t in tags.split(",") if t.strip())
        s.summary_subs[req_id] = wanted
        self._send_summary(s, req_id, wanted, self._compute_account_values(), end=True)

    def _send_summary(
        self,
        s: _Session,
        req_id: int,
        wanted: frozenset[str],
        values: dict[tuple[str, str], str],
        *,
        end: bool,
    ) -> None:
        for (tag, cur), val in values.items():
            if tag in wanted or "All" in wanted:
                self._send(s, *enc.account_summary(req_id, self.account, tag, val, cur))
        if end:
            self._send(s, enc.OUT_ACCOUNT_SUMMARY_END, 1, req_id)

    def _on_cancel_account_summary(self, s: _Session, f: list[str]) -> None:
        s.summary_subs.pop(int(f[2]), None)

    def _on_req_positions(self, s: _Session, f: list[str]) -> None:
        s.positions = True
        for pos in self.positions.values():
            if pos.qty:
                inst = self.broker.instrument_of(pos)
                self._send(s, *enc.position(self.account, inst, pos.qty, pos.avg_cost))
        self._send(s, enc.OUT_POSITION_END, 1)

    def _on_cancel_positions(self, s: _Session, f: list[str]) -> None:
        s.positions = False

    def _on_req_pnl(self, s: _Session, f: list[str]) -> None:
        """REQ_PNL (92): reqId, account, modelCode (no version field)."""
        req_id = int(f[1])
        sub = s.pnl_subs[req_id] = _PnlSub(time.monotonic(), None)
        self._send_pnl(s, req_id, sub)

    def _on_req_pnl_single(self, s: _Session, f: list[str]) -> None:
        """REQ_PNL_SINGLE (94): reqId, account, modelCode, conId."""
        req_id = int(f[1])
        sub = s.pnl_subs[req_id] = _PnlSub(time.monotonic(), int_field(f[4]))
        self._send_pnl(s, req_id, sub)

    def _on_cancel_pnl(self, s: _Session, f: list[str]) -> None:
        s.pnl_subs.pop(int(f[1]), None)

    # ------------------------------------------------------------------ misc

    def _on_req_ids(self, s: _Session, f: list[str]) -> None:
        self._send(s, enc.OUT_NEXT_VALID_ID, 1, self.broker.next_order_id)

    def _on_req_managed_accts(self, s: _Session, f: list[str]) -> None:
        self._send(s, enc.OUT_MANAGED_ACCTS, 1, self.account)

    def _on_req_current_time(self, s: _Session, f: list[str]) -> None:
        self._send(s, enc.OUT_CURRENT_TIME, 1, int(time.time()))

    def _on_ignored(self, s: _Session, f: list[str]) -> None:
        """Requests TWS answers with nothing (auto-bind, market data type…)."""

    _handlers: ClassVar[dict[int, Callable[[GatewaySimulator, _Session, list[str]], None]]] = {
        IN_REQ_MKT_DATA: _on_req_mkt_data,
        IN_CANCEL_MKT_DATA: _on_cancel_mkt_data,
        IN_PLACE_ORDER: _on_place_order,
        IN_CANCEL_ORDER: _on_cancel_order,
        IN_REQ_OPEN_ORDERS: _on_req_open_orders,
        IN_REQ_ACCT_DATA: _on_req_acct_data,
        IN_REQ_EXECUTIONS: _on_req_executions,
        IN_REQ_IDS: _on_req_ids,
        IN_REQ_CONTRACT_DATA: _on_req_contract_data,
        IN_REQ_AUTO_OPEN_ORDERS: _on_ignored,
        IN_REQ_ALL_OPEN_ORDERS: _on_req_all_open_orders,
        IN_REQ_MANAGED_ACCTS: _on_req_managed_accts,
        IN_REQ_CURRENT_TIME: _on_req_current_time,
        IN_REQ_GLOBAL_CANCEL: _on_global_cancel,
        IN_REQ_MARKET_DATA_TYPE: _on_ignored,
        IN_REQ_POSITIONS: _on_req_positions,
        IN_REQ_ACCOUNT_SUMMARY: _on_req_account_summary,
        IN_CANCEL_ACCOUNT_SUMMARY: _on_cancel_account_summary,
        IN_CANCEL_POSITIONS: _on_cancel_positions,
        IN_START_API: _on_ignored,
        IN_REQ_ACCOUNT_UPDATES_MULTI: _on_req_account_updates_multi,
        IN_CANCEL_ACCOUNT_UPDATES_MULTI: _on_cancel_account_updates_multi,
        IN_REQ_PNL: _on_req_pnl,
        IN_CANCEL_PNL: _on_cancel_pnl,
        IN_REQ_PNL_SINGLE: _on_req_pnl_single,
        IN_CANCEL_PNL_SINGLE: _on_cancel_pnl,
        IN_REQ_COMPLETED_ORDERS: _on_req_completed_orders,
    }

"""A loopback IB Gateway that the real ``ib_async`` client connects to.

Why a wire-level simulator rather than a mock of ``ib_async``: the supervisor's
failure handling (reconnects, error codes, hung sockets, order reconciliation)
lives at the boundary between ``ib_async`` and the socket. A mock would test
our idea of ``ib_async``; this server tests ``ib_async`` itself, through the
same code path as production, over a real TCP connection.

Scope: one managed account, stocks and options, the startup synchronisation
``IB.connectAsync`` performs, market data with option model Greeks, orders
(place, modify, cancel, global cancel, optional immediate fills), positions,
account values, executions, and the faults the supervisor must survive. Every
encoder is written against ``ib_async`` 2.1.0's decoder at server version 178.

Threading: a :class:`GatewaySimulator` lives on one asyncio loop, and its
control methods (``add_position``, ``inject_error``…) must run on that loop.
:class:`SimulatorThread` runs one on a private loop in a daemon thread and
marshals calls into it, which is how synchronous tests and the demo use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import ipaddress
import itertools
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, ParamSpec, TypeVar, overload

from supervisor.asyncio_thread import start_loop_thread

from .market import Instrument, Market, Quote, iso_expiry, normalize_right
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

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# ----------------------------------------------------------------- constants

# Incoming (client → server) message ids.
IN_REQ_MKT_DATA = 1
IN_CANCEL_MKT_DATA = 2
IN_PLACE_ORDER = 3
IN_CANCEL_ORDER = 4
IN_REQ_OPEN_ORDERS = 5
IN_REQ_ACCT_DATA = 6
IN_REQ_EXECUTIONS = 7
IN_REQ_IDS = 8
IN_REQ_CONTRACT_DATA = 9
IN_REQ_AUTO_OPEN_ORDERS = 15
IN_REQ_ALL_OPEN_ORDERS = 16
IN_REQ_MANAGED_ACCTS = 17
IN_REQ_CURRENT_TIME = 49
IN_REQ_GLOBAL_CANCEL = 58
IN_REQ_MARKET_DATA_TYPE = 59
IN_REQ_POSITIONS = 61
IN_REQ_ACCOUNT_SUMMARY = 62
IN_CANCEL_ACCOUNT_SUMMARY = 63
IN_CANCEL_POSITIONS = 64
IN_START_API = 71
IN_REQ_ACCOUNT_UPDATES_MULTI = 76
IN_CANCEL_ACCOUNT_UPDATES_MULTI = 77
IN_REQ_COMPLETED_ORDERS = 99

# Outgoing (server → client) message ids.
OUT_TICK_PRICE = 1
OUT_TICK_SIZE = 2
OUT_ORDER_STATUS = 3
OUT_ERR_MSG = 4
OUT_OPEN_ORDER = 5
OUT_ACCT_VALUE = 6
OUT_PORTFOLIO_VALUE = 7
OUT_ACCT_UPDATE_TIME = 8
OUT_NEXT_VALID_ID = 9
OUT_CONTRACT_DATA = 10
OUT_EXECUTION_DATA = 11
OUT_MANAGED_ACCTS = 15
OUT_TICK_OPTION_COMPUTATION = 21
OUT_CURRENT_TIME = 49
OUT_CONTRACT_DATA_END = 52
OUT_OPEN_ORDER_END = 53
OUT_ACCT_DOWNLOAD_END = 54
OUT_EXECUTION_DATA_END = 55
OUT_TICK_SNAPSHOT_END = 57
OUT_MARKET_DATA_TYPE = 58
OUT_COMMISSION_REPORT = 59
OUT_POSITION_DATA = 61
OUT_POSITION_END = 62
OUT_ACCOUNT_SUMMARY = 63
OUT_ACCOUNT_SUMMARY_END = 64
OUT_ACCOUNT_UPDATE_MULTI = 73
OUT_ACCOUNT_UPDATE_MULTI_END = 74
OUT_TICK_REQ_PARAMS = 81
OUT_COMPLETED_ORDERS_END = 102

# Tick types.
TICK_BID = 1
TICK_ASK = 2
TICK_LAST = 4
TICK_CLOSE = 9
TICK_MODEL_OPTION = 13

#: The text TWS sends with each error code the simulator can produce.
ERROR_MESSAGES: dict[int, str] = {
    103: "Duplicate order id",
    200: "No security definition has been found for the request",
    201: "Order rejected - reason:Simulated rejection",
    202: "Order Canceled - reason:",
    321: "Error validating request.-'bN' : cause - Simulated validation failure",
    326: "Unable to connect as the client id is already in use. Retry with a unique client id.",
    1100: "Connectivity between IB and Trader Workstation has been lost.",
    1101: "Connectivity between IB and Trader Workstation has been restored - data lost.",
    1102: "Connectivity between IB and Trader Workstation has been restored - data maintained.",
    2103: "Market data farm connection is broken:usfarm",
    2104: "Market data farm connection is OK:usfarm",
    2105: "HMDS data farm connection is broken:ushmds",
    2106: "HMDS data farm connection is OK:ushmds",
    2158: "Sec-def data farm connection is OK:secdefnj",
    10147: "OrderId {order_id} that needs to be cancelled is not found.",
    10148: "OrderId {order_id} that needs to be cancelled cannot be cancelled, state: {state}.",
    10197: "No market data during competing live session",
}

#: Codes after which a real gateway stops streaming market data…
HALTING_CODES = frozenset({1100, 2103, 10197})
#: …and the codes after which it streams again.
RESUMING_CODES = frozenset({1101, 1102, 2104})
#: After this one TWS has dropped every market data subscription: clients
#: must subscribe again (``ib_async`` does not do it for them).
DATA_LOST_CODE = 1101

#: Order statuses in which an order is still working.
OPEN_STATUSES = frozenset({"PendingSubmit", "PreSubmitted", "Submitted"})

#: A connection whose unsent output grows past this is a stuck consumer: drop it
#: rather than buffer without bound.
MAX_WRITE_BUFFER = 8 << 20

#: How long a client may take to complete the handshake.
HANDSHAKE_TIMEOUT = 10.0


# -------------------------------------------------------------------- values


@dataclass
class SimPosition:
    """A position the simulated account holds.

    ``avg_cost`` is what IB reports: per share for stocks, per contract (price
    × multiplier) for options. ``und_price`` seeds the underlying's price when
    the simulator does not know that symbol yet (required then for options).
    ``expiry`` is ``YYYY-MM-DD`` (``YYYYMMDD`` is accepted and converted);
    ``right`` is ``"C"`` or ``"P"`` (``CALL``/``PUT`` accepted).
    ``multiplier`` 0 means the usual one: 100 for options, 1 for stocks.
    """

    con_id: int
    symbol: str
    sec_type: str
    qty: float
    avg_cost: float
    right: str | None = None
    strike: float | None = None
    expiry: str | None = None
    multiplier: int = 0
    und_price: float | None = None
    vol: float = 0.25
    currency: str = "USD"
    exchange: str = "SMART"

    def __post_init__(self) -> None:
        if self.sec_type not in ("STK", "OPT"):
            raise ValueError(f"sec_type must be STK or OPT, got {self.sec_type!r}")
        if not self.multiplier:
            self.multiplier = 100 if self.sec_type == "OPT" else 1
        self.expiry = iso_expiry(self.expiry)
        self.right = normalize_right(self.right)
        if self.sec_type == "OPT" and (
            self.right is None or self.strike is None or self.expiry is None
        ):
            raise ValueError("an option position needs right, strike and expiry")

    def instrument(self) -> Instrument:
        """The quotable contract behind this position."""
        return Instrument(
            con_id=self.con_id,
            symbol=self.symbol,
            sec_type=self.sec_type,
            expiry=self.expiry,
            strike=self.strike,
            right=self.right,
            multiplier=self.multiplier,
            currency=self.currency,
            exchange=self.exchange,
        )


@dataclass
class SimOrder:
    """One PLACE_ORDER as the simulator received it, plus its fate.

    ``status`` is the simulator's view: ``Submitted``, ``Filled``,
    ``Cancelled``, ``Rejected`` (answered with an error), or ``Modified`` (a
    later PLACE_ORDER with the same id replaced this one; the replacement is
    a new record). Prices the client left unset are ``None``.
    """

    order_id: int
    client_id: int
    con_id: int
    symbol: str
    sec_type: str
    expiry: str | None
    strike: float | None
    right: str | None
    multiplier: int
    exchange: str
    currency: str
    action: str
    qty: float
    order_type: str
    lmt_price: float | None
    aux_price: float | None
    tif: str
    account: str
    order_ref: str
    transmit: bool
    parent_id: int
    perm_id: int = 0
    status: str = "Submitted"
    filled: float = 0.0
    avg_fill_price: float = 0.0
    error_code: int | None = None
    t: float = field(default_factory=time.time)

    @property
    def remaining(self) -> float:
        """Quantity still working."""
        return max(self.qty - self.filled, 0.0)

    @property
    def is_open(self) -> bool:
        """Whether the order is still working at the simulated exchange."""
        return self.status in OPEN_STATUSES

    def instrument(self) -> Instrument:
        """The contract this order is for."""
        return Instrument(
            con_id=self.con_id,
            symbol=self.symbol,
            sec_type=self.sec_type,
            expiry=self.expiry,
            strike=self.strike,
            right=self.right,
            multiplier=self.multiplier,
            currency=self.currency,
            exchange=self.exchange,
        )


@dataclass(frozen=True)
class SimFill:
    """One execution, kept so REQ_EXECUTIONS can replay it after a reconnect."""

    exec_id: str
    order_id: int
    client_id: int
    perm_id: int
    instrument: Instrument
    side: str
    shares: float
    price: float
    cum_qty: float
    avg_price: float
    order_ref: str
    commission: float
    t: float


@dataclass
class _Ticker:
    instrument: Instrument
    snapshot: bool


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
    tickers: dict[int, _Ticker] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None

    def close(self) -> None:
        self.closing = True
        with contextlib.suppress(Exception):
            self.writer.close()


# ------------------------------------------------------------------ helpers


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _opt_float(text: str) -> float | None:
    """A wire float that may be unset (empty or IB's 1.797e308 sentinel)."""
    if not text:
        return None
    v = float(text)
    if not math.isfinite(v) or v >= 1e307:
        return None
    return v


def _int(text: str, default: int = 0) -> int:
    return int(text) if text else default


def _wire_time(t: float) -> str:
    """An execution timestamp ``ib_async`` parses with its zone: ``YYYYMMDD HH:MM:SS UTC``."""
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y%m%d %H:%M:%S") + " UTC"


def _contract_fields(inst: Instrument) -> list[Field]:
    """conId … tradingClass without exchange/primaryExchange (used by POSITION_DATA et al.)."""
    return [
        inst.con_id,
        inst.symbol,
        inst.sec_type,
        inst.wire_expiry,
        inst.strike if inst.strike is not None else 0.0,
        inst.right or "",
        inst.wire_multiplier,
    ]


# ----------------------------------------------------------------- simulator


class GatewaySimulator:
    """An asyncio TCP server speaking the TWS API to real ``ib_async`` clients.

    Bound to loopback only: it has no authentication and must never be
    reachable from another machine. Control methods are synchronous and must
    be called on the simulator's event loop (see :class:`SimulatorThread`).
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
    ) -> None:
        if not _is_loopback(host):
            raise ValueError(f"the gateway simulator binds to loopback only, not {host!r}")
        if tick_interval <= 0:
            raise ValueError("tick_interval must be positive")
        # "localhost" may resolve to both ::1 and 127.0.0.1, and with port 0
        # each would get its own port: bind one address.
        self.host = "127.0.0.1" if host == "localhost" else host
        self._requested_port = port
        self.account = account
        self.tick_interval = tick_interval
        self.auto_walk = auto_walk
        #: Fill every accepted order at once (at its limit, or at the touch for
        #: market orders), with executions and a position update.
        self.fill_orders = fill_orders
        self.market = Market(seed=seed, walk_speed=walk_speed)
        self.positions: dict[int, SimPosition] = {}
        #: Every PLACE_ORDER received, in order (modifications are new records).
        self.orders: list[SimOrder] = []
        self.fills: list[SimFill] = []
        #: Every message clients sent, as ``(client_id, fields)``, bounded.
        self.requests: deque[tuple[int | None, list[str]]] = deque(maxlen=10_000)
        #: Account values by (tag, currency) → value text.
        self.account_values: dict[tuple[str, str], str] = {}
        self._set_default_account_values(net_liquidation)
        self._sessions: dict[int, _Session] = {}
        self._session_seq = itertools.count(1)
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self._walk_task: asyncio.Task[None] | None = None
        self._next_order_id = 1
        self._perm_ids = itertools.count(1_000_001)
        self._exec_seq = itertools.count(1)
        self._rejections: deque[tuple[int, str]] = deque()
        self._busy_client_ids: set[int] = set()
        self._unhung: asyncio.Event | None = None
        self._hang_handle: asyncio.TimerHandle | None = None
        #: True while the simulated data farm is down (after 1100/2103/10197).
        self.data_halted = False

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
        self._walk_task = asyncio.create_task(self._walk_loop(), name="sim-walk")
        log.info("gateway simulator listening on %s:%d", self.host, self._port)
        return self._port

    async def stop(self) -> None:
        """Close the server and every client, cancel every task; bounded."""
        server, self._server = self._server, None
        if self._hang_handle is not None:
            self._hang_handle.cancel()
            self._hang_handle = None
        if self._unhung is not None:
            self._unhung.set()
        tasks: list[asyncio.Task[Any]] = []
        if self._walk_task is not None:
            self._walk_task.cancel()
            tasks.append(self._walk_task)
            self._walk_task = None
        if server is not None:
            server.close()
        for s in list(self._sessions.values()):
            s.close()
            if s.task is not None and s.task is not asyncio.current_task():
                s.task.cancel()
                tasks.append(s.task)
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

    # -------------------------------------------------------------- positions

    def add_position(self, pos: SimPosition) -> None:
        """Hold (or replace) a position and tell every position subscriber.

        The instrument becomes quotable; an unknown underlying is created
        from ``und_price`` (or, for a stock, from ``avg_cost``).
        """
        if pos.symbol not in self.market.underlyings:
            seed_price = pos.und_price
            if seed_price is None and pos.sec_type == "STK":
                seed_price = pos.avg_cost
            if seed_price is None:
                raise ValueError(f"unknown underlying {pos.symbol!r}: give und_price")
            self.market.set_underlying(
                pos.symbol,
                seed_price,
                pos.vol,
                con_id=pos.con_id if pos.sec_type == "STK" else None,
            )
        inst = self.market.register(pos.instrument())
        self.positions[pos.con_id] = pos
        self._push_position(inst, pos.qty, pos.avg_cost)

    def remove_position(self, con_id: int) -> None:
        """Close a position: subscribers get it with quantity 0."""
        pos = self.positions.pop(con_id, None)
        if pos is None:
            return
        self._push_position(pos.instrument(), 0.0, 0.0)

    def _push_position(self, inst: Instrument, qty: float, avg_cost: float) -> None:
        for s in self._ready_sessions():
            if s.positions:
                self._send(s, *self._position_fields(inst, qty, avg_cost))
            if s.account_updates:
                self._send(s, *self._portfolio_fields(inst, qty, avg_cost))

    def _position_fields(self, inst: Instrument, qty: float, avg_cost: float) -> list[Field]:
        return [
            OUT_POSITION_DATA,
            3,
            self.account,
            *_contract_fields(inst),
            inst.exchange,
            inst.currency,
            inst.local_symbol,
            inst.symbol,
            float(qty),
            float(avg_cost),
        ]

    def _portfolio_fields(self, inst: Instrument, qty: float, avg_cost: float) -> list[Field]:
        price = self.market.mark(inst) if inst.symbol in self.market.underlyings else 0.0
        value = qty * price * inst.multiplier
        return [
            OUT_PORTFOLIO_VALUE,
            8,
            *_contract_fields(inst),
            "",  # primaryExchange
            inst.currency,
            inst.local_symbol,
            inst.symbol,
            float(qty),
            price,
            value,
            float(avg_cost),
            value - qty * avg_cost,
            0.0,
            self.account,
        ]

    # ----------------------------------------------------------------- prices

    def set_underlying(
        self, symbol: str, price: float, vol: float = 0.25, *, push: bool = True
    ) -> None:
        """Set an underlying's price and volatility by hand.

        With ``push`` (default) every subscription on it, and on its options,
        gets a fresh quote at once.
        """
        self.market.set_underlying(symbol, price, vol)
        if push:
            self.push_quotes(symbol)

    def set_auto_walk(self, on: bool) -> None:
        """Start or stop the periodic random walk (and its quote pushes)."""
        self.auto_walk = on

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
                if symbol is None or tk.instrument.symbol == symbol:
                    self._send_quote(s, req_id, tk.instrument, with_close=False)
                    n += 1
        return n

    async def _walk_loop(self) -> None:
        while True:
            await asyncio.sleep(self.tick_interval)
            if not self.auto_walk:
                continue
            try:
                self.market.walk(self.tick_interval)
                self.push_quotes()
            except Exception:
                log.exception("random walk step failed")

    def _send_quote(self, s: _Session, req_id: int, inst: Instrument, *, with_close: bool) -> None:
        q: Quote = self.market.quote(inst)
        if with_close:
            self._send(s, OUT_TICK_PRICE, 6, req_id, TICK_CLOSE, q.close, 0.0, 0)
        self._send(s, OUT_TICK_PRICE, 6, req_id, TICK_BID, q.bid, q.bid_size, 0)
        self._send(s, OUT_TICK_PRICE, 6, req_id, TICK_ASK, q.ask, q.ask_size, 0)
        self._send(s, OUT_TICK_PRICE, 6, req_id, TICK_LAST, q.last, q.last_size, 0)
        if inst.is_option:
            g = self.market.model(inst)
            self._send(
                s,
                OUT_TICK_OPTION_COMPUTATION,
                req_id,
                TICK_MODEL_OPTION,
                0,  # tickAttrib: return-based
                g.implied_vol,
                g.delta,
                g.opt_price,
                g.pv_dividend,
                g.gamma,
                g.vega,
                g.theta,
                g.und_price,
            )

    # ---------------------------------------------------------------- account

    def _set_default_account_values(self, net_liq: float) -> None:
        v = self.account_values
        v[("AccountCode", "")] = self.account
        v[("AccountType", "")] = "INDIVIDUAL"
        v[("Currency", "USD")] = "USD"
        for tag in ("NetLiquidation", "TotalCashValue", "EquityWithLoanValue", "AvailableFunds"):
            v[(tag, "USD")] = repr(float(net_liq))
        v[("ExcessLiquidity", "USD")] = repr(float(net_liq))
        v[("BuyingPower", "USD")] = repr(float(net_liq) * 4)
        v[("InitMarginReq", "USD")] = "0.0"
        v[("MaintMarginReq", "USD")] = "0.0"
        v[("GrossPositionValue", "USD")] = "0.0"

    def set_account_value(self, tag: str, value: float | str, currency: str = "USD") -> None:
        """Change one account value and push it to account subscribers."""
        text = repr(float(value)) if isinstance(value, int | float) else value
        self.account_values[(tag, currency)] = text
        for s in self._ready_sessions():
            if s.account_updates:
                self._send(s, OUT_ACCT_VALUE, 2, tag, text, currency, self.account)
            for req_id in s.account_multi:
                self._send(
                    s, OUT_ACCOUNT_UPDATE_MULTI, 1, req_id, self.account, "", tag, text, currency
                )

    def set_net_liquidation(self, value: float) -> None:
        """Shortcut for ``set_account_value("NetLiquidation", value)``."""
        self.set_account_value("NetLiquidation", value)

    # ----------------------------------------------------------------- orders

    def reject_next_orders(self, n: int = 1, code: int = 201, msg: str | None = None) -> None:
        """Answer the next ``n`` PLACE_ORDERs with error ``code`` instead of accepting."""
        text = msg if msg is not None else ERROR_MESSAGES.get(code, f"Simulated error {code}")
        for _ in range(n):
            self._rejections.append((code, text))

    def open_orders(self) -> list[SimOrder]:
        """Orders still working (latest record per order id)."""
        return [o for o in self.orders if o.is_open]

    def find_order(self, order_id: int, client_id: int | None = None) -> SimOrder | None:
        """The latest record for an order id (of ``client_id``, if given)."""
        for o in reversed(self.orders):
            if o.order_id == order_id and (client_id is None or o.client_id == client_id):
                return o
        return None

    def fill_order(
        self, order_id: int, price: float | None = None, client_id: int | None = None
    ) -> SimOrder:
        """Fill a working order completely now (at ``price``, or as ``fill_orders`` would)."""
        o = self.find_order(order_id, client_id)
        if o is None or not o.is_open:
            raise ValueError(f"order {order_id} is not open")
        self._fill(o, price)
        return o

    def cancel_order(self, order_id: int, client_id: int | None = None) -> SimOrder:
        """Cancel a working order from the gateway side (as IB does at day end)."""
        o = self.find_order(order_id, client_id)
        if o is None or not o.is_open:
            raise ValueError(f"order {order_id} is not open")
        self._cancel(o)
        return o

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
        text = msg if msg is not None else ERROR_MESSAGES.get(code, f"Simulated error {code}")
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
        self._send(s, OUT_ERR_MSG, 2, req_id, code, msg, "")

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
            s.writer.write(encode_message(OUT_ERR_MSG, 2, -1, 326, ERROR_MESSAGES[326], ""))
            with contextlib.suppress(ConnectionError):
                await s.writer.drain()
            raise ConnectionError(f"client id {client_id} already in use")
        s.ready = True
        self._send(s, OUT_MANAGED_ACCTS, 1, self.account)
        self._send(s, OUT_NEXT_VALID_ID, 1, self._next_order_id)
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

    def _on_req_mkt_data(self, s: _Session, f: list[str]) -> None:
        req_id = int(f[2])
        con_id, symbol, sec_type, expiry, strike_s, right, mult = f[3:10]
        i = 15
        if sec_type == "BAG":
            i += 1 + 4 * int(f[i])
        dnc = f[i] == "1"
        i += 4 if dnc else 1
        snapshot = f[i + 1] == "1"
        inst = None
        if sec_type != "BAG":
            inst = self.market.resolve(
                con_id=_int(con_id),
                symbol=symbol,
                sec_type=sec_type,
                expiry=expiry,
                strike=_opt_float(strike_s),
                right=right,
                multiplier=_int(mult) or None,
            )
        if inst is None:
            self._send_error(s, req_id, 200, ERROR_MESSAGES[200])
            return
        s.tickers[req_id] = _Ticker(inst, snapshot)
        self._send(s, OUT_TICK_REQ_PARAMS, req_id, 0.01, "9c0001", 3)
        self._send(s, OUT_MARKET_DATA_TYPE, 1, req_id, 1)
        if not self.data_halted:
            self._send_quote(s, req_id, inst, with_close=True)
        if snapshot:
            s.tickers.pop(req_id, None)
            self._send(s, OUT_TICK_SNAPSHOT_END, 1, req_id)

    def _on_cancel_mkt_data(self, s: _Session, f: list[str]) -> None:
        s.tickers.pop(int(f[2]), None)

    def _on_place_order(self, s: _Session, f: list[str]) -> None:
        if len(f) < 29:
            raise ValueError(f"PLACE_ORDER with {len(f)} fields")
        assert s.client_id is not None
        order_id = int(f[1])
        o = SimOrder(
            order_id=order_id,
            client_id=s.client_id,
            con_id=_int(f[2]),
            symbol=f[3],
            sec_type=f[4],
            expiry=iso_expiry(f[5]),
            strike=_opt_float(f[6]),
            right=normalize_right(f[7]),
            multiplier=_int(f[8], 1) if f[4] == "OPT" else 1,
            exchange=f[9],
            currency=f[11],
            action=f[16],
            qty=float(f[17] or 0),
            order_type=f[18],
            lmt_price=_opt_float(f[19]),
            aux_price=_opt_float(f[20]),
            tif=f[21],
            account=f[23],
            order_ref=f[26],
            transmit=f[27] != "0",
            parent_id=_int(f[28]),
        )
        if o.sec_type == "OPT" and not f[8]:
            o.multiplier = 100
        self._next_order_id = max(self._next_order_id, order_id + 1)
        previous = self.find_order(order_id, s.client_id)
        self.orders.append(o)
        if previous is not None and not previous.is_open:
            o.status, o.error_code = "Rejected", 103
            self._send_error(s, order_id, 103, ERROR_MESSAGES[103])
            return
        if self._rejections:
            code, text = self._rejections.popleft()
            o.status, o.error_code = "Rejected", code
            self._send_error(s, order_id, code, text)
            return
        if previous is not None:
            previous.status = "Modified"
            o.perm_id = previous.perm_id
            o.filled = previous.filled
            o.avg_fill_price = previous.avg_fill_price
        else:
            o.perm_id = next(self._perm_ids)
        self._broadcast_open_order(o)
        self._broadcast_status(o)
        if self.fill_orders:
            self._fill(o, None)

    def _fill_price(self, o: SimOrder) -> float:
        if o.order_type in ("LMT", "STP LMT") and o.lmt_price is not None:
            return o.lmt_price
        inst = self._known_instrument(o)
        if inst is not None:
            q = self.market.quote(inst)
            touch = q.ask if o.action == "BUY" else q.bid
            return touch if touch > 0 else q.last
        return o.lmt_price or o.aux_price or 0.0

    def _known_instrument(self, o: SimOrder) -> Instrument | None:
        if o.symbol not in self.market.underlyings and o.con_id not in self.market.instruments:
            return None
        try:
            return self.market.resolve(
                con_id=o.con_id,
                symbol=o.symbol,
                sec_type=o.sec_type,
                expiry=o.expiry,
                strike=o.strike,
                right=o.right,
                multiplier=o.multiplier,
            )
        except ValueError:
            return None

    def _fill(self, o: SimOrder, price: float | None) -> None:
        px = price if price is not None else self._fill_price(o)
        shares = o.remaining
        o.avg_fill_price = (
            (o.avg_fill_price * o.filled + px * shares) / (o.filled + shares)
            if o.filled + shares > 0
            else px
        )
        o.filled += shares
        o.status = "Filled"
        inst = self._known_instrument(o) or o.instrument()
        commission = max(1.0, 0.005 * shares) if o.sec_type == "STK" else 0.65 * shares
        fill = SimFill(
            exec_id=f"0000{next(self._exec_seq):04x}.{o.perm_id:08x}.01.01",
            order_id=o.order_id,
            client_id=o.client_id,
            perm_id=o.perm_id,
            instrument=inst,
            side="BOT" if o.action == "BUY" else "SLD",
            shares=shares,
            price=px,
            cum_qty=o.filled,
            avg_price=o.avg_fill_price,
            order_ref=o.order_ref,
            commission=commission,
            t=time.time(),
        )
        self.fills.append(fill)
        for s in self._sessions_of(o.client_id):
            self._send(s, *self._execution_fields(-1, fill))
        self._broadcast_status(o, last_fill=px)
        for s in self._sessions_of(o.client_id):
            self._send(
                s, OUT_COMMISSION_REPORT, 1, fill.exec_id, commission, "USD", None, None, None
            )
        self._apply_fill(inst, o, shares, px)

    def _apply_fill(self, inst: Instrument, o: SimOrder, shares: float, px: float) -> None:
        signed = shares if o.action == "BUY" else -shares
        unit_cost = px * inst.multiplier
        pos = self.positions.get(inst.con_id)
        if pos is None:
            if inst.symbol not in self.market.underlyings:
                if inst.is_option:
                    return  # cannot price it; keep the order record only
                self.market.set_underlying(inst.symbol, px if px > 0 else 1.0, con_id=inst.con_id)
            self.add_position(
                SimPosition(
                    con_id=inst.con_id,
                    symbol=inst.symbol,
                    sec_type=inst.sec_type,
                    qty=signed,
                    avg_cost=unit_cost,
                    right=inst.right,
                    strike=inst.strike,
                    expiry=inst.expiry,
                    multiplier=inst.multiplier,
                    currency=inst.currency,
                    exchange=inst.exchange or "SMART",
                )
            )
            return
        new_qty = pos.qty + signed
        if abs(new_qty) < 1e-12:
            self.remove_position(pos.con_id)
            return
        if pos.qty == 0 or (pos.qty > 0) == (signed > 0):
            pos.avg_cost = (pos.qty * pos.avg_cost + signed * unit_cost) / new_qty
        elif (pos.qty > 0) != (new_qty > 0):
            pos.avg_cost = unit_cost  # flipped through zero: the remainder is new
        pos.qty = new_qty
        self.add_position(pos)

    def _cancel(self, o: SimOrder) -> None:
        o.status = "Cancelled"
        for s in self._sessions_of(o.client_id):
            self._send_status(s, o)
            self._send_error(s, o.order_id, 202, ERROR_MESSAGES[202])

    def _on_cancel_order(self, s: _Session, f: list[str]) -> None:
        order_id = int(f[2])
        o = self.find_order(order_id, s.client_id)
        if o is None:
            msg = ERROR_MESSAGES[10147].format(order_id=order_id)
            self._send_error(s, order_id, 10147, msg)
        elif not o.is_open:
            msg = ERROR_MESSAGES[10148].format(order_id=order_id, state=o.status)
            self._send_error(s, order_id, 10148, msg)
        else:
            self._cancel(o)

    def _on_global_cancel(self, s: _Session, f: list[str]) -> None:
        for o in self.open_orders():
            self._cancel(o)

    def _sessions_of(self, client_id: int) -> list[_Session]:
        return [s for s in self._ready_sessions() if s.client_id == client_id]

    def _broadcast_status(self, o: SimOrder, last_fill: float = 0.0) -> None:
        for s in self._sessions_of(o.client_id):
            self._send_status(s, o, last_fill)

    def _broadcast_open_order(self, o: SimOrder) -> None:
        for s in self._sessions_of(o.client_id):
            self._send(s, *self._open_order_fields(o))

    def _send_status(self, s: _Session, o: SimOrder, last_fill: float = 0.0) -> None:
        self._send(
            s,
            OUT_ORDER_STATUS,
            o.order_id,
            o.status,
            o.filled,
            o.remaining,
            o.avg_fill_price,
            o.perm_id,
            o.parent_id,
            last_fill,
            o.client_id,
            "",
            0.0,
        )

    def _open_order_fields(self, o: SimOrder) -> list[Field]:
        """OPEN_ORDER (5) at server version 178, field for field as
        ``ib_async.decoder.Decoder.openOrder`` reads it (no version field)."""
        inst = o.instrument()
        f: list[Field] = [
            OUT_OPEN_ORDER,
            o.order_id,
            inst.con_id,
            inst.symbol,
            inst.sec_type,
            inst.wire_expiry,
            inst.strike if inst.strike is not None else 0.0,
            inst.right or "",
            inst.wire_multiplier,
            inst.exchange,
            inst.currency,
            inst.local_symbol,
            inst.symbol,  # tradingClass
            o.action,
            o.qty,
            o.order_type,
            o.lmt_price,
            o.aux_price,
            o.tif,
            "",  # ocaGroup
            o.account or self.account,
            "O",  # openClose
            0,  # origin
            o.order_ref,
            o.client_id,
            o.perm_id,
            False,  # outsideRth
            False,  # hidden
            0.0,  # discretionaryAmt
            "",  # goodAfterTime
            "",  # sharesAllocation (deprecated)
            "",  # faGroup
            "",  # faMethod
            "",  # faPercentage
            # (faProfile only below v177)
            "",  # modelCode
            "",  # goodTillDate
            "",  # rule80A
            None,  # percentOffset
            "",  # settlingFirm
            0,  # shortSaleSlot
            "",  # designatedLocation
            -1,  # exemptCode
            0,  # auctionStrategy
            None,  # startingPrice
            None,  # stockRefPrice
            None,  # delta
            None,  # stockRangeLower
            None,  # stockRangeUpper
            0,  # displaySize
            False,  # blockOrder
            False,  # sweepToFill
            False,  # allOrNone
            None,  # minQty
            0,  # ocaType
            False,  # eTradeOnly
            False,  # firmQuoteOnly
            None,  # nbboPriceCap
            o.parent_id,
            0,  # triggerMethod
            None,  # volatility
            None,  # volatilityType
            "",  # deltaNeutralOrderType (empty: no delta-neutral block follows)
            None,  # deltaNeutralAuxPrice
            False,  # continuousUpdate
            None,  # referencePriceType
            None,  # trailStopPrice
            None,  # trailingPercent
            None,  # basisPoints
            None,  # basisPointsType
            "",  # comboLegsDescrip
            0,  # number of combo legs (must be a number)
            0,  # number of order combo legs
            0,  # number of smart combo routing params
            None,  # scaleInitLevelSize
            None,  # scaleSubsLevelSize
            None,  # scalePriceIncrement (unset: no scale block follows)
            "",  # hedgeType (empty: no hedgeParam follows)
            False,  # optOutSmartRouting
            "",  # clearingAccount
            "",  # clearingIntent
            False,  # notHeld
            False,  # deltaNeutralContract present
            "",  # algoStrategy (empty: no params follow)
            False,  # solicited
            False,  # whatIf
            o.status,  # orderState.status
            "",  # initMarginBefore
            "",  # maintMarginBefore
            "",  # equityWithLoanBefore
            "",  # initMarginChange
            "",  # maintMarginChange
            "",  # equityWithLoanChange
            "",  # initMarginAfter
            "",  # maintMarginAfter
            "",  # equityWithLoanAfter
            None,  # commission
            None,  # minCommission
            None,  # maxCommission
            "",  # commissionCurrency
            "",  # warningText
            False,  # randomizeSize
            False,  # randomizePrice
            0,  # number of conditions (must be a number)
            "",  # adjustedOrderType
            None,  # triggerPrice
            None,  # trailStopPrice
            None,  # lmtPriceOffset
            None,  # adjustedStopPrice
            None,  # adjustedStopLimitPrice
            None,  # adjustedTrailingAmount
            0,  # adjustableTrailingUnit
            "",  # softDollarTier.name
            "",  # softDollarTier.val
            "",  # softDollarTier.displayName
            None,  # cashQty
            False,  # dontUseAutoPriceForHedge
            False,  # isOmsContainer
            False,  # discretionaryUpToLimitPrice
            False,  # usePriceMgmtAlgo
            None,  # duration (v159+)
            None,  # postToAts (v160+)
            False,  # autoCancelParent (v162+)
            None,  # minTradeQty (v170+)
            None,  # minCompeteSize
            None,  # competeAgainstBestOffset
            None,  # midOffsetAtWhole
            None,  # midOffsetAtHalf
        ]
        return f

    def _execution_fields(self, req_id: int, x: SimFill) -> list[Field]:
        """EXECUTION_DATA (11) at v178: no version field, pendingPriceRevision last."""
        inst = x.instrument
        return [
            OUT_EXECUTION_DATA,
            req_id,
            x.order_id,
            *_contract_fields(inst),
            inst.exchange,
            inst.currency,
            inst.local_symbol,
            inst.symbol,
            x.exec_id,
            _wire_time(x.t),
            self.account,
            "SIM",  # exchange of execution
            x.side,
            x.shares,
            x.price,
            x.perm_id,
            x.client_id,
            0,  # liquidation
            x.cum_qty,
            x.avg_price,
            x.order_ref,
            "",  # evRule
            None,  # evMultiplier
            "",  # modelCode
            1,  # lastLiquidity: added
            False,  # pendingPriceRevision (v178)
        ]

    def _on_req_open_orders(self, s: _Session, f: list[str]) -> None:
        self._send_open_orders(s, all_clients=s.client_id == 0)

    def _on_req_all_open_orders(self, s: _Session, f: list[str]) -> None:
        self._send_open_orders(s, all_clients=True)

    def _send_open_orders(self, s: _Session, *, all_clients: bool) -> None:
        for o in self.open_orders():
            if all_clients or o.client_id == s.client_id:
                self._send(s, *self._open_order_fields(o))
                self._send_status(s, o)
        self._send(s, OUT_OPEN_ORDER_END, 1)

    def _on_req_completed_orders(self, s: _Session, f: list[str]) -> None:
        self._send(s, OUT_COMPLETED_ORDERS_END)

    def _on_req_acct_data(self, s: _Session, f: list[str]) -> None:
        subscribe = f[2] == "1"
        s.account_updates = subscribe
        if not subscribe:
            return
        for (tag, cur), val in self.account_values.items():
            self._send(s, OUT_ACCT_VALUE, 2, tag, val, cur, self.account)
        for pos in self.positions.values():
            self._send(s, *self._portfolio_fields(pos.instrument(), pos.qty, pos.avg_cost))
        self._send(s, OUT_ACCT_UPDATE_TIME, 1, dt.datetime.now().strftime("%H:%M"))
        self._send(s, OUT_ACCT_DOWNLOAD_END, 1, self.account)

    def _on_req_account_updates_multi(self, s: _Session, f: list[str]) -> None:
        req_id, account = int(f[2]), f[3]
        if account in (self.account, "All", ""):
            s.account_multi.add(req_id)
            for (tag, cur), val in self.account_values.items():
                self._send(s, OUT_ACCOUNT_UPDATE_MULTI, 1, req_id, self.account, "", tag, val, cur)
        self._send(s, OUT_ACCOUNT_UPDATE_MULTI_END, 1, req_id)

    def _on_cancel_account_updates_multi(self, s: _Session, f: list[str]) -> None:
        s.account_multi.discard(int(f[2]))

    def _on_req_account_summary(self, s: _Session, f: list[str]) -> None:
        req_id, tags = int(f[2]), f[4]
        wanted = {t.strip() for t in tags.split(",") if t.strip()}
        for (tag, cur), val in self.account_values.items():
            if tag in wanted or "All" in wanted:
                self._send(s, OUT_ACCOUNT_SUMMARY, 1, req_id, self.account, tag, val, cur)
        self._send(s, OUT_ACCOUNT_SUMMARY_END, 1, req_id)

    def _on_req_positions(self, s: _Session, f: list[str]) -> None:
        s.positions = True
        for pos in self.positions.values():
            if pos.qty:
                self._send(s, *self._position_fields(pos.instrument(), pos.qty, pos.avg_cost))
        self._send(s, OUT_POSITION_END, 1)

    def _on_cancel_positions(self, s: _Session, f: list[str]) -> None:
        s.positions = False

    def _on_req_executions(self, s: _Session, f: list[str]) -> None:
        req_id = int(f[2])
        for x in self.fills:
            if s.client_id in (0, x.client_id):
                self._send(s, *self._execution_fields(req_id, x))
        self._send(s, OUT_EXECUTION_DATA_END, 1, req_id)
        for x in self.fills:
            if s.client_id in (0, x.client_id):
                self._send(
                    s, OUT_COMMISSION_REPORT, 1, x.exec_id, x.commission, "USD", None, None, None
                )

    def _on_req_contract_data(self, s: _Session, f: list[str]) -> None:
        """REQ_CONTRACT_DATA (9, version 8): what ``qualifyContracts`` sends.

        Answers one CONTRACT_DATA for a contract the market can resolve (by
        conId, or fully specified), else error 200 like TWS; then the end.
        """
        req_id = int(f[2])
        con_id, symbol, sec_type, expiry, strike_s, right, mult = f[3:10]
        inst = self.market.resolve(
            con_id=_int(con_id),
            symbol=symbol,
            sec_type=sec_type,
            expiry=expiry,
            strike=_opt_float(strike_s),
            right=right,
            multiplier=_int(mult) or None,
        )
        if inst is None:
            self._send_error(s, req_id, 200, ERROR_MESSAGES[200])
            return
        self._send(s, *self._contract_data_fields(req_id, inst))
        self._send(s, OUT_CONTRACT_DATA_END, 1, req_id)

    def _contract_data_fields(self, req_id: int, inst: Instrument) -> list[Field]:
        """CONTRACT_DATA (10) at v178 (>= 164: no version field, no mdSizeMultiplier)."""
        und = self.market.underlyings[inst.symbol]
        return [
            OUT_CONTRACT_DATA,
            req_id,
            inst.symbol,
            inst.sec_type,
            inst.wire_expiry,  # lastTradeDateOrContractMonth[-lastTradeTime[-zone]]
            inst.strike if inst.strike is not None else 0.0,
            inst.right or "",
            inst.exchange or "SMART",
            inst.currency,
            inst.local_symbol,
            inst.symbol,  # marketName
            inst.symbol,  # tradingClass
            inst.con_id,
            0.01,  # minTick
            inst.wire_multiplier,
            "LMT,MKT,STP,STP LMT",  # orderTypes
            "SMART",  # validExchanges
            1,  # priceMagnifier
            und.con_id if inst.is_option else 0,  # underConId
            inst.symbol,  # longName
            "",  # primaryExchange
            inst.wire_expiry[:6],  # contractMonth
            "",  # industry
            "",  # category
            "",  # subcategory
            "US/Eastern",  # timeZoneId
            "",  # tradingHours
            "",  # liquidHours
            "",  # evRule
            None,  # evMultiplier
            0,  # number of secIds (must be a number)
            0,  # aggGroup
            inst.symbol if inst.is_option else "",  # underSymbol
            "STK" if inst.is_option else "",  # underSecType
            "",  # marketRuleIds
            inst.wire_expiry,  # realExpirationDate
            "COMMON" if not inst.is_option else "",  # stockType
            1.0,  # minSize
            1.0,  # sizeIncrement
            1.0,  # suggestedSizeIncrement
        ]

    def _on_req_ids(self, s: _Session, f: list[str]) -> None:
        self._send(s, OUT_NEXT_VALID_ID, 1, self._next_order_id)

    def _on_req_managed_accts(self, s: _Session, f: list[str]) -> None:
        self._send(s, OUT_MANAGED_ACCTS, 1, self.account)

    def _on_req_current_time(self, s: _Session, f: list[str]) -> None:
        self._send(s, OUT_CURRENT_TIME, 1, int(time.time()))

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
        IN_CANCEL_ACCOUNT_SUMMARY: _on_ignored,
        IN_CANCEL_POSITIONS: _on_cancel_positions,
        IN_START_API: _on_ignored,
        IN_REQ_ACCOUNT_UPDATES_MULTI: _on_req_account_updates_multi,
        IN_CANCEL_ACCOUNT_UPDATES_MULTI: _on_cancel_account_updates_multi,
        IN_REQ_COMPLETED_ORDERS: _on_req_completed_orders,
    }


# ------------------------------------------------------------------- thread


class SimulatorThread:
    """A :class:`GatewaySimulator` on its own event loop in a daemon thread.

    Synchronous code (the daemon's tests, ``risk-supervisor demo``) cannot
    share the simulator's loop, and the simulator's control methods are not
    thread-safe; :meth:`call` runs them inside the loop and waits for them.
    """

    def __init__(self, *, call_timeout: float = 10.0, **kwargs: Any) -> None:
        self.sim = GatewaySimulator(**kwargs)
        self.call_timeout = call_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        return self.sim.port

    def start(self) -> int:
        """Start the loop thread and the server; return the bound port."""
        if self._thread is not None:
            return self.sim.port
        self._loop, self._thread = start_loop_thread(
            "gateway-simulator", ready_timeout_s=self.call_timeout, drain_s=2.0
        )
        return self.call(self.sim.start)

    @overload
    def call(self, fn: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs) -> R: ...

    @overload
    def call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R: ...

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` on the simulator's loop and return its result.

        ``fn`` may be a plain function or a coroutine function (then it is
        awaited). Exceptions propagate to the caller; waits at most
        ``call_timeout`` seconds.
        """
        loop = self._loop
        if loop is None or not loop.is_running():
            raise RuntimeError("simulator thread is not running")

        async def invoke() -> Any:
            result = fn(*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(invoke(), loop).result(self.call_timeout)

    def stop(self) -> None:
        """Stop the server, then the loop, then join the thread; bounded."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            if loop.is_running():
                self.call(self.sim.stop)
        finally:
            if not loop.is_closed():
                loop.call_soon_threadsafe(loop.stop)
            thread.join(self.call_timeout)
            self._loop = None
            self._thread = None

    def __enter__(self) -> SimulatorThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""The simulated account: positions, orders, fills, cash, P&L and margin.

Pure logic: no sockets, no threads, no event loop. The server asks the broker
what happens and turns its answers (and the :class:`BrokerEvents` it fires)
into TWS messages. Time comes from an injected ``clock``.

**Cash and NLV.** The account has a cash balance; net liquidation is cash
plus every position at its mark (``qty × mark × multiplier``). A fill moves
cash by its cost and commission; the marks move NLV. Positions added or
removed *by hand* (``add_position``/``remove_position``: a test's or the
demo's setup, not a trade) are NLV-neutral: cash takes the other side at the
mark, so setting up a book does not change NLV. ``set_net_liquidation``
re-bases cash so NLV equals the value given, from which it follows the marks.

**P&L** (what ``reqPnL`` reports), per contract and summed:

* unrealized = ``qty × mark × multiplier − qty × avg_cost`` (IB's avg_cost is
  per unit, the multiplier included);
* realized (today) = for every fill that reduces a position,
  ``closed × (fill price × multiplier − avg_cost)`` signed by the position's
  side, minus every commission paid today (opening fills' too);
* daily = unrealized now − unrealized at the session start + realized today.
  The session starts when the broker is made or at ``start_pnl_session()``
  (IB's daily reset). Hand-made positions move the start baseline with them,
  so they change neither daily P&L nor NLV; hence daily P&L equals the NLV's
  change since the session start, whatever the marks and fills did.

**Margin and what-if**: :mod:`.margin`. **Orders**: a limit or market order
(single contract or a BAG combo) fills in full, never partially: at once
with ``fill_orders`` (at its limit), when marketable with ``fill_marketable``
(at the touch, re-checked whenever prices move), or by hand (``fill``).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from . import margin as margin_model
from .client_messages import PlaceOrderRequest
from .margin import Margin, WhatIfNumbers
from .market import Instrument, Market, iso_expiry, normalize_right

#: Order statuses in which an order is still working.
OPEN_STATUSES = frozenset({"PendingSubmit", "PreSubmitted", "Submitted"})

#: The conId IB gives every combo (BAG) contract in orders and executions.
BAG_CON_ID = 28812380

#: Commission per option contract and per share (at least the minimum) of stock.
OPTION_COMMISSION = 0.65
STOCK_COMMISSION = 0.005
STOCK_MIN_COMMISSION = 1.0


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


@dataclass(frozen=True)
class SimComboLeg:
    """One leg of a combo: ``ratio`` units of ``con_id`` per combo unit, bought or sold."""

    con_id: int
    ratio: int
    action: str
    exchange: str = "SMART"


@dataclass
class SimOrder:
    """One PLACE_ORDER as the simulator received it, plus its fate.

    ``status`` is the simulator's view: ``Submitted``, ``Filled``,
    ``Cancelled``, ``Rejected`` (answered with an error), or ``Modified`` (a
    later PLACE_ORDER with the same id replaced this one; the replacement is
    a new record). Prices the client left unset are ``None``. A combo has
    ``sec_type == "BAG"`` and its ``legs``; its prices are net per combo unit.
    An order "placed from TWS" has client id 0 and order id 0.
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
    legs: tuple[SimComboLeg, ...] = ()
    perm_id: int = 0
    status: str = "Submitted"
    filled: float = 0.0
    avg_fill_price: float = 0.0
    error_code: int | None = None
    t: float = 0.0

    @property
    def remaining(self) -> float:
        """Quantity still working."""
        return max(self.qty - self.filled, 0.0)

    @property
    def is_open(self) -> bool:
        """Whether the order is still working at the simulated exchange."""
        return self.status in OPEN_STATUSES

    @property
    def is_combo(self) -> bool:
        """Whether this is a BAG order."""
        return self.sec_type == "BAG"

    def instrument(self) -> Instrument:
        """The contract this order is for (the BAG itself for a combo)."""
        return Instrument(
            con_id=self.con_id or (BAG_CON_ID if self.is_combo else 0),
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
    """One execution, kept so REQ_EXECUTIONS can replay it after a reconnect.

    A combo's fill is one execution per leg plus one for the BAG itself (its
    net price, no commission of its own: ``is_combo``), as TWS reports them.
    ``realized`` is the realized P&L the commission report carries (closing
    fills), ``None`` when it opened.
    """

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
    realized: float | None = None
    is_combo: bool = False


@dataclass(frozen=True)
class PnlValues:
    """The account's P&L as ``reqPnL`` reports it."""

    daily: float
    unrealized: float
    realized: float


@dataclass(frozen=True)
class PnlSingleValues:
    """One contract's P&L as ``reqPnLSingle`` reports it."""

    position: float
    daily: float
    unrealized: float
    realized: float
    value: float


class UnknownContract(ValueError):
    """An order names a contract the simulated market cannot price (TWS error 200)."""


class BrokerEvents(Protocol):
    """What the broker tells the server when it changes things on its own."""

    def order_filled(self, order: SimOrder, fills: Sequence[SimFill], last_price: float) -> None:
        """An order filled: send executions, its status, commission reports."""
        ...

    def position_changed(self, inst: Instrument, qty: float, avg_cost: float) -> None:
        """A position changed (qty 0: closed)."""
        ...

    def pnl_changed(self) -> None:
        """Fills moved P&L: subscribers should hear it now."""
        ...


class _NoEvents:
    def order_filled(self, order: SimOrder, fills: Sequence[SimFill], last_price: float) -> None:
        pass

    def position_changed(self, inst: Instrument, qty: float, avg_cost: float) -> None:
        pass

    def pnl_changed(self) -> None:
        pass


def _commission(inst: Instrument, shares: float) -> float:
    if inst.sec_type == "STK":
        return max(STOCK_MIN_COMMISSION, STOCK_COMMISSION * shares)
    return OPTION_COMMISSION * shares


def _fmt_money(v: float) -> str:
    return f"{v:.2f}"


# -------------------------------------------------------------------- broker


class Broker:
    """The account behind the simulated gateway."""

    def __init__(
        self,
        market: Market,
        *,
        account: str,
        cash: float,
        clock: Callable[[], float],
        events: BrokerEvents | None = None,
    ) -> None:
        self.market = market
        self.account = account
        self.cash = float(cash)
        self.clock = clock
        self.events: BrokerEvents = events or _NoEvents()
        self.positions: dict[int, SimPosition] = {}
        #: Every PLACE_ORDER received, in order (modifications are new records).
        self.orders: list[SimOrder] = []
        #: Every what-if request received (never an order; status ``WhatIf``).
        self.what_ifs: list[SimOrder] = []
        self.fills: list[SimFill] = []
        #: Fill every accepted order at once (at its limit, or the touch for MKT).
        self.fill_orders = False
        #: Fill limit and market orders when marketable, at the touch.
        self.fill_marketable = False
        #: Account values pinned by hand, applied over the computed ones.
        self.account_overrides: dict[tuple[str, str], str] = {}
        self.next_order_id = 1
        self._perm_ids = itertools.count(1_000_001)
        self._exec_seq = itertools.count(1)
        self._rejections: deque[tuple[int, str]] = deque()
        self._refusals: dict[int, int | None] = {}
        self._day_base: dict[int, float] = {}
        self._realized: dict[int, float] = {}
        self._booked: dict[int, tuple[float, float]] = {}

    # ------------------------------------------------------------ positions

    def instrument_of(self, pos: SimPosition) -> Instrument:
        """The registered instrument of a position (its own if none)."""
        return self.market.instruments.get(pos.con_id) or pos.instrument()

    def holdings(self) -> dict[int, tuple[Instrument, float]]:
        """conId → (instrument, net quantity) of every position."""
        return {c: (self.instrument_of(p), p.qty) for c, p in self.positions.items()}

    def _value(self, pos: SimPosition) -> float:
        inst = self.instrument_of(pos)
        return pos.qty * self.market.mark(inst) * inst.multiplier

    def _unrealized(self, pos: SimPosition) -> float:
        return self._value(pos) - pos.qty * pos.avg_cost

    def add_position(self, pos: SimPosition) -> None:
        """Hold (or replace) a position by hand: neither NLV nor daily P&L moves.

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
        if pos.con_id in self.positions:
            self._unbook(pos.con_id)
        self.positions[pos.con_id] = pos
        self._booked[pos.con_id] = (pos.qty, pos.avg_cost)
        self.cash -= self._value(pos)
        self._day_base[pos.con_id] = self._day_base.get(pos.con_id, 0.0) + self._unrealized(pos)
        self.events.position_changed(inst, pos.qty, pos.avg_cost)

    def remove_position(self, con_id: int) -> SimPosition | None:
        """Close a position by hand (NLV- and P&L-neutral); subscribers see quantity 0."""
        pos = self.positions.get(con_id)
        if pos is None:
            return None
        self._unbook(con_id)
        del self.positions[con_id]
        self.events.position_changed(self.instrument_of(pos), 0.0, 0.0)
        return pos

    def _unbook(self, con_id: int) -> None:
        """Undo a position's booking as the broker last saw it.

        The caller may have changed the :class:`SimPosition` in place before
        handing it back to ``add_position``; what was booked is what counts.
        """
        qty, avg = self._booked.pop(con_id, (0.0, 0.0))
        inst = self.instrument_of(self.positions[con_id])
        value = qty * self.market.mark(inst) * inst.multiplier
        self.cash += value
        self._day_base[con_id] = self._day_base.get(con_id, 0.0) - (value - qty * avg)

    # -------------------------------------------------------------- account

    def net_liquidation(self) -> float:
        """Cash plus every position at its mark."""
        return self.cash + sum(self._value(p) for p in self.positions.values())

    def equity_with_loan(self) -> float:
        """Cash plus stock value (options have no loan value; see :mod:`.margin`)."""
        return margin_model.equity_with_loan(self.cash, self.holdings().values(), self.market)

    def margin(self) -> Margin:
        """The requirement of the positions held now."""
        return margin_model.portfolio_margin(self.holdings().values(), self.market)

    def set_net_liquidation(self, value: float) -> None:
        """Re-base cash so NLV is ``value`` now; it follows the marks from there."""
        if not math.isfinite(value):
            raise ValueError(f"net liquidation must be finite, got {value}")
        self.cash += value - self.net_liquidation()

    def account_values(self) -> dict[tuple[str, str], str]:
        """Every account value as IB sends it: (tag, currency) → text.

        Computed now from cash, marks and the margin model; values pinned by
        hand (``account_overrides``) win.
        """
        nlv = self.net_liquidation()
        ewl = self.equity_with_loan()
        req = self.margin()
        gross = sum(abs(self._value(p)) for p in self.positions.values())
        pnl = self.pnl()
        available = ewl - req.init
        excess = ewl - req.maint
        v: dict[tuple[str, str], str] = {
            ("AccountCode", ""): self.account,
            ("AccountType", ""): "INDIVIDUAL",
            ("Currency", "USD"): "USD",
            ("NetLiquidation", "USD"): _fmt_money(nlv),
            ("TotalCashValue", "USD"): _fmt_money(self.cash),
            ("EquityWithLoanValue", "USD"): _fmt_money(ewl),
            ("GrossPositionValue", "USD"): _fmt_money(gross),
            ("InitMarginReq", "USD"): _fmt_money(req.init),
            ("MaintMarginReq", "USD"): _fmt_money(req.maint),
            ("AvailableFunds", "USD"): _fmt_money(available),
            ("ExcessLiquidity", "USD"): _fmt_money(excess),
            ("BuyingPower", "USD"): _fmt_money(max(available, 0.0) * 4),
            ("Cushion", ""): f"{excess / nlv:.6f}" if nlv > 0 else "0",
            ("UnrealizedPnL", "USD"): _fmt_money(pnl.unrealized),
            ("RealizedPnL", "USD"): _fmt_money(pnl.realized),
        }
        v.update(self.account_overrides)
        return v

    # ------------------------------------------------------------------ P&L

    def start_pnl_session(self) -> None:
        """A new trading day: daily P&L restarts at zero from the marks of now."""
        self._day_base = {c: self._unrealized(p) for c, p in self.positions.items()}
        self._realized = {}

    def pnl_single(self, con_id: int) -> PnlSingleValues:
        """One contract's P&L (a closed one keeps its realized and daily)."""
        pos = self.positions.get(con_id)
        unrealized = self._unrealized(pos) if pos is not None else 0.0
        realized = self._realized.get(con_id, 0.0)
        daily = unrealized - self._day_base.get(con_id, 0.0) + realized
        return PnlSingleValues(
            position=pos.qty if pos is not None else 0.0,
            daily=daily,
            unrealized=unrealized,
            realized=realized,
            value=self._value(pos) if pos is not None else 0.0,
        )

    def pnl(self) -> PnlValues:
        """The account's P&L, summed over every contract touched today."""
        ids = set(self.positions) | set(self._day_base) | set(self._realized)
        singles = [self.pnl_single(c) for c in ids]
        return PnlValues(
            daily=sum(s.daily for s in singles),
            unrealized=sum(s.unrealized for s in singles),
            realized=sum(s.realized for s in singles),
        )

    # --------------------------------------------------------------- orders

    def reject_next(self, code: int, text: str) -> None:
        """Answer the next PLACE_ORDER with error ``code`` instead of accepting it."""
        self._rejections.append((code, text))

    def open_orders(self) -> list[SimOrder]:
        """Orders still working (latest record per order)."""
        return [o for o in self.orders if o.is_open]

    def find_order(self, order_id: int, client_id: int | None = None) -> SimOrder | None:
        """The latest record for an order id (of ``client_id``, if given)."""
        for o in reversed(self.orders):
            if o.order_id == order_id and (client_id is None or o.client_id == client_id):
                return o
        return None

    def _order_from(self, req: PlaceOrderRequest, client_id: int) -> SimOrder:
        c = req.contract
        is_option = c.sec_type == "OPT"
        multiplier = (int(c.multiplier) if c.multiplier else 100) if is_option else 1
        return SimOrder(
            order_id=req.order_id,
            client_id=client_id,
            con_id=c.con_id,
            symbol=c.symbol,
            sec_type=c.sec_type,
            expiry=iso_expiry(c.expiry) if c.sec_type != "BAG" else None,
            strike=c.strike,
            right=normalize_right(c.right),
            multiplier=multiplier,
            exchange=c.exchange,
            currency=c.currency,
            action=req.action,
            qty=req.qty,
            order_type=req.order_type,
            lmt_price=req.lmt_price,
            aux_price=req.aux_price,
            tif=req.tif,
            account=req.account,
            order_ref=req.order_ref,
            transmit=req.transmit,
            parent_id=req.parent_id,
            legs=tuple(SimComboLeg(x.con_id, x.ratio, x.action, x.exchange) for x in req.legs),
            t=self.clock(),
        )

    def place(
        self, req: PlaceOrderRequest, client_id: int
    ) -> tuple[SimOrder, tuple[int, str] | None]:
        """Accept (or reject) a PLACE_ORDER; returns the record and the error to send, if any.

        A second PLACE_ORDER with a working order's id modifies it (the old
        record becomes ``Modified``); with a finished order's id it is error
        103. A combo whose legs the market does not know is error 200.
        """
        o = self._order_from(req, client_id)
        self.next_order_id = max(self.next_order_id, o.order_id + 1)
        previous = self.find_order(o.order_id, client_id)
        self.orders.append(o)
        if previous is not None and not previous.is_open:
            o.status, o.error_code = "Rejected", 103
            return o, (103, "Duplicate order id")
        if self._rejections:
            code, text = self._rejections.popleft()
            o.status, o.error_code = "Rejected", code
            return o, (code, text)
        if o.is_combo and (
            not o.legs or any(x.con_id not in self.market.instruments for x in o.legs)
        ):
            o.status, o.error_code = "Rejected", 200
            return o, (200, "No security definition has been found for the request")
        if previous is not None:
            previous.status = "Modified"
            o.perm_id = previous.perm_id
            o.filled = previous.filled
            o.avg_fill_price = previous.avg_fill_price
        else:
            o.perm_id = next(self._perm_ids)
        return o, None

    def add_tws_order(
        self,
        con_id: int,
        action: str,
        qty: float,
        lmt_price: float,
        *,
        order_ref: str = "",
    ) -> SimOrder:
        """A working limit order "placed from TWS": client id 0, order id 0.

        Only global cancel (or the gateway) can cancel it from the API.
        """
        inst = self.market.instruments.get(con_id)
        if inst is None:
            raise ValueError(f"unknown conId {con_id}")
        o = SimOrder(
            order_id=0,
            client_id=0,
            con_id=inst.con_id,
            symbol=inst.symbol,
            sec_type=inst.sec_type,
            expiry=inst.expiry,
            strike=inst.strike,
            right=inst.right,
            multiplier=inst.multiplier,
            exchange=inst.exchange,
            currency=inst.currency,
            action=action,
            qty=float(qty),
            order_type="LMT",
            lmt_price=lmt_price,
            aux_price=None,
            tif="DAY",
            account=self.account,
            order_ref=order_ref,
            transmit=True,
            parent_id=0,
            perm_id=next(self._perm_ids),
            t=self.clock(),
        )
        self.orders.append(o)
        return o

    def resolve(self, o: SimOrder) -> Instrument | None:
        """The market's instrument for a single-contract order, ``None`` if unknown."""
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

    def _leg_changes(self, o: SimOrder) -> list[tuple[Instrument, float, SimComboLeg | None]]:
        """(instrument, signed quantity, leg) for every contract the order trades."""
        sign = 1.0 if o.action == "BUY" else -1.0
        if not o.is_combo:
            inst = self.resolve(o)
            if inst is None:
                raise UnknownContract(f"no instrument for order {o.order_id} ({o.symbol})")
            return [(inst, sign * o.qty, None)]
        out: list[tuple[Instrument, float, SimComboLeg | None]] = []
        for leg in o.legs:
            inst = self.market.instruments.get(leg.con_id)
            if inst is None:
                raise UnknownContract(f"unknown combo leg conId {leg.con_id}")
            leg_sign = 1.0 if leg.action == "BUY" else -1.0
            out.append((inst, sign * leg_sign * leg.ratio * o.qty, leg))
        return out

    def what_if(self, req: PlaceOrderRequest, client_id: int) -> tuple[SimOrder, WhatIfNumbers]:
        """The what-if's record and its margin and equity before/after; no order is placed.

        Raises :class:`UnknownContract` when a contract cannot be priced.
        """
        o = self._order_from(req, client_id)
        o.status = "WhatIf"
        self.what_ifs.append(o)
        self.next_order_id = max(self.next_order_id, o.order_id + 1)
        changes = self._leg_changes(o)
        commission = sum(_commission(inst, abs(q)) for inst, q, _ in changes)
        numbers = margin_model.what_if(
            self.cash,
            self.holdings(),
            [(inst, q) for inst, q, _ in changes],
            commission,
            self.market,
        )
        return o, numbers

    # -------------------------------------------------------------- matching

    def touch(self, o: SimOrder) -> float | None:
        """The price the order would trade at now; ``None`` when there is no market.

        Single contract: the ask for a buy, the bid for a sell (none when
        nobody bids). Combo: the net of its legs, each at its ask when the
        order buys that leg and at its bid (0 without one) when it sells it,
        per combo unit, as the combo's BUY side counts it (a credit is
        negative).
        """
        try:
            changes = self._leg_changes(o)
        except UnknownContract:
            return None
        buying = o.action == "BUY"
        if not o.is_combo:
            q = self.market.quote(changes[0][0])
            if buying:
                return q.ask
            return q.bid if q.bid_size > 0 else None
        net = 0.0
        for inst, signed, leg in changes:
            assert leg is not None
            q = self.market.quote(inst)
            px = q.ask if signed > 0 else q.bid
            net += (1.0 if leg.action == "BUY" else -1.0) * leg.ratio * px
        return net

    def marketable_price(self, o: SimOrder) -> float | None:
        """The fill price if the order is marketable now, else ``None`` (LMT and MKT only)."""
        if not o.is_open or not o.transmit or o.order_type not in ("LMT", "MKT"):
            return None
        px = self.touch(o)
        if px is None:
            return None
        if o.order_type == "MKT":
            return px
        if o.lmt_price is None:
            return None
        if o.action == "BUY":
            return px if px <= o.lmt_price + 1e-9 else None
        return px if px >= o.lmt_price - 1e-9 else None

    def auto_fill(self, o: SimOrder) -> None:
        """After placement: fill at once (``fill_orders``) or when marketable."""
        if not o.is_open:
            return
        if self.fill_orders:
            self.fill(o, None)
        elif self.fill_marketable:
            px = self.marketable_price(o)
            if px is not None:
                self.fill(o, px)

    def match(self) -> list[SimOrder]:
        """Fill every working order that prices made marketable (with ``fill_marketable``)."""
        if not self.fill_marketable:
            return []
        filled: list[SimOrder] = []
        for o in self.open_orders():
            px = self.marketable_price(o)
            if px is not None:
                self.fill(o, px)
                filled.append(o)
        return filled

    def _default_price(self, o: SimOrder) -> float:
        if o.order_type in ("LMT", "STP LMT") and o.lmt_price is not None:
            return o.lmt_price
        px = self.touch(o)
        if px is not None:
            return px
        return o.lmt_price or o.aux_price or 0.0

    # ----------------------------------------------------------------- fills

    def fill(self, o: SimOrder, price: float | None = None) -> list[SimFill]:
        """Fill a working order's whole remaining quantity at ``price`` (net, for a combo).

        Without a price: its limit, else the touch. Positions, cash and P&L
        move first; then the server hears of the fill, then of each position.
        """
        if not o.is_open:
            raise ValueError(f"order {o.order_id} is not open")
        px = price if price is not None else self._default_price(o)
        shares = o.remaining
        total = o.filled + shares
        o.avg_fill_price = (o.avg_fill_price * o.filled + px * shares) / total if total else px
        o.filled = total
        o.status = "Filled"
        now = self.clock()
        fills: list[SimFill] = []
        moved: list[tuple[Instrument, float, float]] = []
        if o.is_combo:
            changes = self._leg_changes(o)
            for (inst, signed, _leg), leg_px in zip(
                changes, self._leg_prices(o, changes, px), strict=True
            ):
                fills.append(self._book_fill(o, inst, signed, leg_px, now, moved))
            fills.append(self._fill_record(o, o.instrument(), shares, px, 0.0, now, None, True))
        else:
            inst = self.resolve(o) or o.instrument()
            signed = shares if o.action == "BUY" else -shares
            fills.append(self._book_fill(o, inst, signed, px, now, moved))
        self.fills.extend(fills)
        self.events.order_filled(o, fills, px)
        for inst, qty, avg in moved:
            self.events.position_changed(inst, qty, avg)
        self.events.pnl_changed()
        return fills

    def _leg_prices(
        self,
        o: SimOrder,
        changes: list[tuple[Instrument, float, SimComboLeg | None]],
        net: float,
    ) -> list[float]:
        """Leg prices that add up to the net price: each leg's touch, the difference shared."""
        base: list[float] = []
        for inst, signed, _ in changes:
            q = self.market.quote(inst)
            base.append(q.ask if signed > 0 else q.bid)
        legs = [leg for _, _, leg in changes if leg is not None]
        net_touch = sum(
            (1.0 if leg.action == "BUY" else -1.0) * leg.ratio * p
            for leg, p in zip(legs, base, strict=True)
        )
        per_ratio = (net - net_touch) / sum(leg.ratio for leg in legs)
        return [
            round(max(p + (1.0 if leg.action == "BUY" else -1.0) * per_ratio, 0.0), 6)
            for leg, p in zip(legs, base, strict=True)
        ]

    def _fill_record(
        self,
        o: SimOrder,
        inst: Instrument,
        shares: float,
        px: float,
        commission: float,
        now: float,
        realized: float | None,
        is_combo: bool,
        side: str | None = None,
    ) -> SimFill:
        return SimFill(
            exec_id=f"0000{next(self._exec_seq):04x}.{o.perm_id:08x}.01.01",
            order_id=o.order_id,
            client_id=o.client_id,
            perm_id=o.perm_id,
            instrument=inst,
            side=side or ("BOT" if o.action == "BUY" else "SLD"),
            shares=shares,
            price=px,
            cum_qty=shares if not is_combo else o.filled,
            avg_price=px if not is_combo else o.avg_fill_price,
            order_ref=o.order_ref,
            commission=commission,
            t=now,
            realized=realized,
            is_combo=is_combo,
        )

    def _book_fill(
        self,
        o: SimOrder,
        inst: Instrument,
        signed: float,
        px: float,
        now: float,
        moved: list[tuple[Instrument, float, float]],
    ) -> SimFill:
        """Apply one contract's execution to position, cash and realized P&L."""
        shares = abs(signed)
        commission = _commission(inst, shares)
        realized: float | None = None
        if inst.symbol in self.market.underlyings or not inst.is_option:
            realized = self._apply(inst, signed, px, commission, moved)
        side = "BOT" if signed > 0 else "SLD"
        fill = self._fill_record(o, inst, shares, px, commission, now, realized, False, side)
        if not o.is_combo:
            fill = dataclasses.replace(fill, cum_qty=o.filled, avg_price=o.avg_fill_price)
        return fill

    def _apply(
        self,
        inst: Instrument,
        signed: float,
        px: float,
        commission: float,
        moved: list[tuple[Instrument, float, float]],
    ) -> float | None:
        """Move position, cash and realized P&L; return the fill's realized P&L (closing)."""
        if inst.symbol not in self.market.underlyings:
            self.market.set_underlying(inst.symbol, px if px > 0 else 1.0, con_id=inst.con_id)
        inst = self.market.register(inst)
        unit = px * inst.multiplier
        self.cash -= signed * unit + commission
        realized = -commission
        closed_pnl: float | None = None
        pos = self.positions.get(inst.con_id)
        if pos is None or pos.qty == 0:
            pos = SimPosition(
                con_id=inst.con_id,
                symbol=inst.symbol,
                sec_type=inst.sec_type,
                qty=signed,
                avg_cost=unit,
                right=inst.right,
                strike=inst.strike,
                expiry=inst.expiry,
                multiplier=inst.multiplier,
                currency=inst.currency,
                exchange=inst.exchange or "SMART",
            )
            self.positions[inst.con_id] = pos
        elif (pos.qty > 0) == (signed > 0):
            new_qty = pos.qty + signed
            pos.avg_cost = (pos.qty * pos.avg_cost + signed * unit) / new_qty
            pos.qty = new_qty
        else:
            side = 1.0 if pos.qty > 0 else -1.0
            closed = min(abs(signed), abs(pos.qty))
            closed_pnl = closed * side * (unit - pos.avg_cost)
            realized += closed_pnl
            new_qty = pos.qty + signed
            if abs(new_qty) < 1e-12:
                new_qty = 0.0
            elif (new_qty > 0) != (pos.qty > 0):
                pos.avg_cost = unit  # flipped through zero: the remainder is new
            pos.qty = new_qty
        self._realized[inst.con_id] = self._realized.get(inst.con_id, 0.0) + realized
        if pos.qty == 0:
            del self.positions[inst.con_id]
            self._booked.pop(inst.con_id, None)
            moved.append((inst, 0.0, 0.0))
        else:
            self._booked[inst.con_id] = (pos.qty, pos.avg_cost)
            moved.append((inst, pos.qty, pos.avg_cost))
        return closed_pnl

    # --------------------------------------------------------------- cancels

    def refuse_cancel(self, perm_id: int, attempts: int | None = None) -> None:
        """Make the order with ``perm_id`` ignore cancels: for ever, or the next ``attempts``."""
        if attempts is not None and attempts < 1:
            self._refusals.pop(perm_id, None)
            return
        self._refusals[perm_id] = attempts

    def cancel(self, o: SimOrder) -> bool:
        """Cancel a working order; ``False`` (still working) when it refuses."""
        if o.perm_id in self._refusals:
            left = self._refusals[o.perm_id]
            if left is None:
                return False
            if left > 1:
                self._refusals[o.perm_id] = left - 1
            else:
                del self._refusals[o.perm_id]
            return False
        o.status = "Cancelled"
        return True

    def cancel_all(self) -> tuple[list[SimOrder], list[SimOrder]]:
        """Global cancel: every working order of the account; (cancelled, refused)."""
        cancelled: list[SimOrder] = []
        refused: list[SimOrder] = []
        for o in self.open_orders():
            (cancelled if self.cancel(o) else refused).append(o)
        return cancelled, refused

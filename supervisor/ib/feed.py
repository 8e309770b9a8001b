"""IB positions, market data and account values into the daemon's inputs.

* positions (``reqPositions`` at every session start, then ``positionEvent``)
  → ``position``; position id = ``str(conId)``; an option's entry price is
  IB's ``avgCost`` divided by the multiplier (IB gives it per contract). At
  every session start the daemon's positions are reconciled with IB's: what
  IB no longer reports is closed, what is new is opened.
* market data (``reqMktData`` per position, ``pendingTickersEvent``) →
  ``quote`` with ``modelGreeks``. IB's "unset" sentinels (-1, the 1.797e308
  "unset double", -2 for an unset Greek) become None and NaN stays NaN:
  judging a quote is the trailing stop's job, so the feed never drops one.
* **peaks**: one ``pendingTickersEvent`` may carry several ticks of one
  contract (a bid that spiked and fell back between two events). Every
  intermediate (bid, ask, last) state is judged as the position's stop would
  judge a quote of its own — its reference price under the stop's
  ``price_source`` and side, crossed or too-wide states ignored — and the
  highest and lowest of those reference prices ride on the quote as
  ``high``/``low``, the fields a mailbox uses when it folds quotes together.
  An event that ends in a state the stop would ignore (a crossed book) is sent
  as two quotes: its last valid state carrying the peaks, then its end.
* ``NetLiquidation`` (account updates / account summary) → ``account``;
  the account's daily P&L (``reqPnL``) → ``pnl``, IB's unset values as None.
* a contract no position holds (the collar's quote of a check's leg) gets a
  market-data line of its own on request (:meth:`Feed.ensure_quote`), its
  quotes → ``market_quote``; at most ``MARKET_LINES`` such lines, the least
  recently asked for cancelled first, to spare IB's line limit.

Subscriptions are paced (``subscribe_rate`` messages a second, below
ib_async's 45 requests a second) so that a book of hundreds of positions never
queues an exit order behind hundreds of market-data requests.

Threading: the IB loop thread only (ib_async's events arrive there).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import logging
import math
from collections import deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Final, Protocol

from ib_async import IB, AccountValue, OptionComputation, PnL, Position, TickData, Ticker
from ib_async import Contract as IbContract

from actors.messages import (
    Contract,
    Greeks,
    MarketQuote,
    PnlUpdate,
    PositionUpdate,
    Quote,
    Right,
    SecType,
)
from actors.trailing_stop import StopParams, reference_price
from supervisor.ib.session import describe

__all__ = [
    "Feed",
    "FeedInputs",
    "Peaks",
    "contract_of",
    "event_extremes",
    "greeks_of",
    "ib_contract",
    "ib_price",
    "routed",
]

log = logging.getLogger(__name__)

#: IB's "unset double" (Double.MAX_VALUE), sent where a price has no value.
UNSET_DOUBLE: Final = 1.7976931348623157e308

#: Tick types that set the bid, the ask and the last trade (live and delayed).
_BID_TICKS: Final = frozenset({1, 66})
_ASK_TICKS: Final = frozenset({2, 67})
_LAST_TICKS: Final = frozenset({4, 68})
#: Size ticks: a size of 0 empties that side (ib_async sets its price to NaN).
_BID_SIZE_TICKS: Final = frozenset({0, 69})
_ASK_SIZE_TICKS: Final = frozenset({3, 70})

#: Market-data messages a second the feed sends at most (ib_async throttles at 45).
SUBSCRIBE_RATE: Final = 30.0


# ------------------------------------------------------------------ conversions


def ib_price(value: float | None) -> float | None:
    """An IB price as a Quote field: IB's "unset" markers become None, NaN stays NaN."""
    if value is None:
        return None
    v = float(value)
    if v == -1.0 or v >= UNSET_DOUBLE:
        return None
    return v


def _greek(value: float | None, unset: float) -> float | None:
    if value is None:
        return None
    v = float(value)
    if v == unset or v >= UNSET_DOUBLE:
        return None
    return v


def _pnl_value(value: float | None) -> float | None:
    """A P&L amount: None for IB's unset values (DBL_MAX, NaN), never a number."""
    if value is None:
        return None
    v = float(value)
    if not math.isfinite(v) or abs(v) >= UNSET_DOUBLE:
        return None
    return v


def _priced(prices: tuple[float | None, float | None, float | None] | None) -> bool:
    """Does a (bid, ask, last) carry at least one usable price?"""
    return prices is not None and any(p is not None and math.isfinite(p) and p > 0 for p in prices)


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


def ib_contract(position_id: str, c: Contract) -> IbContract:
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


def routed(c: IbContract) -> IbContract:
    """A copy routed through SMART (IB reports positions without an exchange)."""
    out = copy.copy(c)
    out.exchange = "SMART"
    return out


@dataclass(frozen=True, slots=True)
class Peaks:
    """What one ticker event passed through, for the quote (or two) it becomes.

    ``high``/``low``: the highest and lowest reference price of its states
    (None when there is nothing between two events to carry). ``last_valid``:
    set when the event *ends* in a state the stop ignores (crossed, too wide,
    a side missing) although it passed through states the stop accepts — the
    last of those, to be sent as a quote of its own carrying the peaks, since
    a stop ignores an invalid quote whole, ``high`` and ``low`` included.
    """

    high: float | None = None
    low: float | None = None
    last_valid: tuple[float | None, float | None, float | None] | None = None


def event_extremes(
    params: StopParams,
    long: bool,
    previous: tuple[float | None, float | None, float | None],
    ticks: Iterable[TickData],
    final: tuple[float | None, float | None, float | None],
) -> Peaks:
    """The reference prices of every state one ticker event passed through.

    ``previous`` is the (bid, ask, last) the last event left, ``ticks`` this
    event's ticks in order, ``final`` the state it ends in. Each state is
    judged as the position's stop judges a quote (its ``price_source``, its
    side; a crossed book or a too-wide spread ignored), so what rides on the
    quote is exactly what the stop would have seen had each tick been a
    quote of its own.
    """
    bid, ask, last = previous
    refs: list[float] = []
    last_valid: tuple[float | None, float | None, float | None] | None = None
    for tick in ticks:
        kind = tick.tickType
        if kind in _BID_TICKS:
            bid = ib_price(tick.price)
        elif kind in _ASK_TICKS:
            ask = ib_price(tick.price)
        elif kind in _LAST_TICKS:
            last = ib_price(tick.price)
        elif kind in _BID_SIZE_TICKS and tick.size == 0:
            bid = None
        elif kind in _ASK_SIZE_TICKS and tick.size == 0:
            ask = None
        else:
            continue
        ref = reference_price(params, long, bid, ask, last)
        if isinstance(ref, float):
            refs.append(ref)
            last_valid = (bid, ask, last)
    final_ref = reference_price(params, long, *final)
    if not isinstance(final_ref, float):
        return Peaks(max(refs), min(refs), last_valid) if refs else Peaks()
    if (bid, ask, last) != tuple(final):  # a tick ib_async did not record: end where IB is
        refs.append(final_ref)
    if len(refs) < 2:
        return Peaks()
    return Peaks(max(refs), min(refs))


# ------------------------------------------------------------------ the feed


class FeedInputs(Protocol):
    """Where the feed delivers (the daemon)."""

    clock: Callable[[], float]

    def position(self, update: PositionUpdate) -> None: ...

    def close_position(self, position_id: str) -> None: ...

    def quote(self, q: Quote) -> bool: ...

    def account(self, net_liquidation: float) -> None: ...

    def market_quote(self, q: MarketQuote) -> None: ...

    def pnl(self, update: PnlUpdate) -> None: ...

    def position_ids(self) -> Collection[str]: ...


_Prices = tuple[float | None, float | None, float | None]

#: Market-data lines kept for contracts no position holds (the collar's quotes);
#: the least recently asked for is cancelled beyond this, to spare IB's line limit.
MARKET_LINES: Final = 20


@dataclass(slots=True)
class _MarketLine:
    """A subscription to a contract no position holds: its quotes go to ``market_quote``."""

    contract: Contract
    ticker: Ticker
    quoted: asyncio.Event
    refused: str = ""


class Feed:
    """Positions, market data and NLV of one IB connection, session after session.

    ``stop_params(symbol)`` gives the stop parameters a position's quotes are
    judged by (for the peaks carried in ``high``/``low``).
    """

    def __init__(
        self,
        inputs: FeedInputs,
        *,
        account: str,
        stop_params: Callable[[str], StopParams],
        sync_timeout_s: float,
        subscribe_rate: float = SUBSCRIBE_RATE,
    ) -> None:
        self.inputs = inputs
        self.account = account
        self.stop_params = stop_params
        self.sync_timeout_s = sync_timeout_s
        self.subscribe_rate = subscribe_rate
        #: Quotes handed to the daemon so far.
        self.quotes = 0
        self.ib: IB | None = None
        self.session = 0
        self.live = False  # subscriptions may be made (a session is set up)
        self._contracts: dict[str, IbContract] = {}
        self._mapped: dict[str, Contract] = {}
        self._qty: dict[str, float] = {}
        self._sent: dict[str, tuple[Contract, float, float]] = {}
        self._tickers: dict[str, Ticker] = {}
        self._prices: dict[str, _Prices] = {}  # last state of each subscription
        self._queue: deque[str] = deque()
        self._queued: set[str] = set()
        self._renew: set[str] = set()
        self._pacer: asyncio.Task[None] | None = None
        self._skipped: set[str] = set()
        self._quoted: dict[str, asyncio.Event] = {}
        self._market: dict[Contract, _MarketLine] = {}  # in the order last asked for
        self._market_tickers: dict[int, _MarketLine] = {}  # id(ticker) -> line
        self.market_lines = MARKET_LINES
        self._pnl_account = ""

    # ------------------------------------------------------------ sessions

    def attach(self, ib: IB) -> None:
        """Listen to ``ib``'s position, market-data and account events."""
        ib.positionEvent += self._on_position
        ib.pendingTickersEvent += self._on_tickers
        ib.accountValueEvent += self._on_account_value
        ib.accountSummaryEvent += self._on_account_value
        ib.pnlEvent += self._on_pnl

    def begin(self, ib: IB, session: int) -> None:
        """A new session starts: the old one's subscriptions are gone with it."""
        self.ib = ib
        self.session = session
        self.live = False
        self._forget_subscriptions()

    def end(self) -> None:
        """The session is lost."""
        self.live = False
        self._forget_subscriptions()

    def _forget_subscriptions(self) -> None:
        for line in self._market.values():
            line.refused = line.refused or "the session was lost"
            line.quoted.set()
        self._market.clear()
        self._market_tickers.clear()
        self._tickers.clear()
        self._prices.clear()
        self._queue.clear()
        self._queued.clear()
        self._renew.clear()
        if self._pacer is not None:
            self._pacer.cancel()
            self._pacer = None

    async def sync_positions(self) -> list[Position]:
        """Ask IB for every position (bounded by the sync timeout, not the connect timeout)."""
        ib = self.ib
        assert ib is not None
        await asyncio.wait_for(ib.reqPositionsAsync(), self.sync_timeout_s)
        return [p for p in ib.positions(self.account) if p.position != 0]

    def go_live(self) -> None:
        """The session is set up: subscribe to every position's market data (paced)."""
        self.live = True
        for pid in list(self._contracts):
            self._enqueue(pid)

    def account_values(self) -> None:
        """Feed the NLV IB already reported in this session."""
        ib = self.ib
        if ib is None:
            return
        for av in ib.accountValues(self.account):
            self._on_account_value(av)

    def subscribe_pnl(self, account: str) -> None:
        """Stream the account's daily P&L (``reqPnL``) for this session."""
        ib = self.ib
        if ib is None or not account:
            return
        self._pnl_account = account
        try:
            ib.reqPnL(account)
        except (ConnectionError, AssertionError) as exc:  # ib_async asserts one per account
            log.warning("P&L of %s not requested: %s", account, describe(exc))

    # ------------------------------------------------------------ positions

    def held(self, position_id: str) -> float | None:
        """IB's signed quantity of a position now; None when IB does not hold it."""
        return self._qty.get(position_id)

    def held_ids(self) -> list[str]:
        return list(self._qty)

    def contract(self, position_id: str) -> Contract | None:
        return self._mapped.get(position_id)

    def order_contract(self, position_id: str, fallback: Contract | None) -> IbContract:
        """The IB contract to send an order on: IB's own (routed), else one built from ours."""
        ticker = self._tickers.get(position_id)
        if ticker is not None and ticker.contract is not None and ticker.contract.exchange:
            return ticker.contract
        c = self._contracts.get(position_id)
        if c is not None:
            return c if c.exchange else routed(c)
        if fallback is None:
            con_id = int(position_id) if position_id.isdigit() else 0
            return IbContract(conId=con_id, exchange="SMART")
        return ib_contract(position_id, fallback)

    def _on_position(self, pos: Position) -> None:
        try:
            if self.account and pos.account != self.account:
                return
            self._position(pos)
        except Exception:
            log.exception("handling a position update failed")

    def _position(self, pos: Position) -> None:
        c = pos.contract
        pid = str(c.conId)
        qty = float(pos.position)
        if qty == 0:
            self._qty.pop(pid, None)
            self._contracts.pop(pid, None)
            self._mapped.pop(pid, None)
            if self._sent.pop(pid, None) is not None or pid in self.inputs.position_ids():
                self.inputs.close_position(pid)
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
        flipped = pid in self._qty and (self._qty[pid] > 0) != (qty > 0)
        self._qty[pid] = qty
        self._contracts[pid] = c
        self._mapped[pid] = mapped
        if flipped:
            self._prices.pop(pid, None)
        key = (mapped, qty, entry)
        if self._sent.get(pid) != key or pid not in self.inputs.position_ids():
            self._sent[pid] = key
            self.inputs.position(PositionUpdate(self.inputs.clock(), pid, mapped, qty, entry))
        if self.live and pid not in self._tickers:
            self._enqueue(pid)

    def reconcile(self, positions: Iterable[Position]) -> None:
        """Make the daemon hold exactly what IB reports: close the rest, open the new."""
        held: set[str] = set()
        for pos in positions:
            if pos.position != 0:
                held.add(str(pos.contract.conId))
                self._position(pos)
        for pid in list(self.inputs.position_ids()):
            if pid not in held:
                log.warning("position %s is no longer reported by IB: closing it", pid)
                self._sent.pop(pid, None)
                self._qty.pop(pid, None)
                self._contracts.pop(pid, None)
                self._mapped.pop(pid, None)
                self.inputs.close_position(pid)
        for pid in list(self._contracts):
            if pid not in held:
                self._contracts.pop(pid, None)
                self._mapped.pop(pid, None)
                self._qty.pop(pid, None)

    async def refresh_positions(self) -> None:
        """Ask IB for every position again and reconcile (after 1101: data was lost)."""
        if self.ib is None or not self.live:
            return
        session = self.session
        try:
            positions = await self.sync_positions()
        except (TimeoutError, ConnectionError) as exc:
            log.warning("positions not refreshed: %s", describe(exc))
            return
        if session == self.session and self.live:
            self.reconcile(positions)

    # ---------------------------------------------------------- market data

    def _enqueue(self, pid: str, *, renew: bool = False) -> None:
        if renew:
            self._renew.add(pid)
        elif pid in self._tickers:
            return
        if pid not in self._queued:
            self._queued.add(pid)
            self._queue.append(pid)
        if self._pacer is None or self._pacer.done():
            self._pacer = asyncio.ensure_future(self._pace(self.session))

    async def _pace(self, session: int) -> None:
        """Send queued subscriptions, ``subscribe_rate`` messages a second at most."""
        gap = 1.0 / self.subscribe_rate
        while self._queue and session == self.session and self.live:
            pid = self._queue.popleft()
            self._queued.discard(pid)
            sent = await self._subscribe(pid, session)
            if sent:
                await asyncio.sleep(gap * sent)

    async def _subscribe(self, pid: str, session: int) -> int:
        """Stream one position's market data (again, when renewed); messages sent."""
        renew = pid in self._renew
        self._renew.discard(pid)
        ib = self.ib
        contract = self._contracts.get(pid)
        if ib is None or contract is None or (pid in self._tickers and not renew):
            return 0
        sent = 0
        try:
            old = self._tickers.get(pid)
            if old is not None and old.contract is not None:
                contract = old.contract
            elif not contract.exchange:
                contract = await self._qualified(ib, contract)
                sent += 1
            if session != self.session or not self.live or pid not in self._contracts:
                return sent
            if old is not None and old.contract is not None:
                ib.cancelMktData(old.contract)
                sent += 1
            self._prices.pop(pid, None)
            self._tickers[pid] = ib.reqMktData(contract, "", False, False)
            sent += 1
        except (ConnectionError, TimeoutError) as exc:
            log.warning("market data for %s not requested: %s", pid, describe(exc))
        return sent

    async def _qualified(self, ib: IB, contract: IbContract) -> IbContract:
        """IB's own contract for a conId (positions may come without an exchange)."""
        try:
            found = await asyncio.wait_for(
                ib.qualifyContractsAsync(IbContract(conId=contract.conId)), self.sync_timeout_s
            )
        except TimeoutError:
            found = []
        if found and isinstance(found[0], IbContract):
            q: IbContract = found[0]
            if not q.exchange:
                q.exchange = "SMART"
            return q
        return routed(contract)

    def _unsubscribe(self, pid: str) -> None:
        self._prices.pop(pid, None)
        ticker = self._tickers.pop(pid, None)
        ib = self.ib
        if ticker is None or ib is None or not ib.isConnected() or ticker.contract is None:
            return
        with contextlib.suppress(ConnectionError):
            ib.cancelMktData(ticker.contract)

    def resubscribe(self) -> None:
        """After 1101 TWS has dropped every subscription: ask again, paced."""
        ib = self.ib
        if ib is None or not ib.isConnected() or not self.live:
            return
        for pid in list(self._tickers):
            self._enqueue(pid, renew=True)

    async def wait_quote(self, pid: str, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the next quote of ``pid``; False if none came."""
        event = self._quoted.setdefault(pid, asyncio.Event())
        event.clear()
        try:
            await asyncio.wait_for(event.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    def last_prices(self, pid: str) -> _Prices | None:
        """The latest (bid, ask, last) of ``pid`` in this session, IB's unset values as None."""
        return self._prices.get(pid)

    def _on_tickers(self, tickers: Iterable[Ticker]) -> None:
        try:
            self._quotes(list(tickers))
        except Exception:
            log.exception("handling market data failed")

    def _quotes(self, tickers: list[Ticker]) -> None:
        t = self.inputs.clock()
        for tk in tickers:
            if tk.contract is None:
                continue
            line = self._market_tickers.get(id(tk))
            if line is not None:
                self._market_quote(t, line, tk)
            pid = str(tk.contract.conId)
            if self._tickers.get(pid) is not tk:
                continue
            bid, ask, last = ib_price(tk.bid), ib_price(tk.ask), ib_price(tk.last)
            greeks = greeks_of(tk.modelGreeks)
            peaks = self._extremes(pid, tk, (bid, ask, last))
            if peaks.last_valid is not None:
                b, a, x = peaks.last_valid
                passed = Quote(t, pid, b, a, x, greeks, high=peaks.high, low=peaks.low)
                if self.inputs.quote(passed):
                    self.quotes += 1
                q = Quote(t, pid, bid, ask, last, greeks)
            else:
                q = Quote(t, pid, bid, ask, last, greeks, high=peaks.high, low=peaks.low)
            if self.inputs.quote(q):
                self.quotes += 1
            event = self._quoted.get(pid)
            if event is not None:
                event.set()

    def _extremes(self, pid: str, tk: Ticker, final: _Prices) -> Peaks:
        previous = self._prices.get(pid, (None, None, None))
        self._prices[pid] = final
        mapped = self._mapped.get(pid)
        qty = self._qty.get(pid)
        if len(tk.ticks) < 2 or mapped is None or not qty:
            return Peaks()
        params = self.stop_params(mapped.symbol)
        return event_extremes(params, qty > 0, previous, tk.ticks, final)

    # -------------------------------------------------------- market lines

    def quoted(self, contract: Contract) -> bool:
        """Does a held position on ``contract`` have a quote in this session?"""
        return any(
            m == contract and _priced(self._prices.get(pid)) for pid, m in self._mapped.items()
        )

    async def ensure_quote(self, contract: Contract, con_id: int, wait_s: float) -> bool:
        """A quote of ``contract`` (IB's ``con_id``) within ``wait_s``: subscribe if nothing does.

        A held position's quotes count (they are the contract's quotes); any
        other contract gets a market-data line of its own whose quotes go to
        ``market_quote``. False when no quote came in time, or IB refused the
        line (its line limit, an unknown contract).
        """
        if self.quoted(contract):
            return True
        line = self._market.pop(contract, None)
        ib = self.ib
        if line is None:
            if ib is None or not self.live:
                return False
            try:
                ticker = ib.reqMktData(ib_contract(str(con_id), contract), "", False, False)
            except ConnectionError:
                return False
            line = _MarketLine(contract, ticker, asyncio.Event())
            self._market_tickers[id(ticker)] = line
        self._market[contract] = line  # the most recently asked for last
        self._evict()
        if not line.quoted.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(line.quoted.wait(), wait_s)
        return line.quoted.is_set() and not line.refused

    def _evict(self) -> None:
        ib = self.ib
        while len(self._market) > self.market_lines:
            oldest = next(iter(self._market))
            line = self._market.pop(oldest)
            self._market_tickers.pop(id(line.ticker), None)
            if ib is not None and ib.isConnected() and line.ticker.contract is not None:
                with contextlib.suppress(ConnectionError):
                    ib.cancelMktData(line.ticker.contract)

    def market_refused(self, request_contract: object, why: str) -> bool:
        """IB refused a market-data request: if it was a market line, end its wait; True then.

        ``request_contract`` is the contract ib_async sent the request with
        (the one it names in the error), compared by identity.
        """
        if request_contract is None:
            return False
        for line in list(self._market.values()):
            if line.ticker.contract is request_contract:
                line.refused = why
                line.quoted.set()
                self._market.pop(line.contract, None)
                self._market_tickers.pop(id(line.ticker), None)
                return True
        return False

    def _market_quote(self, t: float, line: _MarketLine, tk: Ticker) -> None:
        q = MarketQuote(t, line.contract, ib_price(tk.bid), ib_price(tk.ask), ib_price(tk.last))
        self.inputs.market_quote(q)
        if _priced((q.bid, q.ask, q.last)):
            line.quoted.set()  # a first price (not only the close, or empty sides)

    # ---------------------------------------------------------------- P&L

    def _on_pnl(self, pnl: PnL) -> None:
        try:
            if self._pnl_account and pnl.account != self._pnl_account:
                return
            self.inputs.pnl(
                PnlUpdate(
                    self.inputs.clock(),
                    _pnl_value(pnl.dailyPnL),
                    _pnl_value(pnl.unrealizedPnL),
                    _pnl_value(pnl.realizedPnL),
                )
            )
        except Exception:
            log.exception("handling a P&L update failed")

    # ------------------------------------------------------------ account

    def _on_account_value(self, av: AccountValue) -> None:
        if av.tag != "NetLiquidation" or not av.currency:
            return
        if self.account and av.account != self.account:
            return
        try:
            value = float(av.value)
        except ValueError:
            log.warning("unreadable NetLiquidation %r", av.value)
            return
        if math.isfinite(value) and value > 0:
            self.inputs.account(value)
        else:
            log.warning("ignoring NetLiquidation %r of account %s", av.value, av.account)

"""The portfolio's holdings and their running aggregates (DESIGN §2, §4).

Every update retires a holding's old contribution and admits its new one, so
totals, per-underlying delta and per-group notional cost O(1) per quote
instead of a pass over the book. Freshness is O(log n): a heap of Greek
timestamps with lazy deletion answers "how old are the oldest Greeks".
Pure: no threads, no I/O, no clock.

The portfolio takes quotes far more often than anyone reads the sums, so
:meth:`Book.mark_later` takes a quote's prices and Greeks at once but leaves
the holding's contributions to :meth:`Book.settle`, which the reader calls
first: a holding quoted a hundred times between two checks is admitted once.
The result is the same to the last bit. Each sum is exact (``ExactSum``), so
its value — ``math.fsum`` of what it holds, which never yields ``-0.0`` — is
the correctly rounded sum of the contributions it holds now, whatever the
path there; a settled holding's contributions and completeness are functions
of its fields alone, and those were updated in order.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from actors import pricing
from actors.exact_sum import ExactSum
from actors.gate.stale import StaleItem
from actors.messages import Contract, Greeks, Right

GREEK_FIELDS = ("delta", "gamma", "vega", "theta", "iv", "und_price")


class MarkLike(Protocol):
    """An accepted quote's prices and Greeks (``actors.messages.Mark``)."""

    @property
    def t(self) -> float: ...
    @property
    def id(self) -> str: ...
    @property
    def bid(self) -> float | None: ...
    @property
    def ask(self) -> float | None: ...
    @property
    def last(self) -> float | None: ...
    @property
    def greeks(self) -> Greeks | None: ...


def finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def positive(x: float | None) -> bool:
    return x is not None and math.isfinite(x) and x > 0


# Contributions beyond this are garbage from a broken feed, not positions: they
# would overflow the sums. Treated as unknown, so the gate fails closed.
SANE = 1e200


_UNKNOWN: tuple[float | None, ...] = (None,) * 6
_POSITIVE_GREEKS = frozenset({"iv", "und_price"})  # a price and a volatility: > 0 or missing


def _sanitized(raw: tuple[float | None, ...]) -> tuple[float | None, ...]:
    """Contributions with the absurd ones (beyond ±SANE, or NaN) made unknown."""
    return tuple(x if x is not None and -SANE <= x <= SANE else None for x in raw)


@dataclass(frozen=True, slots=True)
class PricingParams:
    """Continuous rate and per-symbol dividend yield for BSM (``[pricing]``)."""

    rate: float = 0.0
    dividend_yield: Mapping[str, float] = field(default_factory=dict)

    def q(self, symbol: str) -> float:
        return self.dividend_yield.get(symbol, 0.0)


@dataclass(frozen=True, slots=True)
class Needs:
    """The data the configured limits need before any decision can be made."""

    greek_fields: frozenset[str] = frozenset()  # on every option position
    stock_price: bool = False  # on every stock position
    group_symbols: frozenset[str] = frozenset()  # stocks of these symbols need a price
    nlv: bool = False


def contract_key(c: Contract) -> tuple[object, ...]:
    """Two legs or positions on the same key are the same instrument."""
    if c.is_option:
        return (c.symbol, c.sec_type, c.right, c.strike, c.expiry, c.multiplier)
    return (c.symbol, c.sec_type)


@dataclass(slots=True)
class Holding:
    id: str
    contract: Contract
    qty: float
    bid: float | None = None
    ask: float | None = None
    last: float | None = None
    greeks: Greeks | None = None
    greeks_t: float | None = None
    greeks_computed: bool = False  # BSM from our own prices: IB sent no modelGreeks
    price_t: float | None = None  # a stock: the event time of the quote that set its price
    # an option: (t, und_price) of its last quote whose Greeks (from IB) carried one
    und_seen: tuple[float, float] | None = None
    # contributions currently added to the aggregates (None: unknown, not added)
    delta: float | None = None
    gamma: float | None = None
    vega: float | None = None
    theta: float | None = None
    dollar_delta: float | None = None
    notional: float | None = None
    complete: bool = False

    def price(self) -> float | None:
        """A stock's price: its last trade, else its mid."""
        if positive(self.last):
            return self.last
        if positive(self.bid) and positive(self.ask):
            assert self.bid is not None and self.ask is not None
            return (self.bid + self.ask) / 2
        return None

    def greek(self, name: str) -> float | None:
        g = self.greeks
        value: float | None = None if g is None else getattr(g, name)
        return value if finite(value) else None


@dataclass(slots=True)
class _Totals:
    delta: ExactSum = field(default_factory=ExactSum)
    gamma: ExactSum = field(default_factory=ExactSum)
    vega: ExactSum = field(default_factory=ExactSum)
    theta: ExactSum = field(default_factory=ExactSum)
    dollar_delta: ExactSum = field(default_factory=ExactSum)


class Book:
    def __init__(
        self,
        needs: Needs,
        groups: Mapping[str, Sequence[str]],
        pricing: PricingParams | None = None,
    ) -> None:
        self.needs = needs
        self.pricing = pricing
        self.groups = {name: tuple(symbols) for name, symbols in groups.items()}
        self._groups_of: dict[str, tuple[str, ...]] = {}
        for name, symbols in self.groups.items():
            for s in symbols:
                self._groups_of[s] = (*self._groups_of.get(s, ()), name)
        self.holdings: dict[str, Holding] = {}
        self.by_key: dict[tuple[object, ...], str] = {}
        self.totals = _Totals()
        self.symbol_delta: dict[str, ExactSum] = {}
        self.symbol_dollar_delta: dict[str, ExactSum] = {}
        self.group_notional: dict[str, ExactSum] = {g: ExactSum() for g in self.groups}
        self.incomplete = 0
        self.nlv: float | None = None
        # The newest price seen of each underlying, and when: a held stock's
        # price or an option quote's und_price (DESIGN §4, BSM legs).
        self.und_price: dict[str, tuple[float, float]] = {}
        self.by_symbol: dict[str, set[str]] = {}
        self.version = 0  # bumps on every change: lets costly views cache
        self._greeks_heap: list[tuple[float, str]] = []
        # Holdings marked since the last settle -> the contributions in the sums.
        self._pending: dict[str, tuple[float | None, ...]] = {}

    # ------------------------------------------------------------ updates

    def upsert(self, id: str, contract: Contract, qty: float) -> None:
        if self._pending:
            self.settle()
        h = self.holdings.get(id)
        if h is None:
            h = Holding(id, contract, qty)
            self.holdings[id] = h
            self.by_key[contract_key(contract)] = id
            self.by_symbol.setdefault(contract.symbol, set()).add(id)
            self._admit(h)
            return
        before = _contributions(h)
        if h.contract != contract:
            self._retire(h)
            self.by_key.pop(contract_key(h.contract), None)
            self._unindex(h)
            self.by_key[contract_key(contract)] = id
            self.by_symbol.setdefault(contract.symbol, set()).add(id)
            h.contract, h.qty = contract, qty
            self._admit(h)
            return
        h.qty = qty
        self._admit(h, before)

    def remove(self, id: str) -> None:
        if self._pending:
            self.settle()
        h = self.holdings.pop(id, None)
        if h is None:
            return
        self._retire(h)
        if self.by_key.get(contract_key(h.contract)) == id:
            del self.by_key[contract_key(h.contract)]
        self._unindex(h)
        self.version += 1

    def _unindex(self, h: Holding) -> None:
        ids = self.by_symbol.get(h.contract.symbol)
        if ids is not None:
            ids.discard(h.id)
            if not ids:
                del self.by_symbol[h.contract.symbol]

    def mark(
        self,
        id: str,
        t: float,
        bid: float | None,
        ask: float | None,
        last: float | None,
        greeks: Greeks | None,
    ) -> None:
        """Take the valid parts of an accepted quote; the rest keeps its last value."""
        h = self.holdings.get(id)
        if h is None:
            return
        before = self._pending.pop(id, None)
        if before is None:
            before = _contributions(h)
        self._take(h, t, bid, ask, last, greeks)
        self._admit(h, before)

    def mark_later(
        self,
        id: str,
        t: float,
        bid: float | None,
        ask: float | None,
        last: float | None,
        greeks: Greeks | None,
    ) -> None:
        """:meth:`mark`, but the holding's contributions to the sums wait for :meth:`settle`.

        Until then ``totals``, ``symbol_delta``, ``symbol_dollar_delta``,
        ``group_notional``, ``incomplete`` and the holding's contribution
        fields are those of its last settled state.
        """
        h = self.holdings.get(id)
        if h is None:
            return
        pending = self._pending
        if id not in pending:
            pending[id] = _contributions(h)
        self._take(h, t, bid, ask, last, greeks)
        self.version += 1

    @property
    def pending(self) -> int:
        """Holdings marked since the last settle."""
        return len(self._pending)

    def mark_many(self, marks: Sequence[MarkLike]) -> None:
        """``mark_later`` for each mark in order — in one step per holding.

        What a run of quotes leaves in a holding is a function of the run,
        not of every step: the last valid bid, ask and last; the last Greeks
        and their time (older Greeks timestamps would be superseded anyway);
        the last underlying price IB's Greeks carried. A stock's price, once
        known, stays known, so of a run only its last quote sets ``price_t``.
        The newest underlying price of a symbol is written by whichever
        holding's quote came last in the run. One case depends on every step:
        an option quoted without Greeks may get Greeks from our own model,
        priced from the prices of that moment — a run with one is marked quote
        by quote.
        """
        holdings = self.holdings
        inf = math.inf
        # id -> [holding, bid, ask, last, greeks, greeks_t, (t, und), und_at, t, at]
        runs: dict[str, list[Any]] = {}
        for at, m in enumerate(marks):
            run = runs.get(m.id)
            if run is None:
                h = holdings.get(m.id)
                if h is None:
                    continue
                run = runs[m.id] = [h, None, None, None, None, None, None, -1, None, -1]
            g = m.greeks
            if g is None and run[0].contract.is_option:
                for m in marks:
                    self.mark_later(m.id, m.t, m.bid, m.ask, m.last, m.greeks)
                return
            bid, ask, last = m.bid, m.ask, m.last
            if bid is not None and 0.0 < bid < inf:
                run[1] = bid
            if ask is not None and 0.0 < ask < inf:
                run[2] = ask
            if last is not None and 0.0 < last < inf:
                run[3] = last
            if g is not None:
                run[4] = g
                run[5] = m.t
                und = g.und_price
                if und is not None and 0.0 < und < inf:
                    run[6] = (m.t, und)
                    run[7] = at
            run[8] = m.t
            run[9] = at
        pending = self._pending
        newest: dict[str, tuple[int, tuple[float, float]]] = {}
        for id, (h, bid, ask, last, g, g_t, und, und_at, t, at) in runs.items():
            if id not in pending:
                pending[id] = _contributions(h)
            if bid is not None:
                h.bid = bid
            if ask is not None:
                h.ask = ask
            if last is not None:
                h.last = last
            option = h.contract.is_option
            if g is not None:
                h.greeks, h.greeks_t, h.greeks_computed = g, g_t, False
                if option:
                    self._push_greeks_t(g_t, id)
            written: tuple[int, tuple[float, float]] | None = None
            if option:
                if und is not None:
                    h.und_seen = und
                    written = (und_at, und)
            else:
                price = h.price()
                if price is not None:
                    h.price_t = t
                    written = (at, (t, price))
            if written is not None:
                symbol = h.contract.symbol
                seen = newest.get(symbol)
                if seen is None or written[0] > seen[0]:
                    newest[symbol] = written
        for symbol, (_, value) in newest.items():
            self.und_price[symbol] = value
        self.version += 1

    def settle(self) -> None:
        """Bring the sums up to date with every holding marked since the last settle."""
        pending = self._pending
        if not pending:
            return
        self._pending = {}
        holdings = self.holdings
        for id, before in pending.items():
            self._admit(holdings[id], before)

    def _take(
        self,
        h: Holding,
        t: float,
        bid: float | None,
        ask: float | None,
        last: float | None,
        greeks: Greeks | None,
    ) -> None:
        """A quote's prices and Greeks into the holding (not yet into the sums).

        (``positive`` is spelled out: ``0 < x < inf`` fails for NaN too. This is
        every quote of every position.)
        """
        inf = math.inf
        if bid is not None and 0.0 < bid < inf:
            h.bid = bid
        if ask is not None and 0.0 < ask < inf:
            h.ask = ask
        if last is not None and 0.0 < last < inf:
            h.last = last
        computed = False
        from_ib = greeks is not None
        option = h.contract.is_option
        if greeks is None and option and (h.greeks is None or h.greeks_computed):
            greeks = self._model_greeks(h, t)
            computed = greeks is not None
        if greeks is not None:
            h.greeks, h.greeks_t, h.greeks_computed = greeks, t, computed
            if option:
                self._push_greeks_t(t, h.id)
        symbol = h.contract.symbol
        if option:
            # Only a quote that carried IB's Greeks says where the underlying is
            # now; an old und_price (or our own BSM's) is not an observation.
            und = greeks.und_price if from_ib and greeks is not None else None
            if und is not None and 0.0 < und < inf:
                h.und_seen = (t, und)
                self.und_price[symbol] = (t, und)
        else:
            price = h.price()
            if price is not None:
                h.price_t = t
                self.und_price[symbol] = (t, price)

    def _push_greeks_t(self, t: float, id: str) -> None:
        """Record a Greeks timestamp; drop the superseded ones when they pile up.

        Entries are deleted lazily (an entry counts while its holding's
        ``greeks_t`` still equals it), so between two checks the heap would
        grow by one per quote. Past twice the holdings it is rebuilt from the
        entries that still count: the same answers, bounded memory.
        """
        heap = self._greeks_heap
        heapq.heappush(heap, (t, id))
        if len(heap) > 2 * len(self.holdings) + 64:
            holdings = self.holdings
            live = {
                entry
                for entry in heap
                if (h := holdings.get(entry[1])) is not None and h.greeks_t == entry[0]
            }
            heap[:] = live
            heapq.heapify(heap)

    def _model_greeks(self, h: Holding, t: float) -> Greeks | None:
        """BSM Greeks for an option IB sent no modelGreeks for: IV from its price.

        The option's price is its mid, else its last trade; the underlying's is
        the newest price seen on that symbol. None when either is unknown or no
        volatility reproduces the price.
        """
        if self.pricing is None:
            return None
        c = h.contract
        seen = self.und_price.get(c.symbol)
        und = None if seen is None else seen[1]
        if positive(h.bid) and positive(h.ask):
            assert h.bid is not None and h.ask is not None
            price: float | None = (h.bid + h.ask) / 2
        else:
            price = h.last if positive(h.last) else None
        if price is None or und is None or c.strike is None or c.expiry is None:
            return None
        is_call = c.right is Right.CALL
        r, q = self.pricing.rate, self.pricing.q(c.symbol)
        try:
            T = pricing.year_fraction(c.expiry, t)
            iv = pricing.implied_vol(price, is_call, und, c.strike, T, r, q)
            res = pricing.bsm(is_call, und, c.strike, T, r, q, iv)
        except pricing.PricingError:
            return None
        return Greeks(res.delta, res.gamma, res.vega, res.theta, iv, und)

    def set_nlv(self, nlv: float) -> None:
        self.nlv = nlv
        self.version += 1

    # -------------------------------------------------- contributions

    def _retire(self, h: Holding) -> None:
        """Take a holding's contributions out (before it leaves the book)."""
        self._move(h, _contributions(h), _UNKNOWN)
        if not h.complete:
            self.incomplete -= 1

    def _admit(self, h: Holding, before: tuple[float | None, ...] | None = None) -> None:
        """Recompute a holding's contributions and apply only what changed."""
        old = _UNKNOWN if before is None else before
        was_complete = h.complete
        c, q = h.contract, h.qty
        if c.is_option:
            m = c.multiplier
            g = h.greeks
            if g is None:
                raw: tuple[float | None, ...] = _UNKNOWN
            else:
                d, ga, v, th = g.delta, g.gamma, g.vega, g.theta
                delta = d * q * m if finite(d) else None  # type: ignore[operator]
                und = g.und_price
                dollar = delta * und if delta is not None and positive(und) else None  # type: ignore[operator]
                raw = (
                    delta,
                    ga * q * m if finite(ga) else None,  # type: ignore[operator]
                    v * q * m if finite(v) else None,  # type: ignore[operator]
                    th * q * m if finite(th) else None,  # type: ignore[operator]
                    dollar,
                    None,
                )
            assert c.strike is not None
            raw = (*raw[:5], abs(q) * c.strike * m)
        else:
            price = h.price()
            if price is None:
                raw = (q, 0.0, 0.0, 0.0, None, None)
            else:
                raw = (q, 0.0, 0.0, 0.0, q * price, abs(q) * price)
        sane = raw if all(x is None or -SANE <= x <= SANE for x in raw) else _sanitized(raw)
        h.delta, h.gamma, h.vega, h.theta, h.dollar_delta, h.notional = sane
        self._move(h, old, sane)
        h.complete = self._needs_met(h) and sane is raw
        if before is None:
            self.incomplete += 0 if h.complete else 1
        elif was_complete != h.complete:
            self.incomplete += -1 if h.complete else 1
        self.version += 1

    def _move(
        self, h: Holding, old: tuple[float | None, ...], new: tuple[float | None, ...]
    ) -> None:
        """Swap old contributions for new in every aggregate they feed, exactly."""
        t = self.totals
        totals = (t.delta, t.gamma, t.vega, t.theta, t.dollar_delta)
        for i, total in enumerate(totals):
            _swap(total, old[i], new[i])
        symbol = h.contract.symbol
        if old[0] != new[0]:
            _swap(_sum_of(self.symbol_delta, symbol), old[0], new[0])
        if old[4] != new[4]:
            _swap(_sum_of(self.symbol_dollar_delta, symbol), old[4], new[4])
        if old[5] != new[5]:
            for g in self._groups_of.get(symbol, ()):
                _swap(self.group_notional[g], old[5], new[5])

    def _needs_met(self, h: Holding) -> bool:
        n = self.needs
        if h.contract.is_option:
            g = h.greeks
            if g is None:
                return not n.greek_fields
            return all(
                positive(getattr(g, f)) if f in _POSITIVE_GREEKS else finite(getattr(g, f))
                for f in n.greek_fields
            )
        if n.stock_price or h.contract.symbol in n.group_symbols:
            return h.price() is not None
        return True

    # ------------------------------------------------------------ reading

    def groups_of(self, symbol: str) -> tuple[str, ...]:
        return self._groups_of.get(symbol, ())

    def oldest_greeks_t(self) -> float | None:
        """Event time of the oldest Greeks among option positions (None: none held)."""
        heap = self._greeks_heap
        while heap:
            t, id = heap[0]
            h = self.holdings.get(id)
            if h is not None and h.greeks_t == t:
                return t
            heapq.heappop(heap)
        return None

    def stale(self, t: float, max_age_s: float) -> StaleItem | None:
        """Why no decision can be made now (fail closed), or None."""
        if self._pending:
            self.settle()
        if self.incomplete:
            return StaleItem(
                f"{self.incomplete} position(s) lack the prices or Greeks the limits need",
                None,
                max_age_s,
            )
        if self.needs.nlv and not positive(self.nlv):
            return StaleItem("net liquidation value is unknown", None, max_age_s)
        if self.needs.greek_fields:
            oldest = self.oldest_greeks_t()
            if oldest is not None and t - oldest > max_age_s:
                age = t - oldest
                detail = f"Greeks are {age:.3f}s old (max_data_age_s {max_age_s:g})"
                return StaleItem(detail, age, max_age_s)
        return None

    def data_problem(self, t: float, max_age_s: float) -> str | None:
        """The stale data's description, or None (for views)."""
        item = self.stale(t, max_age_s)
        return None if item is None else item.detail

    def holdings_on(self, symbol: str) -> list[Holding]:
        return [self.holdings[i] for i in self.by_symbol.get(symbol, ())]

    def holding_for(self, contract: Contract) -> Holding | None:
        id = self.by_key.get(contract_key(contract))
        return None if id is None else self.holdings.get(id)


def _swap(total: ExactSum, old: float | None, new: float | None) -> None:
    """Take ``old`` out of ``total`` and put ``new`` in (None: nothing), exactly."""
    if old != new:
        if old is not None:
            total.sub(old)
        if new is not None:
            total.add(new)


def _sum_of(sums: dict[str, ExactSum], key: str) -> ExactSum:
    found = sums.get(key)
    if found is None:
        found = sums[key] = ExactSum()
    return found


def _contributions(h: Holding) -> tuple[float | None, ...]:
    return (h.delta, h.gamma, h.vega, h.theta, h.dollar_delta, h.notional)

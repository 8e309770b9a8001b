"""The portfolio's holdings and their running aggregates (DESIGN §2, §4).

Every update retires a holding's old contribution and admits its new one, so
totals, per-underlying delta and per-group notional cost O(1) per quote
instead of a pass over the book. Freshness is O(log n): a heap of Greek
timestamps with lazy deletion answers "how old are the oldest Greeks".
Pure: no threads, no I/O, no clock.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from actors.exact_sum import ExactSum
from actors.messages import Contract, Greeks

GREEK_FIELDS = ("delta", "gamma", "vega", "theta", "iv", "und_price")


def finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def positive(x: float | None) -> bool:
    return x is not None and math.isfinite(x) and x > 0


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
    def __init__(self, needs: Needs, groups: Mapping[str, Sequence[str]]) -> None:
        self.needs = needs
        self.groups = {name: tuple(symbols) for name, symbols in groups.items()}
        self._groups_of: dict[str, tuple[str, ...]] = {}
        for name, symbols in self.groups.items():
            for s in symbols:
                self._groups_of[s] = (*self._groups_of.get(s, ()), name)
        self.holdings: dict[str, Holding] = {}
        self.by_key: dict[tuple[object, ...], str] = {}
        self.totals = _Totals()
        self.symbol_delta: dict[str, ExactSum] = {}
        self.group_notional: dict[str, ExactSum] = {g: ExactSum() for g in self.groups}
        self.incomplete = 0
        self.nlv: float | None = None
        self.und_price: dict[str, float] = {}
        self.version = 0  # bumps on every change: lets costly views cache
        self._greeks_heap: list[tuple[float, str]] = []

    # ------------------------------------------------------------ updates

    def upsert(self, id: str, contract: Contract, qty: float) -> None:
        h = self.holdings.get(id)
        if h is None:
            h = Holding(id, contract, qty)
            self.holdings[id] = h
            self.by_key[contract_key(contract)] = id
        else:
            self._retire(h)
            if h.contract != contract:
                self.by_key.pop(contract_key(h.contract), None)
                self.by_key[contract_key(contract)] = id
            h.contract, h.qty = contract, qty
        self._admit(h)

    def remove(self, id: str) -> None:
        h = self.holdings.pop(id, None)
        if h is None:
            return
        self._retire(h)
        if self.by_key.get(contract_key(h.contract)) == id:
            del self.by_key[contract_key(h.contract)]
        self.version += 1

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
        self._retire(h)
        if positive(bid):
            h.bid = bid
        if positive(ask):
            h.ask = ask
        if positive(last):
            h.last = last
        if greeks is not None:
            h.greeks, h.greeks_t = greeks, t
            if h.contract.is_option:
                heapq.heappush(self._greeks_heap, (t, id))
        symbol = h.contract.symbol
        if h.contract.is_option:
            und = h.greek("und_price")
            if und is not None and und > 0:
                self.und_price[symbol] = und
        else:
            price = h.price()
            if price is not None:
                self.und_price[symbol] = price
        self._admit(h)

    def set_nlv(self, nlv: float) -> None:
        self.nlv = nlv
        self.version += 1

    # -------------------------------------------------- contributions

    def _retire(self, h: Holding) -> None:
        self._apply(h, -1.0)
        if not h.complete:
            self.incomplete -= 1

    def _admit(self, h: Holding) -> None:
        c, q = h.contract, h.qty
        if c.is_option:
            m = c.multiplier
            g = {n: h.greek(n) for n in ("delta", "gamma", "vega", "theta")}
            h.delta = None if g["delta"] is None else g["delta"] * q * m
            h.gamma = None if g["gamma"] is None else g["gamma"] * q * m
            h.vega = None if g["vega"] is None else g["vega"] * q * m
            h.theta = None if g["theta"] is None else g["theta"] * q * m
            und = h.greek("und_price")
            h.dollar_delta = None if h.delta is None or und is None else h.delta * und
            assert c.strike is not None
            h.notional = abs(q) * c.strike * m
        else:
            price = h.price()
            h.delta, h.gamma, h.vega, h.theta = q, 0.0, 0.0, 0.0
            h.dollar_delta = None if price is None else q * price
            h.notional = None if price is None else abs(q) * price
        self._apply(h, 1.0)
        h.complete = self._needs_met(h)
        if not h.complete:
            self.incomplete += 1
        self.version += 1

    def _apply(self, h: Holding, sign: float) -> None:
        t = self.totals
        for total, value in (
            (t.delta, h.delta),
            (t.gamma, h.gamma),
            (t.vega, h.vega),
            (t.theta, h.theta),
            (t.dollar_delta, h.dollar_delta),
        ):
            if value is not None:
                total.add(sign * value)
        symbol = h.contract.symbol
        if h.delta is not None:
            sd = self.symbol_delta.get(symbol)
            if sd is None:
                sd = self.symbol_delta[symbol] = ExactSum()
            sd.add(sign * h.delta)
        if h.notional is not None:
            for g in self._groups_of.get(symbol, ()):
                self.group_notional[g].add(sign * h.notional)

    def _needs_met(self, h: Holding) -> bool:
        n = self.needs
        if h.contract.is_option:
            return all(h.greek(f) is not None for f in n.greek_fields)
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

    def data_problem(self, t: float, max_age_s: float) -> str | None:
        """Why no decision can be made now (fail closed), or None."""
        if self.incomplete:
            return f"{self.incomplete} position(s) lack the prices or Greeks the limits need"
        if self.needs.nlv and not positive(self.nlv):
            return "net liquidation value is unknown"
        if self.needs.greek_fields:
            oldest = self.oldest_greeks_t()
            if oldest is not None and t - oldest > max_age_s:
                return f"Greeks are {t - oldest:.3f}s old (max_data_age_s {max_age_s:g})"
        return None

    def holding_for(self, contract: Contract) -> Holding | None:
        id = self.by_key.get(contract_key(contract))
        return None if id is None else self.holdings.get(id)

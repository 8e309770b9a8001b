"""Positions, strategies and the market data the gate reads.

Facts copied from the contract and the semantics doc:

- A quote is ignored entirely (its prices and Greeks too) when §3 (or §3.1
  for a strategy leg) rejects it; an accepted quote updates the position's
  prices and, when it carries `greeks`, its Greeks and their time.
- Each of bid, ask and last keeps its last valid value (finite, > 0).
- A held stock's price is its last trade, else its mid.
- Greek fields that are null or not finite count as missing; the age of the
  Greeks is that of the last accepted quote that carried Greeks.
- A contract is (symbol) for a stock and (symbol, right, strike, expiry,
  multiplier) for an option, numbers compared by value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from oracle.events import is_number
from oracle.stops import StopState

GREEK_FIELDS = ("delta", "gamma", "vega", "theta", "iv", "und_price")

#: (time, file sequence): "newest" compares by time, then by file order.
Stamp = tuple[float, int]


@dataclass
class Stamped:
    """A value with the time (and line number) that set it."""

    value: float
    stamp: Stamp


def finite_positive(x: float | None) -> bool:
    """A usable price: present, finite and > 0."""
    return x is not None and math.isfinite(x) and x > 0


def greeks_from(raw: object) -> dict[str, float | None] | None:
    """A `greeks` object as fields (None = missing), or None when the quote carries none."""
    if not isinstance(raw, dict):
        return None
    out: dict[str, float | None] = {}
    for name in GREEK_FIELDS:
        value = raw.get(name)
        out[name] = float(value) if is_number(value) and math.isfinite(value) else None
    return out


@dataclass
class Position:
    """One open position: its contract, stop state and latest market data."""

    id: str
    symbol: str
    sec_type: str
    contract: tuple[Any, ...]
    qty: float
    entry: float
    right: str | None = None
    strike: float | None = None
    expiry: str | None = None
    multiplier: float = 1.0
    strategy: str | None = None
    #: The per-leg stop stays off: a leg that left a strategy after its TRIGGER.
    stop_off: bool = False
    stop: StopState = field(default_factory=lambda: StopState(extreme=0.0))
    bid: Stamped | None = None
    ask: Stamped | None = None
    last: Stamped | None = None
    greeks: dict[str, float | None] | None = None
    greeks_stamp: Stamp | None = None
    #: Whether IB ever sent Greeks for it (then the supervisor never computes them).
    ib_greeks: bool = False
    #: The newest accepted quote with finite, > 0, uncrossed bid and ask (for the collar).
    collar_quote: tuple[Stamp, float, float] | None = None
    #: Strategy leg bookkeeping (§3.1).
    quoted_since_join: bool = False
    leg_ref: float | None = None

    @property
    def is_option(self) -> bool:
        """OPT or STK."""
        return self.sec_type == "OPT"

    @property
    def long(self) -> bool:
        """A long position (qty > 0)."""
        return self.qty > 0

    def stock_price(self) -> Stamped | None:
        """Last trade, else the mid of the kept bid and ask, with the stamp that set it."""
        if self.last is not None:
            return self.last
        if self.bid is not None and self.ask is not None:
            stamp = max(self.bid.stamp, self.ask.stamp)
            return Stamped((self.bid.value + self.ask.value) / 2, stamp)
        return None

    def und_price(self) -> Stamped | None:
        """An option's underlying price as of its last quote with Greeks."""
        if self.greeks is None or self.greeks_stamp is None:
            return None
        und = self.greeks.get("und_price")
        if und is None or not und > 0:
            return None
        return Stamped(und, self.greeks_stamp)

    def fresh_stop(self) -> None:
        """A fresh per-position stop: extreme = entry, not active, no breaches."""
        self.stop = StopState(extreme=self.entry)


@dataclass
class Strategy:
    """A strategy (§3.1): its legs in join order and the stop on its net price."""

    id: str
    symbol: str
    legs: list[str] = field(default_factory=list)
    started: bool = False
    triggered: bool = False
    long: bool = True
    entry: float = 0.0
    weights: dict[str, float] = field(default_factory=dict)
    state: StopState | None = None

    def restart(self) -> None:
        """Restart from scratch (a join, or a leg's quantity or entry price changed)."""
        if self.triggered:
            return
        self.started = False
        self.state = None
        self.weights = {}

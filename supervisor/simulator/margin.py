"""The simulator's own margin model: simple Reg-T-like rules, not IB's.

Why a model of our own: a what-if answer must carry believable numbers that
move with the marks, so the supervisor's margin checks can be exercised, and
a test must be able to recompute them by hand. These rules are that simple:

* **Stock**: initial 50 % of the position's value; maintenance 25 % long,
  30 % short.
* **Long option**: no margin. The premium is paid in full, out of cash, which
  lowers equity with loan instead (see :func:`equity_with_loan`).
* **Short option**, per contract (× multiplier, × contracts):
  ``max(20 % × underlying − out-of-the-money amount, 10 % × underlying)
  + the option's value``; initial and maintenance alike. The OTM amount is
  ``max(strike − underlying, 0)`` for a call, ``max(underlying − strike, 0)``
  for a put.
* **Combo**: the legs' requirements summed, position by position. There is
  **no spread offset** (real IB would cap a vertical at its maximum loss), so
  a spread here needs more margin than at IB; the direction of every change
  is still right.

Requirements are computed on the *net* position of each contract, so an
order that closes part of a short option frees its margin.

**Equity with loan** = cash + the value of stock positions (long positive,
short negative). US options have no loan value: a long option's premium has
left the cash and does not come back as equity, a short option's premium
sits in the cash and its value is in the requirement instead. So buying an
option lowers equity with loan by its premium, selling one raises it by the
premium while raising the requirement by more.

Everything here is pure: prices come in through :class:`Marks`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from .market import Instrument

#: Initial requirement of a stock position, as a fraction of its value.
STOCK_INITIAL = 0.50
#: Maintenance requirement of a long stock position.
STOCK_MAINT_LONG = 0.25
#: Maintenance requirement of a short stock position.
STOCK_MAINT_SHORT = 0.30
#: A short option's base requirement: this fraction of the underlying…
OPTION_UNDERLYING_PCT = 0.20
#: …less the out-of-the-money amount, but never below this fraction.
OPTION_MIN_PCT = 0.10


class Marks(Protocol):
    """Where the margin model gets prices (the simulator's :class:`Market`)."""

    def mark(self, inst: Instrument) -> float:
        """Per-share fair value of a contract."""
        ...

    def und_price(self, symbol: str) -> float:
        """The underlying's price."""
        ...


@dataclass(frozen=True)
class Margin:
    """Initial and maintenance requirement, in dollars."""

    init: float = 0.0
    maint: float = 0.0

    def __add__(self, other: Margin) -> Margin:
        return Margin(self.init + other.init, self.maint + other.maint)


def short_option_requirement(inst: Instrument, und: float, value: float) -> float:
    """Requirement of one short option contract, per share (multiply by the multiplier)."""
    if inst.strike is None:
        raise ValueError(f"{inst.local_symbol} has no strike")
    otm = max(inst.strike - und, 0.0) if inst.right == "C" else max(und - inst.strike, 0.0)
    return max(OPTION_UNDERLYING_PCT * und - otm, OPTION_MIN_PCT * und) + value


def position_margin(inst: Instrument, qty: float, marks: Marks) -> Margin:
    """The requirement of a net position of ``qty`` (negative: short) in ``inst``."""
    if qty == 0:
        return Margin()
    if inst.is_option:
        if qty > 0:
            return Margin()
        per_share = short_option_requirement(inst, marks.und_price(inst.symbol), marks.mark(inst))
        req = per_share * inst.multiplier * -qty
        return Margin(req, req)
    value = abs(qty) * marks.mark(inst) * inst.multiplier
    maint = STOCK_MAINT_LONG if qty > 0 else STOCK_MAINT_SHORT
    return Margin(STOCK_INITIAL * value, maint * value)


def portfolio_margin(holdings: Iterable[tuple[Instrument, float]], marks: Marks) -> Margin:
    """The requirement of every position, summed (no offsets between positions)."""
    total = Margin()
    for inst, qty in holdings:
        total = total + position_margin(inst, qty, marks)
    return total


def stock_value(holdings: Iterable[tuple[Instrument, float]], marks: Marks) -> float:
    """Signed value of the stock positions (the loan value equity counts)."""
    return sum(
        qty * marks.mark(inst) * inst.multiplier for inst, qty in holdings if not inst.is_option
    )


def equity_with_loan(
    cash: float, holdings: Iterable[tuple[Instrument, float]], marks: Marks
) -> float:
    """Cash plus stock value: options carry no loan value (see the module docstring)."""
    return cash + stock_value(holdings, marks)


@dataclass(frozen=True)
class WhatIfNumbers:
    """A what-if's answer before it is turned into IB's strings."""

    init_before: float
    maint_before: float
    equity_before: float
    init_after: float
    maint_after: float
    equity_after: float
    commission: float

    @property
    def init_change(self) -> float:
        return self.init_after - self.init_before

    @property
    def maint_change(self) -> float:
        return self.maint_after - self.maint_before

    @property
    def equity_change(self) -> float:
        return self.equity_after - self.equity_before


def what_if(
    cash: float,
    holdings: Mapping[int, tuple[Instrument, float]],
    changes: Iterable[tuple[Instrument, float]],
    commission: float,
    marks: Marks,
) -> WhatIfNumbers:
    """Margin and equity before and after ``changes`` (signed quantities) fill at the marks.

    ``holdings`` maps conId to (instrument, net quantity). The fill is assumed
    at each contract's mark, not at the order's limit, so equity moves only by
    what the model says it should (option premium, commission).
    """
    after: dict[int, tuple[Instrument, float]] = dict(holdings)
    cash_after = cash - commission
    for inst, delta in changes:
        held = after.get(inst.con_id, (inst, 0.0))[1]
        after[inst.con_id] = (inst, held + delta)
        cash_after -= delta * marks.mark(inst) * inst.multiplier
    before_m = portfolio_margin(holdings.values(), marks)
    after_m = portfolio_margin(after.values(), marks)
    return WhatIfNumbers(
        init_before=before_m.init,
        maint_before=before_m.maint,
        equity_before=equity_with_loan(cash, holdings.values(), marks),
        init_after=after_m.init,
        maint_after=after_m.maint,
        equity_after=equity_with_loan(cash_after, after.values(), marks),
        commission=commission,
    )

"""The one protocol every portfolio limit follows, and how the gate judges its measures.

A limit says what data it needs before any decision (:meth:`needs`), its usage
now (:meth:`usage`, for the state view and the utilization metric) and, for a
proposed order, each of its measures the order touches as a pair
``(usage before, usage after)`` (:meth:`measures`). The gate does the rest, the
same way for every limit (DESIGN §4):

* a measure is **violated** when usage after > limit and usage after > before;
* the order is **risk-reducing** when no touched measure grows and one shrinks;
* a usage that is not a finite number is never "fine": the order is denied
  ``stale_data`` (fail closed), whatever the limit says.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from actors.book import Book, Needs
from actors.gate.leg_risk import LegRisk
from actors.gate.params import GateParams
from actors.gate.stale import Stale
from actors.market_book import MarketBook
from actors.messages import Reason, ReasonCode

Measure = tuple[float, float]  # (usage-bearing measure before, after) — signed; usage is |x|


@dataclass(slots=True)
class LimitContext:
    """What a limit may read: the book, the market, the configuration, event time."""

    book: Book
    market: MarketBook
    params: GateParams
    t: float


class PortfolioLimit(Protocol):
    code: ReasonCode
    limit: float

    def needs(self) -> Needs:
        """The data every position must have before this limit can decide."""
        ...

    def usage(self, ctx: LimitContext) -> float | None:
        """Usage now (the largest, for a limit with several measures); None: unknown."""
        ...

    def measures(self, ctx: LimitContext, legs: Sequence[LegRisk]) -> Iterable[Measure]:
        """Each measure the order touches, before and after; raises Stale without data."""
        ...


@dataclass(slots=True)
class Judge:
    """Collects violations and the risk-reducing tally over touched measures."""

    max_data_age_s: float
    reasons: list[Reason] = field(default_factory=list)
    grew: bool = False
    shrank: bool = False

    def measure(self, code: ReasonCode, limit: float, before: float, after: float) -> None:
        if not (math.isfinite(before) and math.isfinite(after)):
            raise Stale(
                f"{code.value}: the usage is not a finite number", None, self.max_data_age_s
            )
        if after == before:
            return
        used_before, used_after = abs(before), abs(after)
        if used_after > used_before:
            self.grew = True
            if used_after > limit:
                self.reasons.append(Reason(code, used_after, limit))
        elif used_after < used_before:
            self.shrank = True

    @property
    def risk_reducing(self) -> bool:
        return self.shrank and not self.grew


def merged_needs(limits: Iterable[PortfolioLimit]) -> Needs:
    fields: set[str] = set()
    stock_price = False
    group_symbols: set[str] = set()
    nlv = False
    for lim in limits:
        n = lim.needs()
        fields |= n.greek_fields
        stock_price = stock_price or n.stock_price
        group_symbols |= n.group_symbols
        nlv = nlv or n.nlv
    return Needs(frozenset(fields), stock_price, frozenset(group_symbols), nlv)

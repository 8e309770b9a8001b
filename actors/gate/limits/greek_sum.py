"""A portfolio-wide sum: delta, dollar delta, gamma, vega or theta (DESIGN §4 table)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from actors.book import Needs
from actors.gate.leg_risk import LegRisk
from actors.gate.limit import LimitContext, Measure
from actors.messages import ReasonCode

# What each sum needs on every option position (stocks: a price for dollar delta).
_FIELDS: dict[str, frozenset[str]] = {
    "delta": frozenset({"delta"}),
    "dollar_delta": frozenset({"delta", "und_price"}),
    "gamma": frozenset({"gamma"}),
    "vega": frozenset({"vega"}),
    "theta": frozenset({"theta"}),
}


class GreekSum:
    """Σ of one Greek over the book (running exact sums), plus the order's legs."""

    def __init__(self, code: ReasonCode, attr: str, limit: float) -> None:
        self.code = code
        self.attr = attr
        self.limit = limit

    def needs(self) -> Needs:
        return Needs(_FIELDS[self.attr], stock_price=self.attr == "dollar_delta")

    def usage(self, ctx: LimitContext) -> float | None:
        value: float = getattr(ctx.book.totals, self.attr).value
        return abs(value)

    def measures(self, ctx: LimitContext, legs: Sequence[LegRisk]) -> Iterator[Measure]:
        total = getattr(ctx.book.totals, self.attr)
        yield total.value, total.plus(getattr(leg, self.attr) for leg in legs)

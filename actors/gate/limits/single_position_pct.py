"""One position's notional as % of the (estimated) NLV: one measure per instrument."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from actors.book import Needs
from actors.gate.leg_risk import LegRisk
from actors.gate.limit import LimitContext, Measure
from actors.gate.limits.notional import nlv, notional_changes
from actors.gate.stale import Stale
from actors.messages import ReasonCode


class SinglePositionPct:
    code = ReasonCode.MAX_SINGLE_POSITION_PCT

    def __init__(self, limit: float) -> None:
        self.limit = limit

    def needs(self) -> Needs:
        return Needs(stock_price=True, nlv=True)

    def usage(self, ctx: LimitContext) -> float | None:
        try:
            value = nlv(ctx)
        except Stale:
            return None
        notionals = (h.notional for h in ctx.book.holdings.values() if h.notional is not None)
        return max((n / value * 100 for n in notionals), default=0.0)

    def measures(self, ctx: LimitContext, legs: Sequence[LegRisk]) -> Iterator[Measure]:
        value = nlv(ctx)
        for _, before, after in notional_changes(ctx, legs):
            yield before / value * 100, after / value * 100

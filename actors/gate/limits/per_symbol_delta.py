"""Delta of one underlying: one measure per underlying the order touches."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

from actors.book import Needs
from actors.gate.leg_risk import LegRisk
from actors.gate.limit import LimitContext, Measure
from actors.messages import ReasonCode


class PerSymbolDelta:
    code = ReasonCode.MAX_PER_SYMBOL_DELTA

    def __init__(self, limit: float) -> None:
        self.limit = limit

    def needs(self) -> Needs:
        return Needs(frozenset({"delta"}))

    def usage(self, ctx: LimitContext) -> float | None:
        return max((abs(s.value) for s in ctx.book.symbol_delta.values()), default=0.0)

    def measures(self, ctx: LimitContext, legs: Sequence[LegRisk]) -> Iterator[Measure]:
        for symbol in dict.fromkeys(leg.contract.symbol for leg in legs):
            current = ctx.book.symbol_delta.get(symbol)
            extra = [leg.delta for leg in legs if leg.contract.symbol == symbol]
            before = 0.0 if current is None else current.value
            after = math.fsum(extra) if current is None else current.plus(extra)
            yield before, after

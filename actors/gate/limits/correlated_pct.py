"""A correlated group's notional (``[groups]``) as % of the (estimated) NLV."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from actors.book import Needs
from actors.gate.leg_risk import LegRisk
from actors.gate.limit import LimitContext, Measure
from actors.gate.limits.notional import nlv, notional_changes
from actors.gate.stale import Stale
from actors.messages import ReasonCode


class CorrelatedPct:
    code = ReasonCode.MAX_CORRELATED_PCT

    def __init__(self, limit: float, groups: dict[str, tuple[str, ...]]) -> None:
        self.limit = limit
        self.groups = groups

    def needs(self) -> Needs:
        symbols = frozenset(s for members in self.groups.values() for s in members)
        return Needs(group_symbols=symbols, nlv=True)

    def usage(self, ctx: LimitContext) -> float | None:
        try:
            value = nlv(ctx)
        except Stale:
            return None
        sums = ctx.book.group_notional.values()
        return max((abs(s.value) / value * 100 for s in sums), default=0.0)

    def measures(self, ctx: LimitContext, legs: Sequence[LegRisk]) -> Iterator[Measure]:
        value = nlv(ctx)
        changes = notional_changes(ctx, legs)
        for group, total in ctx.book.group_notional.items():
            members = self.groups[group]
            delta = [x for symbol, b, a in changes if symbol in members for x in (a, -b)]
            if delta:
                yield total.value / value * 100, total.plus(delta) / value * 100

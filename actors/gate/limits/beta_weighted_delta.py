"""Beta-weighted delta: Σ dollar delta × β(symbol) ÷ price(index), in index shares (§4.1).

Per-underlying dollar deltas are running exact sums in the book, so a check
costs O(underlyings + legs). The index price is the newest of an open stock
position on the index, an open option on it (``und_price`` of its last quote
with Greeks) and a ``market`` line of the index stock; the order's legs never
set it, and it must be no older than ``max_data_age_s``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

from actors.book import Needs
from actors.gate.leg_risk import LegRisk
from actors.gate.limit import LimitContext, Measure
from actors.gate.stale import Stale
from actors.messages import ReasonCode


def index_price(ctx: LimitContext) -> float:
    """The freshest index price; raises Stale when none is known or it is too old."""
    index = ctx.params.beta.index
    max_age = ctx.params.limits.max_data_age_s
    if index is None:
        raise Stale("beta.index is not configured", None, max_age)
    best: tuple[float, float] | None = ctx.market.market_stock_price(index)
    for h in ctx.book.holdings_on(index):
        seen: tuple[float, float] | None = None
        if h.contract.is_option:
            seen = h.und_seen
        else:
            price = h.price()
            if price is not None and h.price_t is not None:
                seen = (h.price_t, price)
        if seen is not None and (best is None or seen[0] > best[0]):
            best = seen
    if best is None:
        raise Stale(f"no price of the index {index}", None, max_age)
    age = ctx.t - best[0]
    if age > max_age:
        raise Stale(f"the {index} price is {age:.3f}s old", age, max_age)
    return best[1]


def _beta(ctx: LimitContext, symbol: str) -> float:
    b = ctx.params.beta.beta(symbol)
    if b is None:
        raise Stale(f"no beta for {symbol}", None, ctx.params.limits.max_data_age_s)
    return b


class BetaWeightedDelta:
    code = ReasonCode.MAX_BETA_WEIGHTED_DELTA

    def __init__(self, limit: float) -> None:
        self.limit = limit

    def needs(self) -> Needs:
        return Needs(frozenset({"delta", "und_price"}), stock_price=True)

    def _held_terms(self, ctx: LimitContext) -> list[float]:
        book = ctx.book
        return [
            _beta(ctx, symbol) * book.symbol_dollar_delta[symbol].value
            if symbol in book.symbol_dollar_delta
            else _beta(ctx, symbol) * 0.0
            for symbol in sorted(book.by_symbol)
        ]

    def value(self, ctx: LimitContext) -> float:
        """The measure now (signed, index shares)."""
        return math.fsum(self._held_terms(ctx)) / index_price(ctx)

    def usage(self, ctx: LimitContext) -> float | None:
        try:
            return abs(self.value(ctx))
        except Stale:
            return None

    def measures(self, ctx: LimitContext, legs: Sequence[LegRisk]) -> Iterator[Measure]:
        held = self._held_terms(ctx)
        extra = [_beta(ctx, leg.contract.symbol) * leg.dollar_delta for leg in legs]
        price = index_price(ctx)
        yield math.fsum(held) / price, math.fsum(held + extra) / price

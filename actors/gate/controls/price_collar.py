"""``price_collar_pct``: a leg's price must lie within the quote's spread plus a band.

Violated when price > ask + mid × pct/100 or price < bid − mid × pct/100; the
band is measured from the far side of the spread, so a wide spread widens
the collar instead of rejecting every order on an illiquid option. The quote
is the newest usable one of the leg's contract (a held position's accepted
quote or a ``market`` line); none, or one older than ``max_data_age_s``, and
the leg gives ``stale_data`` (the collar fails closed). Every leg needs a
quote; a leg without a price has nothing to collar.
"""

from __future__ import annotations

from actors.gate.controls.control import ControlContext
from actors.gate.order import leg_contract
from actors.gate.stale import StaleItem
from actors.messages import Leg, Reason, ReasonCode


class PriceCollar:
    code = ReasonCode.PRICE_COLLAR_PCT

    def __init__(self, pct: float) -> None:
        self.limit = pct

    def judge(self, ctx: ControlContext, legs: tuple[Leg, ...]) -> Reason | None:
        max_age = ctx.params.limits.max_data_age_s
        first: Reason | None = None
        for i, leg in enumerate(legs):
            quote = ctx.market.collar_quote(leg_contract(leg))
            if quote is None:
                ctx.stale.append(StaleItem(f"legs[{i}]: no quote for the collar", None, max_age))
                continue
            age = ctx.t - quote.t
            if age > max_age:
                ctx.stale.append(StaleItem(f"legs[{i}]: the quote is {age:.3f}s old", age, max_age))
                continue
            price = leg.price
            if price is None or first is not None:
                continue
            band = quote.mid * self.limit / 100
            if price > quote.ask + band or price < quote.bid - band:
                first = Reason(self.code, price, self.limit)
        return first

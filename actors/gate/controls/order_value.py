"""``max_order_notional`` and ``max_order_premium``: what the order is worth.

Notional (DESIGN §2): an option leg |qty| × strike × multiplier, a stock leg
|qty| × its own ``price``. Premium: Σ option legs' |qty| × price × multiplier.
A leg whose value needs a price it does not carry cannot be judged: the order
fails closed (``stale_data``), it is not waved through.
"""

from __future__ import annotations

import math

from actors.gate.controls.control import ControlContext
from actors.gate.stale import StaleItem
from actors.messages import Leg, Reason, ReasonCode, SecType


class OrderNotional:
    code = ReasonCode.MAX_ORDER_NOTIONAL

    def __init__(self, limit: float) -> None:
        self.limit = limit

    def judge(self, ctx: ControlContext, legs: tuple[Leg, ...]) -> Reason | None:
        parts: list[float] = []
        for i, leg in enumerate(legs):
            if leg.sec_type is SecType.OPT:
                assert leg.strike is not None and leg.multiplier is not None
                parts.append(abs(leg.qty) * leg.strike * leg.multiplier)
            elif leg.price is None:
                ctx.stale.append(StaleItem(f"legs[{i}]: a stock leg without a price"))
                return None
            else:
                parts.append(abs(leg.qty) * leg.price)
        total = math.fsum(parts)
        return Reason(self.code, total, self.limit) if total > self.limit else None


class OrderPremium:
    code = ReasonCode.MAX_ORDER_PREMIUM

    def __init__(self, limit: float) -> None:
        self.limit = limit

    def judge(self, ctx: ControlContext, legs: tuple[Leg, ...]) -> Reason | None:
        parts: list[float] = []
        for i, leg in enumerate(legs):
            if leg.sec_type is not SecType.OPT:
                continue
            if leg.price is None:
                ctx.stale.append(StaleItem(f"legs[{i}]: an option leg without a price"))
                return None
            assert leg.multiplier is not None
            parts.append(abs(leg.qty) * leg.price * leg.multiplier)
        total = math.fsum(parts)
        return Reason(self.code, total, self.limit) if total > self.limit else None

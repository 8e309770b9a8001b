"""``max_leg_contracts`` / ``max_leg_shares``: each leg alone, by its |qty| (fat fingers)."""

from __future__ import annotations

from actors.gate.controls.control import ControlContext
from actors.messages import Leg, Reason, ReasonCode, SecType


class LegSize:
    def __init__(self, code: ReasonCode, sec_type: SecType, limit: float) -> None:
        self.code = code
        self.sec_type = sec_type
        self.limit = limit

    def judge(self, ctx: ControlContext, legs: tuple[Leg, ...]) -> Reason | None:
        sizes = [abs(leg.qty) for leg in legs if leg.sec_type is self.sec_type]
        over = [q for q in sizes if q > self.limit]
        return Reason(self.code, max(over), self.limit) if over else None

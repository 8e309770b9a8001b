"""``[cooldown] after_trigger_s``: no new entry on an underlying right after a stop-out.

An order that is not risk-reducing, with a leg on an underlying one of whose
positions (open or closed since) TRIGGERed at t₀ with t − t₀ < after_trigger_s,
is denied ``cooldown`` with value t − t₀ of the newest such trigger. A
strategy's TRIGGER counts on its symbol. Restarts reload the triggers from
the journal, so a restart does not end a cooldown.
"""

from __future__ import annotations

from actors.messages import Leg, Reason, ReasonCode


class Cooldown:
    code = ReasonCode.COOLDOWN

    def __init__(self, after_trigger_s: float) -> None:
        self.limit = after_trigger_s
        self.last_trigger: dict[str, float] = {}

    def triggered(self, t: float, symbol: str) -> None:
        if t > self.last_trigger.get(symbol, -float("inf")):
            self.last_trigger[symbol] = t

    def judge(self, t: float, legs: tuple[Leg, ...]) -> Reason | None:
        ages = [
            t - t0
            for symbol in dict.fromkeys(leg.symbol for leg in legs)
            if (t0 := self.last_trigger.get(symbol)) is not None and t - t0 < self.limit
        ]
        return Reason(self.code, min(ages), self.limit) if ages else None

"""The breaker's half of a check: the order's history, the margin, the breaker, the answer.

Runs on the breaker actor, one message at a time, so the stateful controls
and the half-open permits can never be raced: two concurrent checks cannot
both be the N-th order of a window or both take the last permit. The answer
lists every reason in DESIGN §4's order — portfolio limits, order controls,
cooldown, margin, ``stale_data``, the breaker's code — and only the taking of
a half-open permit waits until every other rule has allowed the order.
"""

from __future__ import annotations

from dataclasses import dataclass

from actors.circuit_breaker import CircuitBreaker, Transitions
from actors.gate.assessment import Assessment
from actors.gate.controls.registry import admission_controls
from actors.gate.margin import judge_margin
from actors.gate.order import OrderKey
from actors.gate.params import GateParams
from actors.gate.stale import StaleItem, stale_reason
from actors.messages import CheckAnswer, Reason, ReasonCode, WhatIf


@dataclass(frozen=True, slots=True)
class AllowedOrder:
    """An allowed order as the stateful controls remember it (and a restart reloads it)."""

    t: float
    key: OrderKey


class Admission:
    def __init__(self, params: GateParams) -> None:
        self.params = params
        self.controls = admission_controls(params.orders)

    def horizon_s(self) -> float:
        """How far back allowed orders matter to the stateful controls."""
        return max((c.horizon_s() for c in self.controls), default=0.0)

    def reload(self, allowed: list[AllowedOrder]) -> None:
        """Seed the windows with allowed orders from the journal (after a restart)."""
        for order in allowed:
            for c in self.controls:
                c.admitted(order.t, order.key)

    def decide(
        self, a: Assessment, whatif: WhatIf | None, breaker: CircuitBreaker
    ) -> tuple[CheckAnswer, Transitions]:
        if a.invalid is not None:
            reasons = (Reason(ReasonCode.INVALID_ORDER),)
            return CheckAnswer(a.t, a.id, False, reasons, False, breaker.state, a.invalid), []
        t = a.t
        controls = list(a.control_reasons)
        controls += [r for c in self.controls if (r := c.judge(t, a.key)) is not None]
        margin: list[Reason] = []
        stale: list[StaleItem] = list(a.stale)
        margin_judged = a.margin_needed and not (a.limit_reasons or controls or a.cooldown or stale)
        if margin_judged:
            margin, missing = judge_margin(self.params.margin, whatif, a.nlv)
            stale.extend(missing)
        others = [*a.limit_reasons, *controls]
        if a.cooldown is not None:
            others.append(a.cooldown)
        others += margin
        stale_data = stale_reason(stale)
        if stale_data is not None:
            others.append(stale_data)
        code, moved = breaker.admit(t, entry=not a.risk_reducing, wants_permit=not others)
        if code is not None:
            others.append(Reason(code))
        allowed = not others
        if allowed:
            for c in self.controls:
                c.admitted(t, a.key)
        detail = "; ".join(s.detail for s in stale)
        answer = CheckAnswer(
            t,
            a.id,
            allowed,
            tuple(others),
            a.risk_reducing,
            breaker.state,
            detail,
            whatif if margin_judged else None,
        )
        return answer, moved

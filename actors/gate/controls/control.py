"""The protocols order controls follow.

Stateless controls (:class:`OrderControl`) judge an order on its legs and the
market; they run in the portfolio's assessment. Stateful ones
(:class:`AdmissionControl`: rate, duplicates) remember the orders that were
allowed; they run in the admission, the one sequential place that knows
whether an order was finally allowed (only allowed orders count).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from actors.gate.order import OrderKey
from actors.gate.params import GateParams
from actors.gate.stale import StaleItem
from actors.market_book import MarketBook
from actors.messages import Leg, Reason, ReasonCode


@dataclass(slots=True)
class ControlContext:
    t: float
    market: MarketBook
    params: GateParams
    stale: list[StaleItem] = field(default_factory=list)  # a control's missing data


class OrderControl(Protocol):
    code: ReasonCode

    def judge(self, ctx: ControlContext, legs: tuple[Leg, ...]) -> Reason | None: ...


class AdmissionControl(Protocol):
    code: ReasonCode

    def judge(self, t: float, key: OrderKey) -> Reason | None:
        """The reason this order is denied now, or None; changes nothing."""
        ...

    def admitted(self, t: float, key: OrderKey) -> None:
        """The order was allowed: count it."""
        ...

    def horizon_s(self) -> float:
        """How far back allowed orders matter (what a restart must reload)."""
        ...

"""The portfolio's half of a check: what the book, the market and the P&L say.

Runs on the portfolio actor, which owns the book. It answers everything that
depends on holdings and prices — the portfolio limits and whether the order
is risk-reducing, the stateless order controls and the collar, the cooldown,
every freshness rule — and hands an :class:`Assessment` to the admission
(on the breaker actor), which adds what depends on the order's own history
and the breaker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from actors.book import Book, Needs
from actors.gate.controls.control import ControlContext
from actors.gate.controls.registry import order_controls
from actors.gate.cooldown import Cooldown
from actors.gate.leg_risk import resolve
from actors.gate.limit import Judge, LimitContext, merged_needs
from actors.gate.limits.registry import configured_limits
from actors.gate.order import OrderKey, invalid_reason, order_key
from actors.gate.params import GateParams
from actors.gate.stale import Stale, StaleItem
from actors.market_book import MarketBook
from actors.messages import CheckRequest, Leg, Reason, WhatIf
from actors.money import Money


@dataclass(frozen=True, slots=True)
class Assessment:
    t: float
    id: str
    legs: tuple[Leg, ...]
    invalid: str | None = None
    limit_reasons: tuple[Reason, ...] = ()
    control_reasons: tuple[Reason, ...] = ()
    cooldown: Reason | None = None
    stale: tuple[StaleItem, ...] = ()
    risk_reducing: bool = False
    key: OrderKey = ()
    nlv: float | None = None  # the estimated NLV, for max_init_margin_pct
    margin_needed: bool = False
    detail: str = ""

    @property
    def denied(self) -> bool:
        """Something other than the admission's own rules already denies the order."""
        return bool(
            self.invalid
            or self.limit_reasons
            or self.control_reasons
            or self.cooldown
            or self.stale
        )


@dataclass(frozen=True, slots=True)
class Assess:
    """A check's book-side rules only: the portfolio answers with the :class:`Assessment`.

    The gate's path when it can run the portfolio in its own thread
    (``call_here``): it then takes the assessment to the admission itself.
    """

    request: CheckRequest


@dataclass(frozen=True, slots=True)
class Admit:
    """An assessment on its way to the admission (breaker actor), which answers ``reply_to``."""

    assessment: Assessment
    whatif: WhatIf | None = None
    reply_to: Any = field(default=None, compare=False, repr=False)


class Assessor:
    """The gate's book-side rules, configured once; the book and market are the actor's."""

    def __init__(self, params: GateParams, book: Book, market: MarketBook, money: Money) -> None:
        self.params = params
        self.book = book
        self.market = market
        self.money = money
        self.limits = configured_limits(params)
        self.controls = order_controls(params.orders)
        self.cooldown = None if params.cooldown_s is None else Cooldown(params.cooldown_s)

    @staticmethod
    def needs_of(params: GateParams) -> Needs:
        """What every position must carry before the configured limits can decide."""
        n = merged_needs(configured_limits(params))
        if params.margin.max_init_margin_pct is not None and not n.nlv:
            n = Needs(n.greek_fields, n.stock_price, n.group_symbols, True)
        return n

    def assess(self, req: CheckRequest) -> Assessment:
        t, legs = req.t, req.legs
        problem = req.invalid or invalid_reason(legs)
        if problem is not None:
            return Assessment(t, req.id, legs, invalid=problem, detail=problem)
        stale: list[StaleItem] = []
        details: list[str] = []

        limit_reasons: tuple[Reason, ...] = ()
        risk_reducing = False
        item = self.book.stale(t, self.params.limits.max_data_age_s)
        if item is not None:
            stale.append(item)
        if item is None or item.age is not None:
            # Every piece of data is judged, not only the first that fails: the
            # answer's stale_data value is the largest age, or null when anything
            # is missing (DESIGN §4). Old Greeks are still Greeks: the limits can
            # be computed to find what else is missing, their verdicts unused.
            try:
                judge, missing = self._judge_limits(t, legs)
            except (ArithmeticError, ValueError) as exc:  # numbers no real order has
                detail = f"out of range: {exc}"
                return Assessment(t, req.id, legs, invalid=detail, detail=detail)
            stale.extend(missing)
            if item is None and not missing:
                limit_reasons = tuple(judge.reasons)
                risk_reducing = judge.risk_reducing

        cctx = ControlContext(t, self.market, self.params)
        controls = tuple(r for c in self.controls if (r := c.judge(cctx, legs)) is not None)
        stale.extend(cctx.stale)

        cooldown = None
        if self.cooldown is not None and not risk_reducing:
            cooldown = self.cooldown.judge(t, legs)

        loss = self.params.loss
        if loss.enabled and not risk_reducing:
            age = self.money.pnl_age(t)
            if age is None:
                stale.append(StaleItem("no daily P&L yet", None, loss.max_pnl_age_s))
            elif age > loss.max_pnl_age_s:
                stale.append(StaleItem(f"the daily P&L is {age:.3f}s old", age, loss.max_pnl_age_s))
        details.extend(s.detail for s in stale)
        return Assessment(
            t,
            req.id,
            legs,
            None,
            limit_reasons,
            controls,
            cooldown,
            tuple(stale),
            risk_reducing,
            order_key(legs),
            self.book.nlv,
            self.params.margin.enabled and not risk_reducing,
            "; ".join(details),
        )

    def _judge_limits(self, t: float, legs: tuple[Leg, ...]) -> tuple[Judge, list[StaleItem]]:
        """Every configured limit's measures; the data found missing or old on the way."""
        ctx = LimitContext(self.book, self.market, self.params, t)
        judge = Judge(self.params.limits.max_data_age_s)
        missing: list[StaleItem] = []
        risks = []
        for leg in legs:
            try:
                risks.append(resolve(leg, self.book, t, self.params))
            except Stale as exc:
                missing.append(exc.item)
        if missing:
            return judge, missing
        for limit in self.limits:
            try:
                for before, after in limit.measures(ctx, risks):
                    judge.measure(limit.code, limit.limit, before, after)
            except Stale as exc:
                missing.append(exc.item)
        return judge, missing

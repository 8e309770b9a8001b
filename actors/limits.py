"""The pre-trade gate's limit evaluation (DESIGN §4). Pure: no threads, no I/O.

A check projects the book *after* the order without changing it. Each limit
measure the order touches is judged on its usage (the absolute value of the
measure) before and after:

* violated when usage after > limit and usage after > usage before, so an order
  may always move toward compliance and an untouched limit never blocks;
* the order is risk-reducing when no touched measure's usage grows and at
  least one shrinks: such orders pass whatever the breaker says.

Only measures the order touches are computed, so a check costs O(legs) on top
of the running aggregates — except the stress limit, which reprices the whole
book over the scenario grid (vectorized).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from actors import pricing
from actors.book import Book, Holding, Needs, PricingParams, contract_key, finite, positive
from actors.messages import (
    LIMIT_CODES,
    BreakerState,
    CheckAnswer,
    CheckRequest,
    Contract,
    Greeks,
    Leg,
    LimitVerdict,
    Reason,
    ReasonCode,
    Right,
    SecType,
)

C = ReasonCode
GREEK_LIMITS = (
    C.MAX_PORTFOLIO_DELTA,
    C.MAX_PORTFOLIO_DOLLAR_DELTA,
    C.MAX_PORTFOLIO_GAMMA,
    C.MAX_PORTFOLIO_VEGA,
    C.MAX_PORTFOLIO_THETA,
    C.MAX_PER_SYMBOL_DELTA,
    C.MAX_STRESS_LOSS,
)


@dataclass(frozen=True, slots=True)
class LimitParams:
    """Configured limits (None: not set) and the freshness bound on Greeks."""

    values: Mapping[ReasonCode, float] = field(default_factory=dict)
    max_data_age_s: float = 60.0

    def get(self, code: ReasonCode) -> float | None:
        return self.values.get(code)


@dataclass(frozen=True, slots=True)
class StressParams:
    spot_shocks_pct: tuple[float, ...] = (-15.0, -10.0, -5.0, 0.0, 5.0, 10.0, 15.0)
    vol_shocks_pts: tuple[float, ...] = (-10.0, 0.0, 10.0)


@dataclass(frozen=True, slots=True)
class GateParams:
    limits: LimitParams = field(default_factory=LimitParams)
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    stress: StressParams = field(default_factory=StressParams)
    pricing: PricingParams = field(default_factory=PricingParams)


def needs_for(params: GateParams) -> Needs:
    """What the configured limits need from every position before deciding."""
    lim = params.limits
    fields: set[str] = set()
    if lim.get(C.MAX_PORTFOLIO_DELTA) is not None or lim.get(C.MAX_PER_SYMBOL_DELTA) is not None:
        fields.add("delta")
    if lim.get(C.MAX_PORTFOLIO_DOLLAR_DELTA) is not None:
        fields |= {"delta", "und_price"}
    for code, name in (
        (C.MAX_PORTFOLIO_GAMMA, "gamma"),
        (C.MAX_PORTFOLIO_VEGA, "vega"),
        (C.MAX_PORTFOLIO_THETA, "theta"),
    ):
        if lim.get(code) is not None:
            fields.add(name)
    stress = lim.get(C.MAX_STRESS_LOSS) is not None
    if stress:
        fields |= {"iv", "und_price"}
    stock_price = stress or any(
        lim.get(c) is not None for c in (C.MAX_PORTFOLIO_DOLLAR_DELTA, C.MAX_SINGLE_POSITION_PCT)
    )
    correlated = lim.get(C.MAX_CORRELATED_PCT) is not None
    group_symbols = (
        frozenset(s for symbols in params.groups.values() for s in symbols)
        if correlated
        else frozenset()
    )
    nlv = any(lim.get(c) is not None for c in (C.MAX_SINGLE_POSITION_PCT, C.MAX_CORRELATED_PCT))
    return Needs(frozenset(fields), stock_price, group_symbols, nlv)


# ----------------------------------------------------------------- validation


# No real order comes near these; past them the arithmetic of a check overflows.
MAX_QTY = 1e9
MAX_PRICE = 1e9


def invalid_reason(legs: tuple[Leg, ...]) -> str | None:
    """Why an order is malformed, naming the leg and field, or None."""
    if not legs:
        return "the order has no legs"
    for i, leg in enumerate(legs):
        where = f"legs[{i}]"
        if not leg.symbol:
            return f"{where}.symbol is missing"
        if not finite(leg.qty):
            return f"{where}.qty must be a finite number"
        if abs(leg.qty) > MAX_QTY:
            return f"{where}.qty is out of range (|qty| <= {MAX_QTY:g})"
        for name in ("price", "strike", "multiplier"):
            v = getattr(leg, name)
            if v is not None and finite(v) and abs(v) > MAX_PRICE:
                return f"{where}.{name} is out of range (<= {MAX_PRICE:g})"
        if leg.qty == 0:
            return f"{where}.qty is 0"
        if leg.price is not None and not finite(leg.price):
            return f"{where}.price must be a finite number"
        if leg.price is not None and leg.price <= 0:
            return f"{where}.price must be > 0"
        if leg.greeks is not None:
            for name in ("delta", "gamma", "vega", "theta", "iv", "und_price"):
                v = getattr(leg.greeks, name)
                if v is not None and not math.isfinite(v):
                    return f"{where}.greeks.{name} must be a finite number"
        if leg.sec_type is SecType.OPT:
            for name in ("right", "strike", "expiry", "multiplier"):
                if getattr(leg, name) is None:
                    return f"{where}.{name} is required for an option"
            for name in ("strike", "multiplier"):
                if not positive(getattr(leg, name)):
                    return f"{where}.{name} must be a finite number > 0"
            try:
                pricing.year_fraction(leg.expiry or "", 0.0)
            except pricing.PricingError:
                return f"{where}.expiry must be a date YYYY-MM-DD"
    return None


def leg_contract(leg: Leg) -> Contract:
    if leg.sec_type is SecType.OPT:
        assert leg.multiplier is not None
        return Contract(leg.symbol, SecType.OPT, leg.right, leg.strike, leg.expiry, leg.multiplier)
    return Contract(leg.symbol, SecType.STK)


# ------------------------------------------------------------ leg resolution


@dataclass(slots=True)
class _LegRisk:
    contract: Contract
    qty: float
    price: float | None  # stock legs: the leg's price
    greeks: Greeks | None  # option legs: per-share Greeks resolved for this leg
    delta: float = 0.0
    gamma: float = 0.0
    vega: float = 0.0
    theta: float = 0.0
    dollar_delta: float = 0.0


class _Stale(Exception):
    """Data a decision needs is missing: deny with stale_data."""


def _has(g: Greeks | None, names: frozenset[str]) -> bool:
    return g is not None and all(finite(getattr(g, n)) for n in names)


def _option_greeks(
    leg: Leg, contract: Contract, held: Holding | None, book: Book, t: float, params: GateParams
) -> Greeks | None:
    """Greeks for an option leg: its own, else the held contract's, else BSM from its price."""
    wanted = book.needs.greek_fields
    if not wanted:
        return leg.greeks
    if _has(leg.greeks, wanted):
        return leg.greeks
    if held is not None and _has(held.greeks, wanted):
        return held.greeks
    und = book.und_price.get(leg.symbol)
    if not positive(leg.price) or und is None:
        raise _Stale(f"no Greeks for the {leg.symbol} option leg and no price to compute them")
    assert leg.price is not None and contract.strike is not None and contract.expiry is not None
    is_call = contract.right is Right.CALL
    T = pricing.year_fraction(contract.expiry, t)
    r, q = params.pricing.rate, params.pricing.q(leg.symbol)
    try:
        iv = pricing.implied_vol(leg.price, is_call, und, contract.strike, T, r, q)
        res = pricing.bsm(is_call, und, contract.strike, T, r, q, iv)
    except pricing.PricingError as exc:
        raise _Stale(f"cannot compute Greeks for the {leg.symbol} option leg: {exc}") from exc
    return Greeks(res.delta, res.gamma, res.vega, res.theta, iv, und)


def _resolve(leg: Leg, book: Book, t: float, params: GateParams) -> _LegRisk:
    contract = leg_contract(leg)
    held = book.holding_for(contract)
    if not contract.is_option:
        price = leg.price
        if price is None and (book.needs.stock_price or leg.symbol in book.needs.group_symbols):
            raise _Stale(f"the {leg.symbol} stock leg has no price")
        dollar = 0.0 if price is None else leg.qty * price
        return _LegRisk(contract, leg.qty, price, None, leg.qty, 0.0, 0.0, 0.0, dollar)
    g = _option_greeks(leg, contract, held, book, t, params)
    m = contract.multiplier
    risk = _LegRisk(contract, leg.qty, leg.price, g)
    if g is not None:
        risk.delta = (g.delta or 0.0) * leg.qty * m
        risk.gamma = (g.gamma or 0.0) * leg.qty * m
        risk.vega = (g.vega or 0.0) * leg.qty * m
        risk.theta = (g.theta or 0.0) * leg.qty * m
        risk.dollar_delta = risk.delta * (g.und_price or 0.0)
    return risk


# ------------------------------------------------------------------ judging


@dataclass(slots=True)
class _Judge:
    """Collects violations and the risk-reducing tally over touched measures."""

    reasons: list[Reason] = field(default_factory=list)
    grew: bool = False
    shrank: bool = False

    def measure(self, code: ReasonCode, limit: float | None, before: float, after: float) -> None:
        if limit is None or after == before:
            return
        used_before, used_after = abs(before), abs(after)
        if used_after > used_before:
            self.grew = True
            if used_after > limit:
                self.reasons.append(Reason(code, used_after, limit))
        elif used_after < used_before:
            self.shrank = True


def _ordered(reasons: list[Reason]) -> tuple[Reason, ...]:
    rank = {code: i for i, code in enumerate(LIMIT_CODES)}
    return tuple(sorted(reasons, key=lambda r: rank[r.code]))  # stable: leg order within a code


def evaluate(book: Book, req: CheckRequest, params: GateParams) -> LimitVerdict:
    """The limits' verdict on a proposed order, before the breaker has its say."""
    problem = req.invalid or invalid_reason(req.legs)
    if problem is not None:
        return LimitVerdict(req.t, req.id, (Reason(C.INVALID_ORDER),), False, problem)
    lim = params.limits
    stale = book.data_problem(req.t, lim.max_data_age_s)
    try:
        if stale is not None:
            raise _Stale(stale)
        legs = [_resolve(leg, book, req.t, params) for leg in req.legs]
        judge = _judge_order(book, legs, req.t, params)
    except _Stale as exc:
        return LimitVerdict(req.t, req.id, (Reason(C.STALE_DATA),), False, str(exc))
    except (ArithmeticError, ValueError) as exc:  # numbers no real order has: never crash
        detail = f"out of range: {exc}"
        return LimitVerdict(req.t, req.id, (Reason(C.INVALID_ORDER),), False, detail)
    risk_reducing = judge.shrank and not judge.grew
    return LimitVerdict(req.t, req.id, _ordered(judge.reasons), risk_reducing)


def _judge_order(book: Book, legs: list[_LegRisk], t: float, params: GateParams) -> _Judge:
    lim = params.limits
    judge = _Judge()
    totals = book.totals
    for code, total, attr in (
        (C.MAX_PORTFOLIO_DELTA, totals.delta, "delta"),
        (C.MAX_PORTFOLIO_DOLLAR_DELTA, totals.dollar_delta, "dollar_delta"),
        (C.MAX_PORTFOLIO_GAMMA, totals.gamma, "gamma"),
        (C.MAX_PORTFOLIO_VEGA, totals.vega, "vega"),
        (C.MAX_PORTFOLIO_THETA, totals.theta, "theta"),
    ):
        limit = lim.get(code)
        if limit is not None:
            judge.measure(code, limit, total.value, total.plus(getattr(leg, attr) for leg in legs))

    limit = lim.get(C.MAX_PER_SYMBOL_DELTA)
    if limit is not None:
        for symbol in dict.fromkeys(leg.contract.symbol for leg in legs):
            current = book.symbol_delta.get(symbol)
            extra = [leg.delta for leg in legs if leg.contract.symbol == symbol]
            before = 0.0 if current is None else current.value
            after = math.fsum(extra) if current is None else current.plus(extra)
            judge.measure(C.MAX_PER_SYMBOL_DELTA, limit, before, after)

    single = lim.get(C.MAX_SINGLE_POSITION_PCT)
    correlated = lim.get(C.MAX_CORRELATED_PCT)
    if single is not None or correlated is not None:
        _judge_notional(book, legs, params, judge, single, correlated)

    limit = lim.get(C.MAX_STRESS_LOSS)
    if limit is not None:
        before, after = stress_losses(book, legs, t, params)
        judge.measure(C.MAX_STRESS_LOSS, limit, before, after)
    return judge


def _judge_notional(
    book: Book,
    legs: list[_LegRisk],
    params: GateParams,
    judge: _Judge,
    single: float | None,
    correlated: float | None,
) -> None:
    nlv = book.nlv
    assert nlv is not None and nlv > 0
    # One projected position per instrument the order touches, in leg order.
    touched: dict[tuple[object, ...], tuple[Contract, float, float | None]] = {}
    for leg in legs:
        key = contract_key(leg.contract)
        contract, qty, price = touched.get(key, (leg.contract, 0.0, None))
        touched[key] = (contract, qty + leg.qty, leg.price if leg.price is not None else price)
    changes: list[tuple[str, float, float]] = []  # symbol, notional before, after
    for contract, qty, leg_price in touched.values():
        held = book.holding_for(contract)
        before = 0.0 if held is None or held.notional is None else held.notional
        new_qty = qty + (0.0 if held is None else held.qty)
        if contract.is_option:
            assert contract.strike is not None
            after = abs(new_qty) * contract.strike * contract.multiplier
        else:
            held_price = None if held is None else held.price()
            price = held_price if held_price is not None else leg_price
            after = 0.0 if price is None else abs(new_qty) * price
        changes.append((contract.symbol, before, after))
        judge.measure(C.MAX_SINGLE_POSITION_PCT, single, before / nlv * 100, after / nlv * 100)
    if correlated is None:
        return
    for group, total in book.group_notional.items():
        members = params.groups[group]
        delta = [x for symbol, b, a in changes if symbol in members for x in (a, -b)]
        if delta:
            judge.measure(
                C.MAX_CORRELATED_PCT,
                correlated,
                total.value / nlv * 100,
                total.plus(delta) / nlv * 100,
            )


# ------------------------------------------------------------------- stress


def _scenario_pnl(
    options: list[tuple[Contract, float, Greeks]], stock_value: float, t: float, params: GateParams
) -> NDArray[np.float64]:
    grid = params.stress
    spots = np.repeat(np.asarray(grid.spot_shocks_pct, dtype=float), len(grid.vol_shocks_pts))
    pnl: NDArray[np.float64] = stock_value * spots / 100
    n = len(options)
    if not n:
        return pnl
    is_call = np.empty(n, dtype=bool)
    S, K, T, q, sigma, qm = (np.empty(n) for _ in range(6))
    for i, (c, qty, g) in enumerate(options):
        assert c.strike is not None and c.expiry is not None
        is_call[i] = c.right is Right.CALL
        S[i] = g.und_price
        K[i] = c.strike
        T[i] = pricing.year_fraction(c.expiry, t)
        q[i] = params.pricing.q(c.symbol)
        sigma[i] = g.iv
        qm[i] = qty * c.multiplier
    r = np.full(n, params.pricing.rate)
    try:
        options_pnl = pricing.stress_pnl(
            is_call, S, K, T, r, q, sigma, qm, grid.spot_shocks_pct, grid.vol_shocks_pts
        )
    except pricing.PricingError as exc:
        raise _Stale(f"cannot reprice for the stress limit: {exc}") from exc
    return pnl + options_pnl


def stress_losses(
    book: Book, legs: list[_LegRisk], t: float, params: GateParams
) -> tuple[float, float]:
    """Worst loss over the grid before and after the order (positive = a loss)."""
    options: list[tuple[Contract, float, Greeks]] = []
    stock_value = 0.0
    for h in book.holdings.values():
        if h.contract.is_option:
            assert h.greeks is not None
            options.append((h.contract, h.qty, h.greeks))
        else:
            price = h.price()
            assert price is not None
            stock_value += h.qty * price
    before = _scenario_pnl(options, stock_value, t, params)
    leg_options = [(leg.contract, leg.qty, leg.greeks) for leg in legs if leg.contract.is_option]
    leg_stock = math.fsum(
        leg.qty * (leg.price or 0.0) for leg in legs if not leg.contract.is_option
    )
    after = before
    if leg_options or leg_stock:
        after = before + _scenario_pnl(
            [(c, q, g) for c, q, g in leg_options if g is not None], leg_stock, t, params
        )
    return float(np.max(-before)), float(np.max(-after))


# ------------------------------------------------------------------ answer


def conclude(
    verdict: LimitVerdict, breaker_code: ReasonCode | None, state: BreakerState | None
) -> CheckAnswer:
    """The gate's final answer: limit and data reasons first, then the breaker's."""
    reasons = verdict.reasons
    if breaker_code is not None:
        reasons = (*reasons, Reason(breaker_code))
    return CheckAnswer(
        verdict.t, verdict.id, not reasons, reasons, verdict.risk_reducing, state, verdict.detail
    )

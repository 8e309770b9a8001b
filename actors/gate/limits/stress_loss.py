"""Worst loss over the scenario grid, by full BSM repricing (DESIGN §4, vectorized).

Each option is repriced at spot × (1 + s/100) and volatility iv + v/100 for
every (s, v) of ``[stress]``; stocks move linearly. The whole book is
repriced per check (numpy over positions × scenarios), so this is the one
limit whose cost grows with the book.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
from numpy.typing import NDArray

from actors import pricing
from actors.book import Book, Needs
from actors.gate.leg_risk import LegRisk
from actors.gate.limit import LimitContext, Measure
from actors.gate.params import GateParams
from actors.gate.stale import Stale
from actors.messages import Contract, Greeks, ReasonCode, Right


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
        raise Stale(
            f"cannot reprice for the stress limit: {exc}", None, params.limits.max_data_age_s
        ) from exc
    return pnl + options_pnl


def stress_losses(
    book: Book, legs: Sequence[LegRisk], t: float, params: GateParams
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


class StressLoss:
    code = ReasonCode.MAX_STRESS_LOSS

    def __init__(self, limit: float) -> None:
        self.limit = limit

    def needs(self) -> Needs:
        return Needs(frozenset({"iv", "und_price"}), stock_price=True)

    def usage(self, ctx: LimitContext) -> float | None:
        try:
            return abs(stress_losses(ctx.book, [], ctx.t, ctx.params)[0])
        except Stale:
            return None

    def measures(self, ctx: LimitContext, legs: Sequence[LegRisk]) -> Iterator[Measure]:
        yield stress_losses(ctx.book, legs, ctx.t, ctx.params)

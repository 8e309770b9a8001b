"""Each leg of an order as risk: its Greeks (own, the held contract's, or BSM) and sizes.

DESIGN §4: a leg without Greeks on a contract already held uses that
position's Greeks; otherwise BSM from the leg's price and the underlying's
latest price; if impossible the order is denied ``stale_data``.
"""

from __future__ import annotations

from dataclasses import dataclass

from actors import pricing
from actors.book import Book, Holding, finite, positive
from actors.gate.order import leg_contract
from actors.gate.params import GateParams
from actors.gate.stale import Stale
from actors.messages import Contract, Greeks, Leg, Right


@dataclass(slots=True)
class LegRisk:
    contract: Contract
    qty: float
    price: float | None  # the leg's own price (a stock leg's dollar delta and notional)
    greeks: Greeks | None  # option legs: per-share Greeks resolved for this leg
    delta: float = 0.0
    gamma: float = 0.0
    vega: float = 0.0
    theta: float = 0.0
    dollar_delta: float = 0.0


def _has(g: Greeks | None, names: frozenset[str]) -> bool:
    return g is not None and all(finite(getattr(g, n)) for n in names)


def _option_greeks(
    leg: Leg, contract: Contract, held: Holding | None, book: Book, t: float, params: GateParams
) -> Greeks | None:
    wanted = book.needs.greek_fields
    if not wanted:
        return leg.greeks
    if _has(leg.greeks, wanted):
        return leg.greeks
    if held is not None and _has(held.greeks, wanted):
        return held.greeks
    seen = book.und_price.get(leg.symbol)
    max_age = params.limits.max_data_age_s
    if not positive(leg.price) or seen is None:
        raise Stale(
            f"no Greeks for the {leg.symbol} option leg and no price to compute them",
            None,
            max_age,
        )
    und = seen[1]
    assert leg.price is not None and contract.strike is not None and contract.expiry is not None
    is_call = contract.right is Right.CALL
    T = pricing.year_fraction(contract.expiry, t)
    r, q = params.pricing.rate, params.pricing.q(leg.symbol)
    try:
        iv = pricing.implied_vol(leg.price, is_call, und, contract.strike, T, r, q)
        res = pricing.bsm(is_call, und, contract.strike, T, r, q, iv)
    except pricing.PricingError as exc:
        raise Stale(
            f"cannot compute Greeks for the {leg.symbol} option leg: {exc}", None, max_age
        ) from exc
    return Greeks(res.delta, res.gamma, res.vega, res.theta, iv, und)


def resolve(leg: Leg, book: Book, t: float, params: GateParams) -> LegRisk:
    contract = leg_contract(leg)
    held = book.holding_for(contract)
    if not contract.is_option:
        price = leg.price
        if price is None and (book.needs.stock_price or leg.symbol in book.needs.group_symbols):
            raise Stale(
                f"the {leg.symbol} stock leg has no price", None, params.limits.max_data_age_s
            )
        dollar = 0.0 if price is None else leg.qty * price
        return LegRisk(contract, leg.qty, price, None, leg.qty, 0.0, 0.0, 0.0, dollar)
    g = _option_greeks(leg, contract, held, book, t, params)
    m = contract.multiplier
    risk = LegRisk(contract, leg.qty, leg.price, g)
    if g is not None:
        risk.delta = (g.delta or 0.0) * leg.qty * m
        risk.gamma = (g.gamma or 0.0) * leg.qty * m
        risk.vega = (g.vega or 0.0) * leg.qty * m
        risk.theta = (g.theta or 0.0) * leg.qty * m
        risk.dollar_delta = risk.delta * (g.und_price or 0.0)
    return risk

"""The notional of each instrument an order touches, before and after (DESIGN §2).

Shared by the two concentration limits. One projected position per
instrument the order touches, in leg order: an option's notional is
|qty| × strike × multiplier; a stock's |qty| × its price (the held position's
price; the leg's own price when the stock is not held).
"""

from __future__ import annotations

from collections.abc import Sequence

from actors.book import contract_key
from actors.gate.leg_risk import LegRisk
from actors.gate.limit import LimitContext
from actors.gate.stale import Stale
from actors.messages import Contract


def nlv(ctx: LimitContext) -> float:
    value = ctx.book.nlv
    if value is None or not value > 0:
        raise Stale("net liquidation value is unknown", None, ctx.params.limits.max_data_age_s)
    return value


def notional_changes(ctx: LimitContext, legs: Sequence[LegRisk]) -> list[tuple[str, float, float]]:
    """(symbol, notional before, after) per instrument the order touches."""
    book = ctx.book
    touched: dict[tuple[object, ...], tuple[Contract, float, float | None]] = {}
    for leg in legs:
        key = contract_key(leg.contract)
        contract, qty, price = touched.get(key, (leg.contract, 0.0, None))
        touched[key] = (contract, qty + leg.qty, leg.price if leg.price is not None else price)
    changes: list[tuple[str, float, float]] = []
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
    return changes

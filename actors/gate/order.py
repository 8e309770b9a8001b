"""A proposed order as the gate reads it: well-formedness, contracts, identity.

A malformed order is answered ``invalid_order`` alone (DESIGN §4); these rules
say exactly what malformed means, naming the leg and the field.
"""

from __future__ import annotations

import math

from actors import pricing
from actors.book import contract_key, finite, positive
from actors.messages import Contract, Leg, SecType

# No real order comes near these; past them the arithmetic of a check overflows.
MAX_QTY = 1e9
MAX_PRICE = 1e9

_GREEKS = ("delta", "gamma", "vega", "theta", "iv", "und_price")


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
            for name in _GREEKS:
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


OrderKey = tuple[tuple[tuple[object, ...], float, float | None], ...]


def order_key(legs: tuple[Leg, ...]) -> OrderKey:
    """The order's identity for ``duplicate_order``: the multiset of (contract, qty, price).

    Numbers compare by value (100 == 100.0); leg order, Greeks and what-if do
    not count. Sorted by a total order of the legs' reprs, so the same legs in
    any order give the same key.
    """
    items = [(contract_key(leg_contract(leg)), float(leg.qty), leg.price) for leg in legs]
    return tuple(sorted(items, key=repr))

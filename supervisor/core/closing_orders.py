"""The closing orders the supervisor itself sends: a stop's exit and a kill's flatten.

Pure planning: what to send, at what price — never how (that is the IB
adapter's exit-orders object, which claims each order's key in the store
before placing it, so none is ever sent twice, across restarts included).

* A position's exit closes its whole quantity at the triggering price; a
  strategy's exit closes every leg as **one combo order** at the triggering
  net price (DESIGN §3.1), so a spread is never left with a naked leg.
* A flatten (DESIGN §4.5) closes every open position at its exit-side price
  moved by ``flatten_slippage_pct`` toward a fill, a strategy's legs as one
  combo at its net price so moved.

Prices are on the tick grid, rounded toward a fill (down to sell, up to buy).
A combo is priced as IB quotes it: per unit, the sum over legs of ratio ×
price, positive for what is paid; its action is always BUY of the closing
combo, so a credit received is a negative limit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from actors.book import positive
from actors.messages import ComboLeg, Contract, StopEvent
from supervisor.core.ports import ClosingOrder, OrderLeg

TICK = 0.01


def on_tick(price: float, action: str, tick: float = TICK) -> float:
    """``price`` on the tick grid, rounded toward a fill (down to sell, up to buy)."""
    steps = price / tick
    n = math.floor(steps + 1e-6) if action == "SELL" else math.ceil(steps - 1e-6)
    return round(n * tick, 8)


def _gcd(values: Sequence[float]) -> int:
    g = 0
    for v in values:
        g = math.gcd(g, int(Fraction(abs(v)).limit_denominator(1)))
    return max(g, 1)


def _combo_legs(legs: Sequence[ComboLeg]) -> tuple[tuple[OrderLeg, ...], int]:
    """The closing legs (each the opposite of how it is held) and the combo's units."""
    units = _gcd([leg.qty for leg in legs])
    out = tuple(
        OrderLeg(
            leg.position_id,
            leg.contract,
            int(abs(leg.qty) // units),
            "SELL" if leg.qty > 0 else "BUY",
        )
        for leg in legs
    )
    return out, units


def exit_for_trigger(event: StopEvent) -> ClosingOrder | None:
    """The one exit a TRIGGER calls for (None: nothing to close)."""
    assert event.trigger_id is not None
    if event.combo:
        legs, units = _combo_legs(event.combo)
        # The stop runs on the net price for a debit (selling it back gets p)
        # and on −net for a credit (buying it back costs p): as a BUY of the
        # closing combo, the limit is −p for a debit and p for a credit.
        credit = event.strategy_snapshot is not None and bool(event.strategy_snapshot.get("credit"))
        limit = event.ref_price if credit else -event.ref_price
        return ClosingOrder(
            event.trigger_id, legs, float(units), "BUY", on_tick(limit, "BUY"), "stop", event.id
        )
    if event.contract is None or event.qty == 0:
        return None
    action = "SELL" if event.qty > 0 else "BUY"
    leg = OrderLeg(event.id, event.contract, 1, action)
    return ClosingOrder(
        event.trigger_id,
        (leg,),
        abs(event.qty),
        action,
        on_tick(event.ref_price, action),
        "stop",
        event.id,
    )


@dataclass(frozen=True, slots=True)
class Held:
    """An open position as the flatten needs it: what, how many, its quote."""

    position_id: str
    contract: Contract
    qty: float
    bid: float | None
    ask: float | None
    last: float | None


@dataclass(frozen=True, slots=True)
class Unpriced:
    """A position the flatten could not price (no usable quote): reported, not guessed."""

    position_id: str
    detail: str


def flatten_key(kill_id: str, target_id: str) -> str:
    return f"kill:{kill_id}:{target_id}"


def _exit_side(h: Held, action: str) -> float | None:
    side = h.bid if action == "SELL" else h.ask
    if positive(side):
        return side
    return h.last if positive(h.last) else None


def flatten_orders(
    kill_id: str,
    held: Sequence[Held],
    strategies: Sequence[tuple[str, Sequence[str]]],
    slippage_pct: float,
) -> tuple[list[ClosingOrder], list[Unpriced]]:
    """One closing order per open position, a strategy's legs as one combo (DESIGN §4.5)."""
    by_id = {h.position_id: h for h in held}
    orders: list[ClosingOrder] = []
    unpriced: list[Unpriced] = []
    in_combo: set[str] = set()
    move = slippage_pct / 100
    for sid, leg_ids in strategies:
        legs = [by_id[i] for i in leg_ids if i in by_id]
        if len(legs) < 2:
            continue
        order_legs, units = _combo_legs([ComboLeg(h.position_id, h.contract, h.qty) for h in legs])
        cost = 0.0
        priced = True
        for h, leg in zip(legs, order_legs, strict=True):
            side = _exit_side(h, leg.action)
            if side is None:
                priced = False
                break
            cost += leg.ratio * (side if leg.action == "BUY" else -side)
        in_combo.update(h.position_id for h in legs)
        if not priced:
            unpriced.append(Unpriced(sid, "a leg has no quote to price the combo"))
            continue
        limit = on_tick(cost + abs(cost) * move, "BUY")
        orders.append(
            ClosingOrder(
                flatten_key(kill_id, sid), order_legs, float(units), "BUY", limit, "flatten"
            )
        )
    for h in held:
        if h.position_id in in_combo or h.qty == 0:
            continue
        action = "SELL" if h.qty > 0 else "BUY"
        side = _exit_side(h, action)
        if side is None:
            unpriced.append(Unpriced(h.position_id, "no quote to price the closing order"))
            continue
        price = side * (1 - move) if action == "SELL" else side * (1 + move)
        leg = OrderLeg(h.position_id, h.contract, 1, action)
        orders.append(
            ClosingOrder(
                flatten_key(kill_id, h.position_id),
                (leg,),
                abs(h.qty),
                action,
                on_tick(price, action),
                "flatten",
                h.position_id,
            )
        )
    return orders, unpriced

"""Every order control by its config key, in DESIGN §4.2's table order (= answer order)."""

from __future__ import annotations

from actors.gate.controls.control import AdmissionControl, OrderControl
from actors.gate.controls.duplicate_order import DuplicateOrder
from actors.gate.controls.leg_size import LegSize
from actors.gate.controls.order_rate import OrderRate
from actors.gate.controls.order_value import OrderNotional, OrderPremium
from actors.gate.controls.price_collar import PriceCollar
from actors.gate.params import OrderParams
from actors.messages import ReasonCode, SecType

C = ReasonCode


def order_controls(p: OrderParams) -> tuple[OrderControl, ...]:
    """The stateless controls ``[orders]`` sets, in table order."""
    out: list[OrderControl] = []
    if p.max_leg_contracts is not None:
        out.append(LegSize(C.MAX_LEG_CONTRACTS, SecType.OPT, p.max_leg_contracts))
    if p.max_leg_shares is not None:
        out.append(LegSize(C.MAX_LEG_SHARES, SecType.STK, p.max_leg_shares))
    if p.max_order_notional is not None:
        out.append(OrderNotional(p.max_order_notional))
    if p.max_order_premium is not None:
        out.append(OrderPremium(p.max_order_premium))
    if p.price_collar_pct is not None:
        out.append(PriceCollar(p.price_collar_pct))
    return tuple(out)


def admission_controls(p: OrderParams) -> tuple[AdmissionControl, ...]:
    """The stateful controls ``[orders]`` sets (rate, then duplicates)."""
    out: list[AdmissionControl] = []
    if p.max_orders_per_window is not None:
        out.append(OrderRate(p.max_orders_per_window, p.order_window_s))
    if p.duplicate_window_s is not None:
        out.append(DuplicateOrder(p.duplicate_window_s))
    return tuple(out)

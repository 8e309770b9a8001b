"""How the gateway answers a what-if order, including the ways real gateways misbehave.

TWS answers ``placeOrder`` with ``whatIf`` set by one OPEN_ORDER whose
OrderState carries the margin impact as *strings*, and creates no order.
Real gateways have been seen to answer late, never, with unset (DBL_MAX) or
empty values, or with an error; :class:`WhatIfFault` reproduces each.

What ``ib_async`` 2.1.0 does with each answer (``Wrapper.openOrder``/``error``):

* normal: ``whatIfOrderAsync`` resolves with the ``OrderState``;
* ``garble="unset"``: ``initMarginChange`` is DBL_MAX, which ``ib_async``
  treats as "not yet" - the future never resolves;
* ``garble="empty"`` / ``"text"``: ``float(initMarginChange)`` raises inside
  ``ib_async``'s handler (it is logged) - the future never resolves;
* ``garble="partial"``: ``initMarginChange`` is a number, every other margin
  and equity field DBL_MAX - the future resolves with those unset strings;
* ``error``: ERR_MSG with the what-if's order id - the future resolves with
  an empty *list* (``IB.RaiseRequestErrors`` is off by default), not an
  ``OrderState``;
* ``drop``: nothing is sent;
* ``delay_s``: the answer (or error) comes that much later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .encoders import UNSET_DOUBLE_TEXT, OrderStateFields
from .margin import WhatIfNumbers

Garble = Literal["unset", "empty", "text", "partial"]
GARBLES: tuple[Garble, ...] = ("unset", "empty", "text", "partial")


@dataclass(frozen=True)
class WhatIfFault:
    """How to (mis)answer what-ifs; the default answers at once and correctly."""

    delay_s: float = 0.0
    drop: bool = False
    garble: Garble | None = None
    error_code: int | None = None
    error_msg: str = ""

    def __post_init__(self) -> None:
        if not self.delay_s >= 0.0:
            raise ValueError(f"delay_s must be >= 0, got {self.delay_s}")
        if self.garble is not None and self.garble not in GARBLES:
            raise ValueError(f"garble must be one of {GARBLES}, got {self.garble!r}")


def money(v: float) -> str:
    """A margin or equity amount as IB writes it in an OrderState."""
    return f"{v:.2f}"


def order_state(numbers: WhatIfNumbers, garble: Garble | None = None) -> OrderStateFields:
    """The OrderState of a what-if answer, garbled as asked."""
    values = [
        numbers.init_before,
        numbers.maint_before,
        numbers.equity_before,
        numbers.init_change,
        numbers.maint_change,
        numbers.equity_change,
        numbers.init_after,
        numbers.maint_after,
        numbers.equity_after,
    ]
    text = [money(v) for v in values]
    if garble == "unset":
        text = [UNSET_DOUBLE_TEXT] * 9
    elif garble == "empty":
        text = [""] * 9
    elif garble == "text":
        text = ["N/A"] * 9
    elif garble == "partial":
        text = [UNSET_DOUBLE_TEXT if i != 3 else t for i, t in enumerate(text)]
    return OrderStateFields(
        status="PreSubmitted",
        init_before=text[0],
        maint_before=text[1],
        equity_before=text[2],
        init_change=text[3],
        maint_change=text[4],
        equity_change=text[5],
        init_after=text[6],
        maint_after=text[7],
        equity_after=text[8],
        commission=numbers.commission,
        min_commission=numbers.commission,
        max_commission=numbers.commission,
        commission_currency="USD",
    )

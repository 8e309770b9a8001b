"""IB's what-if for a proposed order (DESIGN §4.4): one order, one combo for several legs.

TWS answers an order sent with ``whatIf`` by one OPEN_ORDER whose OrderState
carries the margin impact as *strings*, and creates no order. Gateways have
answered late, never, with unset (DBL_MAX) or empty values, or with an error;
each of those is an answer without numbers here (a ``WhatIf`` whose ``error``
says why, or whose unset fields are None), never an exception and never a
number made up. The wait is bounded by the caller's timeout (ib_async has
none of its own).

The request is sent the way ``IB.whatIfOrderAsync`` sends it, keeping its
request id, so that an IB error about it is the what-if's answer — not an
order rejection counted by the breaker.

Threading: the IB loop thread only (:meth:`WhatIfs.ask` is a coroutine there).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from fractions import Fraction
from typing import Any, Final, cast

from ib_async import IB, ComboLeg, LimitOrder, MarketOrder, Order, OrderState
from ib_async import Contract as IbContract

from actors.messages import Contract, Leg, SecType, WhatIf
from supervisor.ib.feed import UNSET_DOUBLE, ib_contract
from supervisor.ib.session import describe

__all__ = ["WhatIfs", "leg_contract", "money"]

log = logging.getLogger(__name__)

_UNSET_FLOOR: Final = UNSET_DOUBLE / 10  # anything this large is IB's "unset"


def money(text: str | float | None) -> float | None:
    """An OrderState amount: a number, or None for IB's unset values (empty, DBL_MAX, text)."""
    if text is None:
        return None
    try:
        v = float(text)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(v) or abs(v) >= _UNSET_FLOOR:
        return None
    return v


def leg_contract(leg: Leg) -> Contract:
    """The contract a check's leg is on (its multiplier defaulted as IB's)."""
    if leg.sec_type is SecType.OPT:
        m = leg.multiplier if leg.multiplier is not None else 100.0
        return Contract(leg.symbol, SecType.OPT, leg.right, leg.strike, leg.expiry, m)
    return Contract(leg.symbol, SecType.STK)


def _whole(qty: float) -> int | None:
    f = Fraction(abs(qty)).limit_denominator(1_000_000)
    return int(f) if f.denominator == 1 and f > 0 else None


def _priced(price: float | None) -> bool:
    return price is not None and math.isfinite(price) and price > 0


QualifyFn = Callable[[Contract], Awaitable[int | None]]


class WhatIfs:
    """What-ifs in flight on one connection, and their answers."""

    def __init__(self, account: str, qualify: QualifyFn) -> None:
        self.account = account
        self.qualify = qualify
        self._errors: dict[int, str] = {}  # request id -> IB's error about it

    def owns(self, req_id: int) -> bool:
        """Is ``req_id`` a what-if in flight (its errors are its answer)?"""
        return req_id in self._errors

    def on_error(self, req_id: int, code: int, message: str) -> None:
        if req_id in self._errors:
            self._errors[req_id] = f"IB error {code}: {message}"

    async def ask(self, ib: IB, legs: Sequence[Leg], timeout_s: float) -> WhatIf:
        """IB's what-if for the whole order, within ``timeout_s`` whatever happens."""
        if not legs:
            return WhatIf(error="no legs")
        try:
            built = await asyncio.wait_for(self._order(legs, timeout_s), timeout_s)
        except TimeoutError:
            return WhatIf(error=f"legs not qualified within {timeout_s:g}s")
        if isinstance(built, str):
            return WhatIf(error=built)
        contract, order = built
        order.whatIf = True
        req_id = ib.client.getReqId()
        self._errors[req_id] = ""
        try:
            future = cast(Any, ib.wrapper).startReq(req_id, contract)  # as whatIfOrderAsync
            cast(Any, ib.client).placeOrder(req_id, contract, order)
            answer = await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            return WhatIf(error=f"no what-if answer within {timeout_s:g}s")
        except ConnectionError as exc:
            return WhatIf(error=f"IB disconnected: {describe(exc)}")
        finally:
            error = self._errors.pop(req_id, "")
        if not isinstance(answer, OrderState):
            return WhatIf(error=error or "IB answered the what-if without an order state")
        return WhatIf(
            init_margin_before=money(answer.initMarginBefore),
            init_margin_after=money(answer.initMarginAfter),
            maint_margin_before=money(answer.maintMarginBefore),
            maint_margin_after=money(answer.maintMarginAfter),
            equity_with_loan_before=money(answer.equityWithLoanBefore),
            equity_with_loan_after=money(answer.equityWithLoanAfter),
        )

    async def _order(self, legs: Sequence[Leg], timeout_s: float) -> tuple[IbContract, Order] | str:
        """The contract and order of the what-if, or why there is none."""
        if len(legs) == 1:
            leg = legs[0]
            if not (math.isfinite(leg.qty) and leg.qty != 0):
                return f"bad quantity {leg.qty!r}"
            action = "BUY" if leg.qty > 0 else "SELL"
            order = self._order_of(action, abs(leg.qty), leg.price if _priced(leg.price) else None)
            return ib_contract("", leg_contract(leg)), order
        wholes = [_whole(leg.qty) for leg in legs]
        if any(w is None for w in wholes):
            return "a combo what-if needs whole, non-zero leg quantities"
        units = math.gcd(*(w for w in wholes if w is not None))
        combo: list[ComboLeg] = []
        net = 0.0
        for leg, whole in zip(legs, wholes, strict=True):
            assert whole is not None
            con_id = await self.qualify(leg_contract(leg))
            if not con_id:
                return f"no IB contract for leg {leg.symbol} {leg.sec_type.value}"
            ratio = whole // units
            action = "BUY" if leg.qty > 0 else "SELL"
            combo.append(ComboLeg(conId=con_id, ratio=ratio, action=action, exchange="SMART"))
            if _priced(leg.price) and leg.price is not None:
                net += (ratio if leg.qty > 0 else -ratio) * leg.price
            else:
                net = math.nan
        bag = IbContract(
            secType="BAG", symbol=legs[0].symbol, exchange="SMART", currency="USD", comboLegs=combo
        )
        limit = round(net, 2) if math.isfinite(net) else None
        return bag, self._order_of("BUY", float(units), limit, allow_negative=True)

    def _order_of(
        self, action: str, qty: float, limit: float | None, *, allow_negative: bool = False
    ) -> Order:
        order: Order
        if limit is not None and (allow_negative or limit > 0):
            order = LimitOrder(action, qty, limit)
        else:
            order = MarketOrder(action, qty)
        order.account = self.account
        return copy.copy(order)

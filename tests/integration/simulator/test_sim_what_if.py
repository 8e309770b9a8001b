"""What-if orders through ``IB.whatIfOrderAsync``: the model's numbers, and every fault.

``whatIfOrderAsync`` has no timeout of its own, so every wait is wrapped in
``asyncio.wait_for``. The book (sim_helpers.book): SPY 500, long 100 shares,
short 2 of the 480 put.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from ib_async import IB, Bag, ComboLeg, Contract, LimitOrder, MarketOrder, Option, OrderState
from sim_helpers import DBL_MAX, PUT_ID, connected, put, put_price, run, spy

from supervisor.simulator import WhatIfFault

UNSET_TEXT = "1.7976931348623157E308"


async def qualified(ib: IB, contract: Option) -> Contract:
    [c] = await asyncio.wait_for(ib.qualifyContractsAsync(contract), 5)
    assert isinstance(c, Contract) and c.conId
    return c


async def what_if(ib: IB, contract: Contract, order: LimitOrder | MarketOrder) -> OrderState:
    state = await asyncio.wait_for(ib.whatIfOrderAsync(contract, order), 5)
    assert isinstance(state, OrderState)
    return state


def short_put_requirement(strike: float, spot: float) -> float:
    """Per contract: max(20 % × spot − OTM, 10 % × spot) + the put's value, × 100."""
    otm = max(spot - strike, 0.0)
    return (max(0.20 * spot - otm, 0.10 * spot) + put_price(strike, spot)) * 100


def test_what_if_of_a_short_option_by_hand() -> None:
    async def body() -> None:
        async with connected() as (sim, ib):
            p470 = await qualified(ib, put(470.0))
            state = await what_if(ib, p470, LimitOrder("SELL", 1, 3.0))
            # By hand: max(0.2 × 500 − 30, 0.1 × 500) = 70, plus the put, per share.
            change = (70.0 + put_price(470.0, 500.0)) * 100
            assert float(state.initMarginChange) == pytest.approx(change, abs=0.05)
            assert float(state.maintMarginChange) == pytest.approx(change, abs=0.05)
            before = 0.5 * 100 * 500 + 2 * short_put_requirement(480.0, 500.0)
            assert float(state.initMarginBefore) == pytest.approx(before, abs=0.05)
            assert float(state.initMarginAfter) == pytest.approx(before + change, abs=0.05)
            # The premium lands in cash, which is equity with loan; less $0.65.
            premium = put_price(470.0, 500.0) * 100
            assert float(state.equityWithLoanChange) == pytest.approx(premium - 0.65, abs=0.05)
            assert state.commission == pytest.approx(0.65)
            assert sim.orders == [] and sim.open_orders() == []  # nothing was placed
            assert [o.status for o in sim.what_ifs] == ["WhatIf"]
            assert await asyncio.wait_for(ib.reqAllOpenOrdersAsync(), 3) == []

    run(body())


def test_what_if_of_stock_and_of_a_long_option() -> None:
    async def body() -> None:
        async with connected() as (_sim, ib):
            state = await what_if(ib, spy(), MarketOrder("BUY", 100))
            assert float(state.initMarginChange) == pytest.approx(0.5 * 100 * 500)
            assert float(state.maintMarginChange) == pytest.approx(0.25 * 100 * 500)
            assert float(state.equityWithLoanChange) == pytest.approx(-1.0)  # commission
            short = await what_if(ib, spy(), MarketOrder("SELL", 300))  # 100 long → 200 short
            req_before = 0.5 * 100 * 500
            assert float(short.initMarginChange) == pytest.approx(0.5 * 200 * 500 - req_before)
            maint_change = 0.30 * 200 * 500 - 0.25 * 100 * 500
            assert float(short.maintMarginChange) == pytest.approx(maint_change)
            p470 = await qualified(ib, put(470.0))
            long_opt = await what_if(ib, p470, LimitOrder("BUY", 2, 3.0))
            assert float(long_opt.initMarginChange) == 0.0  # paid in full
            premium = 2 * put_price(470.0, 500.0) * 100
            assert float(long_opt.equityWithLoanChange) == pytest.approx(-premium - 1.3, abs=0.05)

    run(body())


def test_what_if_of_a_two_leg_combo_sums_its_legs() -> None:
    async def body() -> None:
        async with connected() as (_sim, ib):
            p470 = await qualified(ib, put(470.0))
            bag = Bag(
                symbol="SPY",
                exchange="SMART",
                currency="USD",
                comboLegs=[
                    ComboLeg(conId=PUT_ID, ratio=1, action="BUY", exchange="SMART"),
                    ComboLeg(conId=p470.conId, ratio=1, action="SELL", exchange="SMART"),
                ],
            )
            state = await what_if(ib, bag, LimitOrder("BUY", 1, 1.0))
            # Buying one 480 put back frees one short's requirement; selling
            # the 470 adds one. No spread offset: the legs are simply summed.
            change = short_put_requirement(470.0, 500.0) - short_put_requirement(480.0, 500.0)
            assert float(state.initMarginChange) == pytest.approx(change, abs=0.05)
            # Cash: pay the 480 put, receive the 470 put, two commissions.
            cash = (put_price(470.0, 500.0) - put_price(480.0, 500.0)) * 100 - 1.3
            assert float(state.equityWithLoanChange) == pytest.approx(cash, abs=0.05)

    run(body())


def test_a_delayed_what_if_answers_late() -> None:
    async def body() -> None:
        async with connected() as (sim, ib):
            sim.set_what_if_fault(WhatIfFault(delay_s=0.6), count=1)
            t0 = time.monotonic()
            state = await what_if(ib, spy(), MarketOrder("BUY", 10))
            assert time.monotonic() - t0 >= 0.55
            assert float(state.initMarginChange) == pytest.approx(0.5 * 10 * 500)
            t0 = time.monotonic()
            await what_if(ib, spy(), MarketOrder("BUY", 10))  # only the next one was late
            assert time.monotonic() - t0 < 0.5

    run(body())


@pytest.mark.parametrize(
    "fault",
    [WhatIfFault(drop=True), WhatIfFault(garble="unset"), WhatIfFault(garble="empty")],
    ids=["dropped", "unset", "empty"],
)
def test_a_what_if_that_never_resolves(fault: WhatIfFault) -> None:
    async def body() -> None:
        async with connected() as (sim, ib):
            sim.set_what_if_fault(fault)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ib.whatIfOrderAsync(spy(), MarketOrder("BUY", 10)), 0.7)
            assert len(sim.what_ifs) == 1  # it was received, and (mis)answered
            sim.set_what_if_fault(None)
            state = await what_if(ib, spy(), MarketOrder("BUY", 10))
            assert float(state.initMarginChange) == pytest.approx(2500.0)

    run(body())


def test_a_partly_garbled_what_if_resolves_with_unset_strings() -> None:
    async def body() -> None:
        async with connected() as (sim, ib):
            sim.set_what_if_fault(WhatIfFault(garble="partial"), count=1)
            state = await what_if(ib, spy(), MarketOrder("BUY", 10))
            assert float(state.initMarginChange) == pytest.approx(2500.0)
            assert state.initMarginBefore == state.equityWithLoanAfter == UNSET_TEXT
            assert float(state.maintMarginAfter) == DBL_MAX
            numeric = state.numeric()
            assert numeric.initMarginBefore is None and numeric.initMarginChange == 2500.0

    run(body())


def test_a_what_if_answered_with_an_error_resolves_to_an_empty_list() -> None:
    async def body() -> None:
        async with connected() as (sim, ib):
            errors: list[tuple[int, int]] = []
            ib.errorEvent += lambda req_id, code, msg, contract: errors.append((req_id, code))
            sim.set_what_if_fault(WhatIfFault(error_code=201, error_msg="Order rejected"), 1)
            result = await asyncio.wait_for(ib.whatIfOrderAsync(spy(), MarketOrder("BUY", 1)), 3)
            assert result == []  # not an OrderState: ib_async ends the request empty
            [rec] = sim.what_ifs
            assert (rec.order_id, 201) in errors
            unknown = Option("NOPE", "20300101", 10.0, "C", "SMART", conId=4242)
            result = await asyncio.wait_for(ib.whatIfOrderAsync(unknown, MarketOrder("BUY", 1)), 3)
            assert result == [] and (sim.what_ifs[-1].order_id, 200) in errors

    run(body())

"""Combo (BAG) orders, global cancel across clients and TWS, the cancel-refusing and
empty-orderRef knobs, through real ``ib_async`` clients."""

from __future__ import annotations

import asyncio
import math

import pytest
from ib_async import IB, Bag, ComboLeg, Contract, LimitOrder, Trade
from sim_helpers import PUT_ID, STOCK_ID, client, connected, put, run, spy, until

from supervisor.simulator import BAG_CON_ID, GatewaySimulator


async def put_spread(ib: IB, buy: float, sell: float) -> tuple[Bag, Contract, Contract]:
    """A 1×1 put spread: buy the ``buy`` strike, sell the ``sell`` strike."""
    [long_leg, short_leg] = await asyncio.wait_for(ib.qualifyContractsAsync(put(buy), put(sell)), 5)
    assert isinstance(long_leg, Contract) and isinstance(short_leg, Contract)
    bag = Bag(
        symbol="SPY",
        exchange="SMART",
        currency="USD",
        comboLegs=[
            ComboLeg(conId=long_leg.conId, ratio=1, action="BUY", exchange="SMART"),
            ComboLeg(conId=short_leg.conId, ratio=1, action="SELL", exchange="SMART"),
        ],
    )
    return bag, long_leg, short_leg


def net(sim: GatewaySimulator, long_id: int, short_id: int) -> tuple[float, float]:
    """The spread's (bid, ask) from its legs' quotes at the simulator."""
    lq = sim.market.quote(sim.market.instruments[long_id])
    sq = sim.market.quote(sim.market.instruments[short_id])
    return lq.bid - sq.ask, lq.ask - sq.bid


def test_a_marketable_combo_fills_as_a_whole_and_moves_each_leg() -> None:
    async def body() -> None:
        async with connected(fill_marketable=True) as (sim, ib):
            bag, long_leg, short_leg = await put_spread(ib, 470.0, 460.0)
            _bid, ask = net(sim, long_leg.conId, short_leg.conId)
            resting = ib.placeOrder(bag, LimitOrder("BUY", 2, round(ask - 0.5, 2)))
            await until(lambda: resting.orderStatus.status == "Submitted")
            await asyncio.sleep(0.1)
            assert resting.orderStatus.status == "Submitted"  # below the ask: it rests
            trade = ib.placeOrder(bag, LimitOrder("BUY", 2, round(ask + 0.05, 2)))
            await until(lambda: trade.orderStatus.status == "Filled", what="the combo fill")
            assert trade.orderStatus.filled == 2.0
            assert trade.orderStatus.avgFillPrice == pytest.approx(ask)  # at the touch
            await until(lambda: len(trade.fills) == 3, what="three executions")
            by_con = {f.contract.conId: f.execution for f in trade.fills}
            assert by_con[long_leg.conId].side == "BOT" and by_con[long_leg.conId].shares == 2
            assert by_con[short_leg.conId].side == "SLD" and by_con[short_leg.conId].shares == 2
            combo = by_con[BAG_CON_ID]
            assert (combo.shares, combo.price) == (2.0, pytest.approx(ask))
            legs_net = by_con[long_leg.conId].price - by_con[short_leg.conId].price
            assert legs_net == pytest.approx(ask, abs=1e-6)
            await until(lambda: {p.contract.conId for p in ib.positions()} >= {long_leg.conId})
            positions = {p.contract.conId: p.position for p in ib.positions()}
            assert positions[long_leg.conId] == 2.0 and positions[short_leg.conId] == -2.0
            assert positions[PUT_ID] == -2.0  # the other legs of the book did not move
            # The resting order fills once the market comes to it (SPY up: puts cheaper).
            sim.set_underlying("SPY", 540.0, vol=0.2)
            await until(lambda: resting.orderStatus.status == "Filled", what="the resting fill")
            assert sim.positions[long_leg.conId].qty == 4.0

    run(body())


def test_a_credit_combo_has_a_negative_limit() -> None:
    async def body() -> None:
        async with connected(fill_marketable=True) as (sim, ib):
            # Buy the 460 put, sell the 480: money comes in, so the net is negative.
            bag, long_leg, short_leg = await put_spread(ib, 460.0, 480.0)
            _bid, ask = net(sim, long_leg.conId, short_leg.conId)
            assert ask < 0
            too_greedy = ib.placeOrder(bag, LimitOrder("BUY", 1, round(ask - 1.0, 2)))
            trade = ib.placeOrder(bag, LimitOrder("BUY", 1, round(ask, 2)))
            await until(lambda: trade.orderStatus.status == "Filled")
            assert trade.orderStatus.avgFillPrice == pytest.approx(ask)
            assert too_greedy.orderStatus.status == "Submitted"
            assert sim.positions[short_leg.conId].qty == -3.0  # the book's -2, and one more

    run(body())


def test_a_combo_with_an_unknown_leg_is_rejected() -> None:
    async def body() -> None:
        async with connected() as (_sim, ib):
            errors: list[int] = []
            ib.errorEvent += lambda req_id, code, msg, contract: errors.append(code)
            bag = Bag(
                symbol="SPY",
                exchange="SMART",
                currency="USD",
                comboLegs=[ComboLeg(conId=31337, ratio=1, action="BUY", exchange="SMART")],
            )
            trade = ib.placeOrder(bag, LimitOrder("BUY", 1, 1.0))
            await until(lambda: trade.isDone())
            assert 200 in errors

    run(body())


def test_global_cancel_reaches_other_clients_and_tws_orders() -> None:
    async def body() -> None:
        async with connected() as (sim, ib):
            mine = [ib.placeOrder(put(), LimitOrder("BUY", 1, 1.0 + i / 10)) for i in range(2)]
            await until(lambda: all(t.orderStatus.status == "Submitted" for t in mine))
            tws = sim.add_tws_order(STOCK_ID, "SELL", 10, 600.0, order_ref="manual")
            async with client(sim, 2) as other:
                theirs = other.placeOrder(spy(), LimitOrder("BUY", 5, 400.0))
                await until(lambda: theirs.orderStatus.status == "Submitted")
                seen = await asyncio.wait_for(other.reqAllOpenOrdersAsync(), 3)
                assert len(seen) == 4  # two of client 1, its own, and the TWS order
                assert {t.order.permId for t in seen} >= {tws.perm_id}
                other.reqGlobalCancel()  # type: ignore[no-untyped-call]
                await until(lambda: all(t.orderStatus.status == "Cancelled" for t in mine))
                await until(lambda: theirs.orderStatus.status == "Cancelled")
                assert tws.status == "Cancelled" and sim.open_orders() == []
                assert await asyncio.wait_for(other.reqAllOpenOrdersAsync(), 3) == []
                assert await asyncio.wait_for(ib.reqAllOpenOrdersAsync(), 3) == []

    run(body())


def test_an_order_that_refuses_to_cancel_stays_open_until_it_gives_in() -> None:
    async def body() -> None:
        async with connected() as (sim, ib):
            stuck = ib.placeOrder(put(), LimitOrder("BUY", 1, 1.0))
            soft = ib.placeOrder(put(), LimitOrder("BUY", 1, 1.1))
            await until(lambda: stuck.orderStatus.status == soft.orderStatus.status == "Submitted")
            sim.refuse_cancel(stuck.orderStatus.permId)
            sim.refuse_cancel(soft.orderStatus.permId, attempts=1)

            async def global_cancel() -> list[Trade]:
                n = sum(1 for _, f in sim.requests if f[0] == "58")
                ib.reqGlobalCancel()  # type: ignore[no-untyped-call]
                await until(lambda: sum(1 for _, f in sim.requests if f[0] == "58") > n)
                await asyncio.sleep(0.1)
                return await asyncio.wait_for(ib.reqAllOpenOrdersAsync(), 3)

            left = await global_cancel()
            assert {t.order.orderId for t in left} == {stuck.order.orderId, soft.order.orderId}
            assert stuck.orderStatus.status == "Submitted"
            left = await global_cancel()  # the retry: the soft one gives in
            assert [t.order.orderId for t in left] == [stuck.order.orderId]
            assert soft.orderStatus.status == "Cancelled"
            ib.cancelOrder(stuck.order)  # a direct cancel is ignored too
            await asyncio.sleep(0.2)
            assert [o.order_id for o in sim.open_orders()] == [stuck.order.orderId]
            sim.refuse_cancel(stuck.orderStatus.permId, attempts=0)
            assert await global_cancel() == []

    run(body())


def test_an_empty_order_ref_echo_keeps_order_ids_matching() -> None:
    async def body() -> None:
        async with connected(echo_order_ref=False) as (sim, ib):
            trade = ib.placeOrder(put(), LimitOrder("BUY", 1, 2.0, orderRef="rs-exit:abc"))
            await until(lambda: trade.orderStatus.status == "Submitted")
            assert sim.orders[-1].order_ref == "rs-exit:abc"  # the gateway got it…
            assert trade.order.orderRef == ""  # …ib_async overwrote ours with the echo
            [listed] = await asyncio.wait_for(ib.reqAllOpenOrdersAsync(), 3)
            assert listed.order.orderId == trade.order.orderId and listed.order.orderRef == ""
            sim.fill_order(trade.order.orderId)
            await until(lambda: trade.orderStatus.status == "Filled" and bool(trade.fills))
            assert trade.fills[0].execution.orderRef == ""
            assert trade.fills[0].execution.orderId == trade.order.orderId
            assert not math.isnan(trade.fills[0].execution.price)

    run(body())

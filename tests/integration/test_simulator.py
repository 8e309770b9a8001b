"""The gateway simulator against the real ``ib_async`` client over loopback TCP.

Every test is bounded: each coroutine runs under ``asyncio.wait_for`` and the
simulator is stopped and the client disconnected in ``finally``. Tests use
``asyncio.run`` (no pytest-asyncio in this project).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar

import pytest
from ib_async import IB, Contract, LimitOrder, MarketOrder, Option, Stock

from actors.pricing import bsm, year_fraction
from supervisor.simulator import GatewaySimulator, SimPosition, SimulatorThread
from supervisor.simulator.market import Instrument, Market
from supervisor.simulator.protocol import (
    FrameBuffer,
    ProtocolError,
    decode_fields,
    encode_fields,
    encode_message,
    format_field,
    parse_version_range,
)

T = TypeVar("T")

ACCOUNT = "DU1234567"
EXPIRY = (dt.date.today() + dt.timedelta(days=60)).isoformat()
WIRE_EXPIRY = EXPIRY.replace("-", "")
STOCK_ID = 756733
OPTION_ID = 555001


def run(coro: Coroutine[Any, Any, T], timeout: float = 15.0) -> T:
    """Run one test coroutine on a fresh loop, bounded."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def until(pred: Callable[[], bool], timeout: float = 3.0) -> None:
    """Poll ``pred`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def book(sim: GatewaySimulator) -> None:
    """SPY at 500 with a long stock and a short put."""
    sim.set_underlying("SPY", 500.0, vol=0.2)
    sim.add_position(SimPosition(STOCK_ID, "SPY", "STK", 100, 490.0))
    sim.add_position(
        SimPosition(
            OPTION_ID,
            "SPY",
            "OPT",
            -2,
            350.0,
            right="P",
            strike=480.0,
            expiry=EXPIRY,
            multiplier=100,
        )
    )


@contextlib.asynccontextmanager
async def connected(
    setup: Callable[[GatewaySimulator], None] | None = book,
    client_id: int = 1,
    **kwargs: Any,
) -> AsyncIterator[tuple[GatewaySimulator, IB]]:
    sim = GatewaySimulator(**kwargs)
    ib = IB()
    try:
        await sim.start()
        if setup is not None:
            setup(sim)
        await asyncio.wait_for(ib.connectAsync("127.0.0.1", sim.port, clientId=client_id), 5)
        yield sim, ib
    finally:
        ib.disconnect()
        await sim.stop()


def option() -> Option:
    return Option("SPY", WIRE_EXPIRY, 480.0, "P", "SMART", conId=OPTION_ID)


# ------------------------------------------------------------------ protocol


def test_framing_round_trip_and_partial_chunks() -> None:
    msg = encode_message(1, 6, 3, 1, 2.5, None, True)
    buf = FrameBuffer()
    assert buf.feed(msg[:3]) == []
    assert buf.feed(msg[3:7]) == []
    payloads = buf.feed(msg[7:] + msg)
    assert [decode_fields(p) for p in payloads] == [["1", "6", "3", "1", "2.5", "", "1"]] * 2
    assert len(buf) == 0
    assert encode_fields(["a", ""]) == b"a\0\0"  # every field keeps its NUL
    assert format_field(math.nan) == "" and format_field(False) == "0"
    with pytest.raises(ProtocolError):
        encode_fields(["bad\0field"])


def test_version_announcement() -> None:
    assert parse_version_range("v157..178") == (157, 178, "")
    assert parse_version_range("v100..178 +PACEAPI") == (100, 178, "+PACEAPI")
    with pytest.raises(ProtocolError):
        parse_version_range("hello")


def test_non_loopback_host_is_refused() -> None:
    for host in ("0.0.0.0", "192.168.1.10", "example.com", "::"):
        with pytest.raises(ValueError):
            GatewaySimulator(host=host)
    GatewaySimulator(host="::1")
    GatewaySimulator(host="localhost")


def test_random_walk_is_seeded() -> None:
    def path(seed: int) -> list[float]:
        m = Market(seed=seed, walk_speed=10_000.0)
        m.set_underlying("SPY", 500.0)
        out = []
        for _ in range(5):
            m.walk(0.25)
            out.append(m.underlyings["SPY"].price)
        return out

    assert path(7) == path(7)
    assert path(7) != path(8)
    assert len(set(path(7))) == 5


# ------------------------------------------------------------------- connect


def test_connect_syncs_account_positions_and_values() -> None:
    async def body() -> None:
        async with connected() as (sim, ib):
            assert ib.isConnected()
            assert ib.managedAccounts() == [ACCOUNT]
            assert sim.client_ids() == [1]
            positions = {p.contract.conId: p for p in ib.positions()}
            stk, opt = positions[STOCK_ID], positions[OPTION_ID]
            assert stk.account == ACCOUNT
            assert (stk.contract.symbol, stk.contract.secType) == ("SPY", "STK")
            assert (stk.position, stk.avgCost) == (100.0, 490.0)
            c = opt.contract
            assert (c.secType, c.strike, c.right) == ("OPT", 480.0, "P")
            assert c.lastTradeDateOrContractMonth == WIRE_EXPIRY
            assert c.multiplier == "100"
            assert (opt.position, opt.avgCost) == (-2.0, 350.0)
            values = {(v.tag, v.currency): v.value for v in ib.accountValues()}
            assert float(values[("NetLiquidation", "USD")]) == 1_000_000.0
            assert {p.contract.conId for p in ib.portfolio()} == {STOCK_ID, OPTION_ID}

    run(body())


def test_client_id_in_use_fails_connect_with_326() -> None:
    async def body() -> None:
        sim = GatewaySimulator()
        ib = IB()
        errors: list[int] = []
        api_errors: list[str] = []
        ib.errorEvent += lambda req_id, code, msg, contract: errors.append(code)
        ib.client.apiError += api_errors.append
        try:
            await sim.start()
            sim.client_id_in_use(5)
            with pytest.raises((TimeoutError, ConnectionError)):
                await ib.connectAsync("127.0.0.1", sim.port, clientId=5, timeout=1)
            assert 326 in errors
            assert any("already in use" in m for m in api_errors)
            assert not ib.isConnected()
            sim.client_id_in_use(5, in_use=False)
            await ib.connectAsync("127.0.0.1", sim.port, clientId=5, timeout=3)
            assert ib.isConnected()
            # A second live connection with the same id is refused as TWS does.
            ib2 = IB()
            try:
                with pytest.raises((TimeoutError, ConnectionError)):
                    await ib2.connectAsync("127.0.0.1", sim.port, clientId=5, timeout=1)
            finally:
                ib2.disconnect()
        finally:
            ib.disconnect()
            await sim.stop()

    run(body())


# --------------------------------------------------------------- market data


def test_stock_quote_has_bid_ask_last_close() -> None:
    async def body() -> None:
        async with connected() as (_sim, ib):
            [stock] = await ib.qualifyContractsAsync(Stock("SPY", "SMART", "USD"))
            assert isinstance(stock, Contract) and stock.conId == STOCK_ID
            t = ib.reqMktData(stock)
            await until(lambda: t.last == t.last and t.bid == t.bid)
            assert t.bid < 500.0 < t.ask
            assert t.last == 500.0 and t.close == 500.0
            assert t.bidSize > 0 and t.askSize > 0

    run(body())


def test_option_model_greeks_match_bsm_and_follow_the_underlying() -> None:
    async def body() -> None:
        async with connected() as (sim, ib):
            t = ib.reqMktData(option())
            await until(lambda: t.modelGreeks is not None)

            def check(spot: float) -> None:
                g = t.modelGreeks
                assert g is not None
                ref = bsm(False, spot, 480.0, year_fraction(EXPIRY, time.time()), 0.0, 0.0, 0.2)
                assert g.undPrice == spot and g.impliedVol == 0.2
                assert g.optPrice == pytest.approx(ref.price, rel=1e-3)
                assert g.delta == pytest.approx(ref.delta, rel=1e-3)
                assert g.gamma == pytest.approx(ref.gamma, rel=1e-3)
                assert g.vega == pytest.approx(ref.vega, rel=1e-3)
                assert g.theta == pytest.approx(ref.theta, rel=1e-3)
                assert t.bid < ref.price < t.ask

            check(500.0)
            sim.set_underlying("SPY", 470.0, vol=0.2)
            await until(lambda: t.modelGreeks is not None and t.modelGreeks.undPrice == 470.0)
            check(470.0)
            g = t.modelGreeks
            assert g is not None and g.delta is not None and g.delta < -0.5

    run(body())


def test_unknown_contract_gets_error_200() -> None:
    async def body() -> None:
        async with connected() as (_sim, ib):
            errors: list[int] = []
            ib.errorEvent += lambda req_id, code, msg, contract: errors.append(code)
            assert await ib.qualifyContractsAsync(Stock("NOPE", "SMART", "USD")) == [None]
            assert 200 in errors

    run(body())


def test_farm_outage_halts_quotes_and_1101_drops_subscriptions() -> None:
    async def body() -> None:
        async with connected() as (sim, ib):
            t = ib.reqMktData(option())
            await until(lambda: t.modelGreeks is not None)
            sim.inject_error(2103)
            sim.set_underlying("SPY", 490.0, vol=0.2)
            await asyncio.sleep(0.1)
            assert t.modelGreeks is not None and t.modelGreeks.undPrice == 500.0
            sim.inject_error(2104)
            assert sim.push_quotes() == 1
            await until(lambda: t.modelGreeks is not None and t.modelGreeks.undPrice == 490.0)
            sim.inject_error(1101)
            assert sim.push_quotes() == 0  # TWS forgot the subscription

    run(body())


def test_auto_walk_streams_moving_quotes() -> None:
    async def body() -> None:
        async with connected(auto_walk=True, tick_interval=0.02, walk_speed=1e6) as (_sim, ib):
            t = ib.reqMktData(option())
            seen: set[float] = set()

            def record() -> bool:
                if t.modelGreeks is not None and t.modelGreeks.undPrice is not None:
                    seen.add(t.modelGreeks.undPrice)
                return len(seen) >= 3

            await until(record)

    run(body())


# -------------------------------------------------------------------- orders


def test_place_order_is_submitted_and_recorded() -> None:
    async def body() -> None:
        async with connected() as (sim, ib):
            trade = ib.placeOrder(option(), LimitOrder("BUY", 2, 3.25, orderRef="stop:abc"))
            await until(lambda: trade.orderStatus.status == "Submitted")
            [o] = sim.orders
            assert (o.order_id, o.client_id) == (trade.order.orderId, 1)
            assert (o.action, o.qty, o.order_type, o.lmt_price) == ("BUY", 2.0, "LMT", 3.25)
            assert o.order_ref == "stop:abc"
            assert (o.con_id, o.sec_type, o.strike, o.right) == (OPTION_ID, "OPT", 480.0, "P")
            assert o.expiry == EXPIRY and o.status == "Submitted"
            assert trade.orderStatus.permId == o.perm_id

    run(body())


def test_modifying_an_order_replaces_its_record() -> None:
    async def body() -> None:
        async with connected() as (sim, ib):
            trade = ib.placeOrder(option(), LimitOrder("SELL", 1, 4.0, orderRef="tp"))
            await until(lambda: trade.orderStatus.status == "Submitted")
            trade.order.lmtPrice = 3.8
            ib.placeOrder(trade.contract, trade.order)
            await until(lambda: len(sim.orders) == 2)
            old, new = sim.orders
            assert (old.status, new.status) == ("Modified", "Submitted")
            assert (new.order_id, new.lmt_price, new.perm_id) == (old.order_id, 3.8, old.perm_id)
            assert sim.open_orders() == [new]

    run(body())


def test_rejected_order_reports_201_and_cancels_the_trade() -> None:
    async def body() -> None:
        async with connected() as (sim, ib):
            errors: list[tuple[int, int]] = []
            ib.errorEvent += lambda req_id, code, msg, contract: errors.append((req_id, code))
            sim.reject_next_orders(1, code=201, msg="Order rejected - reason:margin")
            trade = ib.placeOrder(option(), LimitOrder("SELL", 1, 3.0))
            await until(lambda: trade.isDone())
            assert (trade.order.orderId, 201) in errors
            assert trade.orderStatus.status == "Cancelled"
            assert sim.orders[-1].status == "Rejected"
            # Only the next one was rejected.
            ok = ib.placeOrder(option(), LimitOrder("SELL", 1, 3.0))
            await until(lambda: ok.orderStatus.status == "Submitted")

    run(body())


def test_cancel_and_global_cancel_answer_202() -> None:
    async def body() -> None:
        async with connected() as (sim, ib):
            errors: list[tuple[int, int]] = []
            ib.errorEvent += lambda req_id, code, msg, contract: errors.append((req_id, code))
            a = ib.placeOrder(option(), LimitOrder("BUY", 1, 2.0))
            b = ib.placeOrder(option(), LimitOrder("BUY", 1, 2.1))
            c = ib.placeOrder(option(), LimitOrder("BUY", 1, 2.2))
            await until(lambda: all(t.orderStatus.status == "Submitted" for t in (a, b, c)))
            ib.cancelOrder(a.order)
            await until(lambda: a.orderStatus.status == "Cancelled")
            assert (a.order.orderId, 202) in errors
            ib.reqGlobalCancel()  # type: ignore[no-untyped-call]
            await until(lambda: b.isDone() and c.isDone())
            assert {(b.order.orderId, 202), (c.order.orderId, 202)} <= set(errors)
            assert b.orderStatus.status == c.orderStatus.status == "Cancelled"
            assert sim.open_orders() == []

    run(body())


def test_fill_orders_fills_and_moves_the_position() -> None:
    async def body() -> None:
        async with connected(fill_orders=True) as (sim, ib):
            changes: list[float] = []
            ib.positionEvent += lambda p: changes.append(p.position)
            trade = ib.placeOrder(option(), LimitOrder("BUY", 2, 3.0, orderRef="close"))
            await until(lambda: trade.orderStatus.status == "Filled" and bool(trade.fills))
            fill = trade.fills[0]
            assert (fill.execution.shares, fill.execution.price) == (2.0, 3.0)
            assert fill.execution.side == "BOT" and fill.execution.orderRef == "close"
            await until(lambda: fill.commissionReport.commission > 0)
            await until(lambda: 0.0 in changes)  # -2 + 2: the short put is closed
            assert OPTION_ID not in sim.positions
            stock = Stock("SPY", "SMART", "USD", conId=STOCK_ID)
            mkt = ib.placeOrder(stock, MarketOrder("SELL", 40))
            await until(lambda: mkt.orderStatus.status == "Filled")
            assert mkt.orderStatus.avgFillPrice < 500.0  # sold at the bid
            assert sim.positions[STOCK_ID].qty == 60

    run(body())


def test_open_orders_survive_a_reconnect_with_their_order_ref() -> None:
    async def body() -> None:
        async with connected(client_id=3) as (sim, ib):
            trade = ib.placeOrder(option(), LimitOrder("BUY", 1, 2.5, orderRef="trail:xyz"))
            await until(lambda: trade.orderStatus.status == "Submitted")
            order_id = trade.order.orderId
            ib.disconnect()
            await until(lambda: sim.client_ids() == [])
            await ib.connectAsync("127.0.0.1", sim.port, clientId=3, timeout=5)
            # The startup sync (REQ_OPEN_ORDERS) already rebuilt the trade.
            [synced] = ib.openTrades()
            assert synced.order.orderId == order_id and synced.order.orderRef == "trail:xyz"
            trades = await asyncio.wait_for(ib.reqAllOpenOrdersAsync(), 3)
            [t] = trades
            assert t.order.orderRef == "trail:xyz"
            assert (t.order.action, t.order.totalQuantity, t.order.lmtPrice) == ("BUY", 1.0, 2.5)
            assert t.contract.conId == OPTION_ID and t.orderStatus.status == "Submitted"
            # Status updates still reach the rebuilt trade.
            sim.cancel_order(order_id)
            await until(lambda: synced.orderStatus.status == "Cancelled")

    run(body())


# -------------------------------------------------------------------- faults


@pytest.mark.parametrize("code", [1100, 1102, 2103, 10197])
def test_injected_errors_reach_error_event(code: int) -> None:
    async def body() -> None:
        async with connected(setup=None) as (sim, ib):
            got: list[tuple[int, int, str]] = []
            ib.errorEvent += lambda req_id, c, msg, contract: got.append((req_id, c, msg))
            sim.inject_error(code)
            await until(lambda: any(c == code for _, c, _ in got))
            req_id, _, msg = next(g for g in got if g[1] == code)
            assert req_id == -1 and msg

    run(body())


def test_drop_connections_fires_disconnected_event() -> None:
    async def body() -> None:
        async with connected(setup=None) as (sim, ib):
            dropped = asyncio.Event()
            ib.disconnectedEvent += dropped.set
            assert sim.drop_connections() == 1
            await asyncio.wait_for(dropped.wait(), 3)
            assert not ib.isConnected()
            # The gateway is still there for a reconnect.
            await ib.connectAsync("127.0.0.1", sim.port, clientId=1, timeout=5)
            assert ib.isConnected()

    run(body())


def test_hang_delays_answers_until_it_ends() -> None:
    async def body() -> None:
        async with connected(setup=None) as (sim, ib):
            sim.hang(0.5)
            t0 = time.monotonic()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ib.reqCurrentTimeAsync(), 0.2)
            await asyncio.wait_for(ib.reqCurrentTimeAsync(), 2)
            assert time.monotonic() - t0 >= 0.4

    run(body())


def test_add_and_remove_position_fire_position_event() -> None:
    async def body() -> None:
        async with connected() as (sim, ib):
            seen: list[tuple[int, float]] = []
            ib.positionEvent += lambda p: seen.append((p.contract.conId, p.position))
            sim.add_position(SimPosition(777, "QQQ", "STK", 50, 400.0))
            await until(lambda: (777, 50.0) in seen)
            sim.remove_position(777)
            await until(lambda: (777, 0.0) in seen)
            assert 777 not in {p.contract.conId for p in ib.positions()}

    run(body())


# -------------------------------------------------------------------- thread


def test_simulator_thread_serves_a_blocking_client() -> None:
    sim = SimulatorThread(seed=1)
    port = sim.start()
    try:
        sim.call(sim.sim.set_underlying, "SPY", 500.0)
        sim.call(sim.sim.add_position, SimPosition(STOCK_ID, "SPY", "STK", 10, 480.0))
        inst = sim.call(lambda: sim.sim.market.instruments[STOCK_ID])
        assert isinstance(inst, Instrument) and inst.symbol == "SPY"

        async def client() -> list[float]:
            ib = IB()
            try:
                await ib.connectAsync("127.0.0.1", port, clientId=9, timeout=5)
                return [p.position for p in ib.positions()]
            finally:
                ib.disconnect()

        assert run(client()) == [10.0]
        with pytest.raises(ValueError):
            sim.call(sim.sim.fill_order, 12345)  # exceptions cross the thread
    finally:
        sim.stop()

"""Market data for contracts nobody holds, the per-connection line limit, and a crash."""

from __future__ import annotations

import asyncio
import math

import pytest
from ib_async import IB, Bag, ComboLeg, Contract, Option, Stock
from sim_helpers import (
    ACCOUNT,
    EXPIRY,
    PUT_ID,
    VOL,
    client,
    connected,
    put,
    put_price,
    run,
    until,
)

from supervisor.simulator import GatewaySimulator
from supervisor.simulator.market import Market, stable_con_id


async def qualify(ib: IB, *contracts: Contract) -> list[Contract]:
    out = await asyncio.wait_for(ib.qualifyContractsAsync(*contracts), 5)
    assert all(isinstance(c, Contract) and c.conId for c in out), out
    return [c for c in out if isinstance(c, Contract)]


def test_an_unheld_option_is_qualified_and_quoted_with_model_greeks() -> None:
    async def body() -> None:
        async with connected() as (_sim, ib):
            [p470] = await qualify(ib, put(470.0))
            key = f"OPT:SPY:{EXPIRY}:470.0000:P:100"
            assert p470.conId == stable_con_id(key)
            assert (p470.secType, p470.multiplier, p470.strike) == ("OPT", "100", 470.0)
            t = ib.reqMktData(p470)
            await until(lambda: t.modelGreeks is not None and not math.isnan(t.bid))
            g = t.modelGreeks
            assert g is not None and g.undPrice == 500.0 and g.impliedVol == VOL
            assert g.optPrice == pytest.approx(put_price(470.0, 500.0), rel=1e-4)
            assert g.delta is not None and -0.5 < g.delta < 0.0
            assert t.bid < g.optPrice < t.ask

    run(body())


def test_an_unheld_stock_is_qualified_and_quoted() -> None:
    async def body() -> None:
        def setup(sim: GatewaySimulator) -> None:
            sim.set_underlying("QQQ", 400.0)

        async with connected(setup=setup) as (_sim, ib):
            [qqq] = await qualify(ib, Stock("QQQ", "SMART", "USD"))
            assert qqq.conId == stable_con_id("STK:QQQ")
            t = ib.reqMktData(qqq)
            await until(lambda: t.last == 400.0 and t.bid < 400.0 < t.ask)

    run(body())


def test_conids_do_not_depend_on_the_order_of_requests() -> None:
    async def ids(strikes: list[float]) -> dict[float, int]:
        async with connected() as (_sim, ib):
            got = await qualify(ib, *(put(k) for k in strikes))
            return {c.strike: c.conId for c in got}

    async def body() -> None:
        first = await ids([460.0, 470.0, 450.0])
        second = await ids([450.0, 470.0, 460.0])
        assert first == second and len(set(first.values())) == 3

    run(body())


def test_the_line_limit_answers_101_and_a_cancel_frees_a_line() -> None:
    async def body() -> None:
        async with connected(max_tickers=2) as (sim, ib):
            errors: list[tuple[int, int]] = []
            ib.errorEvent += lambda req_id, code, msg, contract: errors.append((req_id, code))
            a, b, c, d = await qualify(ib, put(470.0), put(460.0), put(450.0), put(440.0))
            ta, tb = ib.reqMktData(a), ib.reqMktData(b)
            await until(lambda: ta.modelGreeks is not None and tb.modelGreeks is not None)
            tc = ib.reqMktData(c)
            await until(lambda: any(code == 101 for _, code in errors), what="error 101")
            assert sim.market_data_lines(1) == 2
            await asyncio.sleep(0.1)
            assert tc.modelGreeks is None and math.isnan(tc.bid)
            assert ib.cancelMktData(a)
            await until(lambda: sim.market_data_lines(1) == 1, what="the freed line")
            td = ib.reqMktData(d)
            await until(lambda: td.modelGreeks is not None, what="a quote on the freed line")
            # The limit is per connection: another client has its own lines.
            async with client(sim, 2) as ib2:
                [e] = await qualify(ib2, put(430.0))
                te = ib2.reqMktData(e)
                await until(lambda: te.modelGreeks is not None)

    run(body())


def test_a_combo_is_quoted_at_the_net_of_its_legs() -> None:
    async def body() -> None:
        async with connected() as (_sim, ib):
            [p470] = await qualify(ib, put(470.0))
            [p480] = await qualify(ib, Option("SPY", "", 0.0, "", "SMART", conId=PUT_ID))
            legs = [
                ComboLeg(conId=p480.conId, ratio=1, action="BUY", exchange="SMART"),
                ComboLeg(conId=p470.conId, ratio=1, action="SELL", exchange="SMART"),
            ]
            t80, t70 = ib.reqMktData(p480), ib.reqMktData(p470)
            bag = Bag(symbol="SPY", exchange="SMART", currency="USD", comboLegs=legs)
            tb = ib.reqMktData(bag)
            await until(lambda: not any(math.isnan(x) for x in (tb.bid, tb.ask, t80.bid, t70.ask)))
            assert tb.bid == pytest.approx(t80.bid - t70.ask, abs=0.011)
            assert tb.ask == pytest.approx(t80.ask - t70.bid, abs=0.011)

    run(body())


def test_a_crash_moves_marks_quotes_and_pnl_to_the_target() -> None:
    async def body() -> None:
        async with connected(tick_interval=0.02, pnl_interval_s=0.05) as (sim, ib):
            [stock] = await qualify(ib, Stock("SPY", "SMART", "USD"))
            t = ib.reqMktData(stock)
            pnl = ib.reqPnL(ACCOUNT)
            await until(lambda: t.last == 500.0 and not math.isnan(pnl.dailyPnL))
            sim.crash("SPY", 10.0, over_s=0.5)
            lows: list[float] = []
            await until(lambda: bool(lows.append(t.last)) or t.last == 450.0, timeout=4.0)
            assert len({x for x in lows if 450.0 < x < 500.0}) >= 2  # it fell over time
            assert sim.market.und_price("SPY") == pytest.approx(450.0, rel=1e-12)
            expected = -100 * 50.0 - 200.0 * (put_price(480.0, 450.0) - put_price(480.0, 500.0))
            await until(lambda: abs(pnl.dailyPnL - expected) < 0.05, what="P&L after the crash")
            assert sim.market.moving() == []

    run(body())


def test_scheduled_moves_are_deterministic() -> None:
    def path(steps: list[float]) -> float:
        m = Market(seed=3)
        m.set_underlying("SPY", 500.0)
        m.crash("SPY", 20.0, over_s=10.0, now=100.0)
        for t in steps:
            m.advance(t)
        return m.und_price("SPY")

    assert path([103.0, 110.0]) == pytest.approx(400.0, rel=1e-12)
    assert path([101.0, 102.5, 107.0, 250.0]) == pytest.approx(400.0, rel=1e-12)
    assert path([105.0]) == pytest.approx(500.0 * 0.8**0.5, rel=1e-12)
    m = Market()
    m.set_underlying("SPY", 100.0)
    m.drift("SPY", -1.0, now=0.0)  # -1 % a minute
    m.advance(120.0)
    assert m.und_price("SPY") == pytest.approx(100.0 * 0.99**2, rel=1e-12)
    with pytest.raises(ValueError):
        m.crash("SPY", 100.0, over_s=1.0, now=0.0)
    with pytest.raises(ValueError):
        m.crash("NOPE", 10.0, over_s=1.0, now=0.0)

"""reqPnL / reqPnLSingle against the simulator, through the real ``ib_async`` client.

The expected numbers are worked out here from the model the broker documents:
daily = unrealized now − unrealized at the session start + realized today.
"""

from __future__ import annotations

import asyncio
import math

import pytest
from ib_async import LimitOrder
from sim_helpers import (
    ACCOUNT,
    DBL_MAX,
    STOCK_ID,
    VOL,
    connected,
    put_price,
    run,
    spy,
    until,
)


def test_pnl_starts_at_zero_and_follows_the_marks() -> None:
    async def body() -> None:
        async with connected(pnl_interval_s=0.05) as (sim, ib):
            pnl = ib.reqPnL(ACCOUNT)
            await until(lambda: not math.isnan(pnl.dailyPnL), what="first P&L")
            p0 = put_price(480.0, 500.0)
            assert pnl.dailyPnL == pytest.approx(0.0, abs=0.01)  # only time decay since the setup
            # 100 × (500 − 490) on the stock; 2 × (350 − 100 × put) on the short puts.
            assert pnl.unrealizedPnL == pytest.approx(1000.0 + 700.0 - 200.0 * p0, abs=0.01)
            assert pnl.realizedPnL == 0.0
            sim.set_underlying("SPY", 505.0, vol=VOL)
            expected = 100 * 5.0 - 200.0 * (put_price(480.0, 505.0) - p0)
            await until(lambda: abs(pnl.dailyPnL - expected) < 0.01, what="P&L at 505")
            assert sim.net_liquidation() - 1_000_000.0 == pytest.approx(expected, abs=0.01)

    run(body())


def test_pnl_is_pushed_on_its_cadence_and_at_once_on_a_fill() -> None:
    async def body() -> None:
        async with connected(pnl_interval_s=60.0, fill_orders=True) as (sim, ib):
            updates: list[tuple[float, float, float]] = []
            ib.pnlEvent += lambda p: updates.append((p.dailyPnL, p.unrealizedPnL, p.realizedPnL))
            pnl = ib.reqPnL(ACCOUNT)
            await until(lambda: len(updates) == 1, what="the answer to reqPnL")
            p0 = put_price(480.0, 500.0)
            sim.set_underlying("SPY", 505.0, vol=VOL)
            await asyncio.sleep(0.3)
            assert len(updates) == 1  # a mark move waits for the (60 s) cadence
            trade = ib.placeOrder(spy(), LimitOrder("SELL", 40, 506.0))
            await until(lambda: trade.orderStatus.status == "Filled", what="the fill")
            await until(lambda: pnl.realizedPnL != 0.0, what="P&L after the fill")
            commission = 1.0  # max($1, 40 × $0.005)
            assert pnl.realizedPnL == pytest.approx(40 * (506.0 - 490.0) - commission)
            marks = 100 * 5.0 - 200.0 * (put_price(480.0, 505.0) - p0)
            sold_above_mark = 40 * (506.0 - 505.0)
            expected = marks + sold_above_mark - commission
            assert pnl.dailyPnL == pytest.approx(expected, abs=0.01)
            assert sim.net_liquidation() - 1_000_000.0 == pytest.approx(expected, abs=0.01)
            assert sim.push_pnl() == 1

    run(body())


def test_unset_values_arrive_as_dbl_max_for_a_while() -> None:
    async def body() -> None:
        async with connected(pnl_interval_s=0.05, pnl_unset_s=0.4) as (sim, ib):
            seen: list[tuple[float, float, float]] = []
            ib.pnlEvent += lambda p: seen.append((p.dailyPnL, p.unrealizedPnL, p.realizedPnL))
            ib.reqPnL(ACCOUNT)
            await until(lambda: bool(seen) and seen[-1][0] != DBL_MAX, what="populated P&L")
            assert seen[0] == (DBL_MAX, DBL_MAX, DBL_MAX)
            unset = [v for v in seen if v[0] == DBL_MAX]
            assert len(unset) >= 3 and all(v == (DBL_MAX,) * 3 for v in unset)
            assert all(DBL_MAX not in v for v in seen[len(unset) :])
            # The knob also blanks a live subscription for a while.
            sim.set_pnl_unset(0.3)
            await until(lambda: seen[-1][0] == DBL_MAX, what="unset again")
            await until(lambda: seen[-1][0] != DBL_MAX, what="populated again")

    run(body())


def test_cancel_pnl_stops_the_stream() -> None:
    async def body() -> None:
        async with connected(pnl_interval_s=0.05) as (sim, ib):
            pnl = ib.reqPnL(ACCOUNT)
            await until(lambda: not math.isnan(pnl.dailyPnL))
            assert sim.push_pnl() == 1
            ib.cancelPnL(ACCOUNT)
            await until(lambda: sim.push_pnl() == 0, what="the server dropping it")

    run(body())


def test_pnl_single_reports_one_position() -> None:
    async def body() -> None:
        async with connected(pnl_interval_s=0.05) as (sim, ib):
            single = ib.reqPnLSingle(ACCOUNT, "", STOCK_ID)
            await until(lambda: not math.isnan(single.dailyPnL))
            assert single.position == 100.0
            assert single.unrealizedPnL == pytest.approx(1000.0)
            assert single.value == pytest.approx(50_000.0)
            assert single.dailyPnL == pytest.approx(0.0)
            sim.set_underlying("SPY", 497.0, vol=VOL)
            await until(lambda: abs(single.dailyPnL - -300.0) < 1e-6, what="daily at 497")
            assert single.value == pytest.approx(49_700.0)

    run(body())


def test_a_new_session_restarts_daily_pnl() -> None:
    async def body() -> None:
        async with connected(pnl_interval_s=0.05) as (sim, ib):
            pnl = ib.reqPnL(ACCOUNT)
            sim.set_underlying("SPY", 510.0, vol=VOL)
            await until(lambda: pnl.dailyPnL > 900.0, what="the rally in daily P&L")
            sim.start_pnl_session()
            # Only the option's time decay since the reset (cents a minute) remains.
            await until(lambda: abs(pnl.dailyPnL) < 0.01, what="daily P&L reset")
            assert pnl.unrealizedPnL > 1000.0  # unrealized does not reset

    run(body())

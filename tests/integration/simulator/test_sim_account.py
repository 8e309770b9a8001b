"""Account values on IB's slow cadence, NLV following the marks, and the explicit override."""

from __future__ import annotations

import asyncio
import itertools
import math
import time

import pytest
from ib_async import IB
from sim_helpers import ACCOUNT, VOL, connected, run, until


def nlv_of(ib: IB) -> float:
    """NetLiquidation as the client's account updates hold it now."""
    for v in ib.accountValues():
        if v.tag == "NetLiquidation" and v.currency == "USD":
            return float(v.value)
    raise AssertionError("no NetLiquidation")


def summary_nlv(ib: IB) -> float:
    """NetLiquidation as the client's account summary holds it now."""
    for v in ib.wrapper.acctSummary.values():
        if v.tag == "NetLiquidation":
            return float(v.value)
    raise AssertionError("no NetLiquidation in the summary")


def test_pnl_moves_between_two_nlv_updates() -> None:
    async def body() -> None:
        async with connected(pnl_interval_s=0.05, account_refresh_s=3600.0) as (sim, ib):
            await asyncio.wait_for(ib.accountSummaryAsync(), 5)
            assert nlv_of(ib) == summary_nlv(ib) == 1_000_000.0
            pnl = ib.reqPnL(ACCOUNT)
            sim.set_underlying("SPY", 480.0, vol=VOL)
            await until(lambda: not math.isnan(pnl.dailyPnL) and pnl.dailyPnL < -2000.0)
            await asyncio.sleep(0.3)
            # P&L moved; NLV did not (IB refreshes it every few minutes).
            assert nlv_of(ib) == summary_nlv(ib) == 1_000_000.0
            sim.refresh_account()
            await until(lambda: nlv_of(ib) != 1_000_000.0, what="the refresh")
            await until(lambda: summary_nlv(ib) != 1_000_000.0, what="the summary refresh")
            assert nlv_of(ib) == pytest.approx(1_000_000.0 + pnl.dailyPnL, abs=0.05)
            assert summary_nlv(ib) == nlv_of(ib)

    run(body())


def test_account_values_refresh_on_their_cadence() -> None:
    async def body() -> None:
        async with connected(account_refresh_s=0.4) as (sim, ib):
            stamps: list[tuple[float, float]] = []

            def on_value(v: object) -> None:
                if getattr(v, "tag", "") == "NetLiquidation":
                    stamps.append((time.monotonic(), float(getattr(v, "value", "nan"))))

            ib.accountValueEvent += on_value
            sim.set_underlying("SPY", 520.0, vol=VOL, push=False)

            def refreshes() -> list[float]:
                # One refresh reaches ib_async twice: as an account update and
                # as an account-updates-multi value (both fire the event).
                out: list[float] = []
                for t, _ in stamps:
                    if not out or t - out[-1] > 0.1:
                        out.append(t)
                return out

            await until(lambda: len(refreshes()) >= 3, timeout=5.0, what="three refreshes")
            times = refreshes()
            gaps = [b - a for a, b in itertools.pairwise(times)]
            assert all(0.3 < g < 0.8 for g in gaps), gaps
            assert stamps[-1][1] == pytest.approx(sim.net_liquidation(), abs=0.05)
            assert stamps[-1][1] > 1_000_000.0  # long stock, short puts: a rally helps

    run(body())


def test_set_net_liquidation_is_pushed_at_once_then_follows_the_marks() -> None:
    async def body() -> None:
        async with connected(account_refresh_s=3600.0) as (sim, ib):
            sim.set_net_liquidation(2_000_000.0)
            await until(lambda: nlv_of(ib) == 2_000_000.0, what="the override")
            sim.set_underlying("SPY", 501.0, vol=VOL, push=False)
            sim.refresh_account()
            await until(lambda: nlv_of(ib) != 2_000_000.0, what="the next refresh")
            assert nlv_of(ib) == pytest.approx(sim.net_liquidation(), abs=0.01)
            assert 2_000_000.0 < nlv_of(ib) < 2_000_000.0 + 200.0

    run(body())


def test_margin_values_come_from_the_model_and_pins_win() -> None:
    async def body() -> None:
        async with connected(account_refresh_s=3600.0) as (sim, ib):
            values = {v.tag: v.value for v in ib.accountValues() if v.currency in ("USD", "")}
            init, maint = float(values["InitMarginReq"]), float(values["MaintMarginReq"])
            ewl = float(values["EquityWithLoanValue"])
            assert float(values["ExcessLiquidity"]) == pytest.approx(ewl - maint, abs=0.01)
            assert float(values["AvailableFunds"]) == pytest.approx(ewl - init, abs=0.01)
            assert init > maint > 0
            sim.set_account_value("ExcessLiquidity", 12_345.0)
            excess = lambda: next(  # noqa: E731
                float(v.value) for v in ib.accountValues() if v.tag == "ExcessLiquidity"
            )
            await until(lambda: excess() == 12_345.0, what="the pinned value")
            sim.refresh_account()
            await asyncio.sleep(0.2)
            assert excess() == 12_345.0
            sim.clear_account_value("ExcessLiquidity")
            sim.refresh_account()
            await until(lambda: excess() != 12_345.0, what="the computed value back")

    run(body())

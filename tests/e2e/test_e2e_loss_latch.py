"""The daily loss limit, end to end (DESIGN §4.3): a crash latches the breaker until a reset.

The simulated account holds 1 000 AAPL at 100 (NLV 1 000 000). The daemon
runs as a real process with ``[loss] max_daily_loss = 5000``; the simulator
sends ``reqPnL`` every 0.2 s and never refreshes the account's NLV by itself
after the session set-up. AAPL then crashes 10 % over a second: IB's daily
P&L falls to −10 000, the daemon trips the breaker on ``loss_limit`` and
latches it OPEN with no timer. While latched, an entry is denied and a sale
of the stock (risk-reducing for ``max_portfolio_delta``) passes; the latch
survives a SIGKILL and a restart; an operator reset while the loss stands
trips again at the next P&L; once the market is back, a reset closes the
breaker for good. The money (daily P&L, NLV estimate, high-water mark) is in
``/v1/state`` and in the metrics, each equal to what the simulated account
says.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import DaemonProcess, until
from e2e_rig import (
    check,
    codes,
    daemon_doc,
    hold,
    journal_rows,
    metric,
    simulator,
    start,
    write_config,
)

from supervisor.simulator import SimPosition

pytestmark = pytest.mark.e2e

AAPL = 1001
LOSS = 5000.0
NLV = 1_000_000.0


def _buy(qty: float) -> list[dict[str, Any]]:
    return [{"symbol": "AAPL", "sec_type": "STK", "qty": qty, "price": 90.0}]


def test_a_crash_latches_the_breaker_through_restarts_until_an_operator_reset(
    tmp_path: Path,
) -> None:
    store = tmp_path / "state.sqlite"
    with simulator(seed=21, pnl_interval_s=0.2, account_refresh_s=3600.0) as sim:
        g = sim.sim
        hold(sim, SimPosition(AAPL, "AAPL", "STK", 1000, 100.0), und={"AAPL": 100.0})
        sim.call(g.set_net_liquidation, NLV)
        config = write_config(
            tmp_path / "daemon.toml",
            daemon_doc(
                sim.port,
                store,
                61,
                loss={"max_daily_loss": LOSS, "max_pnl_age_s": 5.0},
                limits={"max_portfolio_delta": 1_000_000.0},
            ),
        )
        d = DaemonProcess(config, tmp_path)
        try:
            start(d, 1)
            until(
                lambda: d.get("/v1/state")["money"]["daily_pnl"] is not None,
                10.0,
                "a daily P&L from IB",
                diagnose=d.diagnose,
            )
            before = d.get("/v1/state")
            assert before["breaker"]["state"] == "closed"
            assert before["money"]["nlv_reported"] == pytest.approx(NLV)
            assert before["money"]["high_water"] == pytest.approx(NLV)
            # An entry passes before the crash.
            assert check(d, "pre", _buy(10))["allowed"] is True

            # The market falls 10 % in a second: daily P&L −10 000.
            sim.call(g.crash, "AAPL", 10.0, 1.0)
            until(
                lambda: d.get("/v1/state")["breaker"]["state"] == "open",
                10.0,
                "the loss trip",
                diagnose=d.diagnose,
            )
            # Let the crash end and the P&L settle at its final value.
            until(lambda: not sim.call(g.market.moving), 5.0, "the crash over")
            want_daily = sim.call(lambda: g.pnl().daily)
            assert want_daily == pytest.approx(-10_000.0, abs=0.01)
            until(
                lambda: d.get("/v1/state")["money"]["daily_pnl"] == pytest.approx(want_daily),
                5.0,
                "the final daily P&L in the daemon",
            )
            s = d.get("/v1/state")
            snap = s["breaker"]["snapshot"]
            assert s["breaker"]["state"] == "open"
            assert snap["due"] is None, f"a loss latch has no timer: {snap}"
            assert s["money"]["loss_latched"] is True, s["money"]
            money = s["money"]
            # estimate = NLV from IB + (daily now − daily when it arrived, 0)
            assert money["nlv_estimate"] == pytest.approx(NLV + want_daily)
            assert money["high_water"] == pytest.approx(NLV)
            assert metric(d, "daily_pnl") == pytest.approx(want_daily)
            assert metric(d, "net_liquidation_estimate") == pytest.approx(NLV + want_daily)
            assert metric(d, "net_liquidation_high_water") == pytest.approx(NLV)
            assert metric(d, "circuit_breaker_state", state="open") == 1.0

            # The trip is one breaker row, caused by loss_limit, latched.
            trips = [r["payload"] for r in journal_rows(store, "breaker")]
            assert [(r["from"], r["to"]) for r in trips] == [("closed", "open")], trips
            cause = trips[0]["cause"]
            assert cause["failure"]["kind"] == "loss_limit", cause
            assert cause["latched"] is True, cause

            # Entries denied; a sale of the stock is risk-reducing and passes.
            entry = check(d, "entry", _buy(10))
            assert entry["allowed"] is False and codes(entry) == ["breaker_open"], entry
            sale = check(d, "sale", _buy(-100))
            assert sale["allowed"] is True and sale["risk_reducing"] is True, sale

            # Latched: no timer, so it stays open (P&L keeps coming in).
            time.sleep(1.0)
            assert d.get("/v1/state")["breaker"]["state"] == "open"

            # SIGKILL and restart: still OPEN, still latched, HWM kept.
            d.kill9()
            start(d, 1)
            s = d.get("/v1/state")
            assert s["breaker"]["state"] == "open", s["breaker"]
            assert s["breaker"]["snapshot"]["due"] is None, s["breaker"]
            assert s["money"]["high_water"] == pytest.approx(NLV), s["money"]
            until(
                lambda: d.get("/v1/state")["money"]["loss_latched"] is True,
                5.0,
                "the latch after the restart",
            )
            entry = check(d, "entry-after-restart", _buy(10))
            assert entry["allowed"] is False and "breaker_open" in codes(entry), entry
            # After the restart the estimate is re-based on the NLV IB sends now.
            until(
                lambda: (
                    d.get("/v1/state")["money"]["nlv_estimate"]
                    == pytest.approx(sim.call(g.net_liquidation))
                ),
                5.0,
                "the estimate after the restart",
            )

            # A reset while the loss still stands: the next P&L trips (and latches) again.
            assert d.post("/v1/breaker/reset", {"operator": "e2e"}) == {"state": "closed"}
            until(
                lambda: d.get("/v1/state")["breaker"]["state"] == "open",
                5.0,
                "the trip again after a reset over the limit",
                diagnose=d.diagnose,
            )
            assert d.get("/v1/state")["breaker"]["snapshot"]["due"] is None

            # The market comes back; now a reset closes the breaker for good.
            sim.call(g.set_underlying, "AAPL", 100.0, 0.25)
            until(
                lambda: abs(d.get("/v1/state")["money"]["daily_pnl"]) < 1.0,
                5.0,
                "the P&L back at 0",
            )
            assert d.post("/v1/breaker/reset", {"operator": "e2e"}) == {"state": "closed"}
            time.sleep(1.0)  # five P&L events
            s = d.get("/v1/state")
            assert s["breaker"]["state"] == "closed", s["breaker"]
            assert s["money"]["loss_latched"] is False, s["money"]
            assert check(d, "entry-after-reset", _buy(10))["allowed"] is True
            # The reset restarted the high-water mark at the estimate of that moment.
            hwm = s["money"]["high_water"]
            assert hwm is not None and math.isfinite(hwm)
            assert hwm == pytest.approx(s["money"]["nlv_estimate"], abs=1.0)

            rows = [r["payload"] for r in journal_rows(store, "breaker")]
            assert [(r["from"], r["to"]) for r in rows] == [
                ("closed", "open"),  # the crash
                ("open", "closed"),  # reset while the loss stood
                ("closed", "open"),  # tripped again at the next P&L
                ("open", "closed"),  # reset after the market came back
            ], rows
            assert [r["cause"]["reason"] for r in rows][1::2] == ["operator_reset"] * 2
            assert d.terminate() == 0
        except BaseException:
            print(d.diagnose())
            raise
        finally:
            d.close()

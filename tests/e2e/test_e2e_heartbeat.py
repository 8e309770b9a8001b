"""The dead-man switch, end to end (DESIGN §4.5): the trader goes silent, the daemon kills.

``[api] heartbeat_timeout_s = 2``, ``heartbeat_action = "cancel"``. The trader
(this test) heartbeats a few times through ``POST /v1/heartbeat`` and then
stops. Exactly 2 s after its last heartbeat the daemon kills with cause
``heartbeat_lost``: the breaker goes OPEN (sticky, no timer), the working
orders of the account — another API client's and one placed from TWS — are
cancelled through IB's global cancel, each step journaled; the metric
``heartbeat_lost_total`` is 1 and stays 1 (it fires once, then waits for the
next heartbeat).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from e2e_helpers import DaemonProcess, until
from e2e_rig import (
    daemon_doc,
    hold,
    journal_rows,
    metric,
    simulator,
    start,
    write_config,
)
from ib_async import IB, LimitOrder, Stock

from supervisor.simulator import SimPosition

pytestmark = pytest.mark.e2e

AAPL = 1001
TIMEOUT_S = 2.0
#: How late the kill may be journaled after its deadline (a loaded 2-core CI box).
LATE_S = 0.5


def test_a_silent_trader_is_killed_on_time_and_its_orders_cancelled(tmp_path: Path) -> None:
    store = tmp_path / "state.sqlite"
    with simulator(seed=41) as sim:
        g = sim.sim
        hold(sim, SimPosition(AAPL, "AAPL", "STK", 100, 100.0), und={"AAPL": 100.0})
        config = write_config(
            tmp_path / "daemon.toml",
            daemon_doc(
                sim.port,
                store,
                64,
                api={"heartbeat_timeout_s": TIMEOUT_S, "heartbeat_action": "cancel"},
            ),
        )
        d = DaemonProcess(config, tmp_path)
        try:
            start(d, 1)
            # Orders the kill must reach: another client's, and one from TWS.
            ib = IB()
            ib.connect("127.0.0.1", sim.port, clientId=78, timeout=5.0)
            try:
                trade = ib.placeOrder(Stock("AAPL", "SMART", "USD"), LimitOrder("BUY", 10, 50.0))
                ib.sleep(0.3)
            finally:
                ib.disconnect()
            tws = sim.call(g.add_tws_order, AAPL, "SELL", 5, 150.0)
            assert sim.call(g.find_order, trade.order.orderId, 78) is not None

            # No heartbeat yet: the switch is not armed, nothing fires.
            time.sleep(TIMEOUT_S + 0.3)
            assert d.get("/v1/state")["breaker"]["state"] == "closed"

            last = None
            for _ in range(4):
                last = d.post("/v1/heartbeat", {})
                time.sleep(0.5)
            assert last is not None
            assert last["timeout_s"] == TIMEOUT_S
            assert last["deadline"] == pytest.approx(last["last_t"] + TIMEOUT_S)
            deadline = float(last["deadline"])
            # Still alive 0.5 s after the last heartbeat, and just before its deadline.
            assert d.get("/v1/state")["breaker"]["state"] == "closed"
            time.sleep(max(deadline - 0.15 - time.time(), 0.0))
            assert d.get("/v1/state")["breaker"]["state"] == "closed", "killed early"

            until(
                lambda: d.get("/v1/state")["breaker"]["state"] == "open",
                TIMEOUT_S + 3.0,
                "the heartbeat kill",
                diagnose=d.diagnose,
            )
            seen_open = time.time()
            assert seen_open >= deadline - 0.05, (seen_open, deadline)
            rows = journal_rows(store, "breaker")
            assert len(rows) == 1, rows
            tr = rows[0]
            assert (tr["payload"]["from"], tr["payload"]["to"]) == ("closed", "open")
            # Decided at the deadline (its event time), written then on the wall clock.
            late = tr["wall_t"] - deadline
            print(f"heartbeat kill journaled {late:+.4f}s after its deadline")
            assert tr["t"] == pytest.approx(deadline, abs=1e-6), (tr["t"], deadline)
            assert -0.01 <= late <= LATE_S, f"journaled {late:+.3f}s from the deadline"
            state = d.get("/v1/state")
            assert state["breaker"]["snapshot"]["due"] is None, state["breaker"]
            kill = state["kill"]
            assert kill["cause"] == "heartbeat_lost" and kill["mode"] == "cancel", kill
            assert state["heartbeat"]["fired"] is True, state["heartbeat"]

            # Every working order of the account is cancelled, each step journaled.
            def cancelled() -> bool:
                mine = sim.call(g.find_order, trade.order.orderId, 78)
                theirs = sim.call(g.find_order, tws.order_id, 0)
                return bool(mine and theirs and {mine.status, theirs.status} == {"Cancelled"})

            until(cancelled, 10.0, "the orders cancelled", diagnose=d.diagnose)
            until(
                lambda: (
                    "cancel_confirmed"
                    in [r["payload"].get("step") for r in journal_rows(store, "kill")]
                ),
                10.0,
                "the cancel confirmed in the journal",
            )
            steps = [r["payload"].get("step") for r in journal_rows(store, "kill")]
            assert "cancel_requested" in steps and "global_cancel_sent" in steps, steps

            assert metric(d, "heartbeat_lost_total") == 1.0
            assert metric(d, "kills_total", mode="cancel") == 1.0
            # It fires once, then waits for the next heartbeat.
            time.sleep(TIMEOUT_S + 0.5)
            assert metric(d, "heartbeat_lost_total") == 1.0
            assert len(journal_rows(store, "breaker")) == 1
            # An entry is denied while the kill holds the breaker open.
            answer = d.post(
                "/v1/checks",
                {
                    "id": "after-kill",
                    "legs": [{"symbol": "AAPL", "sec_type": "STK", "qty": 1, "price": 100.0}],
                },
            )
            assert answer["allowed"] is False and answer["reasons"][-1]["code"] == "breaker_open"
            assert d.terminate() == 0
        except BaseException:
            print(d.diagnose())
            raise
        finally:
            d.close()

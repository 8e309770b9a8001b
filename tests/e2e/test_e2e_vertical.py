"""A declared vertical spread, end to end (DESIGN §3.1): one stop on its net price, one combo exit.

The simulated account holds a SPY call debit spread: long 2 × 500 C, short
2 × 510 C. The trader declares it with ``PUT /v1/strategies/V`` (legs by
conId, ratios +1/−1); ``risk-supervisor status`` then shows one strategy
stop. SPY rises (the net price arms the stop) and falls (it breaches): exactly
one BAG order goes to the simulator — both legs' conIds, ratio 1 each, the
long leg sold and the short leg bought, BUY of the closing combo for the
spread's 2 units at −(triggering net price) — and none after a SIGKILL and a
restart while prices keep moving. The legs' own stops stayed off throughout:
no stop event for either leg, although the long call alone moved far enough
to arm and trigger its own stop.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_helpers import DaemonProcess, until
from e2e_rig import (
    daemon_doc,
    hold,
    journal_rows,
    option,
    sim_orders,
    simulator,
    start,
    wait_quoted,
    write_config,
)

from supervisor.ib.adapter import EXIT_REF_PREFIX
from supervisor.simulator import SimOrder, SimulatorThread

pytestmark = pytest.mark.e2e

LONG, SHORT = 3001, 3002


def _strategy(d: DaemonProcess) -> dict[str, Any]:
    found = [s for s in d.get("/v1/state")["strategies"] if s["id"] == "V"]
    assert len(found) == 1, found
    return dict(found[0])


def _bags(sim: SimulatorThread) -> list[SimOrder]:
    return [o for o in sim_orders(sim) if o.sec_type == "BAG"]


def _move(sim: SimulatorThread, price: float) -> None:
    sim.call(sim.sim.set_underlying, "SPY", price, 0.25)


def test_a_declared_vertical_exits_once_as_one_combo(tmp_path: Path) -> None:
    store = tmp_path / "state.sqlite"
    with simulator(seed=51) as sim:
        hold(
            sim,
            option(LONG, "SPY", 2, "C", 500.0),
            option(SHORT, "SPY", -2, "C", 510.0),
            und={"SPY": 500.0},
        )
        config = write_config(
            tmp_path / "daemon.toml",
            daemon_doc(
                sim.port,
                store,
                65,
                ib={"exit_orders": True},
                trailing_stop={
                    "activation_pct": 10.0,
                    "trailing_pct": 10.0,
                    "min_move_pct": 1.0,
                },
            ),
        )
        d = DaemonProcess(config, tmp_path)
        try:
            start(d, 2)
            wait_quoted(d, [str(LONG), str(SHORT)])
            r = httpx.put(
                d.api_url + "/v1/strategies/V",
                json={"legs": [{"con_id": LONG, "ratio": 1}, {"con_id": SHORT, "ratio": -1}]},
                headers={"Authorization": f"Bearer {d.token}"},
                timeout=10.0,
            )
            assert r.status_code == 200, r.text
            declared = r.json()
            assert declared["symbol"] == "SPY" and not declared["credit"], declared
            # Checked at the end, so that the rest of the scenario runs whatever it says.
            problems: list[str] = []
            ratios = sorted((x["position_id"], x["ratio"]) for x in declared["legs"])
            if ratios != [(str(LONG), 1), (str(SHORT), -1)]:
                problems.append(f"PUT /v1/strategies/V answers leg ratios {ratios}, not +1/-1")

            # The stop starts at the next leg quotes: push some.
            _move(sim, 500.5)
            until(lambda: _strategy(d)["net_price"] is not None, 5.0, "the net price")
            s = _strategy(d)
            assert s["entry"] > 0 and s["state"] != "triggered", s

            status = subprocess.run(
                [sys.executable, "-m", "supervisor", "status", "--url", d.api_url],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert status.returncode == 0, status.stderr
            out = status.stdout
            assert "Strategies (one stop on the net price)" in out, out
            rows = [ln for ln in out.splitlines() if ln.strip("│ ").startswith("V ")]
            assert len(rows) == 1, out
            if "+1×" not in rows[0] or "-1×" not in rows[0]:
                problems.append(f"`status` shows the strategy's legs as: {rows[0].strip()}")
            got = sorted((x["position_id"], x["ratio"]) for x in _strategy(d)["legs"])
            if got != [(str(LONG), 1), (str(SHORT), -1)]:
                problems.append(f"GET /v1/state shows the live strategy's leg ratios as {got}")

            # Up: the net price arms the stop. Down: it breaches.
            for px in (505.0, 510.0, 515.0):
                _move(sim, px)
            until(
                lambda: _strategy(d)["active"], 5.0, "the strategy stop armed", diagnose=d.diagnose
            )
            for px in (510.0, 505.0, 500.0, 495.0):
                _move(sim, px)
            until(
                lambda: _strategy(d)["state"] == "triggered",
                5.0,
                "the strategy TRIGGER",
                diagnose=d.diagnose,
            )
            until(lambda: _bags(sim), 5.0, "the combo exit at the simulator", diagnose=d.diagnose)
            time.sleep(0.5)
            bags = _bags(sim)
            assert len(bags) == 1, bags
            bag = bags[0]
            assert bag.order_ref.startswith(EXIT_REF_PREFIX), bag
            assert bag.action == "BUY" and bag.qty == 2.0, bag
            assert sorted((x.con_id, x.ratio, x.action) for x in bag.legs) == [
                (LONG, 1, "SELL"),
                (SHORT, 1, "BUY"),
            ], bag.legs
            trigger = [
                r["payload"]
                for r in journal_rows(store, "stop")
                if r["position_id"] == "V" and r["payload"]["action"] == "TRIGGER"
            ]
            assert len(trigger) == 1, trigger
            p = trigger[0]["ref_price"]
            assert bag.lmt_price is not None
            # A debit spread sold back at p: BUY of the closing combo at −p, on the tick grid.
            assert bag.lmt_price == pytest.approx(-p, abs=0.01), (bag.lmt_price, p)
            # Nothing else went out: no single-leg order.
            assert [o for o in sim_orders(sim) if o.sec_type != "BAG"] == []

            # SIGKILL, restart, prices keep moving: still one combo order.
            d.kill9()
            start(d, 2)
            for px in (490.0, 500.0, 520.0, 480.0):
                _move(sim, px)
                time.sleep(0.2)
            time.sleep(1.0)
            assert len(_bags(sim)) == 1, _bags(sim)
            assert [o for o in sim_orders(sim) if o.sec_type != "BAG"] == []
            assert _strategy(d)["state"] == "triggered"

            # The legs' own stops never ran: no stop event, not active.
            leg_rows = [
                r
                for r in journal_rows(store, "stop")
                if r["position_id"] in (str(LONG), str(SHORT))
            ]
            assert leg_rows == [], leg_rows
            legs = {p["id"]: p for p in d.get("/v1/state")["positions"]}
            for pid in (str(LONG), str(SHORT)):
                assert not legs[pid]["active"] and not legs[pid]["triggered"], legs[pid]
            assert d.terminate() == 0
            assert not problems, "\n".join(problems)
        except BaseException:
            print(d.diagnose())
            raise
        finally:
            d.close()

"""The margin gate through IB's what-if, end to end (DESIGN §4.4).

``[margin] max_init_margin_pct = 25``, ``whatif_timeout_s = 1``. The account
(NLV 1 000 000) holds 100 AAPL. Selling 50 SPY 480 puts naked needs far more
than 25 % of NLV in initial margin by the simulator's margin model: the
daemon asks the simulator for a what-if over the wire and denies the order
``max_init_margin_pct`` with that percentage; one put passes. Then the
simulator drops the next what-if (``set_what_if_fault(drop)``): that check is
``stale_data`` after exactly ``whatif_timeout_s`` (not before, not much
after), and the checks after it are judged on their own what-ifs as before.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import DaemonProcess
from e2e_rig import (
    EXPIRY,
    check,
    codes,
    daemon_doc,
    hold,
    journal_rows,
    simulator,
    start,
    write_config,
)

from supervisor.simulator import SimPosition, WhatIfFault

pytestmark = pytest.mark.e2e

PCT = 25.0
TIMEOUT_S = 1.0
NLV = 1_000_000.0


def _puts(qty: float) -> list[dict[str, Any]]:
    return [
        {
            "symbol": "SPY",
            "sec_type": "OPT",
            "right": "P",
            "strike": 480.0,
            "expiry": EXPIRY,
            "multiplier": 100,
            "qty": qty,
            "price": 8.0,
        }
    ]


def test_margin_what_if_denies_a_big_entry_and_a_dropped_answer_is_stale_on_time(
    tmp_path: Path,
) -> None:
    store = tmp_path / "state.sqlite"
    with simulator(seed=71) as sim:
        g = sim.sim
        hold(sim, SimPosition(1001, "AAPL", "STK", 100, 100.0), und={"AAPL": 100.0, "SPY": 500.0})
        sim.call(g.set_net_liquidation, NLV)
        config = write_config(
            tmp_path / "daemon.toml",
            daemon_doc(
                sim.port,
                store,
                67,
                margin={"max_init_margin_pct": PCT, "whatif_timeout_s": TIMEOUT_S},
            ),
        )
        d = DaemonProcess(config, tmp_path)
        try:
            start(d, 1)
            asked = sim.call(lambda: len(g.what_ifs))

            big = check(d, "big", _puts(-50))
            assert big["allowed"] is False and codes(big) == ["max_init_margin_pct"], big
            value = big["reasons"][0]["value"]
            assert big["reasons"][0]["limit"] == PCT
            assert value > PCT, big
            assert sim.call(lambda: len(g.what_ifs)) == asked + 1  # the what-if went over the wire
            # The percentage is the simulator's init margin after ÷ NLV.
            rows = [r["payload"] for r in journal_rows(store, "check")]
            journaled = rows[-1]
            assert journaled.get("whatif") is not None, journaled
            init_after = journaled["whatif"]["init_margin_after"]
            assert value == pytest.approx(init_after / NLV * 100, rel=1e-3), (value, init_after)

            small = check(d, "small", _puts(-1))
            assert small["allowed"] is True, small

            # The next what-if is never answered: stale_data after exactly the timeout.
            sim.call(g.set_what_if_fault, WhatIfFault(drop=True), 1)
            started = time.monotonic()
            dropped = check(d, "dropped", _puts(-1))
            took = time.monotonic() - started
            assert dropped["allowed"] is False and codes(dropped) == ["stale_data"], dropped
            assert dropped["reasons"][0]["value"] is None, dropped
            assert TIMEOUT_S - 0.05 <= took < TIMEOUT_S + 1.0, f"answered after {took:.2f}s"

            # Later checks are unaffected: answered at once, judged on their own what-if.
            started = time.monotonic()
            again = check(d, "again", _puts(-1))
            assert again["allowed"] is True, again
            assert time.monotonic() - started < TIMEOUT_S
            big2 = check(d, "big-again", _puts(-50))
            assert codes(big2) == ["max_init_margin_pct"], big2
            assert big2["reasons"][0]["value"] == pytest.approx(value, rel=1e-3)
            assert d.terminate() == 0
        except BaseException:
            print(d.diagnose())
            raise
        finally:
            d.close()

"""Record → replay fidelity (DESIGN §8): replaying a live day reproduces its journal's decisions.

``risk-supervisor run`` with ``[record]`` supervises a small book against the
simulator for about ten seconds while the world happens to it: a price
driver moves every underlying (stops arm, trail and trigger; exits are
placed and filled, so positions close), the account's NLV and P&L arrive
from IB, every entry's margin is asked of IB's what-if (answered in 50 ms), and
a scripted trader asks the gate (entries allowed, others over
``max_portfolio_delta`` denied), heartbeats, reports failures that open the
breaker, waits out its open timer, reports successes that close it, and
forces it open and resets it once. The daemon is stopped cleanly; then

    risk-supervisor replay --config DIR/<the stored .toml> DIR/*.jsonl.zst

runs the recording through the same actors on event time, and its decisions
— stop lines, check verdicts, breaker transitions — must equal the live
journal's, field for field and at the same times, wherever the daemon did
not coalesce quotes. The daemon reports coalescing in
``quotes_coalesced_total`` (one count per quote folded into a queued one),
which does not say whose quotes were folded. So the comparison is restricted
as follows: check verdicts and breaker transitions are compared in full (in
this configuration they depend on no stop decision: no cooldown, no stop
guard, and exits come back as recorded position and success events); stop
lines are compared position by position, and since one folded quote changes
at most the decisions of the one position it belonged to, at most
``quotes_coalesced_total`` positions may differ — every other position's
stop lines must be equal, field for field.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import DaemonProcess, until
from e2e_rig import (
    daemon_doc,
    hold,
    journal_rows,
    metric,
    option,
    simulator,
    start,
    write_config,
)

from supervisor.simulator import SimPosition, SimulatorThread, WhatIfFault

pytestmark = pytest.mark.e2e

SEED = 81
STEP_S = 0.1
SIGMA = 0.004


class Driver(threading.Thread):
    def __init__(self, sim: SimulatorThread, symbols: list[str], rng: random.Random) -> None:
        super().__init__(name="replay-prices", daemon=True)
        self.sim, self.symbols, self.rng = sim, symbols, rng
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.halt.wait(STEP_S):
                moves = {s: self.rng.gauss(0.0, SIGMA) for s in self.symbols}
                self.sim.call(self._step, moves)
        except BaseException as exc:
            self.error = exc

    def _step(self, moves: dict[str, float]) -> None:
        g = self.sim.sim
        for symbol, r in moves.items():
            und = g.market.underlyings[symbol]
            g.set_underlying(symbol, und.price * math.exp(r), und.vol)


def _check(d: DaemonProcess, ident: str, qty: float) -> dict[str, Any]:
    answer: dict[str, Any] = d.post(
        "/v1/checks",
        {"id": ident, "legs": [{"symbol": "AAPL", "sec_type": "STK", "qty": qty, "price": 100.0}]},
    )
    return answer


def _live_decisions(store: Path) -> list[dict[str, Any]]:
    """The journal's decisions as replay lines (the fields replay writes)."""
    out: list[dict[str, Any]] = []
    for r in journal_rows(store):
        p = r["payload"]
        if r["kind"] == "stop":
            out.append(
                {
                    "t": r["t"],
                    "type": "stop",
                    "id": r["position_id"],
                    **{k: p[k] for k in ("action", "stop", "ref_price", "extreme")},
                }
            )
        elif r["kind"] == "check":
            out.append(
                {
                    "t": r["t"],
                    "type": "check",
                    **{k: p[k] for k in ("id", "allowed", "reasons")},
                }
            )
        elif r["kind"] == "breaker":
            out.append(
                {"t": r["t"], "type": "breaker", **{k: p[k] for k in ("from", "to", "cause")}}
            )
    return out


def _differences(what: str, want: list[dict[str, Any]], got: list[dict[str, Any]]) -> list[str]:
    out = [
        f"{what} #{i}:\n  live:   {a}\n  replay: {b}"
        for i, (a, b) in enumerate(zip(want, got, strict=False))
        if a != b
    ]
    if len(want) != len(got):
        extra = want[len(got) :] or got[len(want) :]
        out.append(f"{what}: {len(want)} live, {len(got)} replayed; the rest: {extra[:2]}")
    return out


def test_replaying_a_recording_reproduces_the_live_journal(tmp_path: Path) -> None:
    store = tmp_path / "state.sqlite"
    rec = tmp_path / "recordings"
    rng = random.Random(SEED)
    with simulator(
        seed=SEED, pnl_interval_s=0.5, account_refresh_s=2.0, fill_marketable=True
    ) as sim:
        hold(
            sim,
            SimPosition(1001, "AAPL", "STK", 200, 100.0),
            SimPosition(1002, "MSFT", "STK", -100, 400.0),
            option(2001, "SPY", -2, "P", 480.0),
            und={"AAPL": 100.0, "MSFT": 400.0, "SPY": 500.0},
        )
        config = write_config(
            tmp_path / "daemon.toml",
            daemon_doc(
                sim.port,
                store,
                69,
                ib={"exit_orders": True},
                record={"enabled": True, "dir": str(rec)},
                api={"heartbeat_timeout_s": 60.0},
                trailing_stop={"activation_pct": 0.5, "trailing_pct": 0.5, "min_move_pct": 0.1},
                limits={"max_portfolio_delta": 600.0},
                loss={"max_daily_loss": 1_000_000.0, "max_pnl_age_s": 30.0},
                # every entry asks IB for a what-if (recorded with the check)
                margin={"max_init_margin_pct": 1000.0, "whatif_timeout_s": 2.0},
                breaker={
                    "failure_threshold": 3,
                    "failure_window_s": 30.0,
                    "open_timeout_s": 1.5,
                    "half_open_max_tries": 2,
                },
            ),
        )
        d = DaemonProcess(config, tmp_path)
        driver = Driver(sim, ["AAPL", "MSFT", "SPY"], random.Random(rng.random()))
        try:
            # IB answers what-ifs in 50 ms, as a real gateway might
            sim.call(sim.sim.set_what_if_fault, WhatIfFault(delay_s=0.05))
            start(d, 3)
            driver.start()
            n = 0

            def trade(seconds: float) -> None:
                nonlocal n
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    n += 1
                    _check(d, f"c{n}", 10 if n % 3 else 2000)
                    if n % 4 == 0:
                        d.post("/v1/heartbeat", {})
                    time.sleep(0.15)

            trade(2.0)
            for code in (201, 202, 203):
                d.post("/v1/failures", {"kind": "order_rejected", "code": code, "detail": "e2e"})
            until(lambda: d.get("/v1/state")["breaker"]["state"] == "open", 5.0, "tripped")
            trade(2.0)  # the open timer falls due in here: HALF_OPEN
            # HALF_OPEN (or already closed by the successes exit fills report)
            until(lambda: d.get("/v1/state")["breaker"]["state"] != "open", 5.0, "the open timer")
            if d.get("/v1/state")["breaker"]["state"] == "half_open":
                for _ in range(2):
                    d.post("/v1/successes", {"detail": "filled"})
            until(lambda: d.get("/v1/state")["breaker"]["state"] == "closed", 5.0, "closed")
            trade(1.5)
            d.post("/v1/breaker/force-open", {"operator": "e2e"})
            trade(1.0)
            d.post("/v1/breaker/reset", {"operator": "e2e"})
            trade(2.0)
            driver.halt.set()
            driver.join(10.0)
            if driver.error is not None:
                raise driver.error
            coalesced = metric(d, "quotes_coalesced_total") or 0.0
            assert d.terminate() == 0, d.diagnose()

            stored = sorted(rec.glob("*.toml"))
            data = sorted(rec.glob("*.jsonl.zst"))
            assert len(stored) == 1 and len(data) == 1, list(rec.iterdir())
            replay = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "supervisor",
                    "replay",
                    "--config",
                    str(stored[0]),
                    *map(str, data),
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
            problems: list[str] = []
            if replay.returncode != 0:  # reported with the rest: what replay did decide counts
                problems.append(f"replay exit code {replay.returncode}: {replay.stderr[-1500:]}")
            replayed = [json.loads(line) for line in replay.stdout.splitlines() if line.strip()]
            live = _live_decisions(store)

            # The journal is in commit order, which concurrent threads (the API's, the
            # actors') may interleave; replay writes in event time. Both are compared
            # in event time (a stable sort: equal times keep their own order).
            counts: dict[str, int] = {}
            # Checks by their id (a check replay lost shows as missing, not as a shift).
            live_checks = {x["id"]: x for x in live if x["type"] == "check"}
            replay_checks = {x["id"]: x for x in replayed if x["type"] == "check"}
            counts["check"] = len(live_checks)
            for ident, x in live_checks.items():
                y = replay_checks.get(ident)
                if y is None:
                    problems.append(f"check {ident}: not in replay's output (live: {x})")
                elif x != y:
                    problems.append(f"check {ident}:\n  live:   {x}\n  replay: {y}")
            problems += [
                f"check {i}: replayed but not in the live journal"
                for i in replay_checks.keys() - live_checks.keys()
            ]
            want = sorted((x for x in live if x["type"] == "breaker"), key=lambda x: x["t"])
            got = sorted((x for x in replayed if x["type"] == "breaker"), key=lambda x: x["t"])
            counts["breaker"] = len(want)
            problems += _differences("breaker", want, got)
            # Stops, position by position: a coalesced quote changes at most the
            # decisions of the one position it was folded for, so at most
            # ``coalesced`` positions may differ; every other must be equal.
            stop_ids = sorted({x["id"] for x in live + replayed if x["type"] == "stop"})
            differing: dict[str, list[str]] = {}
            for pid in stop_ids:
                want = [x for x in live if x["type"] == "stop" and x["id"] == pid]
                got = [x for x in replayed if x["type"] == "stop" and x["id"] == pid]
                counts["stop"] = counts.get("stop", 0) + len(want)
                found = _differences(f"stop {pid}", want, got)
                if found:
                    differing[pid] = found
            if len(differing) > coalesced:
                for found in differing.values():
                    problems += found
            print(
                f"live decisions compared: {counts}; quotes coalesced: {coalesced:g}; "
                f"positions whose stop lines differ: {sorted(differing)}"
            )
            assert not problems, (
                f"replay differs from the live journal in {len(problems)} place(s):\n"
                + "\n".join(problems[:12])
            )
            # The run decided what it claims to.
            assert counts["check"] >= 20 and counts["breaker"] >= 4, counts
            equal = [
                x
                for x in live
                if x["type"] == "stop" and x["action"] == "TRIGGER" and x["id"] not in differing
            ]
            assert len(equal) >= 1 and counts["stop"] >= 5, counts
            assert any(x["type"] == "check" and not x["allowed"] for x in live)
            assert any(
                x["type"] == "breaker" and x["cause"]["reason"] == "open_timeout" for x in live
            )
        except BaseException:
            print(d.diagnose())
            raise
        finally:
            driver.halt.set()
            d.close()

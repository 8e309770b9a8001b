"""What this round's gate rules cost per check, each against the same check without them.

    python bench/bench_gate.py [--checks 2000]

* controls: the in-process gate (the real actors on the pool, journaled to a
  real SQLite file) at 200 positions, with every order control, the cooldown,
  the loss and beta rules configured, vs the same check with only the
  portfolio limits;
* margin: the same daemon connected to the IB gateway simulator through
  ib_async, an entry checked with ``[margin]`` on (one IB what-if per entry)
  vs off; and the what-if alone (its round trip to the simulator).

Medians and p99 in µs (ms for the what-if); writes bench/results/gate.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from actors.messages import Contract, Leg, PnlUpdate, PositionUpdate, Quote, SecType  # noqa: E402
from supervisor.config import parse  # noqa: E402
from supervisor.core.daemon import Daemon  # noqa: E402
from supervisor.store.sqlite_store import Store  # noqa: E402

LIMITS = {"max_portfolio_delta": 1e9, "max_per_symbol_delta": 1e9, "max_single_position_pct": 1e9}
CONTROLS: dict[str, Any] = {
    "orders": {
        "max_leg_contracts": 1000,
        "max_leg_shares": 100000,
        "max_order_notional": 1e12,
        "max_order_premium": 1e12,
        "price_collar_pct": 50.0,
        "max_orders_per_window": 1_000_000,
        "duplicate_window_s": 0.001,
    },
    "cooldown": {"after_trigger_s": 60},
    "loss": {"max_daily_loss": 1e12},
    "beta": {"index": "S000", "default": 1.0},
    "limits": {**LIMITS, "max_beta_weighted_delta": 1e12},
}


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def _daemon(doc: dict[str, Any], tmp: str) -> Daemon:
    doc = {"account": {"net_liquidation": 1e9}, "limits": LIMITS, **doc}
    d = Daemon(parse(doc), store=Store(f"{tmp}/s.sqlite"), housekeeping_s=3600)
    d.start()
    t = time.time()
    for i in range(200):
        c = Contract(f"S{i % 50:03d}", SecType.STK)
        d.position(PositionUpdate(t, f"P{i}", c, 10, 100.0))
        d.quote(Quote(t, f"P{i}", 100.0, 100.1, 100.05))
    d.pnl(PnlUpdate(t, 0.0))
    time.sleep(0.5)
    return d


def _checks(d: Daemon, n: int, qty_offset: int = 0) -> list[float]:
    out = []
    for k in range(n):
        body = {
            "id": f"c{k}",
            "legs": [
                {
                    "symbol": "S001",
                    "sec_type": "STK",
                    "qty": 1 + (k + qty_offset) % 97,
                    "price": 100.05,
                }
            ],
        }
        t0 = time.perf_counter()
        d.check(body)
        out.append((time.perf_counter() - t0) * 1e6)
        if k % 200 == 0:
            d.pnl(PnlUpdate(time.time(), 0.0))  # keep the P&L fresh
    return out


def controls(n: int) -> dict[str, Any]:
    results: dict[str, list[float]] = {"none": [], "all": []}
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        plain, full = _daemon({}, a), _daemon(CONTROLS, b)
        try:
            for r in range(4):  # interleaved rounds
                results["none"] += _checks(plain, n // 4, r)
                results["all"] += _checks(full, n // 4, r)
        finally:
            plain.stop()
            full.stop()
    return {k: {"p50": statistics.median(v), "p99": pct(v, 0.99)} for k, v in results.items()}


def margin(n: int) -> dict[str, Any]:
    from supervisor.commands.run import RunningDaemon, run_daemon
    from supervisor.simulator import SimPosition, SimulatorThread

    sim = SimulatorThread(seed=3, auto_walk=False)
    port = sim.start()
    sim.call(lambda: sim.sim.set_underlying("SPY", 500.0, 0.2, push=False))
    sim.call(lambda: sim.sim.add_position(SimPosition(1, "SPY", "STK", 10, 500.0)))
    out: dict[str, Any] = {}
    try:
        for label, margin_doc in (("off", {}), ("on", {"margin": {"max_init_margin_pct": 1e6}})):
            with tempfile.TemporaryDirectory() as tmp:
                doc = {
                    "ib": {"port": port, "client_id": 9},
                    "api": {"listen": "127.0.0.1:0", "token_file": ""},
                    "metrics": {"enabled": False},
                    "store": {"path": f"{tmp}/s.sqlite"},
                    "record": {"enabled": False},
                    "account": {"net_liquidation": 1e7},
                    "limits": {"max_portfolio_delta": 1e9},
                    **margin_doc,
                }
                stop = threading.Event()
                ready: list[RunningDaemon] = []
                th = threading.Thread(
                    target=run_daemon,
                    args=(parse(doc),),
                    kwargs={"install_signals": False, "ready": ready.append, "stop_event": stop},
                    daemon=True,
                )
                th.start()
                deadline = time.monotonic() + 30
                while not ready and time.monotonic() < deadline:
                    time.sleep(0.05)
                running = ready[0]
                running.adapter.wait_status("connected", 10.0)
                d = running.daemon
                times = []
                leg = {"symbol": "SPY", "sec_type": "STK", "qty": 1, "price": 500.0}
                for k in range(n):
                    t0 = time.perf_counter()
                    d.check({"id": f"m{k}", "legs": [leg]})
                    times.append((time.perf_counter() - t0) * 1e3)
                out[label] = {"p50_ms": statistics.median(times), "p99_ms": pct(times, 0.99)}
                if label == "on" and d.broker is not None:
                    whatifs = []
                    legs = (Leg("SPY", SecType.STK, 1.0, 500.0),)
                    for _ in range(n):
                        t0 = time.perf_counter()
                        d.broker.whatif(legs, 2.0)
                        whatifs.append((time.perf_counter() - t0) * 1e3)
                    out["whatif"] = {
                        "p50_ms": statistics.median(whatifs),
                        "p99_ms": pct(whatifs, 0.99),
                    }
                stop.set()
                th.join(30)
    finally:
        sim.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--checks", type=int, default=2000)
    ap.add_argument("--whatifs", type=int, default=100)
    args = ap.parse_args()
    c = controls(args.checks)
    print(
        f"check, in process, 200 positions: all order controls, cooldown, loss, beta "
        f"p50 {c['all']['p50']:.0f} us p99 {c['all']['p99']:.0f} us   "
        f"vs limits only p50 {c['none']['p50']:.0f} us p99 {c['none']['p99']:.0f} us   "
        f"(x{c['all']['p50'] / c['none']['p50']:.2f} p50)"
    )
    m = margin(args.whatifs)
    print(
        f"check with the margin gate (one IB what-if through ib_async to the simulator) "
        f"p50 {m['on']['p50_ms']:.2f} ms p99 {m['on']['p99_ms']:.2f} ms   "
        f"vs off p50 {m['off']['p50_ms']:.2f} ms p99 {m['off']['p99_ms']:.2f} ms;   "
        f"the what-if alone p50 {m['whatif']['p50_ms']:.2f} ms p99 {m['whatif']['p99_ms']:.2f} ms"
    )
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.platform()}, {os.cpu_count()} cpus, load {os.getloadavg()}",
        "controls_us": c,
        "margin": m,
    }
    out = ROOT / "bench" / "results" / "gate.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

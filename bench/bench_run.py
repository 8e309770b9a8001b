"""``run`` against the IB gateway simulator at 1 000 positions: time to ready, and RSS.

    python bench/bench_run.py [--positions 1000] [--rounds 3]

Each round starts a fresh simulator holding N stock positions (a few hundred
symbols), then the daemon exactly as ``risk-supervisor run`` does
(``run_daemon``: store, actors, IB adapter through ib_async, API, metrics), in
a child process so its RSS is its own. Ready = the process started until
every position is in the daemon's book with a quote (polled through the
API). The baseline in the same round is the bare interpreter with the
daemon's imports loaded (what a Python process of this size costs before it
does anything). Writes bench/results/run.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD = textwrap.dedent(
    """
    import json, resource, sys, threading, time
    t0 = time.perf_counter()
    from supervisor.commands.run import run_daemon
    from supervisor.config import parse
    import httpx
    port, store, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    cfg = parse({
        "ib": {"host": "127.0.0.1", "port": port, "client_id": 5, "connect_timeout_s": 5.0},
        "api": {"listen": "127.0.0.1:0", "token_file": ""},
        "metrics": {"enabled": False},
        "store": {"path": store},
        "record": {"enabled": False},
        "limits": {"max_portfolio_delta": 1e9},
    })
    stop = threading.Event()
    out = {}
    def ready(running):
        url = running.api_url
        deadline = time.monotonic() + 60
        known = None
        while time.monotonic() < deadline:
            rows = httpx.get(url + "/v1/state", timeout=10).json()["portfolio"]["holdings"]
            if known is None and len(rows) >= n:
                known = time.perf_counter() - t0  # every position supervised: ready
            if len(rows) >= n and all(r.get("price") for r in rows):
                break
            time.sleep(0.05)
        out["ready_s"] = known
        out["all_quoted_s"] = time.perf_counter() - t0
        out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        stop.set()
    threading.Thread(target=run_daemon, args=(cfg,),
                     kwargs={"install_signals": False, "ready": ready, "stop_event": stop},
                     daemon=True).start()
    stop.wait(120)
    print(json.dumps(out))
    """
)

BASELINE = (
    "import resource, supervisor.commands.run, httpx; "
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
)


def _round(n: int) -> dict[str, float]:
    from supervisor.simulator import SimPosition, SimulatorThread

    sim = SimulatorThread(seed=7, auto_walk=False, tick_interval=0.5, max_tickers=n + 100)
    port = sim.start()

    def setup() -> None:
        g = sim.sim
        for i in range(n):
            symbol = f"S{i % 300:03d}"
            if symbol not in g.market.underlyings:
                g.set_underlying(symbol, 100.0 + i % 300, 0.25, push=False)
            g.add_position(SimPosition(100_000 + i, symbol, "STK", 10 + i % 7, 100.0))

    try:
        sim.call(setup)
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, str(port), f"{tmp}/s.sqlite", str(n)],
                capture_output=True,
                text=True,
                timeout=180,
                cwd=ROOT,
                env={**os.environ, "XDG_CONFIG_HOME": tmp},
            )
            wall = time.perf_counter() - started
        if proc.returncode != 0 or not proc.stdout.strip():
            raise RuntimeError(proc.stderr[-2000:])
        result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
        result["process_s"] = wall
        base = subprocess.run(
            [sys.executable, "-c", BASELINE], capture_output=True, text=True, cwd=ROOT, timeout=60
        )
        result["baseline_rss_mb"] = float(base.stdout.strip())
        return result
    finally:
        sim.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--positions", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    rounds = [_round(args.positions) for _ in range(args.rounds)]
    ready = [r["ready_s"] for r in rounds]
    quoted = [r["all_quoted_s"] for r in rounds]
    rss = [r["rss_mb"] for r in rounds]
    base = [r["baseline_rss_mb"] for r in rounds]
    print(
        f"run vs simulator, {args.positions} positions, {args.rounds} rounds: "
        f"ready (every position supervised) median {statistics.median(ready):.2f} s "
        f"(max {max(ready):.2f}); every position quoted {statistics.median(quoted):.1f} s "
        "(market-data requests paced as IB requires), "
        f"RSS median {statistics.median(rss):.0f} MB (max {max(rss):.0f})   "
        f"baseline (imports only) {statistics.median(base):.0f} MB"
    )
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.platform()}, {os.cpu_count()} cpus, load {os.getloadavg()}",
        "positions": args.positions,
        "rounds": rounds,
    }
    out = ROOT / "bench" / "results" / "run.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

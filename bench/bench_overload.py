"""Overload: a flood of quotes through the real daemon, and what a check feels of it.

    python bench/bench_overload.py [--quick] [--seconds S] [--rate Q]

300 positions (half stocks, half options whose quotes carry Greeks) in a
``Daemon`` (no store). First the *idle* phase: checks alone, spaced 2 ms. Then
the *flood*: one feeder thread tells quotes at ``--rate`` (30 000/s) for
``--seconds`` (30) while the same checks go on. Printed, all from this one run:

* check latency idle and under the flood (median, p99) and their p99 ratio
  (the target: under 2);
* quotes told per second, and how many the mailboxes folded (coalescing);
* RSS every second: at the start of the flood, its peak, at the end;
* no peak lost: every stop's extreme, after the flood has drained, equals the
  best reference price the feeder ever sent that position (the bid of a long,
  the ask of a short; the trail is wide, so no stop triggers and every quote
  counts), whether or not its quote was folded into a later one.

Results go to bench/results/overload.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from actors.messages import Contract, Greeks, PositionUpdate, Quote, Right, SecType  # noqa: E402
from supervisor.config import parse  # noqa: E402
from supervisor.core.daemon import Daemon  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from stages import StageTimes, describe  # noqa: E402

POSITIONS = 300
WAIT = 60.0  # bound on the final drain


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def summary(xs: list[float]) -> dict[str, float]:
    return {"median": statistics.median(xs), "p99": pct(xs, 99), "n": len(xs)}


def contract(i: int) -> Contract:
    if i % 2:
        return Contract(f"S{i % 30}", SecType.STK)
    return Contract(f"S{i % 30}", SecType.OPT, Right.CALL, 100.0, "2027-06-18", 100.0)


def entry(i: int) -> float:
    return 100.0 if i % 2 else 5.0


def long(i: int) -> bool:
    return i % 4 < 2


CHECK = {
    "id": "x",
    "legs": [{"symbol": "S1", "sec_type": "STK", "qty": 10, "price": 100.0}],
}


class Feeder:
    """Tells quotes at a steady rate; remembers each position's best reference price."""

    def __init__(self, d: Daemon, rate: float, seed: int = 3) -> None:
        self.d = d
        self.rate = rate
        self.rnd = random.Random(seed)
        self.prices = [entry(i) for i in range(POSITIONS)]
        self.best = [entry(i) for i in range(POSITIONS)]
        self.sent = 0
        self.stop = threading.Event()

    def quote(self, i: int, t: float) -> Quote:
        p = self.prices[i] = min(
            entry(i) * 1.1, max(entry(i) * 0.9, self.prices[i] * (1 + self.rnd.gauss(0, 0.002)))
        )
        bid = round(p, 2)
        ask = round(p + (0.01 if i % 2 else 0.05), 2)
        if long(i):
            self.best[i] = max(self.best[i], bid)
        else:
            self.best[i] = min(self.best[i], ask)
        g = None if i % 2 else Greeks(0.5, 0.02, 0.15, -0.03, 0.25, 100.0)
        return Quote(t, f"P{i}", bid, ask, round(p, 3), g)

    def run(self, seconds: float) -> None:
        start = time.perf_counter()
        batch = 50  # quotes per pacing step
        while not self.stop.is_set():
            now = time.perf_counter()
            if now - start >= seconds:
                return
            due = start + self.sent / self.rate
            if due > now:
                time.sleep(min(due - now, 0.002))
                continue
            t = time.time()
            for _ in range(batch):
                i = self.rnd.randrange(POSITIONS)
                self.d.quote(self.quote(i, t))
            self.sent += batch


def checks(
    d: Daemon, until: threading.Event, spacing_s: float, limit: int, denied: list[str]
) -> list[float]:
    """Check latencies; a check that is not allowed is timed too, and its why kept."""
    out = []
    for k in range(limit):
        if until.is_set():
            break
        t = time.perf_counter()
        answer = d.check({**CHECK, "id": f"c{k}"})
        out.append(time.perf_counter() - t)
        if not answer.allowed:
            denied.append(f"{[r.code.value for r in answer.reasons]} {answer.detail}")
        time.sleep(spacing_s)
    return out


def run(seconds: float, rate: float, idle_checks: int) -> dict[str, Any]:
    cfg = parse(
        {
            "limits": {"max_portfolio_delta": 1e12, "max_per_symbol_delta": 1e12},
            # wide: nothing triggers, so every quote's reference price counts
            "trailing_stop": {"activation_pct": 1.0, "trailing_pct": 50.0},
        }
    )
    d = Daemon(cfg, store=None, housekeeping_s=3600)
    stages = StageTimes()
    d.dispatcher.on_priority = stages
    d.start()
    try:
        for i in range(POSITIONS):
            qty = (100 if i % 2 else 5) * (1 if long(i) else -1)
            d.position(PositionUpdate(time.time(), f"P{i}", contract(i), qty, entry(i)))
        feeder = Feeder(d, rate)
        for i in range(POSITIONS):  # every position priced once before the checks
            d.quote(feeder.quote(i, time.time()))
        deadline = time.monotonic() + WAIT
        while d.check({**CHECK, "id": "warm"}).reasons and time.monotonic() < deadline:
            time.sleep(0.01)
        never = threading.Event()
        denied: list[str] = []
        stages.clear()
        idle = checks(d, never, 0.002, idle_checks, denied)
        idle_stages = stages.summary()
        stages.clear()

        rss = [rss_mb()]
        coalesced_before = d.dispatcher.coalesced
        done = threading.Event()
        loaded: list[float] = []
        checker = threading.Thread(
            target=lambda: loaded.extend(checks(d, done, 0.002, 10**9, denied)), daemon=True
        )
        feed = threading.Thread(target=feeder.run, args=(seconds,), daemon=True)
        started = time.perf_counter()
        feed.start()
        checker.start()
        while feed.is_alive():
            feed.join(1.0)
            rss.append(rss_mb())
        fed_for = time.perf_counter() - started
        done.set()
        checker.join(WAIT)
        # Drain: every position answers its state only after its queued quotes.
        snaps = {s.id: s for s in d.stop_snapshots()}
        lost = [
            (f"P{i}", feeder.best[i], snaps[f"P{i}"].extreme)
            for i in range(POSITIONS)
            if snaps[f"P{i}"].extreme != feeder.best[i]
        ]
        rss.append(rss_mb())
        return {
            "positions": POSITIONS,
            "seconds": fed_for,
            "target_rate": rate,
            "told_per_s": feeder.sent / fed_for,
            "coalesced": d.dispatcher.coalesced - coalesced_before,
            "idle_check_s": summary(idle),
            "flood_check_s": summary(loaded),
            "ratio_p99": pct(loaded, 99) / pct(idle, 99),
            "idle_stages_s": idle_stages,
            "flood_stages_s": stages.summary(),
            "rss_mb": {"flood_start": rss[0], "peak": max(rss), "end": rss[-1], "every_s": rss},
            "peaks_lost": lost,
            "denied": denied,
        }
    finally:
        d.stop()


def report(r: dict[str, Any]) -> None:
    us = 1e6
    i, f = r["idle_check_s"], r["flood_check_s"]
    print(
        f"flood: {r['told_per_s']:,.0f} quotes/s told for {r['seconds']:.0f} s"
        f" to {r['positions']} positions; folded by coalescing: {r['coalesced']:,}"
    )
    print(
        f"check idle   median {i['median'] * us:7.0f} us  p99 {i['p99'] * us:7.0f} us  ({i['n']})"
    )
    print(
        f"check flood  median {f['median'] * us:7.0f} us  p99 {f['p99'] * us:7.0f} us  ({f['n']})"
        f"   p99 flood/idle x{r['ratio_p99']:.2f}"
    )
    print(f"  stages idle  (median/p99 us): {describe(r['idle_stages_s'])}")
    print(f"  stages flood (median/p99 us): {describe(r['flood_stages_s'])}")
    m = r["rss_mb"]
    print(f"RSS MB: flood start {m['flood_start']:.0f}, peak {m['peak']:.0f}, end {m['end']:.0f}")
    lost = r["peaks_lost"]
    print("peaks lost: none" if not lost else f"peaks lost: {len(lost)}, e.g. {lost[:3]}")
    if r["denied"]:
        print(f"checks denied: {len(r['denied'])}, e.g. {r['denied'][:3]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="5 s of flood")
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--rate", type=float, default=30_000.0)
    ap.add_argument(
        "--switch-interval", type=float, default=None, help="sys.setswitchinterval (s) first"
    )
    args = ap.parse_args()
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    seconds = args.seconds if args.seconds is not None else (5.0 if args.quick else 30.0)
    result = run(seconds, args.rate, 300 if args.quick else 1000)
    result["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["loadavg"] = list(os.getloadavg())
    result["switch_interval_s"] = sys.getswitchinterval()
    report(result)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "overload.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

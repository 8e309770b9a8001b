"""Benchmarks of the daemon's core, each against a baseline measured in the same run.

    python bench/bench_core.py [--quick]

Prints a table and writes bench/results/core.json. Figures are medians and
p99 over repeated runs; on a shared 2-core machine absolute numbers move from
run to run, which is why each one is printed as a ratio to its baseline.

* replay: events/s of CPU through the real actors (InlineDispatcher) on a
  stop-heavy recording (bench/recording.py: 200 positions, 1 M quotes, a few
  checks), vs json.loads alone on the same lines (targets: >= 150 k/s, >= 0.4x)
* gate, in process: check latency at 1000 positions under a 4 000 quotes/s
  background load, through the actors (``Gate.check`` on a ``Daemon``), vs the
  pure evaluation (``Assessor.assess``) of the same check on the same book;
  with the check's stages from the dispatcher's priority timing (bench/stages.py)
* gate, stress limit: a 1000-option book x 21 scenarios, vs the same book
  with no stress limit configured

Overload (300 positions flooded at 30 000 quotes/s) is bench/bench_overload.py;
the 1000-actor sweep is bench/bench_sweep.py (``--workload workloads:position``).
* start + restore: a daemon restoring N saved stops until every actor answers,
  and its RSS, vs reading the N rows from SQLite alone
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pykka

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import recording  # noqa: E402
from stages import StageTimes, describe  # noqa: E402

from actors.book import Book  # noqa: E402
from actors.gate.assessment import Assessment, Assessor  # noqa: E402
from actors.market_book import MarketBook  # noqa: E402
from actors.messages import (  # noqa: E402
    CheckRequest,
    Contract,
    Greeks,
    Leg,
    PositionUpdate,
    Quote,
    Right,
    SecType,
    StopSnapshot,
)
from actors.money import Money  # noqa: E402
from supervisor.commands import replay  # noqa: E402
from supervisor.config import Config, parse  # noqa: E402
from supervisor.core.daemon import Daemon  # noqa: E402
from supervisor.store.sqlite_store import Store  # noqa: E402

T0 = 1_767_225_600.0


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def summary(xs: list[float]) -> dict[str, float]:
    return {"median": statistics.median(xs), "p99": pct(xs, 99), "n": len(xs)}


def option(i: int) -> Contract:
    right = Right.CALL if i % 2 else Right.PUT
    return Contract(f"S{i % 50}", SecType.OPT, right, 90.0 + i % 20, "2027-06-18", 100.0)


def greeks(i: int, jitter: float = 0.0) -> Greeks:
    return Greeks(0.5 + jitter, 0.01, 0.2, -0.03, 0.25, 100.0 + (i % 7))


# ------------------------------------------------------------------ replay


def bench_replay(quick: bool) -> dict[str, Any]:
    """Events/s of CPU through the real actors on a stop-heavy recording, vs json.loads alone.

    The recording (``bench/recording.py``: 200 positions, mostly quotes, a few
    checks) is read into memory first, so neither side pays for the disk.
    Both sides are timed with ``time.process_time`` (this process's CPU, not
    the neighbours'), interleaved, several rounds.
    """
    quotes = 100_000 if quick else 1_000_000
    lines = [line.encode() + b"\n" for line in recording.lines(200, quotes)]
    n = len(lines)
    cfg = parse(recording.CONFIG)
    ours, base, outputs = [], [], set()
    for _ in range(3 if quick else 5):
        t = time.process_time()
        for line in lines:
            json.loads(line)
        base.append(n / (time.process_time() - t))
        r = replay.Replay(cfg)
        out = io.StringIO()
        t = time.process_time()
        r.feed(lines, out, io.StringIO())
        ours.append(n / (time.process_time() - t))
        r.close()
        outputs.add(out.getvalue())
    assert len(outputs) == 1, "replay output differs between rounds"
    return {
        "events": n,
        "output_lines": next(iter(outputs)).count("\n"),
        "ours_events_per_s": summary(ours),
        "baseline_json_loads_per_s": summary(base),
        "ratio_ours_over_baseline": statistics.median(ours) / statistics.median(base),
    }


# -------------------------------------------------------------------- gate


def option_book(n: int, stress: bool) -> tuple[Assessor, Config]:
    """The pure evaluation (the portfolio actor's ``Assessor``) on an n-option book."""
    limits = {"max_portfolio_delta": 1e12, "max_portfolio_vega": 1e12, "max_per_symbol_delta": 1e12}
    if stress:
        limits["max_stress_loss"] = 1e12
    cfg = parse({"limits": limits})
    gate = cfg.gate
    book = Book(Assessor.needs_of(gate), gate.groups, gate.pricing)
    for i in range(n):
        book.upsert(f"O{i}", option(i), 1 + i % 5)
        book.mark(f"O{i}", T0, 2.0, 2.1, 2.05, greeks(i))
    return Assessor(gate, book, MarketBook(), Money(gate.loss, cfg.net_liquidation)), cfg


def evaluate(assessor: Assessor, request: CheckRequest) -> Assessment:
    return assessor.assess(request)


def bench_stress(quick: bool) -> dict[str, Any]:
    legs = (Leg("S1", SecType.OPT, 5, 2.0, Right.CALL, 95.0, "2027-06-18", 100.0, greeks(1)),)
    out: dict[str, Any] = {}
    for name, stress in (("with_stress", True), ("baseline_no_stress", False)):
        assessor, _ = option_book(1000, stress)
        xs = []
        for i in range(50 if quick else 200):
            t = time.perf_counter()
            v = evaluate(assessor, CheckRequest(T0 + 1, f"c{i}", legs))
            xs.append(time.perf_counter() - t)
            assert not v.denied, v
        out[name] = summary(xs)
    out["ratio"] = out["with_stress"]["median"] / out["baseline_no_stress"]["median"]
    return out


def bench_gate_under_load(quick: bool) -> dict[str, Any]:
    """Check latency through the actors at 1000 positions while 4 000 quotes/s flow."""
    n = 1000
    cfg = parse(
        {
            "limits": {
                "max_portfolio_delta": 1e12,
                "max_portfolio_vega": 1e12,
                "max_per_symbol_delta": 1e12,
            },
            "trailing_stop": {"activation_pct": 50.0},
        }
    )
    d = Daemon(cfg, store=None, housekeeping_s=3600)
    stages = StageTimes()
    d.dispatcher.on_priority = stages
    d.start()
    stop = threading.Event()
    sent = [0]
    try:
        for i in range(n):
            d.position(PositionUpdate(time.time(), f"O{i}", option(i), 1 + i % 5, 2.0))
        for i in range(n):
            d.quote(Quote(time.time(), f"O{i}", 2.0, 2.1, 2.05, greeks(i)))
        leg = {
            "symbol": "S1",
            "sec_type": "OPT",
            "qty": 5,
            "price": 2.0,
            "right": "C",
            "strike": 95.0,
            "expiry": "2027-06-18",
            "multiplier": 100,
            "greeks": {
                "delta": 0.5,
                "gamma": 0.01,
                "vega": 0.2,
                "theta": -0.03,
                "iv": 0.25,
                "und_price": 100.0,
            },
        }
        while d.check({"id": "warm", "legs": [leg]}).reasons:
            time.sleep(0.01)

        def load() -> None:
            rate, i, start = 4000.0, 0, time.perf_counter()
            while not stop.is_set():
                due = start + sent[0] / rate
                now = time.perf_counter()
                if due > now:
                    time.sleep(min(due - now, 0.002))
                    continue
                i = (i + 1) % n
                d.quote(Quote(time.time(), f"O{i}", 2.0, 2.1, 2.05, greeks(i, (i % 10) / 1000)))
                sent[0] += 1

        th = threading.Thread(target=load, daemon=True)
        th.start()
        stages.clear()
        ours = []
        t_start = time.perf_counter()
        for k in range(300 if quick else 1500):
            t = time.perf_counter()
            a = d.check({"id": f"c{k}", "legs": [leg]})
            ours.append(time.perf_counter() - t)
            assert a.allowed, a
            time.sleep(0.001)
        elapsed = time.perf_counter() - t_start
        stop.set()
        th.join(timeout=5)
        # baseline: the pure evaluate() on an equivalent book, no actors, no load
        assessor, _ = option_book(n, False)
        legs = (Leg("S1", SecType.OPT, 5, 2.0, Right.CALL, 95.0, "2027-06-18", 100.0, greeks(1)),)
        base = []
        for k in range(2000):
            t = time.perf_counter()
            evaluate(assessor, CheckRequest(T0, f"b{k}", legs))
            base.append(time.perf_counter() - t)
        return {
            "positions": n,
            "background_quotes_per_s": sent[0] / elapsed,
            "ours_in_process_check_s": summary(ours),
            "baseline_pure_evaluate_s": summary(base),
            "ratio_p99": pct(ours, 99) / pct(base, 99),
            "stages_s": stages.summary(),
            "coalesced_quotes": d.dispatcher.coalesced,
        }
    finally:
        stop.set()
        d.stop()


def bench_http(quick: bool) -> dict[str, Any]:
    """POST /v1/checks over loopback HTTP, journaled to SQLite, vs an empty POST endpoint.

    The baseline is a FastAPI app that answers ``{}`` on the same server stack
    (uvicorn via ``supervisor.api.app.serve``) and the same client: the HTTP floor.
    """
    import httpx
    from fastapi import FastAPI

    from supervisor.api.app import create_app, serve
    from supervisor.config import Listen

    with tempfile.TemporaryDirectory() as tmp:
        cfg = parse({"limits": {"max_portfolio_delta": 1e12, "max_per_symbol_delta": 1e12}})
        d = Daemon(cfg, store=Store(os.path.join(tmp, "s.sqlite")), housekeeping_s=3600)
        d.start()
        served = serve(create_app(d, token=None), Listen("127.0.0.1", 0))
        empty = FastAPI()

        @empty.post("/echo")
        def echo() -> dict[str, bool]:
            return {}

        floor = serve(empty, Listen("127.0.0.1", 0))
        try:
            for i in range(1000):
                d.position(
                    PositionUpdate(
                        time.time(), f"P{i}", Contract(f"S{i % 50}", SecType.STK), 100, 100.0
                    )
                )
                d.quote(Quote(time.time(), f"P{i}", 100.0, 100.01, 100.0))
            body = {
                "id": "h",
                "legs": [{"symbol": "S1", "sec_type": "STK", "qty": 10, "price": 100.0}],
            }
            # The 1 000 opening stops are saved (one fsync each) by the hub on its
            # own thread; a check meanwhile waits for the journal behind them.
            # Measure checks on their own, as the baseline's POSTs are.
            time.sleep(3.0)
            out: dict[str, Any] = {}
            with httpx.Client(base_url=served.url) as c, httpx.Client(base_url=floor.url) as f:
                for _ in range(50):
                    c.post("/v1/checks", json=body)
                    f.post("/echo", json=body)
                for name, call in (
                    ("check", lambda: c.post("/v1/checks", json=body)),
                    ("baseline_empty_post", lambda: f.post("/echo", json=body)),
                ):
                    xs = []
                    for _ in range(300 if quick else 2000):
                        t = time.perf_counter()
                        r = call()
                        xs.append(time.perf_counter() - t)
                        assert r.status_code == 200
                    out[name] = summary(xs)
            out["ratio_p99"] = out["check"]["p99"] / out["baseline_empty_post"]["p99"]
            out["journal"] = "SQLite WAL, synchronous=FULL: one fsync per check"
            return out
        finally:
            floor.close()
            served.close()
            d.stop()


# ----------------------------------------------------------- start/restore


def _restore_child(path: str, n: int) -> None:
    """Run in a subprocess: start a daemon on a store with n stops, report time and RSS."""
    base_t = time.perf_counter()
    Store(path).load_stops()
    base = time.perf_counter() - base_t
    t = time.perf_counter()
    d = Daemon(parse({}), store=Store(path), housekeeping_s=3600)
    d.start()
    answered = len(d.stop_snapshots())
    elapsed = time.perf_counter() - t
    rss_kb = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
    d.stop()
    print(
        json.dumps(
            {
                "start_restore_s": elapsed,
                "answered": answered,
                "rss_mb": rss_kb / 1024,
                "baseline_load_rows_s": base,
            }
        )
    )


def bench_restore(quick: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n in (1000, 5000):
        runs = []
        for _ in range(2 if quick else 5):
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "s.sqlite")
                st = Store(path, synchronous="NORMAL")
                st.save_stops(
                    StopSnapshot(
                        f"P{i}",
                        Contract(f"S{i % 50}", SecType.STK),
                        100,
                        100.0,
                        T0,
                        i % 2 == 0,
                        104.0,
                        102.44 if i % 2 == 0 else None,
                        0,
                        False,
                        0,
                    )
                    for i in range(n)
                )
                st.close()
                res = subprocess.run(
                    [sys.executable, __file__, "--restore-child", path, str(n)],
                    capture_output=True,
                    text=True,
                    timeout=120,
                    check=True,
                )
                runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
        assert all(r["answered"] == n for r in runs)
        out[str(n)] = {
            "start_restore_s": summary([r["start_restore_s"] for r in runs]),
            "rss_mb": summary([r["rss_mb"] for r in runs]),
            "baseline_load_rows_s": summary([r["baseline_load_rows_s"] for r in runs]),
        }
    return out


def report(r: dict[str, Any]) -> None:
    rp, st, g = r["replay"], r["stress_gate_1000x21"], r["gate_under_load"]
    us, ms = 1e6, 1e3
    print(
        f"replay            {rp['ours_events_per_s']['median']:>10,.0f} events/s of CPU"
        f"   json.loads alone {rp['baseline_json_loads_per_s']['median']:,.0f}/s"
        f"  (ours/json.loads x{rp['ratio_ours_over_baseline']:.2f})"
    )
    ws, ns = st["with_stress"], st["baseline_no_stress"]
    print(
        f"stress gate       median {ws['median'] * ms:.2f} ms  p99 {ws['p99'] * ms:.2f} ms"
        f"   no stress limit {ns['median'] * us:.0f} us  (x{st['ratio']:.0f})"
    )
    og, bg = g["ours_in_process_check_s"], g["baseline_pure_evaluate_s"]
    print(
        f"check in-process  median {og['median'] * us:.0f} us  p99 {og['p99'] * us:.0f} us"
        f" under {g['background_quotes_per_s']:,.0f} quotes/s"
        f"   pure evaluate p99 {bg['p99'] * us:.0f} us  (x{g['ratio_p99']:.1f})"
    )
    print(f"  stages (median/p99 us): {describe(g['stages_s'])}")
    h, hc = r["http_check"], r["http_check"]["check"]
    print(
        f"check over HTTP   median {hc['median'] * us:.0f} us  p99 {hc['p99'] * us:.0f} us"
        f"   empty POST p99 {h['baseline_empty_post']['p99'] * us:.0f} us  (x{h['ratio_p99']:.1f})"
    )
    for n, v in r["start_restore"].items():
        sr = v["start_restore_s"]
        print(
            f"start+restore {n:>5} median {sr['median']:.3f} s  p99 {sr['p99']:.3f} s"
            f"  RSS {v['rss_mb']['median']:.0f} MB"
            f"   rows alone {v['baseline_load_rows_s']['median'] * ms:.0f} ms"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--restore-child", nargs=2)
    args = ap.parse_args()
    if args.restore_child:
        _restore_child(args.restore_child[0], int(args.restore_child[1]))
        return
    results = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "replay": bench_replay(args.quick),
        "stress_gate_1000x21": bench_stress(args.quick),
        "gate_under_load": bench_gate_under_load(args.quick),
        "http_check": bench_http(args.quick),
        "start_restore": bench_restore(args.quick),
    }
    pykka.ActorRegistry.stop_all()
    report(results)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "core.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""Benchmark of ``tune``: 100 parameter sets over 1 M quotes, against the production stop per set.

Run: ``python bench/bench_tune.py`` (about 2 minutes; ``--quick`` for 100 k
quotes). The recording is the stop-heavy synthetic one of
``stop_heavy_recording.py`` (generated once into ``bench/results/``).

Measured in one run, so the ratios survive a change of machine:

(a) ``tune``: read + decode once, then every set on all cores (the target:
    100 sets × 1 M quotes in ≤ 60 s on 2 cores), and the same on one core;
(b) ``per set``: the production ``TrailingStop`` (what replay runs inside
    each position actor) over the same decoded quotes, one set at a time, for
    a sample of the sets — its time per set × the number of sets is what a
    tuner that replays once per set would need at the very least (no JSON,
    no actors), and its decisions are checked equal to tune's;
(c) ``strategies``: the same recording with ``--strategies`` pairs of
    positions (same symbol, same life) made two-leg strategies (DESIGN §3.1).
    Their lines are replayed per set through the production ``StrategyStop``
    (scalar), so this is what strategies cost on top of (a).

Each figure is the median of ``--repeat`` runs; the machine is shared, so
the spread (min–max) is printed too. Results: ``bench/results/tune.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stop_heavy_recording import generate

from actors.messages import StopAction
from actors.trailing_stop import Decision, TrailingStop
from supervisor.record import iter_events
from supervisor.tune.decoded import Decoded
from supervisor.tune.grid import Grid, Objective, apply
from supervisor.tune.tuning import tune

RESULTS = Path(__file__).resolve().parent / "results"

GRID = {
    "activation_pct": (0.5, 1.0, 2.0, 3.0, 5.0),
    "trailing_pct": (0.5, 1.0, 1.5, 2.0, 3.0),
    "min_move_pct": (0.0, 0.5),
    "confirm_quotes": (1, 3),
}  # 5 × 5 × 2 × 2 = 100 sets


def production_triggers(decoded: Decoded, params: Any) -> list[tuple[int, float, float]]:
    """Every TRIGGER of one set: the production stop over each segment, as replay feeds it."""
    c = decoded.columns
    bid, ask, last, entry = (c[k].tolist() for k in ("bid", "ask", "last", "entry"))
    out = []
    for seg in decoded.segments:
        stop = TrailingStop(params, long=seg.long, entry_price=seg.entry_price)
        for i in range(seg.start, seg.stop):
            stop.entry_price = entry[i]
            b, a, la = bid[i], ask[i], last[i]
            d = stop.on_quote(
                None if b != b else b, None if a != a else a, None if la != la else la
            )
            if isinstance(d, Decision) and d.action is StopAction.TRIGGER:
                out.append((i, d.stop, d.extreme))
    return out


def with_strategies(lines: list[bytes], n: int) -> tuple[list[bytes], int]:
    """The recording with ``n`` two-leg strategies: P{j}-{life} and P{j+25}-{life} share a symbol.

    Returns the lines and how many quotes the legs have.
    """
    lives = 5
    legs: dict[str, str] = {}
    for k in range(n):
        life, j = k % lives, k // lives
        legs[f"P{j}-{life}"] = legs[f"P{j + 25}-{life}"] = f"ST{life}-{j}"
    out = []
    quotes = 0
    for line in lines:
        if b'"position"' in line or b'"quote"' in line:
            obj = json.loads(line)
            if obj.get("id") in legs:
                if obj.get("type") == "position":
                    obj["strategy"] = legs[obj["id"]]
                    line = json.dumps(obj).encode()
                elif obj.get("type") == "quote":
                    quotes += 1
        out.append(line)
    return out, quotes


def cpu() -> float:
    """CPU seconds of this process and its finished children (the pool's workers)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def spread(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f} s (min {min(xs):.2f}, max {max(xs):.2f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quotes", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sample", type=int, default=3, help="sets run with the production stop")
    ap.add_argument("--quick", action="store_true", help="100 k quotes, one repeat")
    ap.add_argument("--strategies", type=int, default=20, help="two-leg strategies in (c)")
    a = ap.parse_args()
    if a.quick:
        a.quotes, a.repeat = 100_000, 1
    RESULTS.mkdir(exist_ok=True)
    rec = RESULTS / f"stop-heavy-{a.quotes}.jsonl.zst"
    if not rec.exists():
        t = time.perf_counter()
        generate(rec, a.quotes)
        print(f"generated {rec.name} in {time.perf_counter() - t:.1f} s")
    grid = Grid(GRID, Objective("min_mean_giveback"), horizon_s=1800.0)
    n_sets = len(grid.combinations())
    cores = os.cpu_count() or 1
    print(f"{rec.name}: {rec.stat().st_size / 1e6:.1f} MB, {n_sets} sets, {cores} cores")

    runs: dict[str, list[float]] = {
        "read": [],
        "decode": [],
        "stops": [],
        "total": [],
        "cpu": [],
    }
    one_core: list[float] = []
    result = None
    for _ in range(a.repeat):
        c0 = cpu()
        t0 = time.perf_counter()
        lines = [line for _, _, line in iter_events([rec], progress=False)]
        t1 = time.perf_counter()
        result = tune({}, grid, lines, workers=cores, progress=False)
        t2 = time.perf_counter()
        runs["cpu"].append(cpu() - c0)
        runs["read"].append(t1 - t0)
        runs["decode"].append(result.seconds["decode"])
        runs["stops"].append(result.seconds["stops"])
        runs["total"].append(t2 - t0)
        single = tune({}, grid, lines, workers=1, progress=False)
        one_core.append(single.seconds["stops"])
        assert single.table.equals(result.table)
    assert result is not None
    quotes = result.decoded.quotes
    triggers = len(result.triggers.set)

    # (b) the production stop, one set at a time, on a sample of the sets
    combos = result.combos
    picks = [round(i * (n_sets - 1) / max(1, a.sample - 1)) for i in range(a.sample)]
    per_set: list[float] = []
    per_set_cpu: list[float] = []
    for k in picks:
        params = apply({}, combos[k]).stop_params("any")
        t = time.perf_counter()
        c = time.process_time()
        want = production_triggers(result.decoded, params)
        per_set.append(time.perf_counter() - t)
        per_set_cpu.append(time.process_time() - c)
        mine = result.triggers.set == k
        got = list(
            zip(
                result.triggers.quote[mine].tolist(),
                result.triggers.stop[mine].tolist(),
                result.triggers.extreme[mine].tolist(),
                strict=True,
            )
        )
        assert sorted(got) == sorted(want), f"set {k} differs from the production stop"
    per_set_s = statistics.median(per_set)
    baseline = per_set_s * n_sets
    stops = statistics.median(runs["stops"])
    total = statistics.median(runs["total"])

    print(f"quotes of stopped positions: {quotes:,}; triggers (all sets): {triggers:,}")
    print(f"tune, {cores} processes:  read {spread(runs['read'])}")
    print(f"                     decode {spread(runs['decode'])}")
    print(f"                     stops  {spread(runs['stops'])}")
    print(f"                     total  {spread(runs['total'])}   (target <= 60 s)")
    print(f"tune, 1 process:     stops  {spread(one_core)}")
    print(f"production stop per set: {per_set_s:.2f} s a set (median of {len(per_set)} sets)")
    print(f"  x {n_sets} sets = {baseline:.0f} s single-core")
    print(f"ratio: per-set production / tune stops = {baseline / stops:.0f}x "
          f"({baseline / statistics.median(one_core):.0f}x on one core); "
          f"/ tune total = {baseline / total:.0f}x")  # fmt: skip
    out = {
        "quotes": quotes,
        "sets": n_sets,
        "cores": cores,
        "triggers": triggers,
        "tune_read_s": runs["read"],
        "tune_decode_s": runs["decode"],
        "tune_stops_s": runs["stops"],
        "tune_total_s": runs["total"],
        "tune_stops_one_process_s": one_core,
        "production_per_set_s": per_set,
        "production_all_sets_s": baseline,
        "ratio_stops": baseline / stops,
        "ratio_total": baseline / total,
        "target_met": total <= 60 and not math.isnan(total),
    }
    cpu_all = statistics.median(per_set_cpu) * n_sets
    cpu_ratio = cpu_all / statistics.median(runs["cpu"])
    print(
        f"CPU seconds (robust to a shared machine): tune {spread(runs['cpu'])} in all, "
        f"production per set {cpu_all:.0f} s for {n_sets} sets: {cpu_ratio:.0f}x"
    )
    out["tune_cpu_s"] = runs["cpu"]
    out["production_per_set_cpu_s"] = per_set_cpu

    # (c) the same recording with strategies
    lines = [line for _, _, line in iter_events([rec], progress=False)]
    spread_lines, leg_quotes = with_strategies(lines, a.strategies)
    s_runs: dict[str, list[float]] = {"total": [], "stops": [], "cpu": []}
    strat = None
    for _ in range(a.repeat):
        c0 = cpu()
        t0 = time.perf_counter()
        strat = tune({}, grid, spread_lines, workers=cores, progress=False)
        s_runs["total"].append(time.perf_counter() - t0)
        s_runs["stops"].append(strat.seconds["stops"])
        s_runs["cpu"].append(cpu() - c0)
    assert strat is not None
    kinds = strat.trigger_rows["kind"].value_counts()
    n_strategy = int(kinds.filter(kinds["kind"] == "strategy")["count"].sum())
    plain_total = statistics.median(runs["total"]) - statistics.median(runs["read"])
    extra = statistics.median(s_runs["total"]) - plain_total
    print(
        f"with {a.strategies} strategies ({leg_quotes:,} leg quotes, "
        f"{strat.decoded.routed_quotes:,} routed): total {spread(s_runs['total'])}, "
        f"stops {spread(s_runs['stops'])}; {n_strategy:,} strategy TRIGGERs over the sets"
    )
    per_quote_set = extra / max(1, strat.decoded.routed_quotes * n_sets) * 1e6
    print(
        f"  strategies cost {extra:.1f} s more than (a) without them: "
        f"{per_quote_set:.1f} µs per routed quote per set"
    )
    out.update(
        strategies=a.strategies,
        strategy_leg_quotes=leg_quotes,
        strategy_routed_quotes=strat.decoded.routed_quotes,
        strategy_triggers=n_strategy,
        strategies_total_s=s_runs["total"],
        strategies_stops_s=s_runs["stops"],
        strategies_cpu_s=s_runs["cpu"],
        strategies_extra_s=extra,
    )
    (RESULTS / "tune.json").write_text(json.dumps(out, indent=2))
    print(f"results: {RESULTS / 'tune.json'}")


if __name__ == "__main__":
    main()

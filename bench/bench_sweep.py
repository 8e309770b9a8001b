"""Benchmark of the pooled actor runtime (actors/runtime.py) against its baselines.

Run: ``/work/venv/bin/python bench/bench_sweep.py`` (about 1-2 minutes;
``--quick`` for a smoke run of a few seconds).

A *sweep* tells one message to each of N position actors and waits until all
N are processed: what the supervisor does on every market-data tick. It is
measured, side by side in one run so the ratios survive a change of machine,
for N = 100, 1000, 5000 and:

(a) ``ours``  - ``PooledActor`` on a ``PoolDispatcher`` (default pool size);
(b) ``naive`` - one pykka ``ThreadingActor`` (one OS thread) per actor;
(c) ``plain`` - a Python loop calling the same handler directly: the floor.

Each figure is the median and p99 over repeated sweeps after a warm-up. Then,
at 1000 actors: the pool sizes 1 / 2 / 4 on the same sweep (how the default was
chosen), and sustained throughput - one producer thread telling quotes as fast
as it can for ~2 s - with the latency from tell to processed (the timestamp
travels in the message), plain and with coalescing quotes.

The workload is pluggable: ``--workload module:function`` names a function
returning a :class:`Workload`, so the real ``actors.position_actor.PositionActor``
can replace the stand-in trailing stop (see :func:`counting_subclass`).
Results go to ``bench/results/sweep.json``.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import itertools
import json
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

import pykka  # noqa: E402

from actors.runtime import DEFAULT_THREADS, PoolDispatcher, PooledActor  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "sweep.json"
SIZES = (100, 1000, 5000)
POOLS = (1, 2, 4)
WAIT = 30.0  # seconds: bound on any single wait; a sweep that takes longer is a hang

Done = Callable[[], None]


# --------------------------------------------------------------------------- workload


@dataclass
class Workload:
    """How to build the three contestants for one kind of actor.

    Every handler must call ``done()`` once per message it processed; that is
    how the bench knows a sweep is over. ``message(i, k)`` is the message for
    actor ``i`` in sweep ``k``.
    """

    name: str
    pooled: Callable[[PoolDispatcher, int, Done], pykka.ActorRef[Any]]
    naive: Callable[[int, Done], pykka.ActorRef[Any]] | None
    plain: Callable[[int, Done], Callable[[Any], Any]]
    message: Callable[[int, int], Any]


def counting_subclass(cls: type[Any]) -> type[Any]:
    """``cls`` with an on_receive that calls ``self.bench_done()`` after the real one.

    For plugging an existing actor class in unchanged, e.g. in a workload::

        Counted = counting_subclass(PositionActor)
        def pooled(d, i, done):
            ref = Counted.start(update, params, dispatcher=d)
            ref._actor_weakref().bench_done = done
            return ref
    """

    def on_receive(self: Any, message: Any) -> Any:
        result = cls.on_receive(self, message)
        self.bench_done()
        return result

    return type(f"Counted{cls.__name__}", (cls,), {"on_receive": on_receive})


class _Trail:
    """The stand-in handler: track the high and count quotes, like a trailing stop."""

    __slots__ = ("done", "high", "n")

    def __init__(self, done: Done) -> None:
        self.high = 0.0
        self.n = 0
        self.done = done

    def handle(self, price: float) -> None:
        if price > self.high:
            self.high = price
        self.n += 1
        self.done()


class TrailActor(PooledActor):
    def __init__(self, *, dispatcher: PoolDispatcher, done: Done) -> None:
        super().__init__(dispatcher=dispatcher)
        self.trail = _Trail(done)

    def on_receive(self, message: Any) -> None:
        self.trail.handle(message)


class NaiveTrailActor(pykka.ThreadingActor):
    use_daemon_thread = True  # a bench that dies must not hang on 5000 threads

    def __init__(self, *, done: Done) -> None:
        super().__init__()
        self.trail = _Trail(done)

    def on_receive(self, message: Any) -> None:
        self.trail.handle(message)


def trail_workload() -> Workload:
    return Workload(
        name="trail (max + counter)",
        pooled=lambda d, i, done: TrailActor.start(dispatcher=d, done=done),
        naive=lambda i, done: NaiveTrailActor.start(done=done),
        plain=lambda i, done: _Trail(done).handle,
        message=lambda i, k: 100.0 + (k % 7) * 0.25,
    )


def load_workload(spec: str) -> Workload:
    module, _, attr = spec.partition(":")
    factory = getattr(importlib.import_module(module), attr or "workload")
    workload = factory()
    # bench_sweep runs as __main__, so the workload module's Workload is another
    # class object of the same definition: check the shape, not the identity.
    assert type(workload).__name__ == "Workload", f"{spec} did not return a Workload"
    return workload  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- sweeps


class Countdown:
    """Sets ``event`` when the ``target``-th call of ``done`` since ``arm`` happens.

    ``next()`` on an ``itertools.count`` is atomic, so ``done`` is safe from any
    number of threads and costs one C call.
    """

    def __init__(self) -> None:
        self.counter = itertools.count(1)
        self.target = -1
        self.event = threading.Event()
        self.total = 0

    def arm(self, n: int) -> None:
        self.event.clear()
        self.total += n
        self.target = self.total

    def done(self) -> None:
        if next(self.counter) == self.target:
            self.event.set()


def stats_ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        "median_ms": statistics.median(ordered) * 1e3,
        "p99_ms": p99 * 1e3,
        "min_ms": ordered[0] * 1e3,
        "sweeps": len(ordered),
    }


def run_sweeps(
    tells: Sequence[Callable[[Any], None]],
    countdown: Countdown,
    message: Callable[[int, int], Any],
    sweeps: int,
    warmup: int,
    budget_s: float,
    min_sweeps: int = 10,
) -> list[float]:
    """Time ``sweeps`` sweeps (fewer if ``budget_s`` runs out, but ``min_sweeps``)."""
    n = len(tells)
    samples: list[float] = []
    deadline = time.perf_counter() + budget_s
    for k in range(warmup + sweeps):
        msgs = [message(i, k) for i in range(n)]
        countdown.arm(n)
        t0 = time.perf_counter()
        for tell, msg in zip(tells, msgs, strict=True):
            tell(msg)
        if not countdown.event.wait(WAIT):
            raise TimeoutError(f"sweep {k} of {n} actors did not finish in {WAIT}s")
        elapsed = time.perf_counter() - t0
        if k >= warmup:
            samples.append(elapsed)
            if len(samples) >= min_sweeps and time.perf_counter() > deadline:
                break
    return samples


def stop_refs(refs: list[pykka.ActorRef[Any]]) -> None:
    """Stop pykka actors and wait for their threads to be gone.

    A stopped ThreadingActor's thread still has to exit; thousands of them
    exiting would otherwise be measured as part of the next contestant.
    """
    before = threading.active_count() - len(refs)
    futures = [ref.stop(block=False) for ref in reversed(refs)]
    for future in futures:
        future.get(timeout=WAIT)
    deadline = time.monotonic() + WAIT
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)


def bench_ours(
    w: Workload, n: int, threads: int, sweeps: int, budget_s: float, min_sweeps: int = 10
) -> list[float]:
    gc.collect()
    countdown = Countdown()
    d = PoolDispatcher(threads=threads, name="bench")
    try:
        refs = [w.pooled(d, i, countdown.done) for i in range(n)]
        tells = [r.tell for r in refs]
        return run_sweeps(tells, countdown, w.message, sweeps, 5, budget_s, min_sweeps)
    finally:
        d.shutdown(timeout=WAIT)


def bench_naive(w: Workload, n: int, sweeps: int, budget_s: float, min_sweeps: int) -> list[float]:
    assert w.naive is not None
    gc.collect()
    countdown = Countdown()
    refs: list[pykka.ActorRef[Any]] = []
    try:
        refs = [w.naive(i, countdown.done) for i in range(n)]
        tells = [r.tell for r in refs]
        return run_sweeps(tells, countdown, w.message, sweeps, 2, budget_s, min_sweeps)
    finally:
        stop_refs(refs)


def bench_plain(w: Workload, n: int, sweeps: int, budget_s: float) -> list[float]:
    gc.collect()
    countdown = Countdown()
    handlers = [w.plain(i, countdown.done) for i in range(n)]
    return run_sweeps(handlers, countdown, w.message, sweeps, 5, budget_s)


# --------------------------------------------------------------------------- sustained


class _Lat(PooledActor):
    """Records tell-to-processed latency; the message is (sent_at, price)."""

    def __init__(self, *, dispatcher: PoolDispatcher, sink: list[float], last: list[float]) -> None:
        super().__init__(dispatcher=dispatcher)
        self.sink = sink
        self.last = last
        self.high = 0.0
        self.n = 0

    def on_receive(self, message: Any) -> None:
        sent_at, price = message
        if price > self.high:
            self.high = price
        self.n += 1
        now = time.perf_counter()
        self.sink.append(now - sent_at)
        self.last[0] = now


class _CoalescingLat(_Lat):
    """As _Lat, with quotes folded in the mailbox (newest wins, keeps the high)."""

    def coalesce_key(self, message: Any) -> Hashable | None:
        return "quote"

    def coalesce(self, old: Any, new: Any) -> Any:
        # Keep the older timestamp: latency is then measured from the first
        # quote the delivery stands for, the honest figure for a folded quote.
        return (old[0], max(old[1], new[1]))


def bench_sustained(
    threads: int,
    n: int,
    seconds: float,
    coalescing: bool = False,
    pace: float | None = None,
) -> dict[str, Any]:
    """One producer tells a quote to each of ``n`` actors, pass after pass.

    Flat out (``pace=None``) the producer and the workers share the GIL, so a
    quote told early in the producer's 5 ms GIL turn waits for the workers'
    turn: the latency then measures the interpreter's switch interval as much
    as the runtime. ``pace`` (quotes/s) spaces the passes out instead, as a
    market-data feed does, and shows the latency of a runtime that keeps up.
    """
    gc.collect()
    sink: list[float] = []  # list.append is atomic: fine from every worker
    last = [0.0]  # when the latest delivery happened
    d = PoolDispatcher(threads=threads, name="sustain")
    cls = _CoalescingLat if coalescing else _Lat
    try:
        refs = [cls.start(dispatcher=d, sink=sink, last=last) for _ in range(n)]
        tells = [r.tell for r in refs]
        told = 0
        clock = time.perf_counter
        t0 = clock()
        stop_at = t0 + seconds
        while clock() < stop_at:
            for tell in tells:  # one pass = one quote to every position
                tell((clock(), 100.0 + (told % 13) * 0.01))
            told += n
            if pace is not None:
                time.sleep(max(0.0, t0 + told / pace - clock()))
        sent_for = clock() - t0
        # Wait for the backlog: every delivery appends one latency sample. (Poll
        # gently: the poller competes for the GIL with the workers it waits for.)
        deadline = clock() + WAIT
        while len(sink) < told - d.coalesced and clock() < deadline:
            time.sleep(0.02)
        assert len(sink) == told - d.coalesced, "lost or duplicated deliveries"
        drained_for = last[0] - t0
        lat = sorted(sink)
        return {
            "actors": n,
            "threads": threads,
            "coalescing": coalescing,
            "pace_per_s": pace,
            "told": told,
            "delivered": len(lat),
            "coalesced": d.coalesced,
            "producer_seconds": sent_for,
            "told_per_s": told / sent_for,
            "delivered_per_s": len(lat) / drained_for,
            "latency_p50_ms": lat[len(lat) // 2] * 1e3,
            "latency_p99_ms": lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1e3,
            "latency_max_ms": lat[-1] * 1e3,
        }
    finally:
        d.shutdown(timeout=WAIT)


# --------------------------------------------------------------------------- main


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "pykka": getattr(pykka, "__version__", "?"),
        "switch_interval_s": sys.getswitchinterval(),
        "loadavg_at_start": list(os.getloadavg()),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workload", help="module:function returning a Workload")
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="pool size for (a)")
    p.add_argument("--quick", action="store_true", help="a few sweeps each: a smoke run")
    p.add_argument("--no-naive", action="store_true", help="skip the ThreadingActor baseline")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)

    w = load_workload(args.workload) if args.workload else trail_workload()
    quick = args.quick
    sweeps = 12 if quick else 100
    naive_sweeps = 10 if quick else 30
    budget = 1.0 if quick else 6.0
    info = machine()
    started = time.perf_counter()
    print(f"workload: {w.name}; pool threads: {args.threads}; {info['platform']}")
    print(f"python {info['python']}, {info['cpu_count']} cpus, load {info['loadavg_at_start']}")
    print()
    print("sweep = tell 1 message to each of N actors, wait until all N are processed (ms)")
    header = (
        f"{'N':>5} | {'ours p50':>9} {'p99':>7} | {'naive p50':>9} {'p99':>7} | "
        f"{'plain p50':>9} {'p99':>7} | {'naive/ours':>10} {'ours/plain':>10}"
    )
    print(header)
    print("-" * len(header))
    rows: list[dict[str, Any]] = []
    for n in SIZES:
        # Naive last: its thousands of threads must not disturb the others.
        plain = stats_ms(bench_plain(w, n, sweeps, budget / 3))
        ours = stats_ms(bench_ours(w, n, args.threads, sweeps, budget))
        naive: dict[str, float] | None = None
        if w.naive is not None and not args.no_naive:
            # 5000 OS threads are slow to sweep: the budget caps the sweep count.
            naive = stats_ms(bench_naive(w, n, naive_sweeps, budget * 1.5, 3 if quick else 10))
        row: dict[str, Any] = {"n": n, "ours": ours, "naive": naive, "plain": plain}
        row["naive_over_ours"] = naive["median_ms"] / ours["median_ms"] if naive else None
        row["ours_over_plain"] = ours["median_ms"] / plain["median_ms"]
        rows.append(row)
        naive_cols = (
            f"{naive['median_ms']:>9.3f} {naive['p99_ms']:>7.2f}" if naive else f"{'-':>9} {'-':>7}"
        )
        ratio = f"{row['naive_over_ours']:>9.1f}x" if naive else f"{'-':>10}"
        print(
            f"{n:>5} | {ours['median_ms']:>9.3f} {ours['p99_ms']:>7.2f} | {naive_cols} | "
            f"{plain['median_ms']:>9.3f} {plain['p99_ms']:>7.2f} | "
            f"{ratio} {row['ours_over_plain']:>9.1f}x",
            flush=True,
        )
    counts = ", ".join(
        f"N={r['n']}: ours {r['ours']['sweeps']}"
        + (f" naive {r['naive']['sweeps']}" if r["naive"] else "")
        for r in rows
    )
    print(f"(sweeps timed after warm-up: {counts})")

    print()
    print("pool size at N=1000: sweep (ms) and flat-out quotes; sizes interleaved over rounds")
    rounds = 2 if quick else 4
    by_size: dict[int, dict[str, list[Any]]] = {t: {"sweep": [], "sustained": []} for t in POOLS}
    for r in range(rounds):
        for threads in POOLS[r % len(POOLS) :] + POOLS[: r % len(POOLS)]:
            samples = bench_ours(w, 1000, threads, sweeps // rounds, budget / rounds, 5)
            by_size[threads]["sweep"].extend(samples)
            sustained = bench_sustained(threads, 1000, 0.5 if quick else 0.75)
            by_size[threads]["sustained"].append(sustained["delivered_per_s"])
    pool_sizes: list[dict[str, Any]] = []
    for threads in POOLS:
        sweep = stats_ms(by_size[threads]["sweep"])
        rates = by_size[threads]["sustained"]
        pool_sizes.append({"threads": threads, "sweep": sweep, "msgs_per_s": rates})
        print(
            f"  threads={threads}: sweep p50 {sweep['median_ms']:.3f} p99 {sweep['p99_ms']:.2f}"
            f" ({sweep['sweeps']} sweeps) | {statistics.median(rates):,.0f} msgs/s"
            f" (rounds: {', '.join(f'{x / 1e3:,.0f}k' for x in rates)})",
            flush=True,
        )

    print()
    print(f"sustained, 1000 actors, one producer thread, pool threads={args.threads}:")
    sustained_runs = []
    runs: list[tuple[str, bool, float | None]] = [
        ("flat out, every quote  ", False, None),
        ("flat out, coalescing   ", True, None),
        ("paced 100k/s, every one", False, 100_000.0),
    ]
    for label, coalescing, pace in runs:
        s = bench_sustained(args.threads, 1000, 0.5 if quick else 2.0, coalescing, pace)
        s["label"] = label.strip()
        sustained_runs.append(s)
        print(
            f"  {label}: told {s['told_per_s']:>9,.0f}/s, processed {s['delivered_per_s']:>9,.0f}/s"
            f" (coalesced {s['coalesced']:,}); tell->processed p50 {s['latency_p50_ms']:.2f} ms,"
            f" p99 {s['latency_p99_ms']:.2f} ms",
            flush=True,
        )

    leftover = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    info["loadavg_at_end"] = list(os.getloadavg())
    elapsed = time.perf_counter() - started
    result = {
        "bench": "sweep",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": info,
        "workload": w.name,
        "default_threads": args.threads,
        "quick": quick,
        "sweep": rows,
        "pool_sizes": pool_sizes,
        "sustained": sustained_runs,
        "seconds": elapsed,
        "threads_left": len(leftover),
    }
    if not quick or args.out != RESULTS:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(
            f"\nwrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}"
        )
    print(f"done in {elapsed:.0f} s; threads left running: {len(leftover)}")
    return 0 if not leftover else 1


if __name__ == "__main__":
    sys.exit(main())

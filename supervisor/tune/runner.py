"""Every parameter set over every segment and the routed lines, on all cores.

Workers share the decoded columns without copying them: a single-threaded
parent forks and the workers inherit them (copy-on-write, never written);
otherwise (another thread is running, or no ``fork``) the columns are written
once as ``.npy`` files that each ``spawn``-ed worker maps read-only. Work is
cut into tasks of whole segments — and, when one position holds a large share
of the quotes, also into slices of the sets — handed out to the pool while the
parent draws a progress bar (its refresh thread starts after the fork). Within
a task, sets sharing a reference price series run together in
:func:`stop_kernel.run_segment`. The routed lines (strategies and the
positions tied to them) are replayed per set by
:func:`strategy_model.run_models`, in tasks of a slice of the sets each.
"""

from __future__ import annotations

import itertools
import math
import multiprocessing
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from actors.messages import PriceSource
from actors.trailing_stop import StopParams
from supervisor.config import Config
from supervisor.tune import decoded as dec
from supervisor.tune.outcomes import judge
from supervisor.tune.routed import Routed
from supervisor.tune.stop_kernel import SetArrays, reference_prices, run_segment
from supervisor.tune.strategy_model import ModelRows, run_models

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class ResolvedSets:
    """Each set's parameters for one symbol, as the config loader resolved them."""

    activation_pct: F64
    trailing_pct: F64
    min_move_pct: F64
    min_trail_abs: F64
    confirm_quotes: I64
    price_source: tuple[str, ...]
    max_spread_pct: F64  # NaN: no cap

    def groups(self, subset: I64) -> list[tuple[PriceSource, float | None, SetArrays]]:
        """The sets of ``subset`` grouped by the reference price series they see."""
        keys: dict[tuple[str, float | None], list[int]] = {}
        for i in subset:
            raw = float(self.max_spread_pct[i])
            key = (self.price_source[i], None if math.isnan(raw) else raw)
            keys.setdefault(key, []).append(int(i))
        out: list[tuple[PriceSource, float | None, SetArrays]] = []
        for (source, cap), members in keys.items():
            ix = np.asarray(members, dtype=np.int64)
            out.append(
                (
                    PriceSource(source),
                    cap,
                    SetArrays(
                        ix,
                        self.activation_pct[ix],
                        self.trailing_pct[ix],
                        self.min_move_pct[ix],
                        self.min_trail_abs[ix],
                        self.confirm_quotes[ix],
                    ),
                )
            )
        return out


def model_params(configs: Sequence[Config], symbols: Iterable[str]) -> dict[str, list[StopParams]]:
    """Each set's stop parameters per symbol, for the per-set model: ``[symbol][set]``."""
    return {sym: [c.stop_params(sym) for c in configs] for sym in sorted(symbols)}


def resolve(configs: Sequence[Config], symbols: Sequence[str]) -> dict[str, ResolvedSets]:
    table = {}
    for sym in symbols:
        ps = [c.stop_params(sym) for c in configs]
        table[sym] = ResolvedSets(
            np.array([p.activation_pct for p in ps], dtype=np.float64),
            np.array([p.trailing_pct for p in ps], dtype=np.float64),
            np.array([p.min_move_pct for p in ps], dtype=np.float64),
            np.array([p.min_trail_abs for p in ps], dtype=np.float64),
            np.array([p.confirm_quotes for p in ps], dtype=np.int64),
            tuple(p.price_source.value for p in ps),
            np.array(
                [math.nan if p.max_spread_pct is None else p.max_spread_pct for p in ps],
                dtype=np.float64,
            ),
        )
    return table


@dataclass(slots=True)
class Triggers:
    """One row per TRIGGER of any set; ``quote`` indexes the decoded columns."""

    seg: I64
    set: I64
    quote: I64
    stop: F64
    ref_price: F64
    extreme: F64
    giveback_pct: F64
    whipsaw: npt.NDArray[np.bool_]
    saved_pct: F64
    saved: F64
    cut: npt.NDArray[np.bool_]

    @staticmethod
    def concat(parts: Sequence[Triggers]) -> Triggers:
        if not parts:
            z = np.zeros(0, dtype=np.int64)
            f = np.zeros(0)
            b = np.zeros(0, dtype=bool)
            return Triggers(z, z, z, f, f, f, f, b, f, f, b)
        return Triggers(
            *(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Triggers))
        )


@dataclass(slots=True)
class AllDecisions:
    """Every decision (ACTIVATE, UPDATE, TRIGGER) of every set, for checks and charts."""

    seg: I64
    set: I64
    quote: I64
    action: npt.NDArray[np.int8]
    stop: F64
    ref_price: F64
    extreme: F64

    @staticmethod
    def concat(parts: Sequence[AllDecisions]) -> AllDecisions:
        if not parts:
            z = np.zeros(0, dtype=np.int64)
            f = np.zeros(0)
            return AllDecisions(z, z, z, np.zeros(0, np.int8), f, f, f)
        return AllDecisions(
            *(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(AllDecisions))
        )


@dataclass(frozen=True, slots=True)
class Task:
    segments: tuple[int, ...]
    sets: tuple[int, int]  # [from, to) of the set indexes
    quotes: int
    models: bool = False  # the routed lines for these sets, not segments


@dataclass(frozen=True, slots=True)
class Shared:
    """What every task reads: the decoded recording and each set's parameters."""

    columns: dict[str, F64]
    segments: Sequence[dec.Segment]
    params: dict[str, ResolvedSets]
    routed: Sequence[Routed]
    model_params: dict[str, list[StopParams]]
    last_t: float
    horizon_s: float
    keep_decisions: bool


TaskResult = tuple[Triggers, AllDecisions | None, ModelRows | None]


def run_task(w: Shared, task: Task) -> TaskResult:
    if task.models:
        rows = run_models(
            w.routed,
            w.model_params,
            range(*task.sets),
            w.horizon_s,
            w.last_t,
            keep_decisions=w.keep_decisions,
        )
        return Triggers.concat([]), None, rows
    trig, decs = run_segments(w.columns, w.segments, w.params, task, w.horizon_s, w.keep_decisions)
    return trig, decs, None


def run_segments(
    columns: dict[str, F64],
    segments: Sequence[dec.Segment],
    params: dict[str, ResolvedSets],
    task: Task,
    horizon_s: float,
    keep_decisions: bool,
) -> tuple[Triggers, AllDecisions | None]:
    trig_parts: list[Triggers] = []
    dec_parts: list[AllDecisions] = []
    subset = np.arange(*task.sets, dtype=np.int64)
    groups_of: dict[str, list[tuple[PriceSource, float | None, SetArrays]]] = {}
    for si in task.segments:
        seg = segments[si]
        if seg.stop == seg.start:
            continue
        sl = slice(seg.start, seg.stop)
        bid, ask, last = columns["bid"][sl], columns["ask"][sl], columns["last"][sl]
        times, entry, qty = columns["t"][sl], columns["entry"][sl], columns["qty"][sl]
        groups = groups_of.get(seg.symbol)
        if groups is None:
            groups = groups_of[seg.symbol] = params[seg.symbol].groups(subset)
        for source, cap, sets in groups:
            ref, ok = reference_prices(
                bid, ask, last, long=seg.long, source=source, max_spread_pct=cap
            )
            acc = np.flatnonzero(ok)
            if not len(acc):
                continue
            p = np.ascontiguousarray(ref[acc])
            d = run_segment(p, entry[acc], long=seg.long, entry0=seg.entry_price, sets=sets)
            if not len(d.quote):
                continue
            if keep_decisions:
                dec_parts.append(
                    AllDecisions(
                        np.full(len(d.quote), si, dtype=np.int64),
                        d.set,
                        seg.start + acc[d.quote],
                        d.action,
                        d.stop,
                        p[d.quote],
                        d.extreme,
                    )
                )
            is_t = d.action == 2
            if not is_t.any():
                continue
            k = d.quote[is_t]
            o = judge(
                p,
                np.ascontiguousarray(times[acc]),
                np.ascontiguousarray(qty[acc]),
                k,
                d.extreme[is_t],
                long=seg.long,
                multiplier=seg.multiplier,
                horizon_s=horizon_s,
                end_t=seg.end_t,
            )
            trig_parts.append(
                Triggers(
                    np.full(len(k), si, dtype=np.int64),
                    d.set[is_t],
                    seg.start + acc[k],
                    d.stop[is_t],
                    p[k],
                    d.extreme[is_t],
                    o.giveback_pct,
                    o.whipsaw,
                    o.saved_pct,
                    o.saved,
                    o.cut,
                )
            )
    return Triggers.concat(trig_parts), (AllDecisions.concat(dec_parts) if keep_decisions else None)


def plan(
    segments: Sequence[dec.Segment], n_sets: int, workers: int, routed_quotes: int = -1
) -> list[Task]:
    """Tasks of roughly equal quote counts; sets are sliced when one segment dominates.

    ``routed_quotes`` >= 0: there are routed lines; they come first (each set
    replays all of them, the longest tasks), in slices of the sets.
    """
    model_tasks: list[Task] = []
    if routed_quotes >= 0 and n_sets:
        slices = min(n_sets, 1 if workers == 1 else workers * 2)
        bounds = np.linspace(0, n_sets, slices + 1).astype(int)
        model_tasks = [
            Task((), (int(a), int(b)), max(1, routed_quotes), models=True)
            for a, b in itertools.pairwise(bounds)
            if b > a
        ]
    sizes = [s.stop - s.start for s in segments]
    total = sum(sizes)
    if total == 0 or n_sets == 0:
        return model_tasks
    per_task = max(1, total // (workers * 8))
    set_slices = 1
    if workers > 1 and max(sizes) > total / (2 * workers):
        set_slices = min(n_sets, workers * 2)
    bounds = np.linspace(0, n_sets, set_slices + 1).astype(int)
    set_ranges = [(int(a), int(b)) for a, b in itertools.pairwise(bounds) if b > a]
    chunks: list[tuple[tuple[int, ...], int]] = []
    cur: list[int] = []
    q = 0
    # largest first, so the long ones do not finish last
    for i in sorted(range(len(segments)), key=lambda i: -sizes[i]):
        if not sizes[i]:
            continue
        cur.append(i)
        q += sizes[i]
        if q >= per_task:
            chunks.append((tuple(cur), q))
            cur, q = [], 0
    if cur:
        chunks.append((tuple(cur), q))
    return model_tasks + [Task(segs, r, q) for segs, q in chunks for r in set_ranges]


# ------------------------------------------------------------------ workers

_WORKER: dict[str, Shared] = {}


def _init_worker(directory: str, shared: Shared) -> None:
    _WORKER["shared"] = replace(shared, columns=dec.load_columns(Path(directory)))


def _work(task: Task) -> tuple[Task, TaskResult]:
    return task, run_task(_WORKER["shared"], task)


def _can_fork() -> bool:
    """Fork only where it is cheap and safe: POSIX, and no other thread holding a lock."""
    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1


Advance = Callable[[int], None]


def _bar(total: int, show: bool | None) -> tuple[AbstractContextManager[Any], Advance]:
    if show is None:
        show = sys.stderr.isatty()
    if not show:
        return nullcontext(), lambda n: None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    tid = bar.add_task("quote × set", total=total)
    return bar, lambda n: bar.advance(tid, n)


@dataclass(slots=True)
class Results:
    triggers: Triggers
    decisions: AllDecisions | None
    model: ModelRows
    """The routed lines' decisions (TRIGGERs, or all with ``keep_decisions``), in order."""


def run_all(
    decoded: dec.Decoded,
    params: dict[str, ResolvedSets],
    configs: Sequence[Config],
    horizon_s: float,
    *,
    workers: int | None = None,
    progress: bool | None = None,
    keep_decisions: bool = False,
) -> Results:
    """All sets over all segments; ``workers`` None: one process per core (1: in this process)."""
    n_sets = len(configs)
    workers = workers or os.cpu_count() or 1
    routed_quotes = decoded.routed_quotes if decoded.routed else -1
    tasks = plan(decoded.segments, n_sets, workers, routed_quotes)
    shared = Shared(
        decoded.columns,
        decoded.segments,
        params,
        decoded.routed,
        model_params(configs, decoded.routed_symbols) if decoded.routed else {},
        decoded.last_t,
        horizon_s,
        keep_decisions,
    )
    total = sum(t.quotes * (t.sets[1] - t.sets[0]) for t in tasks)
    ctx, advance = _bar(total, progress)
    trig: list[Triggers] = []
    decs: list[AllDecisions] = []
    model = ModelRows()

    def take(results: Iterator[tuple[Task, TaskResult]]) -> None:
        for task, (t, d, m) in results:
            trig.append(t)
            if d is not None:
                decs.append(d)
            if m is not None:
                model.extend(m)
            advance(task.quotes * (task.sets[1] - task.sets[0]))

    if workers == 1 or len(tasks) <= 1:
        with ctx:
            take((t, run_task(shared, t)) for t in tasks)
    elif _can_fork():
        # a single-threaded parent forks safely: workers inherit the columns, no copy.
        # The pool forks its workers before the progress bar starts its thread.
        _WORKER["shared"] = shared
        try:
            forking = multiprocessing.get_context("fork")
            with forking.Pool(min(workers, len(tasks))) as pool, ctx:
                take(pool.imap_unordered(_work, tasks))
        finally:
            _WORKER.clear()
    else:
        with tempfile.TemporaryDirectory(prefix="tune-") as tmp:
            dec.save(decoded, Path(tmp))
            mp = multiprocessing.get_context("spawn")
            light = replace(shared, columns={})  # the columns go by file, not by pickle
            with (
                mp.Pool(
                    min(workers, len(tasks)), initializer=_init_worker, initargs=(tmp, light)
                ) as pool,
                ctx,
            ):
                take(pool.imap_unordered(_work, tasks))
    t_all = Triggers.concat(trig)
    line = decoded.columns["line"]
    # replay's order within each set, and the same bytes whatever the worker order
    order = np.lexsort((line[t_all.quote], t_all.set))
    t_all = Triggers(*(getattr(t_all, f.name)[order] for f in fields(Triggers)))
    model = model.ordered()
    if not keep_decisions:
        return Results(t_all, None, model)
    d_all = AllDecisions.concat(decs)
    order = np.lexsort((d_all.action, line[d_all.quote], d_all.set))
    d_all = AllDecisions(*(getattr(d_all, f.name)[order] for f in fields(AllDecisions)))
    return Results(t_all, d_all, model)

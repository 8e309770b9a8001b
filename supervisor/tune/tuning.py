"""One tuning run: decode once, every set on all cores, the table and the report.

The pipeline behind ``risk-supervisor tune`` (and the tests and the bench):
:func:`tune` takes the config as parsed TOML, the grid and the recording's
lines, and returns everything it measured; :func:`write_outputs` writes the
table and the HTML page.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from supervisor.config import Config
from supervisor.tune import table as tbl
from supervisor.tune.decoded import Decoded, decode
from supervisor.tune.grid import STOP_KEYS, Grid, apply
from supervisor.tune.report_html import PricePath, ReportInput, render
from supervisor.tune.runner import AllDecisions, Task, Triggers, resolve, run_all, run_task
from supervisor.tune.stop_kernel import ACTIONS, reference_prices


@dataclass(slots=True)
class TuneResult:
    grid: Grid
    combos: list[dict[str, Any]]
    configs: list[Config]
    decoded: Decoded
    triggers: Triggers
    trigger_rows: pl.DataFrame
    table: pl.DataFrame
    decisions: AllDecisions | None
    seconds: dict[str, float] = field(default_factory=dict)

    def stop_lines(self, set_index: int) -> list[dict[str, Any]]:
        """The replay stop lines of one set, in replay's order (needs ``keep_decisions``)."""
        d = self.decisions
        if d is None:
            raise ValueError("run tune with keep_decisions=True")
        mine = np.flatnonzero(d.set == set_index)
        line = self.decoded.columns["line"]
        mine = mine[np.lexsort((d.action[mine], line[d.quote[mine]]))]
        times = self.decoded.columns["t"]
        segs = self.decoded.segments
        return [
            {
                "t": float(times[d.quote[i]]),
                "type": "stop",
                "id": segs[int(d.seg[i])].id,
                "action": ACTIONS[int(d.action[i])],
                "stop": float(d.stop[i]),
                "ref_price": float(d.ref_price[i]),
                "extreme": float(d.extreme[i]),
            }
            for i in mine
        ]


def tune(
    base: Mapping[str, Any],
    grid: Grid,
    lines: Iterable[bytes | str],
    *,
    workers: int | None = None,
    progress: bool | None = None,
    keep_decisions: bool = False,
    timer: Callable[[], float] = time.perf_counter,
) -> TuneResult:
    """Every combination of the grid over the recording; ``base`` is the config's TOML."""
    t0 = timer()
    combos = grid.combinations()
    configs = [apply(base, c) for c in combos]
    t1 = timer()
    decoded = decode(lines)
    t2 = timer()
    params = resolve(configs, decoded.symbols)
    triggers, decisions = run_all(
        decoded,
        params,
        len(combos),
        grid.horizon_s,
        workers=workers,
        progress=progress,
        keep_decisions=keep_decisions,
    )
    t3 = timer()
    rows = tbl.trigger_frame(triggers, decoded.segments, decoded.columns["t"])
    table = tbl.summarize(rows, combos, decoded.symbols, grid.objective)
    t4 = timer()
    return TuneResult(
        grid,
        combos,
        configs,
        decoded,
        triggers,
        rows,
        table,
        decisions,
        {"configs": t1 - t0, "decode": t2 - t1, "stops": t3 - t2, "table": t4 - t3},
    )


def chosen_path(result: TuneResult, set_index: int) -> PricePath | None:
    """The chosen set's stop on one position: its longest segment with a trigger, else any."""
    segs = result.decoded.segments
    if not segs:
        return None
    hit = set(result.triggers.seg[result.triggers.set == set_index].tolist())
    pool = [i for i in range(len(segs)) if i in hit] or list(range(len(segs)))
    si = max(pool, key=lambda i: segs[i].stop - segs[i].start)
    seg = segs[si]
    if seg.stop == seg.start:
        return None
    params = resolve([result.configs[set_index]], [seg.symbol])
    task = Task((si,), (0, 1), seg.stop - seg.start)
    _, decs = run_task(
        result.decoded.columns, segs, params, task, result.grid.horizon_s, keep_decisions=True
    )
    assert decs is not None

    p = result.configs[set_index].stop_params(seg.symbol)
    c = result.decoded.columns
    sl = slice(seg.start, seg.stop)
    ref, ok = reference_prices(
        c["bid"][sl],
        c["ask"][sl],
        c["last"][sl],
        long=seg.long,
        source=p.price_source,
        max_spread_pct=p.max_spread_pct,
    )
    if not ok.any():
        return None
    times = c["t"][sl][ok]
    order = np.lexsort((decs.action, decs.quote))
    decisions = [
        (float(c["t"][decs.quote[i]]), ACTIONS[int(decs.action[i])], float(decs.stop[i]))
        for i in order
    ]
    return PricePath(
        seg.id,
        seg.symbol,
        seg.long,
        np.ascontiguousarray(times),
        np.ascontiguousarray(ref[ok]),
        decisions,
        seg.end_t,
        result.grid.horizon_s,
    )


def report(result: TuneResult, title: str, facts: Mapping[str, str]) -> str:
    best = tbl.best(result.table)
    keys = [k for k in STOP_KEYS if k in result.grid.values]
    chosen = int(best["set"][0]) if best.height else 0
    per_symbol = result.table.filter((pl.col("set") == chosen) & (pl.col("symbol") != tbl.ALL))
    return render(
        ReportInput(
            title,
            result.grid.objective.describe(),
            result.grid.horizon_s,
            keys,
            best,
            per_symbol,
            chosen_path(result, chosen),
            facts,
            result.grid.top,
        )
    )


def write_outputs(
    result: TuneResult, out_dir: Path, *, fmt: str, title: str, facts: Mapping[str, str]
) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "table": out_dir / f"sets.{fmt}",
        "triggers": out_dir / f"triggers.{fmt}",
        "report": out_dir / "report.html",
    }
    tbl.write(result.table, paths["table"])
    tbl.write(result.trigger_rows, paths["triggers"])
    paths["report"].write_text(report(result, title, facts), encoding="utf-8")
    return paths

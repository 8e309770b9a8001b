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
from supervisor.tune.runner import (
    AllDecisions,
    Task,
    Triggers,
    model_params,
    resolve,
    run_all,
    run_segments,
)
from supervisor.tune.stop_kernel import ACTIONS, reference_prices
from supervisor.tune.strategy_model import LifePath, ModelRows, SetModel


@dataclass(slots=True)
class TuneResult:
    grid: Grid
    combos: list[dict[str, Any]]
    configs: list[Config]
    decoded: Decoded
    triggers: Triggers
    """The plain positions' TRIGGERs (indexes into the decoded columns)."""
    model: ModelRows
    """The routed lines' decisions: strategies and the positions tied to them."""
    trigger_rows: pl.DataFrame
    table: pl.DataFrame
    decisions: AllDecisions | None
    seconds: dict[str, float] = field(default_factory=dict)

    def stop_lines(self, set_index: int) -> list[dict[str, Any]]:
        """The replay stop lines of one set, in replay's order (needs ``keep_decisions``)."""
        d = self.decisions
        if d is None:
            raise ValueError("run tune with keep_decisions=True")
        line = self.decoded.columns["line"]
        times = self.decoded.columns["t"]
        segs = self.decoded.segments
        rows: list[tuple[int, int, dict[str, Any]]] = [
            (
                int(line[d.quote[i]]),
                int(d.action[i]),
                {
                    "t": float(times[d.quote[i]]),
                    "type": "stop",
                    "id": segs[int(d.seg[i])].id,
                    "action": ACTIONS[int(d.action[i])],
                    "stop": float(d.stop[i]),
                    "ref_price": float(d.ref_price[i]),
                    "extreme": float(d.extreme[i]),
                },
            )
            for i in np.flatnonzero(d.set == set_index)
        ]
        m = self.model
        rows.extend(
            (
                m.line[i],
                m.action[i],
                {
                    "t": m.t[i],
                    "type": "stop",
                    "id": m.id[i],
                    "action": ACTIONS[m.action[i]],
                    "stop": m.stop[i],
                    "ref_price": m.ref_price[i],
                    "extreme": m.extreme[i],
                },
            )
            for i in range(len(m))
            if m.set[i] == set_index
        )
        rows.sort(key=lambda r: (r[0], r[1]))
        return [r[2] for r in rows]

    def bad_lines(self, set_index: int) -> int:
        """Bad lines as replay with this set's config counts them."""
        return self.decoded.bad_lines + self.model.bad_lines.get(set_index, 0)

    def strategy_summary(self) -> str | None:
        """One sentence on the strategies, for the facts of the report and the CLI."""
        d = self.decoded
        if not d.strategies:
            return None
        strategy_triggers = self.trigger_rows.filter(pl.col("kind") == "strategy").height
        return (
            f"{len(d.strategies)} strateg{'y' if len(d.strategies) == 1 else 'ies'} with "
            f"{len(d.strategy_legs)} leg(s): one stop each on the net price, "
            f"{strategy_triggers} strategy TRIGGER(s) over all sets"
        )


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
    params = resolve(configs, sorted({s.symbol for s in decoded.segments}))
    res = run_all(
        decoded,
        params,
        configs,
        grid.horizon_s,
        workers=workers,
        progress=progress,
        keep_decisions=keep_decisions,
    )
    t3 = timer()
    rows = tbl.trigger_frame(res.triggers, decoded.segments, decoded.columns, res.model)
    table = tbl.summarize(rows, combos, decoded.symbols, grid.objective)
    t4 = timer()
    return TuneResult(
        grid,
        combos,
        configs,
        decoded,
        res.triggers,
        res.model,
        rows,
        table,
        res.decisions,
        {"configs": t1 - t0, "decode": t2 - t1, "stops": t3 - t2, "table": t4 - t3},
    )


def _segment_path(result: TuneResult, set_index: int, si: int) -> PricePath | None:
    seg = result.decoded.segments[si]
    if seg.stop == seg.start:
        return None
    params = resolve([result.configs[set_index]], [seg.symbol])
    task = Task((si,), (0, 1), seg.stop - seg.start)
    _, decs = run_segments(
        result.decoded.columns,
        result.decoded.segments,
        params,
        task,
        result.grid.horizon_s,
        keep_decisions=True,
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


def _routed_paths(result: TuneResult, set_index: int) -> list[LifePath]:
    d = result.decoded
    if not d.routed:
        return []
    params = model_params([result.configs[set_index]], d.routed_symbols)
    table = {symbol: ps[0] for symbol, ps in params.items()}
    model = SetModel(
        set_index, table.__getitem__, result.grid.horizon_s, ModelRows(), record_paths=True
    )
    for ev in d.routed:
        model.feed(ev)
    model.finish(d.last_t)
    return [p for p in model.paths if p.times]


def chosen_path(result: TuneResult, set_index: int) -> PricePath | None:
    """The chosen set's stop on one position or strategy: the longest life with a TRIGGER.

    Without any TRIGGER of that set, the longest life of all.
    """
    segs = result.decoded.segments
    hit = set(result.triggers.seg[result.triggers.set == set_index].tolist())
    # (triggered, quotes, which): a segment index, or a routed life
    candidates: list[tuple[bool, int, int | LifePath]] = [
        (i in hit, s.stop - s.start, i) for i, s in enumerate(segs) if s.stop > s.start
    ]
    candidates.extend((p.triggered, len(p.times), p) for p in _routed_paths(result, set_index))
    if not candidates:
        return None
    _, _, best = max(candidates, key=lambda c: (c[0], c[1]))
    if isinstance(best, int):
        return _segment_path(result, set_index, best)
    strategy = best.kind == "strategy"
    return PricePath(
        best.id,
        best.symbol,
        best.long,
        np.asarray(best.times, dtype=np.float64),
        np.asarray(best.prices, dtype=np.float64),
        best.decisions,
        best.end_t,
        result.grid.horizon_s,
        kind=best.kind,
        price_label=(
            ("net price" if best.long else "cost to close (−net price)")
            if strategy
            else "reference price"
        ),
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

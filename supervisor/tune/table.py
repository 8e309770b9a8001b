"""The results table: one row per parameter set and symbol, plus an ``ALL`` row per set.

Columns: ``set`` (its number), the grid keys with the set's values,
``symbol``, ``triggers``, ``whipsaws``, ``whipsaws_per_100``,
``mean_giveback_pct``, ``median_giveback_pct``, ``mean_saved_pct``, ``saved``
(money, summed), ``cut`` (triggers whose horizon the recording cut short);
and on the ``ALL`` rows ``feasible`` (meets the grid's constraints) and
``rank`` (1 = best by the objective; infeasible sets rank after feasible
ones). Giveback and saved are null for a set without triggers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from supervisor.tune.decoded import Segment
from supervisor.tune.grid import Objective
from supervisor.tune.runner import Triggers
from supervisor.tune.strategy_model import ModelRows

ALL = "ALL"


TRIGGER_SCHEMA: dict[str, Any] = {
    "set": pl.Int64,
    "kind": pl.String,
    "symbol": pl.String,
    "id": pl.String,
    "t": pl.Float64,
    "stop": pl.Float64,
    "ref_price": pl.Float64,
    "extreme": pl.Float64,
    "giveback_pct": pl.Float64,
    "whipsaw": pl.Boolean,
    "saved_pct": pl.Float64,
    "saved": pl.Float64,
    "cut": pl.Boolean,
}


def trigger_frame(
    triggers: Triggers, segments: Sequence[Segment], columns: Mapping[str, Any], model: ModelRows
) -> pl.DataFrame:
    """One row per TRIGGER of any set, in replay's order within each set.

    ``kind`` is ``position`` (a position's own stop; ``id`` the position's) or
    ``strategy`` (a spread's stop on its net price; ``id`` the strategy's,
    ``symbol`` its underlying, prices in the stop's units: the net price for a
    debit, −net for a credit). A giveback or saved % with no meaning (an
    extreme or exit price of 0) is null.
    """
    seg_symbol = [s.symbol for s in segments]
    seg_id = [s.id for s in segments]
    times, lines = columns["t"], columns["line"]
    q = triggers.quote
    plain = pl.DataFrame(
        {
            "set": triggers.set,
            "kind": ["position"] * len(q),
            "symbol": [seg_symbol[i] for i in triggers.seg],
            "id": [seg_id[i] for i in triggers.seg],
            "t": times[q] if len(q) else [],
            "stop": triggers.stop,
            "ref_price": triggers.ref_price,
            "extreme": triggers.extreme,
            "giveback_pct": triggers.giveback_pct,
            "whipsaw": triggers.whipsaw,
            "saved_pct": triggers.saved_pct,
            "saved": triggers.saved,
            "cut": triggers.cut,
            "_line": lines[q].astype(np.int64) if len(q) else [],
        },
        schema={**TRIGGER_SCHEMA, "_line": pl.Int64},
    )
    mine = [i for i, a in enumerate(model.action) if a == 2]
    routed = pl.DataFrame(
        {name: [getattr(model, name)[i] for i in mine] for name in (*TRIGGER_SCHEMA, "line")},
        schema={**TRIGGER_SCHEMA, "line": pl.Int64},
    )
    routed = routed.rename({"line": "_line"})
    both = pl.concat([plain, routed]) if routed.height else plain
    return (
        both.sort(["set", "_line"])
        .drop("_line")
        .with_columns(pl.col("giveback_pct", "saved_pct").fill_nan(None))
    )


def _aggregate(frame: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    return frame.group_by(by).agg(
        pl.len().alias("triggers"),
        pl.col("whipsaw").sum().cast(pl.Int64).alias("whipsaws"),
        pl.col("giveback_pct").mean().alias("mean_giveback_pct"),
        pl.col("giveback_pct").median().alias("median_giveback_pct"),
        pl.col("saved_pct").mean().alias("mean_saved_pct"),
        pl.col("saved").sum().alias("saved"),
        pl.col("cut").sum().cast(pl.Int64).alias("cut"),
    )


def summarize(
    trig: pl.DataFrame,
    combos: Sequence[Mapping[str, Any]],
    symbols: Sequence[str],
    objective: Objective,
) -> pl.DataFrame:
    """Per set and symbol, and per set over all symbols, ranked by the objective."""
    n = len(combos)
    keys = list(combos[0]) if combos else []
    params = pl.DataFrame(
        {"set": list(range(n)), **{k: [str(c[k]) for c in combos] for k in keys}},
        schema={"set": pl.Int64, **{k: pl.String for k in keys}},
    )
    # keep numbers numeric where every value is a number
    for k in keys:
        vals = [c[k] for c in combos]
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in vals):
            dtype = pl.Int64 if all(isinstance(v, int) for v in vals) else pl.Float64
            params = params.with_columns(pl.Series(k, vals, dtype=dtype))
    sym_frame = pl.DataFrame({"symbol": list(symbols)}, schema={"symbol": pl.String})
    base_sym = params.join(sym_frame, how="cross")
    base_all = params.with_columns(pl.lit(ALL).alias("symbol"))
    per_sym = base_sym.join(_aggregate(trig, ["set", "symbol"]), on=["set", "symbol"], how="left")
    total = base_all.join(_aggregate(trig, ["set"]), on="set", how="left")
    out = pl.concat([total, per_sym], how="diagonal_relaxed")
    out = out.with_columns(
        pl.col("triggers").fill_null(0),
        pl.col("whipsaws").fill_null(0),
        pl.col("cut").fill_null(0),
        pl.col("saved").fill_null(0.0),
    ).with_columns(
        pl.when(pl.col("triggers") > 0)
        .then(pl.col("whipsaws") * 100.0 / pl.col("triggers"))
        .otherwise(None)
        .alias("whipsaws_per_100")
    )
    return _rank(out, objective).select(
        "set",
        *keys,
        "symbol",
        "triggers",
        "whipsaws",
        "whipsaws_per_100",
        "mean_giveback_pct",
        "median_giveback_pct",
        "mean_saved_pct",
        "saved",
        "cut",
        "feasible",
        "rank",
    )


def _rank(table: pl.DataFrame, objective: Objective) -> pl.DataFrame:
    kind = objective.kind
    total = table.filter(pl.col("symbol") == ALL)
    feasible = pl.col("triggers") >= objective.min_triggers
    if objective.max_whipsaws_per_100 is not None:
        feasible &= pl.col("whipsaws_per_100").fill_null(0.0) <= objective.max_whipsaws_per_100
    total = total.with_columns((feasible & pl.col(kind.column).is_not_null()).alias("feasible"))
    ranked = total.sort(
        [
            "feasible",
            kind.column,
            "whipsaws_per_100",
            "mean_giveback_pct",
            "set",
        ],
        descending=[True, kind.descending, False, False, False],
        nulls_last=True,
    ).with_row_index("rank", offset=1)
    ranks = ranked.select("set", "feasible", pl.col("rank").cast(pl.Int64))
    is_all = pl.col("symbol") == ALL
    return (
        table.join(ranks, on="set", how="left")
        .sort([pl.col("rank"), ~is_all, pl.col("symbol")])
        .with_columns(
            pl.when(is_all).then(pl.col("feasible")).otherwise(None).alias("feasible"),
            pl.when(is_all).then(pl.col("rank")).otherwise(None).alias("rank"),
        )
    )


def best(table: pl.DataFrame) -> pl.DataFrame:
    """The ``ALL`` rows in rank order."""
    return table.filter(pl.col("symbol") == ALL).sort("rank")


def write(table: pl.DataFrame, path: Path) -> None:
    if path.suffix == ".csv":
        table.write_csv(path)
    else:
        table.write_parquet(path)

"""The results table: per set and symbol, totals, and the objective's ranking."""

from __future__ import annotations

import polars as pl

from supervisor.tune.grid import Objective
from supervisor.tune.table import ALL, best, summarize


def triggers(rows: list[tuple[int, str, float, bool, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "set": [r[0] for r in rows],
            "symbol": [r[1] for r in rows],
            "giveback_pct": [r[2] for r in rows],
            "whipsaw": [r[3] for r in rows],
            "saved_pct": [r[4] for r in rows],
            "saved": [r[4] * 10 for r in rows],
            "cut": [False for _ in rows],
        },
        schema_overrides={"set": pl.Int64},
    )


COMBOS = [{"trailing_pct": v} for v in (0.5, 1.0, 2.0, 3.0)]
ROWS = [
    # set 0: tight — small giveback, many whipsaws
    (0, "SPY", 0.5, True, -1.0),
    (0, "SPY", 0.7, True, -1.0),
    (0, "QQQ", 0.6, False, 2.0),
    # set 1: medium
    (1, "SPY", 1.0, False, 1.0),
    (1, "QQQ", 2.0, True, 3.0),
    # set 2: loose — large giveback, no whipsaw
    (2, "SPY", 3.0, False, 4.0),
    # set 3: never triggers
]


def test_totals_and_per_symbol_rows() -> None:
    t = summarize(triggers(ROWS), COMBOS, ["QQQ", "SPY"], Objective("min_mean_giveback"))
    s0 = t.filter(pl.col("set") == 0)
    assert s0["symbol"].to_list() == [ALL, "QQQ", "SPY"]
    total = s0.row(0, named=True)
    assert total["triggers"] == 3 and total["whipsaws"] == 2
    assert abs(total["whipsaws_per_100"] - 200 / 3) < 1e-9
    assert abs(total["mean_giveback_pct"] - 0.6) < 1e-12
    assert total["median_giveback_pct"] == 0.6
    spy = s0.row(2, named=True)
    assert spy["triggers"] == 2 and spy["mean_saved_pct"] == -1.0 and spy["saved"] == -20.0
    none = t.filter((pl.col("set") == 3) & (pl.col("symbol") == ALL)).row(0, named=True)
    assert none["triggers"] == 0 and none["mean_giveback_pct"] is None and not none["feasible"]


def test_the_objective_and_its_constraint_rank_the_sets() -> None:
    plain = best(summarize(triggers(ROWS), COMBOS, ["QQQ", "SPY"], Objective("min_mean_giveback")))
    assert plain["set"].to_list() == [0, 1, 2, 3]
    capped = best(
        summarize(
            triggers(ROWS),
            COMBOS,
            ["QQQ", "SPY"],
            Objective("min_mean_giveback", max_whipsaws_per_100=50),
        )
    )
    # set 0 (67 whipsaws/100) breaks the cap: it ranks after every set that keeps it
    assert capped["set"].to_list() == [1, 2, 0, 3]
    assert capped["feasible"].to_list() == [True, True, False, False]
    saved = best(summarize(triggers(ROWS), COMBOS, ["QQQ", "SPY"], Objective("max_mean_saved")))
    assert saved["set"].to_list() == [2, 1, 0, 3]
    rate = best(summarize(triggers(ROWS), COMBOS, ["QQQ", "SPY"], Objective("min_whipsaw_rate")))
    assert rate["set"].to_list() == [2, 1, 0, 3]

"""``risk-supervisor journal``'s table (supervisor/commands/journal_table.py) on a real store."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from store_helpers import fill

from supervisor.commands.journal_table import (
    COLUMNS,
    journal_frame,
    run_journal_command,
    summarize,
    write,
)
from supervisor.store.sqlite_store import Store

# ---------------------------------------------------------------- journal.py


def test_journal_frame_columns_types_and_flattening(store: Store) -> None:
    empty = journal_frame(store)
    assert empty.columns == list(COLUMNS) and empty.height == 0
    fill(store)
    store.append(
        t=106.0,
        kind="check",
        payload={
            "allowed": False,
            "reasons": [
                {"code": "max_portfolio_delta", "value": 600.0, "limit": 500.0},
                {"code": "breaker_open", "value": None, "limit": None},
            ],
        },
    )
    store.append(t=107.0, kind="check", payload={"allowed": False, "reasons": ["stale_data"]})
    store.append(t=math.nan, kind="admin", payload={"action": "reset", "stop": "oops"})
    store.append(t=108.0, kind="breaker", payload={"from": "open", "to": "half_open"})
    df = journal_frame(store, limit=100)
    assert df.columns == list(COLUMNS)
    assert df.schema == empty.schema
    assert dict(df.schema) == {
        "seq": pl.Int64, "t": pl.Float64, "wall_t": pl.Float64,
        "time": pl.Datetime("us", "UTC"), "kind": pl.String, "position_id": pl.String,
        "payload": pl.String, "action": pl.String, "stop": pl.Float64,
        "ref_price": pl.Float64, "to_state": pl.String, "from_state": pl.String,
        "allowed": pl.Boolean, "reasons": pl.String,
    }  # fmt: skip
    assert df["time"][0].timestamp() == 100.0
    assert df["time"][-2] is None  # NaN t
    assert df["stop"][-2] is None  # a non-number is not forced into the column
    assert df.row(-1, named=True)["from_state"] == "open"  # the wire format's spelling
    assert df.row(-1, named=True)["to_state"] == "half_open"
    assert df["action"].to_list()[:6] == [
        "ACTIVATE", None, "UPDATE", "UPDATE", None, "TRIGGER",
    ]  # fmt: skip
    assert df.row(4, named=True)["to_state"] == "open"
    assert df["reasons"].to_list()[6:8] == ["max_portfolio_delta,breaker_open", "stale_data"]
    assert json.loads(df["payload"][0]) == {"action": "ACTIVATE", "stop": 95.0}
    assert journal_frame(store, kind="stop", position_id="p1").height == 3


def test_summarize_counts(store: Store) -> None:
    fill(store)
    store.append(t=106.0, kind="check", payload={"allowed": False, "reasons": ["stale_data"]})
    store.append(
        t=107.0,
        kind="check",
        payload={"allowed": False, "reasons": [{"code": "stale_data"}, {"code": "breaker_open"}]},
    )
    store.append(t=108.0, kind="stop", position_id="p2", payload={"action": "TRIGGER"})
    out = summarize(journal_frame(store))
    got = {(g, k): c for g, k, c in out.iter_rows()}
    assert got == {
        ("kind", "stop"): 5,
        ("kind", "check"): 3,
        ("kind", "breaker"): 1,
        ("check", "denied"): 2,
        ("check", "allowed"): 1,
        ("reason", "stale_data"): 2,
        ("reason", "breaker_open"): 1,
        ("trigger", "p1"): 1,
        ("trigger", "p2"): 1,
    }
    assert out["group"].to_list()[:3] == ["kind"] * 3
    assert out["count"].to_list()[:3] == [5, 3, 1]
    with Store(store.path, read_only=True) as ro:
        assert summarize(journal_frame(ro, kind="none")).height == 0


def test_write_csv_and_parquet_round_trip(store: Store, tmp_path: Path) -> None:
    fill(store)
    store.append(t=106.0, kind="check", payload={"allowed": True, "reasons": []})
    df = journal_frame(store)
    write(df, str(tmp_path / "j.parquet"))
    assert pl.read_parquet(tmp_path / "j.parquet").equals(df)
    write(df, str(tmp_path / "j.CSV"))
    assert pl.read_csv(tmp_path / "j.CSV", schema=df.schema).equals(df)
    with pytest.raises(ValueError, match=r"\.csv or \.parquet"):
        write(df, str(tmp_path / "j.xlsx"))
    assert not (tmp_path / "j.xlsx").exists()


def test_run_journal_command(
    store: Store, db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(store)
    args: dict[str, Any] = {
        "since": None, "until": None, "kind": None, "position": None,
        "limit": 100, "out": None, "summary": False,
    }  # fmt: skip
    assert run_journal_command(str(db), **{**args, "since": "yesterday"}) == 2
    assert "yesterday" in capsys.readouterr().err
    assert run_journal_command(str(db), **{**args, "until": "nan"}) == 2
    assert run_journal_command(str(db), **{**args, "limit": 0}) == 2
    assert run_journal_command(str(db), **{**args, "out": str(tmp_path / "x.json")}) == 2
    capsys.readouterr()

    assert run_journal_command(str(db), **{**args, "kind": "breaker"}) == 0
    printed = capsys.readouterr().out
    assert "open" in printed and "ACTIVATE" not in printed

    out = tmp_path / "since.parquet"
    assert (
        run_journal_command(
            str(db), **{**args, "since": "1970-01-01T00:01:42Z", "until": "104", "out": str(out)}
        )
        == 0
    )
    assert pl.read_parquet(out)["t"].to_list() == [102.0, 103.0]

    # without --since: the newest rows
    out = tmp_path / "tail.csv"
    assert run_journal_command(str(db), **{**args, "limit": 2, "out": str(out)}) == 0
    assert pl.read_csv(out)["t"].to_list() == [104.0, 105.0]

    out = tmp_path / "summary.csv"
    assert run_journal_command(str(db), **{**args, "summary": True, "out": str(out)}) == 0
    assert pl.read_csv(out).filter(pl.col("group") == "trigger")["key"].to_list() == ["p1"]

    assert run_journal_command(str(tmp_path / "missing.sqlite"), **args) == 1
    assert "cannot read" in capsys.readouterr().err

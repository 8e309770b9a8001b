"""``risk-supervisor tune`` end to end on a recording the recorder wrote: table and report."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest

from supervisor.commands.cli import main
from supervisor.record import Recorder
from supervisor.tune import runner

T0 = 1796601600.0  # 2026-12-07 00:00 UTC


def write_recording(directory: Path) -> list[Path]:
    """Two positions whose prices rise, fall back and recover: stops fire, some whipsaw."""
    clock = lambda: T0  # noqa: E731
    rec = Recorder(directory, 30, clock, "[trailing_stop]\n")
    rec.record({"t": T0, "type": "position", "id": "L", "symbol": "SPY", "sec_type": "STK",
                "qty": 100, "entry_price": 100.0})  # fmt: skip
    rec.record({"t": T0, "type": "position", "id": "S", "symbol": "QQQ", "sec_type": "OPT",
                "qty": -2, "entry_price": 5.0, "right": "P", "strike": 400.0,
                "expiry": "2027-01-15", "multiplier": 100})  # fmt: skip
    for k in range(1, 600):
        t = T0 + k * 5.0
        wave = math.sin(k / 25) * 4 + k / 60
        bid = round(100 + wave, 2)
        rec.record({"t": t, "type": "quote", "id": "L", "bid": bid, "ask": bid + 0.02,
                    "last": bid + 0.01})  # fmt: skip
        ask = round(5.0 - wave / 20, 3)
        rec.record({"t": t, "type": "quote", "id": "S", "bid": ask - 0.05, "ask": ask,
                    "last": None})  # fmt: skip
        if k % 97 == 0:
            rec.record({"t": t, "type": "failure", "kind": "data_feed"})
    assert rec.close()
    return sorted(directory.glob("*.jsonl.zst"))


GRID = """
objective = "min_mean_giveback"
max_whipsaws_per_100 = 80
horizon_s = 600
top = 5
[trailing_stop]
activation_pct = [1.0, 2.0, 4.0]
trailing_pct = [0.5, 1.5]
"""


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_recording(tmp_path_factory.mktemp("rec"))


def run_tune(tmp: Path, recording: list[Path], *extra: str) -> tuple[int, Path]:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "grid.toml").write_text(GRID)
    (tmp / "config.toml").write_text("[trailing_stop]\nmin_move_pct = 0.2\n")
    out = tmp / "out"
    argv = ["tune", "--config", str(tmp / "config.toml"), "--grid", str(tmp / "grid.toml")]
    code = main([*argv, *map(str, recording), "--out", str(out), *extra])
    return code, out


def test_tune_writes_the_table_and_the_report(
    tmp_path: Path, recording: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run_tune(tmp_path, recording, "--format", "csv", "--workers", "2")
    printed = capsys.readouterr()
    assert code == 0, printed.err
    table = pl.read_csv(out / "sets.csv")
    assert table.height == 6 * 3  # six sets × (ALL, QQQ, SPY)
    assert set(table["symbol"]) == {"ALL", "QQQ", "SPY"}
    for col in ("triggers", "whipsaws", "mean_giveback_pct", "median_giveback_pct",
                "mean_saved_pct", "saved", "rank"):  # fmt: skip
        assert col in table.columns
    totals = table.filter(pl.col("symbol") == "ALL").sort("rank")
    assert totals["rank"].to_list() == [1, 2, 3, 4, 5, 6]
    assert totals["triggers"].sum() > 0
    triggers = pl.read_csv(out / "triggers.csv")
    assert triggers.height == totals["triggers"].sum()
    html = (out / "report.html").read_text()
    assert '<svg id="frontier"' in html and '<svg id="path"' in html
    assert "http://" not in html and "https://" not in html  # opens offline
    assert "6 sets" in printed.out and "report:" in printed.out


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_one_process_and_many_give_the_same_table(
    tmp_path: Path, recording: list[Path], monkeypatch: pytest.MonkeyPatch, start: str
) -> None:
    code1, out1 = run_tune(tmp_path / "a", recording, "--workers", "1")
    if start == "spawn":  # as when another thread runs in the parent
        monkeypatch.setattr(runner, "_can_fork", lambda: False)
    code2, out2 = run_tune(tmp_path / "b", recording, "--workers", "2")
    assert code1 == code2 == 0
    a = pl.read_parquet(out1 / "sets.parquet")
    b = pl.read_parquet(out2 / "sets.parquet")
    assert a.equals(b)
    assert pl.read_parquet(out1 / "triggers.parquet").equals(
        pl.read_parquet(out2 / "triggers.parquet")
    )


def test_a_bad_grid_is_refused_naming_the_key(
    tmp_path: Path, recording: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "grid.toml").write_text("[trailing_stop]\ntrailing_pct = [1, -1]\n")
    (tmp_path / "config.toml").write_text("")
    code = main(["tune", "--config", str(tmp_path / "config.toml"), "--grid",
                 str(tmp_path / "grid.toml"), *map(str, recording)])  # fmt: skip
    assert code == 2
    assert "trailing_stop.trailing_pct[1]: must be a finite number > 0" in capsys.readouterr().err


def test_a_missing_recording_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "grid.toml").write_text(GRID)
    (tmp_path / "config.toml").write_text("")
    code = main(["tune", "--config", str(tmp_path / "config.toml"), "--grid",
                 str(tmp_path / "grid.toml"), str(tmp_path / "nope.jsonl")])  # fmt: skip
    assert code == 2 and "nope.jsonl" in capsys.readouterr().err


def write_strategy_recording(directory: Path) -> list[Path]:
    """A call vertical (one stop on its net price) beside a plain stock position."""
    clock = lambda: T0  # noqa: E731
    rec = Recorder(directory, 30, clock, "[trailing_stop]\n")
    for pid, qty, entry, strike in (("C100", 2, 6.0, 100.0), ("C110", -2, 2.0, 110.0)):
        rec.record({"t": T0, "type": "position", "id": pid, "symbol": "AAPL", "sec_type": "OPT",
                    "qty": qty, "entry_price": entry, "right": "C", "strike": strike,
                    "expiry": "2027-01-15", "multiplier": 100, "strategy": "VERT"})  # fmt: skip
    rec.record({"t": T0, "type": "position", "id": "L", "symbol": "SPY", "sec_type": "STK",
                "qty": 100, "entry_price": 100.0})  # fmt: skip
    for k in range(1, 400):
        t = T0 + k * 5.0
        wave = math.sin(k / 20) * 0.8 + k / 150
        for pid, level in (("C100", 6.0 + wave), ("C110", 2.0 + wave / 3)):
            bid = round(level, 2)
            rec.record({"t": t, "type": "quote", "id": pid, "bid": bid, "ask": bid + 0.05,
                        "last": None})  # fmt: skip
        bid = round(100 + wave * 3, 2)
        rec.record({"t": t, "type": "quote", "id": "L", "bid": bid, "ask": bid + 0.02,
                    "last": None})  # fmt: skip
    assert rec.close()
    return sorted(directory.glob("*.jsonl.zst"))


@pytest.fixture(scope="module")
def strategy_recording(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_strategy_recording(tmp_path_factory.mktemp("strategy"))


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_a_strategy_is_tuned_as_one_stop_on_its_net_price(
    tmp_path: Path,
    strategy_recording: list[Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    start: str,
) -> None:
    code1, out1 = run_tune(tmp_path / "a", strategy_recording, "--workers", "1")
    if start == "spawn":  # the routed lines go to spawned workers by pickle
        monkeypatch.setattr(runner, "_can_fork", lambda: False)
    code2, out2 = run_tune(tmp_path / "b", strategy_recording, "--workers", "2")
    assert code1 == code2 == 0, capsys.readouterr().err
    triggers = pl.read_parquet(out2 / "triggers.parquet")
    assert triggers.equals(pl.read_parquet(out1 / "triggers.parquet"))
    assert pl.read_parquet(out2 / "sets.parquet").equals(pl.read_parquet(out1 / "sets.parquet"))
    mine = triggers.filter(pl.col("kind") == "strategy")
    assert mine.height > 0
    assert set(mine["id"]) == {"VERT"} and set(mine["symbol"]) == {"AAPL"}
    # the legs have no stops of their own while the strategy lives
    assert not set(triggers["id"]) & {"C100", "C110"}
    table = pl.read_parquet(out2 / "sets.parquet")
    assert {"AAPL", "SPY", "ALL"} == set(table["symbol"])
    html = (out2 / "report.html").read_text()
    assert '<svg id="path"' in html

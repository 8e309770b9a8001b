"""Replay: the shipped scenarios give their golden output, byte for byte, every time."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from supervisor.commands import replay
from supervisor.config import load, parse

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCENARIOS = sorted(p.stem for p in EXAMPLES.glob("*.jsonl") if not p.stem.endswith(".expected"))


def run(config_path: Path, events: Path) -> tuple[str, str, int]:
    out, err = io.StringIO(), io.StringIO()
    code = replay.run(load(config_path), str(events), out, err)
    return out.getvalue(), err.getvalue(), code


@pytest.mark.parametrize("name", SCENARIOS)
def test_golden(name: str) -> None:
    out, err, code = run(EXAMPLES / f"{name}.toml", EXAMPLES / f"{name}.jsonl")
    assert (code, err) == (0, "")
    assert out == (EXAMPLES / f"{name}.expected.jsonl").read_text()


@pytest.mark.parametrize("name", SCENARIOS)
def test_deterministic(name: str) -> None:
    first = run(EXAMPLES / f"{name}.toml", EXAMPLES / f"{name}.jsonl")
    assert run(EXAMPLES / f"{name}.toml", EXAMPLES / f"{name}.jsonl") == first


def test_at_least_the_required_scenarios_ship() -> None:
    assert {
        "long_trigger",
        "short_option",
        "whipsaw",
        "breaker_cycle",
        "breaker_backoff",
        "gate",
    } <= set(SCENARIOS)


def feed(lines: list[str], cfg: dict | None = None) -> tuple[list[dict], str, int]:
    r = replay.Replay(parse(cfg or {}))
    out, err = io.StringIO(), io.StringIO()
    try:
        bad = r.feed(lines, out, err)
    finally:
        r.close()
    return [json.loads(x) for x in out.getvalue().splitlines()], err.getvalue(), bad


POS = (
    '{"t": 10, "type": "position", "id": "A", "symbol": "A", "sec_type": "STK",'
    ' "qty": 10, "entry_price": 100}'
)


def test_bad_lines_are_reported_with_line_numbers_and_lose_nothing() -> None:
    lines = [
        POS,
        "not json",
        '{"t": 11, "type": "teleport"}',
        '{"t": 9, "type": "quote", "id": "A", "bid": 103, "ask": 103.1, "last": 103}',
        '{"t": 12, "type": "quote", "id": "A", "bid": "103", "ask": 103.1, "last": 103}',
        '{"t": 13, "type": "failure", "kind": "gremlins"}',
        '{"t": 14, "type": "account", "net_liquidation": -5}',
        '{"type": "quote", "id": "A"}',
        '{"t": 15, "type": "quote", "id": "A", "bid": 103, "ask": 103.1, "last": 103}',
    ]
    out, err, bad = feed(lines)
    assert bad == 7
    assert [line.split(":")[0] for line in err.splitlines()] == [f"line {n}" for n in range(2, 9)]
    assert (
        "goes back in time" in err
        and "bid must be a number" in err
        and "kind must be one of" in err
    )
    # the good quote after all the bad ones still activates the stop
    assert [(o["t"], o["action"]) for o in out] == [(15.0, "ACTIVATE")]


def test_a_line_back_in_time_does_not_move_the_clock() -> None:
    lines = [
        POS,
        '{"t": 5, "type": "failure", "kind": "margin"}',
        '{"t": 10, "type": "failure", "kind": "margin"}',
    ]
    out, _, bad = feed(lines)
    assert bad == 1 and [o["to"] for o in out] == ["open"]


def test_nan_and_infinity_tokens_are_ignored_quotes_not_bad_lines() -> None:
    lines = [
        POS,
        '{"t": 11, "type": "quote", "id": "A", "bid": NaN, "ask": 103.1, "last": 103}',
        '{"t": 12, "type": "quote", "id": "A", "bid": Infinity, "ask": 103.1, "last": 103}',
        '{"t": 13, "type": "quote", "id": "A", "bid": -103, "ask": 103.1, "last": 103}',
        '{"t": 14, "type": "quote", "id": "A", "bid": null, "ask": 103.1, "last": 103}',
    ]
    out, err, bad = feed(lines)
    assert (out, err, bad) == ([], "", 0)


def test_timer_transition_is_written_at_its_due_time_before_the_next_event() -> None:
    lines = [
        '{"t": 100, "type": "failure", "kind": "margin"}',
        '{"t": 500, "type": "success"}',
    ]
    out, _, _ = feed(lines, {"breaker": {"open_timeout_s": 300, "half_open_max_tries": 1}})
    assert [(o["t"], o["from"], o["to"]) for o in out] == [
        (100.0, "closed", "open"),
        (400.0, "open", "half_open"),
        (500.0, "half_open", "closed"),
    ]


def test_replay_ends_at_the_last_event() -> None:
    out, _, _ = feed(['{"t": 100, "type": "failure", "kind": "margin"}'])
    assert [o["to"] for o in out] == ["open"]


def test_cli_exit_codes(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text(POS + "\nnot json\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text("")
    cmd = [sys.executable, "-m", "supervisor", "replay", "--config", str(cfg), str(events)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "line 2:" in res.stderr
    cfg.write_text("[limits]\nmax_portfolio_delta = 'lots'\n")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "limits.max_portfolio_delta" in res.stderr

"""The project's `replay` against the independent oracle (tests/oracle), line by line.

The oracle is a plain re-implementation of the contract written without
reading the project's code; any difference is a bug in one of them (or a
reading of the contract, see tests/oracle/AMBIGUITIES.md).  Both run on every
scenario under `examples/` and on random event streams (tests/oracle/streams.py).

What is compared: stop lines exactly (floats to 1e-9 relative), breaker lines
on t, from and to (`cause` is free-form), check lines on t, id, allowed and
the reasons in order (code, value, limit; floats to 1e-9 relative), and the
set of bad line numbers (`line N:` on stderr).  The project runs as its
users run it: `python -m supervisor replay --config C EVENTS`.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from oracle import oracle_replay
from oracle.scenarios import INLINE
from oracle.streams import CORE_FOCUSES, FOCUSES, scenarios

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SCENARIOS = sorted(p.stem for p in EXAMPLES.glob("*.jsonl") if not p.stem.endswith(".expected"))

#: The examples whose expected output was written from the oracle and checked by hand
#: (the older ones predate parts of the contract, e.g. stale_data's value and limit).
ORACLE_SCENARIOS = [
    "beta_delta",
    "cooldown",
    "heartbeat",
    "kill",
    "loss_daily",
    "loss_drawdown",
    "margin_whatif",
    "nlv_estimate",
    "orders_collar",
    "orders_collar_reducing",
    "orders_duplicate",
    "orders_leg_size",
    "orders_notional",
    "orders_premium",
    "orders_rate",
    "pnl_stale",
    "stop_guard",
    "strategy_credit_spread",
    "strategy_debit_vertical",
    "strategy_iron_condor",
    "strategy_leg_closed",
    "strategy_restart",
    "strategy_trigger_guards",
    "strategy_zero_entry",
]

REL = 1e-9
ABS = 1e-9
T_ABS = 1e-6


def run_project(config_text: str, lines: list[str]) -> tuple[list[dict[str, Any]], set[int], str]:
    """The project's CLI on a config and event lines: output objects, bad line numbers, stderr."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "config.toml"
        events = Path(tmp) / "events.jsonl"
        cfg.write_text(config_text)
        events.write_text("".join(line + "\n" for line in lines))
        proc = subprocess.run(
            [sys.executable, "-m", "supervisor", "replay", "--config", str(cfg), str(events)],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp,
        )
    if proc.returncode not in (0, 1) or "Traceback" in proc.stderr:
        raise AssertionError(
            f"replay failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}\n"
            + describe_input(config_text, lines)
        )
    out: list[dict[str, Any]] = []
    for text in proc.stdout.splitlines():
        if text.strip():
            out.append(json.loads(text))
    bad = {int(m.group(1)) for m in re.finditer(r"^line (\d+):", proc.stderr, re.MULTILINE)}
    return out, bad, proc.stderr


def same_number(a: object, b: object, abs_tol: float = ABS) -> bool:
    """Both null, or both numbers within 1e-9 relative (and a tiny absolute slack near 0)."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if not isinstance(a, int | float) or not isinstance(b, int | float):
        return a == b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=REL, abs_tol=abs_tol)


def same_line(want: dict[str, Any], got: dict[str, Any]) -> str | None:
    """None when two output lines agree, else what differs."""
    if want.get("type") != got.get("type"):
        return "type"
    if not same_number(want.get("t"), got.get("t"), T_ABS):
        return "t"
    kind = want["type"]
    if kind == "stop":
        for key in ("id", "action"):
            if want.get(key) != got.get(key):
                return key
        for key in ("stop", "ref_price", "extreme"):
            if not same_number(want.get(key), got.get(key)):
                return key
        return None
    if kind == "breaker":
        for key in ("from", "to"):
            if want.get(key) != got.get(key):
                return key
        return None
    if kind == "check":
        for key in ("id", "allowed"):
            if want.get(key) != got.get(key):
                return key
        wr, gr = want.get("reasons") or [], got.get("reasons") or []
        if len(wr) != len(gr):
            return "reasons (count)"
        for i, (w, g) in enumerate(zip(wr, gr, strict=True)):
            if w.get("code") != g.get("code"):
                return f"reasons[{i}].code"
            for key in ("value", "limit"):
                if not same_number(w.get(key), g.get(key)):
                    return f"reasons[{i}].{key}"
        return None
    return f"unknown type {kind!r}"


def brief(line: dict[str, Any] | None) -> str:
    """A line without its free-form cause."""
    if line is None:
        return "<none>"
    return json.dumps({k: v for k, v in line.items() if k != "cause"})


def describe_input(config_text: str, lines: list[str], limit: int = 120) -> str:
    """The scenario, for a failure message."""
    shown = [f"{i:4d}  {text}" for i, text in enumerate(lines[:limit], start=1)]
    more = f"\n      ... {len(lines) - limit} more" if len(lines) > limit else ""
    return "--- config ---\n" + config_text + "\n--- events ---\n" + "\n".join(shown) + more


def first_mismatch(want: list[dict[str, Any]], got: list[dict[str, Any]]) -> str | None:
    """The first output line where the project and the oracle diverge, with context."""
    for i in range(max(len(want), len(got))):
        w = want[i] if i < len(want) else None
        g = got[i] if i < len(got) else None
        what = "missing line" if w is None or g is None else same_line(w, g)
        if what is None:
            continue
        lo = max(0, i - 3)
        context = [f"  same     {brief(want[j])}" for j in range(lo, i)]
        return "\n".join(
            [
                f"output line {i + 1} differs ({what}):",
                *context,
                f"  oracle   {brief(w)}",
                f"  project  {brief(g)}",
                f"  oracle next:  {brief(want[i + 1] if i + 1 < len(want) else None)}",
                f"  project next: {brief(got[i + 1] if i + 1 < len(got) else None)}",
            ]
        )
    return None


def compare(config_text: str, lines: list[str]) -> None:
    """Run both and fail with the first divergence (output, then bad lines)."""
    oracle = oracle_replay(config_text, lines)
    got, bad, stderr = run_project(config_text, lines)
    problems: list[str] = []
    mismatch = first_mismatch(oracle.lines, got)
    if mismatch is not None:
        problems.append(mismatch)
    if bad != oracle.bad_lines:
        problems.append(
            f"bad lines differ: oracle {sorted(oracle.bad_lines)}, project {sorted(bad)}\n"
            f"project stderr:\n{stderr[-2000:]}"
        )
    if problems:
        raise AssertionError("\n\n".join([*problems, describe_input(config_text, lines)]))


@pytest.mark.parametrize("name", SCENARIOS)
def test_example_matches_oracle(name: str) -> None:
    """Every shipped scenario: the project's replay equals the oracle's."""
    config = (EXAMPLES / f"{name}.toml").read_text()
    lines = (EXAMPLES / f"{name}.jsonl").read_text().splitlines()
    compare(config, lines)


@pytest.mark.parametrize("name", ORACLE_SCENARIOS)
def test_oracle_reproduces_its_examples(name: str) -> None:
    """The hand-checked goldens written from the oracle are what the oracle prints."""
    config = (EXAMPLES / f"{name}.toml").read_text()
    lines = (EXAMPLES / f"{name}.jsonl").read_text().splitlines()
    want = [json.loads(x) for x in (EXAMPLES / f"{name}.expected.jsonl").read_text().splitlines()]
    result = oracle_replay(config, lines)
    mismatch = first_mismatch(want, result.lines)
    assert mismatch is None, mismatch
    assert result.bad_lines == set()


@pytest.mark.parametrize("name", sorted(INLINE))
def test_inline_scenario_matches_oracle(name: str) -> None:
    """Scenarios with bad lines (tests/oracle/scenarios.py): the project equals the oracle."""
    config, lines, _, _ = INLINE[name]
    compare(config, lines)


def test_oracle_examples_ship() -> None:
    """The hand-checked scenarios are all there (a rename must not silently drop one)."""
    assert set(ORACLE_SCENARIOS) <= set(SCENARIOS)


RANDOM = settings(
    max_examples=int(os.environ.get("ORACLE_EXAMPLES", "50")),
    deadline=None,
    derandomize=False,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
    print_blob=True,
)


@pytest.mark.parametrize("focus", FOCUSES + CORE_FOCUSES)
def test_random_streams_match_oracle(focus: str) -> None:
    """Random streams leaning on one area of the contract: the project equals the oracle."""

    @RANDOM
    @given(scenarios(focus))
    def run(scenario: tuple[str, list[str]]) -> None:
        config, lines = scenario
        compare(config, lines)

    run()

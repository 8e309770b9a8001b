"""For any parameter set, tune's stop decisions are the stop lines ``replay`` prints.

Random recordings (positions opening, changing, flipping and closing, good
and bad quotes, bad lines, other event types, lines back in time) are fed to
the real ``Replay`` (the actors) with the config of each set, and to tune;
the stop lines must be equal as JSON text, every float to the last bit. The
same with random strategies (legs joining, changing, closing alone, leaving
with ``"strategy": null``, switching, clashing ids, a second symbol, legs of
stock and options) and on the shipped ``examples/*.jsonl``.
"""

from __future__ import annotations

import io
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from supervisor.commands.replay import Replay
from supervisor.config import Config
from supervisor.tune.grid import Grid, Objective, apply
from supervisor.tune.tuning import TuneResult, tune

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "examples").glob("*.jsonl"))
EXAMPLES = [p for p in EXAMPLES if not p.name.endswith(".expected.jsonl")]


def replay_stop_lines(config: Config, lines: list[str]) -> list[str]:
    out, err = io.StringIO(), io.StringIO()
    r = Replay(config)
    try:
        r.feed(lines, out, err)
    finally:
        r.close()
    rows = [json.loads(x) for x in out.getvalue().splitlines()]
    return [json.dumps(x) for x in rows if x["type"] == "stop"]


def replay_stop_lines_and_bad(config: Config, lines: list[str]) -> tuple[list[str], int]:
    out, err = io.StringIO(), io.StringIO()
    r = Replay(config)
    try:
        bad = r.feed(lines, out, err)
    finally:
        r.close()
    rows = [json.loads(x) for x in out.getvalue().splitlines()]
    return [json.dumps(x) for x in rows if x["type"] == "stop"], bad


def check_every_set(base: dict[str, Any], grid: Grid, lines: list[str]) -> int:
    """Tune's stop lines and bad-line count for every set are replay's; returns lines compared."""
    return len(checked(base, grid, lines)[1])


def checked(base: dict[str, Any], grid: Grid, lines: list[str]) -> tuple[TuneResult, list[str]]:
    """As :func:`check_every_set`; returns tune's result and every stop line compared."""
    result = tune(base, grid, [x.encode() for x in lines], workers=1, keep_decisions=True)
    compared: list[str] = []
    for i, combo in enumerate(result.combos):
        want, bad = replay_stop_lines_and_bad(apply(base, combo), lines)
        got = [json.dumps(x) for x in result.stop_lines(i)]
        assert got == want, f"set {combo}"
        assert result.bad_lines(i) == bad, f"set {combo}: bad lines"
        compared.extend(want)
    return result, compared


IDS = ["A", "B", "C"]


def price() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.floats(90.0, 115.0).map(lambda x: round(x, 2)),
        st.floats(90.0, 115.0),
        st.sampled_from([None, "NaN", "Infinity", 0, -1, 100]),
    )


@st.composite
def recordings(draw: st.DrawFn) -> list[str]:
    t = 1767225600.0
    lines: list[str] = []
    level = {i: 100.0 for i in IDS}
    for _ in range(draw(st.integers(1, 70))):
        t += draw(st.sampled_from([0.0, 0.5, 1.0, 7.0]))
        pid = draw(st.sampled_from(IDS))
        kind = draw(
            st.sampled_from(["quote"] * 12 + ["position"] * 3 + ["close", "success", "bad", "back"])
        )
        if kind == "quote":
            if draw(st.booleans()):
                level[pid] *= 1 + draw(st.floats(-0.04, 0.04))
                bid = round(level[pid], 2)
                ask = round(bid + draw(st.sampled_from([0.01, 0.2, 1.5])), 2)
                last: Any = round((bid + ask) / 2, 3)
            else:
                bid, ask, last = draw(price()), draw(price()), draw(price())
            obj: dict[str, Any] = {"t": t, "type": "quote", "id": pid}
            obj.update(bid=bid, ask=ask, last=last)
            line = json.dumps(obj).replace('"NaN"', "NaN").replace('"Infinity"', "Infinity")
        elif kind == "position":
            qty = draw(st.sampled_from([-3, -1, 0, 1, 2, 5]))
            entry = draw(st.sampled_from([100.0, 98.5, 103.0, 100]))
            sym = draw(st.sampled_from(["X", "Y"]))
            obj = {"t": t, "type": "position", "id": pid, "symbol": sym, "qty": qty}
            if draw(st.booleans()):
                obj.update(sec_type="STK", entry_price=entry)
            else:
                obj.update(
                    sec_type="OPT",
                    entry_price=entry,
                    right="C",
                    strike=100.0,
                    expiry="2027-01-15",
                    multiplier=100,
                )
            line = json.dumps(obj)
        elif kind == "close":
            line = json.dumps({"t": t, "type": "close", "id": pid})
        elif kind == "success":
            line = json.dumps({"t": t, "type": "success"})
        elif kind == "bad":
            line = draw(
                st.sampled_from(
                    [
                        "{not json",
                        "[1, 2]",
                        json.dumps({"t": t, "type": "mystery"}),
                        json.dumps({"t": t, "type": "quote", "id": pid, "bid": "1"}),
                        json.dumps({"t": t, "type": "position", "id": pid, "qty": 1}),
                        json.dumps({"type": "quote", "id": pid, "bid": 1.0}),
                    ]
                )
            )
        else:  # a good-looking line that goes back in time
            line = json.dumps({"t": t - 5, "type": "quote", "id": pid, "bid": 99.0, "ask": 99.1})
        lines.append(line)
    return lines


LEGS = ["A", "B", "C"]
STRATEGIES = ["S1", "S2"]


def quote_line(draw: st.DrawFn, t: float, pid: str, level: dict[str, float]) -> str:
    how = draw(st.sampled_from(["move"] * 6 + ["odd", "crossed", "zero_bid"]))
    if how == "move":
        level[pid] = max(0.05, level[pid] * (1 + draw(st.floats(-0.15, 0.15))))
        bid = round(level[pid], 2)
        ask = round(bid + draw(st.sampled_from([0.01, 0.2, 1.5])), 2)
        last: Any = round((bid + ask) / 2, 3)
    elif how == "crossed":
        bid, ask, last = round(level[pid] + 0.5, 2), round(level[pid], 2), level[pid]
    elif how == "zero_bid":  # a wing worth nothing on its exit side: a price for a leg
        bid, ask, last = 0, draw(st.sampled_from([0.05, 0.5])), None
    else:
        bid, ask, last = draw(price()), draw(price()), draw(price())
    obj = {"t": t, "type": "quote", "id": pid, "bid": bid, "ask": ask, "last": last}
    return json.dumps(obj).replace('"NaN"', "NaN").replace('"Infinity"', "Infinity")


def position_line(
    draw: st.DrawFn, t: float, pid: str, level: dict[str, float], strategy: str | None = None
) -> str:
    qty = draw(st.sampled_from([-2, -1, 0, 1, 2, 3, 100]))
    entry = draw(st.sampled_from([round(level[pid], 2)] * 3 + [2.0, 5.0, 100.0]))
    sym = draw(st.sampled_from(["X"] * 5 + ["Y"]))
    obj: dict[str, Any] = {"t": t, "type": "position", "id": pid, "symbol": sym}
    obj.update(qty=qty, entry_price=entry)
    if qty == 100 or draw(st.booleans()):
        obj.update(sec_type="STK")
    else:
        obj.update(sec_type="OPT", right="C", strike=100.0, expiry="2027-01-15")
        obj.update(multiplier=draw(st.sampled_from([100, 100, 10])))
    if strategy is None:
        strategy = draw(st.sampled_from(["keep"] * 3 + ["S1"] * 4 + ["S2", "null", "A", "bad"]))
    if strategy == "null":
        obj["strategy"] = None
    elif strategy == "bad":
        obj["strategy"] = draw(st.sampled_from(["", 7, 1.5]))
    elif strategy != "keep":
        obj["strategy"] = strategy
    return json.dumps(obj)


@st.composite
def strategy_recordings(draw: st.DrawFn) -> list[str]:
    """Positions that join, change, leave and switch strategies, with every kind of quote."""
    t = 1767225600.0
    lines: list[str] = []
    level = {i: draw(st.sampled_from([2.0, 5.0, 8.0, 100.0])) for i in LEGS}
    if draw(st.booleans()):  # most spreads open as one: two or three legs at once
        for pid in LEGS[: draw(st.integers(2, 3))]:
            lines.append(position_line(draw, t, pid, level, "S1"))
    for _ in range(draw(st.integers(1, 90))):
        t += draw(st.sampled_from([0.0, 0.5, 1.0, 7.0]))
        pid = draw(st.sampled_from(LEGS))
        kind = draw(
            st.sampled_from(["quote"] * 16 + ["position"] * 4 + ["close", "success", "back"])
        )
        if kind == "quote":
            line = quote_line(draw, t, pid, level)
        elif kind == "position":
            line = position_line(draw, t, pid, level)
        elif kind == "close":
            target = draw(st.sampled_from(LEGS + STRATEGIES))
            line = json.dumps({"t": t, "type": "close", "id": target})
        elif kind == "success":
            line = json.dumps({"t": t, "type": "success"})
        else:  # a good-looking line that goes back in time
            back = draw(st.sampled_from([0.5, 5.0]))
            line = quote_line(draw, t - back, pid, level)
        lines.append(line)
    return lines


stop_tables = st.fixed_dictionaries(
    {
        "activation_pct": st.sampled_from([0.0, 0.5, 1.0, 3.0]),
        "trailing_pct": st.sampled_from([0.5, 1.0, 2.0]),
        "min_move_pct": st.sampled_from([0.0, 0.3]),
        "confirm_quotes": st.integers(1, 3),
        "min_trail_abs": st.sampled_from([0.0, 0.05]),
        "price_source": st.sampled_from(["exit", "mid", "last"]),
    }
)


def one_key_grid(
    table: dict[str, Any], override: dict[str, Any] | None, key: str, values: tuple[Any, ...]
) -> tuple[dict[str, Any], Grid]:
    """A config of ``table`` (with ``override`` for symbol Y) and a grid over one key."""
    base: dict[str, Any] = {"trailing_stop": dict(table)}
    if override is not None:
        base["trailing_stop"]["symbols"] = {"Y": override}
    return base, Grid({key: values}, Objective("min_mean_giveback"))


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    recordings(),
    stop_tables,
    st.sampled_from([None, {"trailing_pct": 3.0}, {"price_source": "mid", "max_spread_pct": 2.0}]),
    st.sampled_from(["trailing_pct", "confirm_quotes", "max_spread_pct", "activation_pct"]),
)
def test_tune_equals_replay_on_random_recordings(
    lines: list[str],
    table: dict[str, Any],
    override: dict[str, Any] | None,
    key: str,
) -> None:
    values = {
        "trailing_pct": (0.5, 1.5),
        "confirm_quotes": (1, 2),
        "max_spread_pct": ("off", 0.5),
        "activation_pct": (0.0, 2.0),
    }[key]
    base, grid = one_key_grid(table, override, key, values)
    n = check_every_set(base, grid, lines)
    event(f"stop lines compared: {'0' if n == 0 else '1-4' if n < 5 else '5+'}")


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    strategy_recordings(),
    stop_tables,
    st.sampled_from([None, {"trailing_pct": 3.0}, {"price_source": "mid", "max_spread_pct": 20.0}]),
    st.sampled_from(["trailing_pct", "activation_pct", "confirm_quotes", "max_spread_pct"]),
)
def test_tune_equals_replay_on_random_strategies(
    lines: list[str],
    table: dict[str, Any],
    override: dict[str, Any] | None,
    key: str,
) -> None:
    values = {
        "trailing_pct": (0.5, 5.0),
        "activation_pct": (0.0, 10.0),
        "confirm_quotes": (1, 2),
        "max_spread_pct": ("off", 5.0),
    }[key]
    base, grid = one_key_grid(table, override, key, values)
    result, compared = checked(base, grid, lines)
    ours = sum(1 for x in compared if json.loads(x)["id"] in STRATEGIES)
    event(f"strategy stop lines: {'0' if ours == 0 else '1-4' if ours < 5 else '5+'}")
    n = len(compared)
    event(f"stop lines compared: {'0' if n == 0 else '1-9' if n < 10 else '10+'}")
    if len({result.bad_lines(i) for i in range(len(result.combos))}) > 1:
        event("a line good in one set and bad in another")


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_tune_equals_replay_on_the_examples(path: Path) -> None:
    base = tomllib.loads(path.with_suffix(".toml").read_text())
    lines = path.read_text().splitlines()
    ts = base.get("trailing_stop", {})
    own = {k: (ts[k],) for k in ("activation_pct", "trailing_pct") if k in ts}
    values: dict[str, tuple[Any, ...]] = {
        "activation_pct": tuple(dict.fromkeys((*own.get("activation_pct", ()), 0.5, 2.0))),
        "trailing_pct": tuple(dict.fromkeys((*own.get("trailing_pct", ()), 0.5, 1.5))),
        "confirm_quotes": (1, 2),
    }
    check_every_set(base, Grid(values, Objective("min_mean_giveback")), lines)


def test_the_examples_produce_stop_lines_to_compare() -> None:
    """The example check above is not vacuous: the examples' stops do fire."""
    path = ROOT / "examples" / "whipsaw.jsonl"
    base = tomllib.loads(path.with_suffix(".toml").read_text())
    grid = Grid({"confirm_quotes": (1, 2)}, Objective("min_mean_giveback"))
    assert check_every_set(base, grid, path.read_text().splitlines()) >= 4

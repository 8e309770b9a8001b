"""Strategies in tune: outcomes on hand-computed net-price paths, and sets that disagree."""

from __future__ import annotations

import json
from fractions import Fraction
from typing import Any

import polars as pl
import pytest

from supervisor.tune.grid import Grid, Objective
from supervisor.tune.strategy_model import unit
from supervisor.tune.tuning import tune

from .test_exact_vs_replay import check_every_set

T0 = 1767225600.0


def leg(t: float, pid: str, qty: int, entry: float, strike: float, **kw: Any) -> str:
    return json.dumps(
        {"t": T0 + t, "type": "position", "id": pid, "symbol": "SPY", "sec_type": "OPT",
         "qty": qty, "entry_price": entry, "right": "C", "strike": strike,
         "expiry": "2027-01-15", "multiplier": 100, **kw}
    )  # fmt: skip


def mid(t: float, pid: str, m: float) -> str:
    """A quote whose mid is ``m`` (a quarter wide: every figure exact in binary)."""
    return json.dumps(
        {"t": T0 + t, "type": "quote", "id": pid, "bid": m - 0.125, "ask": m + 0.125, "last": m}
    )


BASE = {
    "trailing_stop": {
        "activation_pct": 12.5,
        "trailing_pct": 25.0,
        "min_move_pct": 0.0,
        "confirm_quotes": 1,
        "price_source": "mid",
    }
}


def strategy_triggers(lines: list[str], horizon_s: float) -> pl.DataFrame:
    grid = Grid({"confirm_quotes": (1,)}, Objective("min_mean_giveback"), horizon_s=horizon_s)
    result = tune(BASE, grid, [x.encode() for x in lines], workers=1)
    return result.trigger_rows.filter(pl.col("kind") == "strategy")


def test_a_debit_spread_is_judged_on_its_net_price_after_the_trigger() -> None:
    # +2 C190 @ 8, -2 C200 @ 4: u = gcd(200, 200) = 200, net = C190 - C200, E = 4
    lines = [
        leg(0, "C190", 2, 8.0, 190.0, strategy="V"),
        leg(0, "C200", -2, 4.0, 200.0, strategy="V"),
        mid(1, "C190", 8.0),
        mid(2, "C200", 4.0),  # start: net 4
        mid(3, "C190", 10.0),  # net 6 >= 4.5: ACTIVATE, stop 6 - 1.5 = 4.5
        mid(4, "C200", 5.5),  # net 4.5 <= 4.5: TRIGGER at 4.5, extreme 6
        mid(5, "C190", 11.0),  # net 5.5
        mid(6, "C200", 4.5),  # net 6.5: back above the extreme, a whipsaw
        mid(20, "C190", 9.0),  # past the horizon (t = 4 + 10)
    ]
    rows = strategy_triggers(lines, horizon_s=10.0)
    assert rows.height == 1
    r = rows.row(0, named=True)
    assert (r["id"], r["symbol"], r["t"]) == ("V", "SPY", T0 + 4)
    assert (r["stop"], r["ref_price"], r["extreme"]) == (4.5, 4.5, 6.0)
    assert r["giveback_pct"] == pytest.approx((6.0 - 4.5) / 6.0 * 100)
    assert r["whipsaw"] is True
    # held to t = 14 the spread was worth 6.5 a unit: the exit cost 2.0 × u = 400
    assert r["saved_pct"] == pytest.approx((4.5 - 6.5) / 4.5 * 100)
    assert r["saved"] == pytest.approx((4.5 - 6.5) * 200)
    assert r["cut"] is False


def test_a_credit_spread_is_judged_on_its_cost_to_close_until_a_leg_leaves() -> None:
    # -1 P500 @ 6, +1 P490 @ 3: u = 100, E = -3: a short on the cost to close, -net, from 3
    lines = [
        leg(0, "P500", -1, 6.0, 500.0, strategy="PCS"),
        leg(0, "P490", 1, 3.0, 490.0, strategy="PCS"),
        mid(1, "P500", 6.0),
        mid(2, "P490", 3.0),  # start: cost 3
        mid(3, "P500", 5.0),  # cost 2 <= 3 × 0.875: ACTIVATE, stop 2 + 0.5 = 2.5
        mid(4, "P490", 2.5),  # cost 2.5 >= 2.5: TRIGGER at 2.5, extreme 2
        mid(5, "P500", 4.5),  # cost 2.0: back to the extreme, a whipsaw
        mid(8, "P490", 1.5),  # cost 3.0
        json.dumps({"t": T0 + 9, "type": "close", "id": "P500"}),  # the path ends: cut
        mid(10, "P490", 0.5),  # not the spread's price any more
    ]
    rows = strategy_triggers(lines, horizon_s=10.0)
    assert rows.height == 1
    r = rows.row(0, named=True)
    assert (r["id"], r["stop"], r["ref_price"], r["extreme"]) == ("PCS", 2.5, 2.5, 2.0)
    assert r["giveback_pct"] == pytest.approx((2.5 - 2.0) / 2.0 * 100)
    assert r["whipsaw"] is True
    # the cost to close rose to 3.0 by the leg's close: the exit saved 0.5 × u = 50
    assert r["saved_pct"] == pytest.approx((3.0 - 2.5) / 2.5 * 100)
    assert r["saved"] == pytest.approx(50.0)
    assert r["cut"] is True


def test_unit_is_the_exact_gcd_of_the_legs_sizes() -> None:
    assert unit([(100, 1.0), (-1, 100.0)]) == 100
    assert unit([(2, 100.0), (-3, 100.0)]) == 100
    assert unit([(5, 100.0), (-5, 100.0), (5, 100.0)]) == 500
    assert unit([(1, 0.5), (1, 0.75)]) == Fraction(1, 4)


def stk(t: float, pid: str, qty: int, entry: float, **kw: Any) -> str:
    return json.dumps(
        {"t": T0 + t, "type": "position", "id": pid, "symbol": kw.pop("symbol", "SPY"),
         "sec_type": "STK", "qty": qty, "entry_price": entry, **kw}
    )  # fmt: skip


def bid(t: float, pid: str, b: float) -> str:
    return json.dumps({"t": T0 + t, "type": "quote", "id": pid, "bid": b, "ask": b + 0.25})


def test_sets_that_disagree_on_a_trigger_disagree_on_which_lines_are_good() -> None:
    """Exactly replay's verdicts when a leg leaves a strategy triggered in one set only."""
    lines = [
        stk(0, "L1", 1, 100.0, strategy="S"),
        stk(0, "L2", 1, 100.0, strategy="S"),  # E = 200, net = bid(L1) + bid(L2)
        stk(0, "P", 1, 100.0),  # a plain position
        bid(1, "L1", 100.0),
        bid(1, "L2", 100.0),  # start: net 200
        bid(2, "L1", 110.0),  # net 210: ACTIVATE when activation_pct = 2
        bid(3, "L1", 103.0),  # net 203: TRIGGER with trailing_pct 1, not with 5
        json.dumps({"t": T0 + 4, "type": "close", "id": "L2"}),
        # triggered: S lives on with L1; not triggered: S is spent, L1 has its own stop
        stk(10, "L3", 1, 100.0, strategy="S"),  # good only where S triggered
        bid(9.5, "P", 110.0),  # behind t=10 where L3 was good: P's fate is per set
        stk(11, "L1", 1, 100.0, symbol="QQQ"),  # a second symbol for S: bad where S lives
        bid(10.5, "P", 120.0),  # good only where the QQQ line was bad
        bid(12, "L1", 200.0),  # L1's own stop (not triggered sets) activates
        bid(13, "P", 130.0),
    ]
    base = {"trailing_stop": {"activation_pct": 2.0, "min_move_pct": 0.0}}
    grid = Grid({"trailing_pct": (1.0, 5.0)}, Objective("min_mean_giveback"))
    assert check_every_set(base, grid, lines) > 0
    result = tune(base, grid, [x.encode() for x in lines], workers=1, keep_decisions=True)
    assert [result.bad_lines(0), result.bad_lines(1)] == [2, 2]
    tight, loose = result.stop_lines(0), result.stop_lines(1)
    assert [(x["id"], x["action"]) for x in tight if x["id"] == "S"] == [
        ("S", "ACTIVATE"),
        ("S", "TRIGGER"),
    ]
    assert ("L1", "ACTIVATE") in [(x["id"], x["action"]) for x in loose]
    assert "L1" not in {x["id"] for x in tight}
    # P's quote at 9.5 counted where L3 was refused (the loose set) and not in the other
    p_tight = [x["t"] - T0 for x in tight if x["id"] == "P"]
    p_loose = [x["t"] - T0 for x in loose if x["id"] == "P"]
    assert p_tight != p_loose


def test_a_leg_quote_is_judged_by_its_own_positions_parameters_first() -> None:
    """A leg opened on another symbol keeps that symbol's stop parameters (replay's actor does)."""
    wide = json.dumps({"t": T0 + 3, "type": "quote", "id": "A", "bid": 120.0, "ask": 200.0})
    lines = [
        stk(0, "A", 1, 100.0, symbol="QQQ"),  # its actor takes QQQ's parameters
        stk(1, "A", 1, 100.0, strategy="S"),  # then joins S on SPY
        stk(1, "B", 1, 100.0, strategy="S"),
        bid(2, "A", 100.0),
        bid(2, "B", 100.0),  # start: net 200
        wide,  # too wide for QQQ's cap: A's actor drops it, S never sees 320
        bid(4, "B", 101.0),
        bid(5, "A", 130.0),  # net 231
        bid(6, "B", 80.0),  # net 210
    ]
    base = {
        "trailing_stop": {
            "activation_pct": 5.0,
            "min_move_pct": 0.0,
            "symbols": {"QQQ": {"max_spread_pct": 20.0}},
        }
    }
    grid = Grid({"trailing_pct": (1.0, 5.0)}, Objective("min_mean_giveback"))
    assert check_every_set(base, grid, lines) > 0
    result = tune(base, grid, [x.encode() for x in lines], workers=1, keep_decisions=True)
    first = result.stop_lines(0)[0]
    assert (first["id"], first["action"], first["ref_price"]) == ("S", "ACTIVATE", 231.0)

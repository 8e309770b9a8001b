"""Whipsaw, giveback and saved-or-cost on hand-computed paths."""

from __future__ import annotations

import numpy as np
import pytest

from supervisor.tune.outcomes import judge


def run(
    prices: list[float],
    times: list[float],
    k: int,
    x: float,
    *,
    long: bool,
    horizon: float,
    end_t: float = 1e9,
    qty: float = 10.0,
    mult: float = 1.0,
):  # type: ignore[no-untyped-def]
    return judge(
        np.array(prices),
        np.array(times),
        np.full(len(prices), qty),
        np.array([k]),
        np.array([x]),
        long=long,
        multiplier=mult,
        horizon_s=horizon,
        end_t=end_t,
    )


def test_a_long_that_gets_back_to_its_peak_within_the_horizon_is_a_whipsaw() -> None:
    # peak 110, exit at 104 (t=3), back to 110 at t=20
    o = run([100, 110, 106, 104, 107, 110], [0, 1, 2, 3, 10, 20], 3, 110.0, long=True, horizon=30)
    assert o.whipsaw.tolist() == [True]
    assert o.giveback_pct[0] == pytest.approx((110 - 104) / 110 * 100)
    # held to t=33 the position would be worth 110 (the last price by then): the exit cost
    assert o.saved_pct[0] == pytest.approx((104 - 110) / 104 * 100)
    assert o.saved[0] == pytest.approx((104 - 110) * 10.0)
    assert not o.cut[0]


def test_the_same_recovery_after_the_horizon_is_not_a_whipsaw() -> None:
    o = run([100, 110, 106, 104, 107, 110], [0, 1, 2, 3, 10, 20], 3, 110.0, long=True, horizon=15)
    assert o.whipsaw.tolist() == [False]
    # the price at the horizon (t=18) is the last at or before it: 107
    assert o.saved_pct[0] == pytest.approx((104 - 107) / 104 * 100)


def test_reaching_but_not_exceeding_the_extreme_counts() -> None:
    o = run([110, 104, 109.99, 110], [0, 1, 2, 3], 1, 110.0, long=True, horizon=100)
    assert o.whipsaw[0]
    o = run([110, 104, 109.99], [0, 1, 2], 1, 110.0, long=True, horizon=100)
    assert not o.whipsaw[0]


def test_a_short_mirrors_a_long() -> None:
    # trough 90, exit (buy back) at 95, the price falls on to 85: the exit cost money
    o = run(
        [100, 90, 95, 88, 85], [0, 1, 2, 3, 4], 2, 90.0, long=False, horizon=10, qty=-2, mult=100
    )
    assert o.whipsaw[0]
    assert o.giveback_pct[0] == pytest.approx((95 - 90) / 90 * 100)
    assert o.saved_pct[0] == pytest.approx((85 - 95) / 95 * 100)
    assert o.saved[0] == pytest.approx((95 - 85) * -2 * 100)  # negative: it cost
    # a short whose price rises after the exit was saved from a loss
    o = run([100, 90, 95, 99, 120], [0, 1, 2, 3, 4], 2, 90.0, long=False, horizon=10, qty=-2)
    assert not o.whipsaw[0] and o.saved_pct[0] == pytest.approx((120 - 95) / 95 * 100)
    assert o.saved[0] > 0


def test_a_close_before_the_horizon_is_flagged_cut() -> None:
    o = run([100, 110, 104], [0, 1, 2], 2, 110.0, long=True, horizon=60, end_t=30)
    assert o.cut[0] and not o.whipsaw[0] and o.saved_pct[0] == 0.0

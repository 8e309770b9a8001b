"""The vectorised stop equals the production ``TrailingStop``, decision for decision."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.messages import PriceSource, QuoteFault
from actors.trailing_stop import Decision, StopParams, TrailingStop, reference_price
from supervisor.tune.stop_kernel import ACTIONS, SetArrays, reference_prices, run_segment

params_st = st.builds(
    StopParams,
    activation_pct=st.sampled_from([0.0, 0.3, 1.0, 2.0, 5.0]),
    trailing_pct=st.sampled_from([0.1, 0.5, 1.0, 1.5, 3.0, 100.0, 150.0, 1e-17]),
    min_move_pct=st.sampled_from([0.0, 0.2, 0.5, 2.0]),
    confirm_quotes=st.integers(1, 4),
    min_trail_abs=st.sampled_from([0.0, 0.01, 0.5, 2.0]),
)


@st.composite
def paths(draw: st.DrawFn) -> tuple[float, list[float], list[float]]:
    """A starting entry price, a price path, and the entry price in force at each quote."""
    entry0 = draw(st.sampled_from([1.0, 3.7, 100.0, 401.25]))
    n = draw(st.integers(1, 120))
    steps = draw(st.lists(st.floats(-0.03, 0.03), min_size=n, max_size=n))
    rounding = draw(st.sampled_from([None, 2, 1]))
    p = entry0
    prices = []
    for s in steps:
        p = max(0.01, p * (1 + s))
        prices.append(round(p, rounding) if rounding is not None else p)
    prices = [x if x > 0 else 0.01 for x in prices]
    entries = [entry0] * n
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, n - 1))
        new = draw(st.sampled_from([entry0 * 0.99, entry0 * 1.02, entry0 + 0.5]))
        entries[at:] = [new] * (n - at)
    return entry0, prices, entries


def production(
    params: StopParams, long: bool, entry0: float, prices: list[float], entries: list[float]
) -> list[tuple[int, str, float, float]]:
    ts = TrailingStop(params, long=long, entry_price=entry0)
    out = []
    for i, p in enumerate(prices):
        ts.entry_price = entries[i]
        d = ts.on_quote(p if long else None, None if long else p, p)
        if isinstance(d, Decision):
            out.append((i, d.action.value, d.stop, d.extreme))
    return out


def arrays(sets: list[StopParams]) -> SetArrays:
    return SetArrays(
        np.arange(len(sets), dtype=np.int64),
        np.array([p.activation_pct for p in sets]),
        np.array([p.trailing_pct for p in sets]),
        np.array([p.min_move_pct for p in sets]),
        np.array([p.min_trail_abs for p in sets]),
        np.array([p.confirm_quotes for p in sets], dtype=np.int64),
    )


@settings(max_examples=400, deadline=None)
@given(paths(), st.lists(params_st, min_size=1, max_size=6), st.booleans())
def test_every_set_decides_exactly_as_the_production_stop(
    path: tuple[float, list[float], list[float]], sets: list[StopParams], long: bool
) -> None:
    entry0, prices, entries = path
    d = run_segment(
        np.array(prices), np.array(entries), long=long, entry0=entry0, sets=arrays(sets)
    )
    for i, params in enumerate(sets):
        mine = d.set == i
        got = [
            (int(q), ACTIONS[int(a)], float(s), float(x))
            for q, a, s, x in zip(
                d.quote[mine], d.action[mine], d.stop[mine], d.extreme[mine], strict=True
            )
        ]
        want = production(params, long, entry0, prices, entries)
        # repr: equal to the last bit, -0.0 included
        assert repr(got) == repr(want)


def test_a_path_that_triggers_every_set_stops_early_with_the_same_result() -> None:
    prices = [100.0, 103.0, 110.0, 90.0, 80.0, 120.0, 70.0]
    sets = [StopParams(activation_pct=1.0, trailing_pct=t) for t in (1.0, 2.0, 5.0)]
    d = run_segment(
        np.array(prices), np.full(len(prices), 100.0), long=True, entry0=100.0, sets=arrays(sets)
    )
    triggers = d.action == 2
    assert sorted(d.set[triggers].tolist()) == [0, 1, 2]
    assert d.quote[triggers].tolist() == [3, 3, 3]


quote_value = st.one_of(
    st.none(),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -1.0, 1.7976931348623157e308]),
    st.floats(0.5, 200.0),
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.tuples(quote_value, quote_value, quote_value), min_size=1, max_size=30),
    st.sampled_from(list(PriceSource)),
    st.sampled_from([None, 0.0, 0.5, 5.0]),
    st.booleans(),
)
def test_reference_prices_accept_exactly_the_quotes_the_stop_accepts(
    quotes: list[tuple[float | None, float | None, float | None]],
    source: PriceSource,
    cap: float | None,
    long: bool,
) -> None:
    def col(j: int) -> np.ndarray:
        return np.array([math.nan if q[j] is None else q[j] for q in quotes], dtype=np.float64)

    ref, ok = reference_prices(col(0), col(1), col(2), long=long, source=source, max_spread_pct=cap)
    params = StopParams(price_source=source, max_spread_pct=cap)
    for i, (b, a, last) in enumerate(quotes):
        want = reference_price(params, long, b, a, last)
        if isinstance(want, QuoteFault):
            assert not ok[i]
        else:
            assert ok[i] and repr(float(ref[i])) == repr(want)

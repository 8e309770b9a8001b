"""The trailing stop against DESIGN §3 (and the units of §2), read independently.

Every expected value below is derived from the contract's own formulas, written
out in comments; where a threshold is not obviously exact in binary floating
point the test computes it with the contract's formula instead of assuming it.

Facts copied from the contract (DESIGN §3):

* reference price: exit = bid for a long, ask for a short; mid = (bid+ask)/2;
  last = last trade;
* a quote is ignored entirely (counted, never acted on) when its reference
  price is missing, not finite or <= 0; when bid and ask are both finite and
  bid > ask, whatever the source; or, with max_spread_pct set, when either
  side is missing / not finite / <= 0 or (ask-bid)/mid*100 > max_spread_pct.
  Other bad fields do not matter. An ignored quote neither counts as a breach
  nor breaks a run of breaches;
* at most one stop event per quote; the activating quote is not tested for a
  breach;
* long: peak starts at E; activate when peak >= E*(1+activation_pct/100), stop
  = min(peak*(1-trailing_pct/100), peak-min_trail_abs); update when candidate
  > stop and candidate >= stop*(1+min_move_pct/100); breach when p <= stop;
  TRIGGER after confirm_quotes consecutive breaches, exactly once; a
  non-breaching quote resets the count; once triggered nothing happens;
* short: the mirror image (trough, <=, max(...*(1+t), trough+abs), candidate <
  stop and candidate <= stop*(1-min_move_pct/100), breach when p >= stop).
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from actors.messages import PriceSource, QuoteFault, StopAction
from actors.trailing_stop import Decision, StopParams, TrailingStop

INF = math.inf
NAN = math.nan
A, U, T = StopAction.ACTIVATE, StopAction.UPDATE, StopAction.TRIGGER


def up(x: float) -> float:
    return math.nextafter(x, math.inf)


def down(x: float) -> float:
    return math.nextafter(x, -math.inf)


# The contract's formulas, transcribed from DESIGN §3 (not from the code).
def long_threshold(p: StopParams, entry: float) -> float:
    return entry * (1 + p.activation_pct / 100)


def short_threshold(p: StopParams, entry: float) -> float:
    return entry * (1 - p.activation_pct / 100)


def long_stop(p: StopParams, peak: float) -> float:
    return min(peak * (1 - p.trailing_pct / 100), peak - p.min_trail_abs)


def short_stop(p: StopParams, trough: float) -> float:
    return max(trough * (1 + p.trailing_pct / 100), trough + p.min_trail_abs)


def state(ts: TrailingStop) -> tuple[object, ...]:
    return (ts.active, ts.stop, ts.extreme, ts.breaches, ts.triggered)


def longq(ts: TrailingStop, bid: float | None) -> object:
    """A long's exit quote: the bid is the reference; ask = bid keeps it uncrossed."""
    return ts.on_quote(bid, bid, None)


def shortq(ts: TrailingStop, ask: float | None) -> object:
    return ts.on_quote(ask, ask, None)


# Parameters whose arithmetic is exact in binary: 100 % activation doubles
# (1+100/100 = 2), 50 % trailing halves (1-50/100 = 0.5), 50 % min move is x1.5.
EXACT = StopParams(activation_pct=100.0, trailing_pct=50.0, min_move_pct=50.0)
EXACT_SHORT = StopParams(activation_pct=50.0, trailing_pct=50.0, min_move_pct=50.0)


# ---------------------------------------------------------------- activation


def test_long_activates_exactly_at_threshold(default_stop_params: StopParams) -> None:
    p = default_stop_params
    ts = TrailingStop(p, long=True, entry_price=100.0)
    thr = long_threshold(p, 100.0)  # 100*(1+2.0/100); 102.0 in binary, computed anyway
    assert longq(ts, down(thr)) is None
    assert not ts.active and ts.stop is None
    assert ts.extreme == down(thr)  # the peak follows p although inactive
    d = longq(ts, thr)
    # stop = min(102*(1-1.5/100), 102-0) = 102*0.985 ~ 100.47
    assert d == Decision(A, long_stop(p, thr), thr, thr)
    assert d.stop == pytest.approx(100.47, abs=1e-12)
    assert ts.active and ts.stop == d.stop


def test_short_activates_exactly_at_threshold(default_stop_params: StopParams) -> None:
    p = default_stop_params
    ts = TrailingStop(p, long=False, entry_price=100.0)
    thr = short_threshold(p, 100.0)  # 100*(1-2.0/100) = 98
    assert shortq(ts, up(thr)) is None
    assert not ts.active
    assert ts.extreme == up(thr)
    d = shortq(ts, thr)
    # stop = max(98*(1+1.5/100), 98+0) = 98*1.015 ~ 99.47
    assert d == Decision(A, short_stop(p, thr), thr, thr)
    assert d.stop == pytest.approx(99.47, abs=1e-12)


def test_peak_and_trough_start_at_entry() -> None:
    p = StopParams()
    lg = TrailingStop(p, long=True, entry_price=100.0)
    assert longq(lg, 90.0) is None
    assert lg.extreme == 100.0  # max(100, 90)
    sh = TrailingStop(p, long=False, entry_price=100.0)
    assert shortq(sh, 110.0) is None
    assert sh.extreme == 100.0  # min(100, 110)


def test_activation_uses_the_peak_not_the_current_price() -> None:
    # Peak 101.5 then 101.9 never reach 102: nothing; a later 102 activates.
    p = StopParams()
    ts = TrailingStop(p, long=True, entry_price=100.0)
    assert longq(ts, 101.5) is None
    assert longq(ts, 101.0) is None
    assert ts.extreme == 101.5
    assert longq(ts, 102.0).action is A


@pytest.mark.parametrize("long", [True, False])
def test_zero_activation_activates_on_first_quote_which_is_not_tested(long: bool) -> None:
    # activation_pct 0: the extreme starts at E, E >= E*(1+0) holds at once.
    # Long fed 50: peak = max(100, 50) = 100, stop = min(100*0.985, 100) = 98.5;
    # 50 <= 98.5 would breach, but the activating quote is not tested.
    p = StopParams(activation_pct=0.0)
    ts = TrailingStop(p, long=long, entry_price=100.0)
    price = 50.0 if long else 150.0
    d = ts.on_quote(price, price, None)
    expected_stop = long_stop(p, 100.0) if long else short_stop(p, 100.0)  # 98.5 / 101.5
    assert d == Decision(A, expected_stop, price, 100.0)
    assert not ts.triggered and ts.breaches == 0
    d2 = ts.on_quote(price, price, None)
    assert d2 == Decision(T, expected_stop, price, 100.0)


def test_activating_quote_does_not_count_toward_confirm() -> None:
    # confirm_quotes 2: ACTIVATE at 50 (not tested), then two breaches are needed.
    p = StopParams(activation_pct=0.0, confirm_quotes=2)
    ts = TrailingStop(p, long=True, entry_price=100.0)
    assert longq(ts, 50.0).action is A
    assert longq(ts, 50.0) is None
    assert ts.breaches == 1
    assert longq(ts, 50.0).action is T


# ------------------------------------------------------------------- updates


def test_long_update_min_move_edges() -> None:
    p = EXACT
    ts = TrailingStop(p, long=True, entry_price=100.0)
    # threshold 100*(1+100/100) = 200 -> stop min(200*0.5, 200-0) = 100
    assert longq(ts, 200.0) == Decision(A, 100.0, 200.0, 200.0)
    # an update needs candidate >= 100*(1+50/100) = 150, i.e. peak >= 300.
    # Just below: candidate = 0.5*down(300) < 150 (halving is exact): nothing.
    assert longq(ts, down(300.0)) is None
    assert ts.stop == 100.0 and ts.extreme == down(300.0)
    # Exactly 300: candidate 150 == 150*1 -> UPDATE.
    assert longq(ts, 300.0) == Decision(U, 150.0, 300.0, 300.0)
    # 301: candidate 150.5 > 150 but < 150*1.5 = 225: not a big enough move.
    assert longq(ts, 301.0) is None
    assert ts.stop == 150.0 and ts.extreme == 301.0


def test_short_update_min_move_edges() -> None:
    p = EXACT_SHORT
    ts = TrailingStop(p, long=False, entry_price=100.0)
    # threshold 100*(1-50/100) = 50 -> stop max(50*1.5, 50+0) = 75
    assert shortq(ts, 50.0) == Decision(A, 75.0, 50.0, 50.0)
    # an update needs candidate <= 75*(1-50/100) = 37.5, i.e. trough <= 25.
    assert shortq(ts, up(25.0)) is None  # candidate 1.5*up(25) > 37.5
    assert ts.stop == 75.0 and ts.extreme == up(25.0)
    assert shortq(ts, 25.0) == Decision(U, 37.5, 25.0, 25.0)
    # 24: candidate 36 < 37.5 but > 37.5*0.5 = 18.75: nothing.
    assert shortq(ts, 24.0) is None
    assert ts.stop == 37.5


def test_zero_min_move_needs_a_strictly_better_candidate() -> None:
    p = StopParams(activation_pct=100.0, trailing_pct=50.0, min_move_pct=0.0)
    ts = TrailingStop(p, long=True, entry_price=100.0)
    assert longq(ts, 200.0).action is A  # stop 100
    assert longq(ts, 200.0) is None  # candidate 100, not > 100
    d = longq(ts, up(200.0))  # candidate 0.5*up(200) > 100 and >= 100*1
    assert d == Decision(U, up(200.0) * 0.5, up(200.0), up(200.0))


def test_default_params_update_values(default_stop_params: StopParams) -> None:
    p = default_stop_params
    ts = TrailingStop(p, long=True, entry_price=100.0)
    longq(ts, 102.0)
    s0 = long_stop(p, 102.0)  # 100.47
    # 102.3: candidate 100.7655 < 100.47*1.005 = 100.97235 -> nothing
    assert longq(ts, 102.3) is None
    assert ts.stop == s0
    # 103: candidate 101.455 >= 100.97235 -> UPDATE
    d = longq(ts, 103.0)
    assert d == Decision(U, long_stop(p, 103.0), 103.0, 103.0)
    assert d.stop == pytest.approx(101.455, abs=1e-12)
    # a fall changes nothing above the stop
    assert longq(ts, 102.0) is None
    assert ts.stop == d.stop and ts.extreme == 103.0


def test_long_min_trail_abs_dominates_small_prices() -> None:
    p = StopParams(min_trail_abs=5.0)
    ts = TrailingStop(p, long=True, entry_price=100.0)
    # peak 110: min(110*0.985 = 108.35, 110-5 = 105) = 105 exactly
    assert longq(ts, 110.0) == Decision(A, 105.0, 110.0, 110.0)
    # peak 1000: min(985, 995) = 985 -> the percentage dominates again
    d = longq(ts, 1000.0)
    assert d.action is U and d.stop == long_stop(p, 1000.0) == pytest.approx(985.0)
    assert d.stop < 995.0


def test_short_min_trail_abs_dominates_small_prices() -> None:
    p = StopParams(min_trail_abs=5.0)
    ts = TrailingStop(p, long=False, entry_price=100.0)
    # trough 90: max(90*1.015 = 91.35, 90+5 = 95) = 95 exactly
    assert shortq(ts, 90.0) == Decision(A, 95.0, 90.0, 90.0)
    assert shortq(ts, 95.0) == Decision(T, 95.0, 95.0, 90.0)  # p >= stop


# ------------------------------------------------------------------- breaches


def test_long_breach_exactly_at_stop() -> None:
    ts = TrailingStop(EXACT, long=True, entry_price=100.0)
    longq(ts, 200.0)  # stop 100
    assert longq(ts, up(100.0)) is None
    assert ts.breaches == 0
    assert longq(ts, 100.0) == Decision(T, 100.0, 100.0, 200.0)
    assert ts.triggered


def test_short_breach_exactly_at_stop() -> None:
    ts = TrailingStop(EXACT_SHORT, long=False, entry_price=100.0)
    shortq(ts, 50.0)  # stop 75
    assert shortq(ts, down(75.0)) is None
    assert shortq(ts, 75.0) == Decision(T, 75.0, 75.0, 50.0)


def test_confirm_run_broken_by_non_breaching_quote() -> None:
    p = StopParams(activation_pct=100.0, trailing_pct=50.0, min_move_pct=50.0, confirm_quotes=3)
    ts = TrailingStop(p, long=True, entry_price=100.0)
    longq(ts, 200.0)  # stop 100
    assert longq(ts, 100.0) is None and ts.breaches == 1
    assert longq(ts, 90.0) is None and ts.breaches == 2
    assert longq(ts, 101.0) is None and ts.breaches == 0  # 101 > 100 resets
    assert longq(ts, 100.0) is None and ts.breaches == 1
    assert longq(ts, 99.0) is None and ts.breaches == 2
    d = longq(ts, 98.0)
    assert d == Decision(T, 100.0, 98.0, 200.0)


@pytest.mark.parametrize(
    "bad",
    [(None, None, None), (NAN, NAN, NAN), (101.0, 99.0, 99.0), (-1.0, 5.0, 5.0), (0.0, 0.0, 0.0)],
)
def test_confirm_run_not_broken_by_ignored_quote(bad: tuple[float | None, ...]) -> None:
    p = StopParams(activation_pct=100.0, trailing_pct=50.0, min_move_pct=50.0, confirm_quotes=3)
    ts = TrailingStop(p, long=True, entry_price=100.0)
    longq(ts, 200.0)  # stop 100
    assert longq(ts, 100.0) is None and ts.breaches == 1
    assert isinstance(ts.on_quote(*bad), QuoteFault)
    assert ts.breaches == 1 and ts.ignored == 1
    assert longq(ts, 100.0) is None and ts.breaches == 2
    assert isinstance(ts.on_quote(*bad), QuoteFault)
    assert longq(ts, 100.0) == Decision(T, 100.0, 100.0, 200.0)
    assert ts.ignored == 2


@pytest.mark.parametrize("long", [True, False])
def test_trigger_exactly_once_and_nothing_after(long: bool) -> None:
    p = EXACT if long else EXACT_SHORT
    ts = TrailingStop(p, long=long, entry_price=100.0)
    q = longq if long else shortq
    q(ts, 200.0 if long else 50.0)
    d = q(ts, 100.0 if long else 75.0)
    assert d.action is T
    frozen = state(ts)
    # further breaches, new extremes and huge moves: nothing, state frozen
    for price in [50.0, 1000.0, 100.0, 1e6] if long else [200.0, 1.0, 75.0, 1e-3]:
        assert q(ts, price) is None
        assert state(ts) == frozen
    # an invalid quote after the trigger is still counted as ignored
    before = ts.ignored
    assert isinstance(ts.on_quote(None, None, None), QuoteFault)
    assert ts.ignored == before + 1 and state(ts) == frozen


def test_not_active_never_breaches() -> None:
    # Before activation there is no stop: a collapse is no trigger.
    ts = TrailingStop(StopParams(), long=True, entry_price=100.0)
    for price in (90.0, 50.0, 1.0):
        assert longq(ts, price) is None
    assert not ts.active and not ts.triggered and ts.breaches == 0


# -------------------------------------------------------------- bad quotes


def _primed(long: bool, params: StopParams) -> TrailingStop:
    """Active, one breach counted (confirm 3): long stop 100 peak 200; short stop 75 trough 50."""
    ts = TrailingStop(params, long=long, entry_price=100.0)
    x0, x1 = (200.0, 100.0) if long else (50.0, 75.0)
    # bid = ask = last = x: the reference is x whatever the source, spread 0
    assert ts.on_quote(x0, x0, x0).action is A
    assert ts.on_quote(x1, x1, x1) is None
    assert ts.breaches == 1
    return ts


def _params(source: PriceSource, cap: float | None = None) -> StopParams:
    return StopParams(
        activation_pct=100.0,
        trailing_pct=50.0,
        min_move_pct=50.0,
        confirm_quotes=3,
        max_spread_pct=cap,
        price_source=source,
    )


def _short_params(source: PriceSource, cap: float | None = None) -> StopParams:
    return StopParams(
        activation_pct=50.0,
        trailing_pct=50.0,
        min_move_pct=50.0,
        confirm_quotes=3,
        max_spread_pct=cap,
        price_source=source,
    )


E, M, L = PriceSource.EXIT, PriceSource.MID, PriceSource.LAST

IGNORED = [
    # (long, source, cap, bid, ask, last)  -- why it is ignored
    (True, E, None, None, 150.0, 150.0),  # exit ref (bid) missing
    (True, E, None, NAN, 150.0, 150.0),  # not finite
    (True, E, None, INF, INF, 150.0),  # +inf (both sides inf: not "both finite")
    (True, E, None, -INF, 150.0, 150.0),
    (True, E, None, 0.0, 150.0, 150.0),  # <= 0
    (True, E, None, -5.0, 150.0, 150.0),  # < 0
    (True, E, None, 151.0, 150.0, 150.0),  # crossed
    (False, E, None, 40.0, None, 40.0),  # short exit ref (ask) missing
    (False, E, None, 40.0, NAN, 40.0),
    (False, E, None, 40.0, INF, 40.0),
    (False, E, None, None, 0.0, 40.0),
    (False, E, None, None, -1.0, 40.0),
    (False, E, None, 61.0, 60.0, 60.0),  # crossed
    (True, M, None, None, 150.0, 150.0),  # mid needs both sides
    (True, M, None, 150.0, None, 150.0),
    (True, M, None, NAN, 150.0, 150.0),
    (True, M, None, -10.0, 10.0, 150.0),  # mid = 0
    (True, M, None, -20.0, 10.0, 150.0),  # mid = -5
    (True, M, None, 151.0, 150.0, 150.0),  # crossed (mid 150.5 would be valid)
    (False, M, None, 60.0, INF, 60.0),  # mid = inf
    (True, L, None, 150.0, 150.0, None),  # last missing
    (True, L, None, 150.0, 150.0, NAN),
    (True, L, None, 150.0, 150.0, INF),
    (True, L, None, 150.0, 150.0, 0.0),
    (True, L, None, 150.0, 150.0, -1.0),
    (True, L, None, 151.0, 150.0, 150.0),  # crossed whatever the source
    (False, L, None, 61.0, 60.0, 60.0),
    # spread cap set (12.5 %): either side missing, not finite or <= 0
    (True, L, 12.5, None, 150.0, 150.0),
    (True, L, 12.5, 150.0, None, 150.0),
    (True, L, 12.5, NAN, 150.0, 150.0),
    (True, L, 12.5, 150.0, INF, 150.0),
    (True, L, 12.5, 0.0, 150.0, 150.0),
    (True, L, 12.5, -1.0, 150.0, 150.0),
    (False, E, 12.5, None, 60.0, 60.0),  # short exit: ref fine, bid missing
    (False, E, 12.5, 0.0, 60.0, 60.0),
    # bid 60 ask 68: mid 64, (68-60)/64*100 = 12.5 exactly; over a cap just below
    (True, L, down(12.5), 60.0, 68.0, 150.0),
    (True, E, down(12.5), 60.0, 68.0, 150.0),
    (False, E, down(12.5), 60.0, 68.0, 150.0),
    (True, M, 1.0, 60.0, 68.0, 150.0),
]


@pytest.mark.parametrize(("long", "source", "cap", "bid", "ask", "last"), IGNORED)
def test_invalid_quote_is_counted_and_changes_nothing(
    long: bool,
    source: PriceSource,
    cap: float | None,
    bid: float | None,
    ask: float | None,
    last: float | None,
) -> None:
    params = _params(source, cap) if long else _short_params(source, cap)
    ts = _primed(long, params)
    before = state(ts)
    r = ts.on_quote(bid, ask, last)
    assert isinstance(r, QuoteFault)  # not a Decision, not acted on
    assert state(ts) == before
    assert ts.ignored == 1
    # the ignored quote did not break the run: two more breaches trigger
    x1 = 100.0 if long else 75.0
    assert ts.on_quote(x1, x1, x1) is None
    assert ts.on_quote(x1, x1, x1).action is T


ACCEPTED = [
    # Other bad fields do not matter (no cap), and a spread exactly at the cap passes.
    (True, E, None, 150.0, None, NAN),
    (True, E, None, 150.0, INF, None),  # ask inf: not both finite, so not crossed
    (True, E, None, 150.0, -INF, None),
    (False, E, None, None, 60.0, NAN),
    (False, E, None, 0.0, 60.0, None),
    (False, E, None, -3.0, 60.0, None),
    (True, L, None, None, NAN, 150.0),
    (True, L, None, 0.0, -INF, 150.0),
    (True, M, None, -10.0, 30.0, None),  # mid (−10+30)/2 = 10 > 0: the reference is valid
    (True, L, 12.5, 60.0, 68.0, 150.0),  # spread exactly 12.5 % = cap: not over
    (True, M, 12.5, 60.0, 68.0, None),
    (False, E, 12.5, 60.0, 68.0, None),
]


@pytest.mark.parametrize(("long", "source", "cap", "bid", "ask", "last"), ACCEPTED)
def test_quote_with_other_bad_fields_is_accepted(
    long: bool,
    source: PriceSource,
    cap: float | None,
    bid: float | None,
    ask: float | None,
    last: float | None,
) -> None:
    params = _params(source, cap) if long else _short_params(source, cap)
    ts = _primed(long, params)
    r = ts.on_quote(bid, ask, last)
    assert not isinstance(r, QuoteFault)
    assert ts.ignored == 0


# ------------------------------------------------------------- price sources


@pytest.mark.parametrize(
    ("source", "long", "expected"),
    [
        (E, True, 90.0),  # bid
        (E, False, 95.0),  # ask
        (M, True, 92.5),  # (90+95)/2
        (M, False, 92.5),
        (L, True, 97.0),  # last
        (L, False, 97.0),
    ],
)
def test_reference_price_per_source(source: PriceSource, long: bool, expected: float) -> None:
    # activation 0: the first accepted quote activates and reports its reference.
    ts = TrailingStop(
        StopParams(activation_pct=0.0, price_source=source), long=long, entry_price=100.0
    )
    d = ts.on_quote(90.0, 95.0, 97.0)
    assert d.action is A and d.ref_price == expected
    # peak = max(100, p) for a long, trough = min(100, p) for a short
    assert d.extreme == (100.0 if long else expected)


def test_mid_source_breach_uses_mid() -> None:
    p = StopParams(activation_pct=100.0, trailing_pct=50.0, price_source=M)
    ts = TrailingStop(p, long=True, entry_price=100.0)
    assert ts.on_quote(199.0, 201.0, None).action is A  # mid 200 -> stop 100
    assert ts.on_quote(99.0, 102.0, None) is None  # mid 100.5 > 100
    d = ts.on_quote(98.0, 102.0, 1000.0)  # mid 100 <= 100
    assert d == Decision(T, 100.0, 100.0, 200.0)


def test_last_source_ignores_bid_and_ask() -> None:
    p = StopParams(activation_pct=100.0, trailing_pct=50.0, price_source=L)
    ts = TrailingStop(p, long=True, entry_price=100.0)
    assert ts.on_quote(1.0, 2.0, 200.0) == Decision(A, 100.0, 200.0, 200.0)
    assert ts.on_quote(500.0, 600.0, 100.0) == Decision(T, 100.0, 100.0, 200.0)  # last 100 <= 100


# --------------------------------------------------------------- properties
#
# A reference model written from DESIGN §3 alone; the code must agree with it
# decision for decision (same formulas in the same order, so bit for bit).


def _ok(x: float | None) -> bool:
    return x is not None and math.isfinite(x) and x > 0


def model_reference(p: StopParams, long: bool, bid, ask, last) -> float | None:
    if (
        bid is not None
        and ask is not None
        and math.isfinite(bid)
        and math.isfinite(ask)
        and bid > ask
    ):
        return None
    if p.price_source is E:
        ref = bid if long else ask
    elif p.price_source is M:
        ref = None if bid is None or ask is None else (bid + ask) / 2
    else:
        ref = last
    if not _ok(ref):
        return None
    if p.max_spread_pct is not None:
        if not (_ok(bid) and _ok(ask)):
            return None
        if (ask - bid) / ((bid + ask) / 2) * 100 > p.max_spread_pct:
            return None
    return ref


class ModelStop:
    def __init__(self, p: StopParams, long: bool, entry: float) -> None:
        self.p, self.long, self.entry = p, long, entry
        self.extreme = entry
        self.active = False
        self.stop: float | None = None
        self.run = 0
        self.triggered = False
        self.ignored = 0

    def quote(self, bid, ask, last):
        p = self.p
        ref = model_reference(p, self.long, bid, ask, last)
        if ref is None:
            self.ignored += 1
            return "ignored"
        if self.triggered:
            return None
        if self.long:
            self.extreme = max(self.extreme, ref)
            cand = long_stop(p, self.extreme)
        else:
            self.extreme = min(self.extreme, ref)
            cand = short_stop(p, self.extreme)
        if not self.active:
            if (self.long and self.extreme >= long_threshold(p, self.entry)) or (
                not self.long and self.extreme <= short_threshold(p, self.entry)
            ):
                self.active, self.stop = True, cand
                return (A, cand, ref, self.extreme)
            return None
        event = None
        if self.long:
            moved = cand > self.stop and cand >= self.stop * (1 + p.min_move_pct / 100)
        else:
            moved = cand < self.stop and cand <= self.stop * (1 - p.min_move_pct / 100)
        if moved:
            self.stop = cand
            event = (U, cand, ref, self.extreme)
        breach = ref <= self.stop if self.long else ref >= self.stop
        if not breach:
            self.run = 0
            return event
        self.run += 1
        if event is None and self.run >= p.confirm_quotes:
            self.triggered = True
            return (T, self.stop, ref, self.extreme)
        return event


def _as_tuple(r: object) -> object:
    if isinstance(r, QuoteFault):
        return "ignored"
    if isinstance(r, Decision):
        return (r.action, r.stop, r.ref_price, r.extreme)
    return r


params_st = st.builds(
    StopParams,
    activation_pct=st.sampled_from([0.0, 0.5, 2.0, 5.0]),
    trailing_pct=st.sampled_from([0.5, 1.5, 3.0, 10.0]),
    min_move_pct=st.sampled_from([0.0, 0.5, 2.0]),
    confirm_quotes=st.integers(1, 3),
    max_spread_pct=st.sampled_from([None, 1.0, 5.0]),
    min_trail_abs=st.sampled_from([0.0, 1.0, 4.0]),
    price_source=st.sampled_from(list(PriceSource)),
)
bad_value = st.sampled_from([None, NAN, INF, -INF, 0.0, -1.0])
price = st.integers(8000, 12000).map(lambda c: c / 100)


@st.composite
def quote_st(draw: st.DrawFn) -> tuple[float | None, float | None, float | None]:
    mid = draw(price)
    half = draw(st.sampled_from([0.0, 0.01, 0.05, 0.5, 3.0]))
    bid, ask, last = mid - half, mid + half, draw(price)
    if draw(st.integers(0, 9)) == 0:
        bid, ask = ask, bid  # crossed (or equal)
    fields = [bid, ask, last]
    for i in range(3):
        if draw(st.integers(0, 11)) == 0:
            fields[i] = draw(bad_value)
    return fields[0], fields[1], fields[2]


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(p=params_st, long=st.booleans(), quotes=st.lists(quote_st(), max_size=40))
def test_code_agrees_with_design_model(p: StopParams, long: bool, quotes: list) -> None:
    ts = TrailingStop(p, long=long, entry_price=100.0)
    model = ModelStop(p, long, 100.0)
    for q in quotes:
        assert _as_tuple(ts.on_quote(*q)) == model.quote(*q), q
        assert (ts.active, ts.stop, ts.extreme, ts.triggered, ts.ignored) == (
            model.active,
            model.stop,
            model.extreme,
            model.triggered,
            model.ignored,
        )


@SETTINGS
@given(p=params_st, long=st.booleans(), quotes=st.lists(quote_st(), max_size=40))
def test_properties_over_random_quotes(p: StopParams, long: bool, quotes: list) -> None:
    ts = TrailingStop(p, long=long, entry_price=100.0)
    triggers = 0
    for q in quotes:
        before = state(ts)
        ignored_before = ts.ignored
        r = ts.on_quote(*q)
        if isinstance(r, QuoteFault):
            # an invalid quote: counted, no decision, no state change at all
            assert state(ts) == before and ts.ignored == ignored_before + 1
            assert model_reference(p, long, *q) is None
            continue
        assert ts.ignored == ignored_before
        assert model_reference(p, long, *q) is not None
        old_stop = before[1]
        if old_stop is not None:
            # the stop never moves against the position
            assert (ts.stop >= old_stop) if long else (ts.stop <= old_stop)
        if isinstance(r, Decision):
            triggers += r.action is T
            assert r.stop == ts.stop
            if r.action is A:
                assert not before[0]
            else:
                assert before[0]  # UPDATE/TRIGGER only when already active
        if before[4]:
            assert r is None and state(ts) == before
    assert triggers <= 1
    assert triggers == int(ts.triggered)


# Mirror: a short with entry 100 fed 200-p must act exactly like a long with
# entry 100 fed p, when every rule is mirror-symmetric around 100. That needs
# additive trailing (min_trail_abs dominates a tiny trailing_pct: peak*1e-8 <
# 1 <= abs for any peak <= 200), min_move_pct 0, symmetric thresholds
# (100*(1+a/100) + 100*(1-a/100) == 200 exactly) and no spread cap. Integer
# and half-integer prices keep 200-p exact.


@settings(max_examples=150, deadline=None)
@given(
    activation=st.sampled_from([0.0, 2.0, 5.0, 20.0, 25.0, 50.0]),
    abs_trail=st.integers(1, 20).map(float),
    confirm=st.integers(1, 3),
    source=st.sampled_from(list(PriceSource)),
    steps=st.lists(
        st.tuples(st.integers(5, 190), st.integers(0, 5), st.integers(5, 190), st.integers(0, 8)),
        max_size=40,
    ),
)
def test_short_mirrors_long(activation, abs_trail, confirm, source, steps) -> None:
    p = StopParams(
        activation_pct=activation,
        trailing_pct=1e-6,
        min_move_pct=0.0,
        confirm_quotes=confirm,
        min_trail_abs=abs_trail,
        price_source=source,
    )
    assume(long_threshold(p, 100.0) + short_threshold(p, 100.0) == 200.0)
    lg = TrailingStop(p, long=True, entry_price=100.0)
    sh = TrailingStop(p, long=False, entry_price=100.0)
    mirror = lambda x: None if x is None else 200.0 - x  # noqa: E731
    for bid_i, spread, last_i, bad in steps:
        bid, ask, last = float(bid_i), float(bid_i + spread), float(last_i)
        lq = [bid, ask, last]
        if bad < 3:
            lq[bad] = None  # a missing field, mirrored to the same role
        # long (bid, ask, last) <-> short (200-ask, 200-bid, 200-last)
        sq = (mirror(lq[1]), mirror(lq[0]), mirror(lq[2]))
        rl, rs = lg.on_quote(*lq), sh.on_quote(*sq)
        assert isinstance(rl, QuoteFault) == isinstance(rs, QuoteFault)
        assert isinstance(rl, Decision) == isinstance(rs, Decision)
        if isinstance(rl, Decision):
            assert rl.action is rs.action
            assert rs.stop == 200.0 - rl.stop
            assert rs.ref_price == 200.0 - rl.ref_price
            assert rs.extreme == 200.0 - rl.extreme
        assert (lg.active, lg.breaches, lg.triggered, lg.ignored) == (
            sh.active,
            sh.breaches,
            sh.triggered,
            sh.ignored,
        )
        assert sh.extreme == 200.0 - lg.extreme


# ------------------------------------------------------------ parameter ranges


@pytest.mark.parametrize(
    "kwargs",
    [
        {"activation_pct": -0.1},  # >= 0
        {"trailing_pct": 0.0},  # > 0
        {"trailing_pct": -1.0},
        {"min_move_pct": -0.5},  # >= 0
        {"confirm_quotes": 0},  # >= 1
        {"min_trail_abs": -1.0},  # >= 0
        {"activation_pct": NAN},
        {"trailing_pct": INF},
    ],
)
def test_out_of_range_parameters_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        StopParams(**kwargs)


def test_edge_parameters_are_accepted() -> None:
    StopParams(activation_pct=0.0, min_move_pct=0.0, confirm_quotes=1, min_trail_abs=0.0)

"""The circuit breaker policy against DESIGN §5, read independently.

Facts copied from the contract (DESIGN §5):

* defaults: failure_threshold 5, failure_window_s 60, open_timeout_s 300,
  half_open_max_tries 3, backoff_multiplier 1.0, max_open_timeout_s 3600,
  max_trips_per_day off; kinds weight 1.0, trip false, except margin (trip);
* CLOSED: a failure adds its weight at t0 and counts while now - t0 <
  failure_window_s; counted weights >= threshold, or a trip kind -> OPEN. A
  success in CLOSED or OPEN changes nothing;
* OPEN: entries denied (breaker_open), risk-reducing orders allowed; failures
  change nothing; exactly open_timeout_s * backoff_multiplier^(n-1) after
  opening (n = automatic trips since the last CLOSED, HALF_OPEN -> OPEN
  included; capped at max_open_timeout_s) -> HALF_OPEN by itself; an event at
  exactly the due time sees HALF_OPEN;
* HALF_OPEN: each allowed non-risk-reducing entry takes one of
  half_open_max_tries permits (never returned); none left ->
  breaker_half_open_busy; half_open_max_tries successes (any success; counts
  start at 0 on each entry into HALF_OPEN) -> CLOSED (window, trips, permits
  cleared); any failure -> OPEN;
* operator: force-open (OPEN, no timer, until reset); reset (-> CLOSED,
  everything cleared, the day's trip count too). The automatic trip that
  reaches max_trips_per_day in one UTC day (floor(t/86400)) latches OPEN (no
  timer) until reset; closing does not clear the day's count. An output line
  only when the state changes;
* every transition carries its cause: failures by kind in the window, the
  tipping failure (kind, code, detail), or the operator;
* after a restart the breaker is never less strict than before.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.circuit_breaker import BreakerParams, CircuitBreaker, KindPolicy
from actors.messages import BreakerState, Failure, FailureKind, ReasonCode

C, O, H = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN  # noqa: E741
K = FailureKind
BUSY, OPEN_CODE = ReasonCode.BREAKER_HALF_OPEN_BUSY, ReasonCode.BREAKER_OPEN


def fail(
    cb: CircuitBreaker,
    t: float,
    kind: FailureKind = K.OTHER,
    code: int | None = None,
    detail: str = "",
):
    return cb.failure(Failure(t, kind, code, detail))


def moves(transitions) -> list[tuple[float, BreakerState, BreakerState]]:
    return [(x.t, x.from_state, x.to_state) for x in transitions]


def trip_default(cb: CircuitBreaker, t: float = 0.0) -> None:
    """Five unit failures at t..t+4 reach the default threshold 5."""
    for i in range(4):
        assert fail(cb, t + i) == []
    assert moves(fail(cb, t + 4)) == [(t + 4, C, O)]


def by_kind(transition) -> dict[FailureKind, float]:
    return dict(transition.cause.failures_by_kind)


# ---------------------------------------------------------------- CLOSED


def test_threshold_reached_exactly_opens(breaker: CircuitBreaker) -> None:
    # 1+1+1+1 = 4 < 5 stays closed; the fifth makes 5 >= 5
    trip_default(breaker, 0.0)
    assert breaker.state is O


def test_failure_exactly_window_old_no_longer_counts(breaker: CircuitBreaker) -> None:
    # failures at 0,1,2,3 then at 60: 60-0 = 60 is not < 60, so the first is
    # out: counted 1,2,3,60 = 4 < 5
    for t in (0.0, 1.0, 2.0, 3.0):
        fail(breaker, t)
    assert fail(breaker, 60.0) == []
    assert breaker.state is C
    # at 60.5: 60.5-1 = 59.5 < 60, so 1,2,3,60,60.5 = 5 -> OPEN
    assert moves(fail(breaker, 60.5)) == [(60.5, C, O)]


def test_failure_just_inside_window_counts(breaker: CircuitBreaker) -> None:
    for t in (0.0, 1.0, 2.0, 3.0):
        fail(breaker, t)
    # 59.5 - 0 = 59.5 < 60: all five count
    assert moves(fail(breaker, 59.5)) == [(59.5, C, O)]


def test_weights_are_summed() -> None:
    kinds = {K.CONNECTIVITY: KindPolicy(weight=2.5), K.SLIPPAGE: KindPolicy(weight=0.5)}
    cb = CircuitBreaker(BreakerParams(kinds=kinds))
    assert fail(cb, 0.0, K.CONNECTIVITY) == []  # 2.5
    assert fail(cb, 1.0, K.SLIPPAGE) == []  # 3.0
    assert fail(cb, 2.0, K.OTHER) == []  # 4.0 (unlisted kind: weight 1.0)
    assert fail(cb, 3.0, K.SLIPPAGE) == []  # 4.5
    out = fail(cb, 4.0, K.SLIPPAGE)  # 5.0 >= 5
    assert moves(out) == [(4.0, C, O)]
    assert by_kind(out[0]) == {K.CONNECTIVITY: 2.5, K.SLIPPAGE: 1.5, K.OTHER: 1.0}


def test_weights_reach_threshold_as_numbers_not_as_rounding_residue() -> None:
    # weight 0.1 (as configured) ten times within the window reaches a
    # threshold of 1.0: 10 x 0.1 = 1.0 >= 1.0 -> OPEN on the tenth failure.
    # (Even in binary: 10 x float(0.1) = 1.0000000000000000555 >= 1.0; only a
    # naive left-to-right float sum, 0.9999999999999999, falls short.)
    p = BreakerParams(failure_threshold=1.0, kinds={K.SLIPPAGE: KindPolicy(weight=0.1)})
    cb = CircuitBreaker(p)
    for i in range(9):
        assert fail(cb, float(i), K.SLIPPAGE) == []
    assert moves(fail(cb, 9.0, K.SLIPPAGE)) == [(9.0, C, O)]


def test_two_heavy_failures_trip() -> None:
    cb = CircuitBreaker(BreakerParams(kinds={K.CONNECTIVITY: KindPolicy(weight=2.5)}))
    assert fail(cb, 0.0, K.CONNECTIVITY) == []
    assert moves(fail(cb, 0.0, K.CONNECTIVITY)) == [(0.0, C, O)]  # 2.5+2.5 = 5


def test_margin_trips_at_once_by_default(breaker: CircuitBreaker) -> None:
    out = fail(breaker, 10.0, K.MARGIN, 201, "insufficient margin")
    assert moves(out) == [(10.0, C, O)]
    f = out[0].cause.failure
    assert (f.kind, f.code, f.detail) == (K.MARGIN, 201, "insufficient margin")


def test_margin_still_trips_when_other_kinds_are_configured() -> None:
    cb = CircuitBreaker(BreakerParams(kinds={K.DATA_FEED: KindPolicy(weight=2.0)}))
    assert moves(fail(cb, 0.0, K.MARGIN)) == [(0.0, C, O)]


def test_trip_kind_configurable() -> None:
    kinds = {K.MARGIN: KindPolicy(trip=False), K.DATA_FEED: KindPolicy(trip=True)}
    cb = CircuitBreaker(BreakerParams(kinds=kinds))
    assert fail(cb, 0.0, K.MARGIN) == []  # weight 1, no trip
    assert cb.state is C
    assert moves(fail(cb, 1.0, K.DATA_FEED)) == [(1.0, C, O)]


def test_success_in_closed_changes_nothing(breaker: CircuitBreaker) -> None:
    for t in (0.0, 1.0, 2.0, 3.0):
        fail(breaker, t)
    assert breaker.success(3.5) == []
    assert breaker.state is C
    # the window was not cleared by the success: the fifth failure trips
    assert moves(fail(breaker, 4.0)) == [(4.0, C, O)]


def test_closed_admits_everything(breaker: CircuitBreaker) -> None:
    for entry in (True, False):
        assert breaker.admit(0.0, entry=entry, wants_permit=True) == (None, [])


# ---------------------------------------------------------------- OPEN


def test_open_ignores_failures_and_successes(breaker: CircuitBreaker) -> None:
    trip_default(breaker, 0.0)  # open at 4, due 304
    due = breaker.due
    assert due == 304.0
    for t in (5.0, 6.0, 100.0):
        assert fail(breaker, t) == []
        assert fail(breaker, t, K.MARGIN) == []
        assert breaker.success(t) == []
    assert breaker.state is O and breaker.due == due


def test_open_denies_entries_allows_risk_reducing(breaker: CircuitBreaker) -> None:
    trip_default(breaker, 0.0)
    assert breaker.admit(10.0, entry=True, wants_permit=True) == (OPEN_CODE, [])
    assert breaker.admit(10.0, entry=True, wants_permit=False) == (OPEN_CODE, [])
    assert breaker.admit(10.0, entry=False, wants_permit=True) == (None, [])


def test_timer_fires_exactly_at_open_timeout(breaker: CircuitBreaker) -> None:
    trip_default(breaker, 1000.0)  # opens at 1004 -> due 1004+300 = 1304
    assert breaker.due == 1304.0
    assert breaker.advance(math.nextafter(1304.0, 0.0)) == []
    assert breaker.state is O
    out = breaker.advance(1304.0)
    assert moves(out) == [(1304.0, O, H)]
    assert breaker.advance(1304.0) == []  # only once


def test_late_advance_reports_the_due_time(breaker: CircuitBreaker) -> None:
    trip_default(breaker, 0.0)  # due 304
    assert moves(breaker.advance(5000.0)) == [(304.0, O, H)]


def test_admit_at_exactly_due_sees_half_open(breaker: CircuitBreaker) -> None:
    trip_default(breaker, 0.0)  # due 304
    code, out = breaker.admit(304.0, entry=True, wants_permit=True)
    assert code is None
    assert moves(out) == [(304.0, O, H)]


def test_failure_at_exactly_due_reopens(breaker: CircuitBreaker) -> None:
    trip_default(breaker, 0.0)  # due 304
    out = fail(breaker, 304.0)
    assert moves(out) == [(304.0, O, H), (304.0, H, O)]


def test_success_at_exactly_due_counts_in_half_open() -> None:
    cb = CircuitBreaker(BreakerParams(half_open_max_tries=1))
    trip_default(cb, 0.0)  # due 304
    assert moves(cb.success(304.0)) == [(304.0, O, H), (304.0, H, C)]


def test_backoff_growth_and_cap() -> None:
    p = BreakerParams(open_timeout_s=300.0, backoff_multiplier=2.0, max_open_timeout_s=1000.0)
    cb = CircuitBreaker(p)
    fail(cb, 0.0, K.MARGIN)  # n=1: 300*2^0 = 300 -> due 300
    assert cb.due == 300.0
    out = fail(cb, 300.0)  # timer then failure in HALF_OPEN: n=2, 300*2 = 600
    assert moves(out) == [(300.0, O, H), (300.0, H, O)]
    assert cb.due == 900.0
    fail(cb, 900.0)  # n=3: 300*4 = 1200, capped at 1000 -> due 1900
    assert cb.due == 1900.0
    fail(cb, 1900.0)  # n=4: 2400 -> 1000
    assert cb.due == 2900.0
    # close through HALF_OPEN: the next trip starts again at n=1
    cb.advance(2900.0)
    for t in (2901.0, 2902.0, 2903.0):
        cb.success(t)
    assert cb.state is C
    fail(cb, 3000.0, K.MARGIN)
    assert cb.due == 3300.0


def test_backoff_multiplier_not_applied_to_first_trip() -> None:
    p = BreakerParams(open_timeout_s=100.0, backoff_multiplier=3.0, max_open_timeout_s=10_000.0)
    cb = CircuitBreaker(p)
    fail(cb, 50.0, K.MARGIN)
    assert cb.due == 150.0  # 100 * 3^0
    fail(cb, 150.0)
    assert cb.due == 450.0  # 150 + 100 * 3^1
    fail(cb, 450.0)
    assert cb.due == 1350.0  # 450 + 100 * 3^2


# ------------------------------------------------------------- HALF_OPEN


def _half_open(p: BreakerParams | None = None) -> CircuitBreaker:
    cb = CircuitBreaker(p or BreakerParams())
    fail(cb, 0.0, K.MARGIN)  # due 300
    assert moves(cb.advance(300.0)) == [(300.0, O, H)]
    return cb


def test_half_open_permits_then_busy() -> None:
    cb = _half_open()
    for _ in range(3):
        assert cb.admit(301.0, entry=True, wants_permit=True) == (None, [])
    assert cb.admit(302.0, entry=True, wants_permit=True) == (BUSY, [])
    assert cb.admit(302.0, entry=True, wants_permit=False) == (BUSY, [])
    # risk-reducing orders pass and take nothing
    assert cb.admit(302.0, entry=False, wants_permit=True) == (None, [])


def test_permits_are_not_returned_by_successes() -> None:
    cb = _half_open()
    for _ in range(3):
        cb.admit(301.0, entry=True, wants_permit=True)
    cb.success(302.0)
    cb.success(303.0)
    assert cb.state is H
    assert cb.admit(304.0, entry=True, wants_permit=True) == (BUSY, [])


def test_denied_by_limits_and_risk_reducing_take_no_permit() -> None:
    cb = _half_open()
    for _ in range(10):
        assert cb.admit(301.0, entry=True, wants_permit=False) == (None, [])
        assert cb.admit(301.0, entry=False, wants_permit=True) == (None, [])
    # all three permits are still there
    for _ in range(3):
        assert cb.admit(302.0, entry=True, wants_permit=True) == (None, [])
    assert cb.admit(302.0, entry=True, wants_permit=True)[0] is BUSY


def test_successes_close_half_open() -> None:
    cb = _half_open()
    assert cb.success(301.0) == []
    assert cb.success(302.0) == []
    out = cb.success(303.0)  # the third: any success counts, no permit needed
    assert moves(out) == [(303.0, H, C)]


def test_closing_clears_window_trips_and_permits() -> None:
    p = BreakerParams(failure_window_s=100_000.0, backoff_multiplier=2.0)
    cb = CircuitBreaker(p)
    for t in (0.0, 1.0, 2.0, 3.0):
        fail(cb, t)  # 4 in a long window
    fail(cb, 4.0)  # OPEN at 4, due 304
    cb.advance(304.0)
    for t in (305.0, 306.0, 307.0):
        cb.success(t)
    assert cb.state is C
    # window cleared: 4 new failures (within 100000 s of the old ones) do not trip
    for t in (400.0, 401.0, 402.0, 403.0):
        assert fail(cb, t) == []
    assert cb.state is C
    fail(cb, 404.0)
    # trips cleared: n = 1 again, no backoff
    assert cb.due == 704.0


@pytest.mark.parametrize("kind", [k for k in FailureKind if not k.internal])
def test_any_failure_reopens_half_open(kind: FailureKind) -> None:
    # every kind weighs 0 and only margin trips (to open it in the first place):
    # in HALF_OPEN any failure at all reopens
    kinds = {k: KindPolicy(weight=0.0, trip=k is K.MARGIN) for k in FailureKind}
    cb = _half_open(BreakerParams(kinds=kinds))
    out = fail(cb, 310.0, kind, 7, "x")
    assert moves(out) == [(310.0, H, O)]
    assert out[0].cause.failure == Failure(310.0, kind, 7, "x")


def test_half_open_counts_restart_on_each_entry() -> None:
    cb = _half_open()  # entered at 300
    cb.admit(301.0, entry=True, wants_permit=True)
    cb.admit(301.0, entry=True, wants_permit=True)
    cb.success(302.0)
    cb.success(302.0)
    fail(cb, 303.0)  # n=2, backoff 1.0: due 603
    assert cb.due == 603.0
    cb.advance(603.0)
    # fresh: three permits and three successes needed
    for _ in range(3):
        assert cb.admit(604.0, entry=True, wants_permit=True)[0] is None
    assert cb.success(605.0) == []
    assert cb.success(606.0) == []
    assert moves(cb.success(607.0)) == [(607.0, H, C)]


# -------------------------------------------------------------- operator


def test_force_open_from_closed_is_sticky(breaker: CircuitBreaker) -> None:
    out = breaker.force_open(10.0)
    assert moves(out) == [(10.0, C, O)]
    assert breaker.due is None
    assert breaker.advance(1e9) == []
    assert breaker.success(1e9) == []
    assert fail(breaker, 1e9) == []
    assert breaker.state is O
    assert breaker.admit(1e9, entry=True, wants_permit=True)[0] is OPEN_CODE
    assert breaker.force_open(1e9) == []  # no state change: no output line
    assert moves(breaker.reset(2e9)) == [(2e9, O, C)]
    assert breaker.reset(2e9) == []  # already CLOSED: no output line


def test_force_open_cancels_a_running_timer(breaker: CircuitBreaker) -> None:
    trip_default(breaker, 0.0)  # due 304
    assert breaker.force_open(100.0) == []  # already OPEN: no line
    assert breaker.due is None
    assert breaker.advance(10_000.0) == []
    assert breaker.state is O


def test_force_open_from_half_open() -> None:
    cb = _half_open()
    assert moves(cb.force_open(310.0)) == [(310.0, H, O)]
    assert cb.due is None and cb.advance(1e9) == []


def test_reset_from_open_and_half_open_clears_everything() -> None:
    p = BreakerParams(backoff_multiplier=2.0)
    cb = _half_open(p)
    fail(cb, 310.0)  # n=2 -> due 310 + 600
    assert moves(cb.reset(320.0)) == [(320.0, O, C)]
    fail(cb, 400.0, K.MARGIN)  # n back to 1
    assert cb.due == 700.0
    cb2 = _half_open()
    assert moves(cb2.reset(301.0)) == [(301.0, H, C)]


def test_reset_while_closed_clears_the_window(breaker: CircuitBreaker) -> None:
    for t in (0.0, 1.0, 2.0, 3.0):
        fail(breaker, t)
    assert breaker.reset(3.5) == []
    assert fail(breaker, 4.0) == []  # only 1 counted now
    assert breaker.state is C


# ------------------------------------------------------- trips per day


def _close_via_half_open(cb: CircuitBreaker, t: float) -> float:
    """From OPEN with a timer: wait for it, three successes; returns the time after."""
    assert cb.due is not None
    d = cb.due
    assert moves(cb.advance(d)) == [(d, O, H)]
    for i in range(1, 4):
        cb.success(d + i)
    assert cb.state is C
    return d + 4


def test_latch_on_the_trip_that_reaches_the_day_limit() -> None:
    cb = CircuitBreaker(BreakerParams(max_trips_per_day=2))
    out = fail(cb, 1000.0, K.MARGIN)  # day 0, trip 1
    assert not out[0].cause.latched and cb.due == 1300.0
    t = _close_via_half_open(cb, 1000.0)  # closing does not clear the count
    out = fail(cb, t + 10, K.MARGIN)  # day 0, trip 2 == limit -> latched
    assert moves(out) == [(t + 10, C, O)]
    assert out[0].cause.latched
    assert cb.due is None
    assert cb.advance(86400.0 * 10) == []
    assert cb.success(86400.0 * 10) == []
    assert cb.state is O
    assert moves(cb.reset(86400.0 * 10)) == [(864000.0, O, C)]


def test_half_open_failure_counts_toward_the_day() -> None:
    cb = CircuitBreaker(BreakerParams(max_trips_per_day=2))
    fail(cb, 0.0, K.MARGIN)  # trip 1, due 300
    out = fail(cb, 300.0)  # timer, then HALF_OPEN -> OPEN: trip 2 -> latch
    assert moves(out) == [(300.0, O, H), (300.0, H, O)]
    assert out[1].cause.latched and cb.due is None


def test_day_is_utc_floor_of_t_over_86400() -> None:
    cb = CircuitBreaker(BreakerParams(max_trips_per_day=2))
    fail(cb, 86399.0 - 400.0, K.MARGIN)  # day 0, trip 1; due 86299
    _close_via_half_open(cb, 0.0)  # closed at 86303
    out = fail(cb, 86400.0, K.MARGIN)  # floor(86400/86400) = 1: day 1, trip 1
    assert not out[0].cause.latched and cb.due == 86700.0
    _close_via_half_open(cb, 0.0)
    out = fail(cb, 86400.0 * 2 - 1.0, K.MARGIN)  # still day 1: trip 2 -> latch
    assert out[0].cause.latched and cb.due is None


def test_day_boundary_just_before_midnight() -> None:
    cb = CircuitBreaker(BreakerParams(max_trips_per_day=2))
    fail(cb, 100.0, K.MARGIN)  # day 0
    _close_via_half_open(cb, 0.0)
    out = fail(cb, math.nextafter(86400.0, 0.0), K.MARGIN)  # floor(<1) = 0: day 0 again
    assert out[0].cause.latched


def test_reset_clears_the_days_trip_count() -> None:
    cb = CircuitBreaker(BreakerParams(max_trips_per_day=2))
    fail(cb, 0.0, K.MARGIN)  # trip 1 of the day
    cb.reset(10.0)  # OPEN -> CLOSED and the day's count back to 0
    out = fail(cb, 20.0, K.MARGIN)  # would be trip 2 without the reset
    assert not out[0].cause.latched and cb.due == 320.0


def test_reset_while_closed_also_clears_the_days_count() -> None:
    cb = CircuitBreaker(BreakerParams(max_trips_per_day=2))
    fail(cb, 0.0, K.MARGIN)
    _close_via_half_open(cb, 0.0)
    assert cb.reset(400.0) == []  # CLOSED already: no line, but the count is cleared
    out = fail(cb, 500.0, K.MARGIN)
    assert not out[0].cause.latched and cb.due == 800.0


def test_single_trip_per_day_latches_first_trip() -> None:
    cb = CircuitBreaker(BreakerParams(max_trips_per_day=1))
    out = fail(cb, 0.0, K.MARGIN)
    assert out[0].cause.latched and cb.due is None


# ------------------------------------------------------------------ causes


def test_threshold_cause_lists_window_failures_by_kind(breaker: CircuitBreaker) -> None:
    fail(breaker, 0.0, K.DATA_FEED)  # falls out of the window by t=60
    for t in (50.0, 70.0, 80.0):
        fail(breaker, t, K.ORDER_REJECTED, 201, "rejected")
    fail(breaker, 90.0, K.SLIPPAGE)
    out = fail(breaker, 100.0, K.CONNECTIVITY, 1100, "link lost")
    # window at 100: t0 > 40 -> 50,70,80 (order_rejected), 90 (slippage), 100 (connectivity) = 5
    assert moves(out) == [(100.0, C, O)]
    assert by_kind(out[0]) == {K.ORDER_REJECTED: 3.0, K.SLIPPAGE: 1.0, K.CONNECTIVITY: 1.0}
    f = out[0].cause.failure
    assert (f.kind, f.code, f.detail, f.t) == (K.CONNECTIVITY, 1100, "link lost", 100.0)
    assert out[0].cause.latched is False


def test_trip_kind_cause(breaker: CircuitBreaker) -> None:
    fail(breaker, 0.0, K.OTHER)
    out = fail(breaker, 1.0, K.MARGIN, 2110, "margin")
    assert by_kind(out[0]) == {K.OTHER: 1.0, K.MARGIN: 1.0}
    assert out[0].cause.failure == Failure(1.0, K.MARGIN, 2110, "margin")


def test_operator_causes_name_the_operator(breaker: CircuitBreaker) -> None:
    out = breaker.force_open(5.0, operator="alice")
    assert out[0].cause.operator == "alice" and out[0].cause.failure is None
    out = breaker.reset(6.0, operator="bob")
    assert out[0].cause.operator == "bob" and out[0].cause.failure is None


def test_force_open_cause_lists_only_failures_still_in_the_window(breaker: CircuitBreaker) -> None:
    # A failure at 0 is out of the 60 s window at 100 (100-0 >= 60); one at 50
    # is in (100-50 < 60). Any failures-by-kind the force-open cause reports
    # must be "the failures by kind in the window" at the time of the transition.
    fail(breaker, 0.0, K.DATA_FEED)
    fail(breaker, 50.0, K.SLIPPAGE)
    out = breaker.force_open(100.0)
    assert moves(out) == [(100.0, C, O)]
    assert by_kind(out[0]) in ({}, {K.SLIPPAGE: 1.0})


# ----------------------------------------------------------- persistence


def _roundtrip(cb: CircuitBreaker) -> CircuitBreaker:
    return CircuitBreaker.restore(cb.params, json.loads(json.dumps(cb.snapshot())))


def _script(cb: CircuitBreaker, t0: float) -> list[object]:
    """A fixed tail of events; returns everything observable."""
    seen: list[object] = []
    for i in range(3):
        seen.append(moves(fail(cb, t0 + i)))
    seen.append(cb.admit(t0 + 5, entry=True, wants_permit=True))
    seen.append(moves(cb.advance(t0 + 400)))
    for _ in range(4):
        seen.append(cb.admit(t0 + 401, entry=True, wants_permit=True)[0])
    seen.append(moves(cb.success(t0 + 402)))
    seen.append(moves(fail(cb, t0 + 403)))
    seen.append(moves(cb.advance(t0 + 2000)))
    for i in range(3):
        seen.append(moves(cb.success(t0 + 2001 + i)))
    seen.append((cb.state, cb.due))
    return seen


@pytest.mark.parametrize("setup", ["closed", "window", "open", "half_open", "forced", "latched"])
def test_snapshot_restore_round_trip(setup: str) -> None:
    p = BreakerParams(max_trips_per_day=3, backoff_multiplier=2.0)
    cb = CircuitBreaker(p)
    if setup == "window":
        for t in (0.0, 1.0, 2.0):
            fail(cb, t, K.DATA_FEED, 1, "x")
    elif setup == "open":
        fail(cb, 0.0, K.MARGIN)
    elif setup == "half_open":
        fail(cb, 0.0, K.MARGIN)
        cb.advance(300.0)
        cb.admit(301.0, entry=True, wants_permit=True)
        cb.success(302.0)
    elif setup == "forced":
        cb.force_open(0.0)
    elif setup == "latched":
        fail(cb, 0.0, K.MARGIN)
        fail(cb, 300.0)
        fail(cb, 900.0)  # third trip of day 0 -> latched
        assert cb.due is None
    twin = _roundtrip(cb)
    assert (twin.state, twin.due) == (cb.state, cb.due)
    assert _script(twin, 10.0) == _script(cb, 10.0)


# ----------------------------------------------------------- properties


class ModelBreaker:
    """DESIGN §5 transcribed; returns (t, from, to) moves and admit codes."""

    def __init__(self, p: BreakerParams) -> None:
        self.p = p
        self.state = C
        self.window: list[tuple[float, float]] = []
        self.n = 0
        self.day: int | None = None
        self.day_trips = 0
        self.due: float | None = None
        self.permits = 0
        self.successes = 0
        self.latched = False

    def _timer(self, t: float, out: list) -> None:
        if self.state is O and self.due is not None and t >= self.due:
            out.append((self.due, O, H))
            self.state, self.due, self.permits, self.successes = H, None, 0, 0

    def _trip(self, t: float, out: list) -> None:
        p = self.p
        self.n += 1
        day = math.floor(t / 86400)
        if day != self.day:
            self.day, self.day_trips = day, 0
        self.day_trips += 1
        self.latched = p.max_trips_per_day is not None and self.day_trips >= p.max_trips_per_day
        duration = min(
            p.open_timeout_s * p.backoff_multiplier ** (self.n - 1), p.max_open_timeout_s
        )
        self.due = None if self.latched else t + duration
        out.append((t, self.state, O))
        self.state = O
        self.window = []

    def _close(self, t: float, out: list) -> None:
        out.append((t, self.state, C))
        self.state = C
        self._clear()

    def _clear(self) -> None:
        self.window, self.n, self.due, self.permits, self.successes = [], 0, None, 0, 0
        self.latched = False

    def failure(self, t: float, kind: FailureKind) -> list:
        out: list = []
        self._timer(t, out)
        pol = self.p.kinds.get(kind, KindPolicy(trip=kind is K.MARGIN))
        if self.state is C:
            self.window = [(t0, w) for t0, w in self.window if t - t0 < self.p.failure_window_s]
            self.window.append((t, pol.weight))
            if pol.trip or math.fsum(w for _, w in self.window) >= self.p.failure_threshold:
                self._trip(t, out)
        elif self.state is H:
            self._trip(t, out)
        return out

    def success(self, t: float) -> list:
        out: list = []
        self._timer(t, out)
        if self.state is H:
            self.successes += 1
            if self.successes >= self.p.half_open_max_tries:
                self._close(t, out)
        return out

    def admit(self, t: float, entry: bool, wants: bool):
        out: list = []
        self._timer(t, out)
        code = None
        if self.state is O and entry:
            code = OPEN_CODE
        elif self.state is H and entry:
            if self.permits >= self.p.half_open_max_tries:
                code = BUSY
            elif wants:
                self.permits += 1
        return code, out

    def force_open(self, t: float) -> list:
        out: list = []
        self._timer(t, out)
        if self.state is not O:
            out.append((t, self.state, O))
            self.state = O
        self.due = None
        return out

    def reset(self, t: float) -> list:
        out: list = []
        self._timer(t, out)
        self.day_trips = 0
        if self.state is not C:
            self._close(t, out)
        else:
            self._clear()
        return out

    def advance(self, t: float) -> list:
        out: list = []
        self._timer(t, out)
        return out


weights = st.sampled_from([0.0, 0.5, 1.0, 2.5])
kinds_st = st.dictionaries(
    st.sampled_from([k for k in FailureKind if not k.internal]),
    st.builds(KindPolicy, weight=weights, trip=st.booleans()),
    max_size=4,
)
breaker_params = st.builds(
    BreakerParams,
    failure_threshold=st.sampled_from([1.0, 2.5, 5.0]),
    failure_window_s=st.sampled_from([10.0, 60.0]),
    open_timeout_s=st.sampled_from([30.0, 300.0]),
    half_open_max_tries=st.integers(1, 3),
    backoff_multiplier=st.sampled_from([1.0, 1.5, 2.0]),
    max_open_timeout_s=st.sampled_from([100.0, 3600.0]),
    max_trips_per_day=st.sampled_from([None, 1, 2, 4]),
    kinds=kinds_st,
)
op_st = st.tuples(
    st.sampled_from(
        ["failure"] * 6 + ["success"] * 4 + ["admit"] * 4 + ["advance", "force_open", "reset"]
    ),
    st.sampled_from([0.0, 0.5, 1.0, 10.0, 30.0, 59.5, 60.0, 100.0, 300.0, 3600.0, 43200.0]),
    st.sampled_from([k for k in FailureKind if not k.internal]),
    st.booleans(),
    st.booleans(),
)
ALLOWED = {(C, O), (O, H), (H, C), (H, O), (O, C)}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(p=breaker_params, ops=st.lists(op_st, max_size=60))
def test_random_sequences_follow_design(p: BreakerParams, ops: list) -> None:
    cb = CircuitBreaker(p)
    model = ModelBreaker(p)
    t = 86400.0 * 19000 - 5000.0  # near a UTC midnight
    successes_since_half_open = 0
    for op, dt, kind, entry, wants in ops:
        t += dt
        if op == "failure":
            got, want = cb.failure(Failure(t, kind, 1, "d")), model.failure(t, kind)
        elif op == "success":
            got, want = cb.success(t), model.success(t)
        elif op == "admit":
            code, got = cb.admit(t, entry=entry, wants_permit=wants)
            mcode, want = model.admit(t, entry, wants)
            assert code == mcode
        elif op == "advance":
            got, want = cb.advance(t), model.advance(t)
        elif op == "force_open":
            got, want = cb.force_open(t), model.force_open(t)
        else:
            got, want = cb.reset(t), model.reset(t)
        assert moves(got) == want, (op, t)
        for x in got:
            assert (x.from_state, x.to_state) in ALLOWED
            assert x.from_state is not x.to_state  # a line only on a state change
            if (x.from_state, x.to_state) == (O, C):
                assert op == "reset"
            if x.to_state is H:
                successes_since_half_open = 0
                assert x.t <= t
            if (x.from_state, x.to_state) == (H, C) and op == "success":
                assert successes_since_half_open + 1 == p.half_open_max_tries
            if x.to_state is O and op == "failure":
                assert x.cause.failure is not None and x.cause.failure.t == t
                assert x.cause.latched == model.latched
        if op == "success" and cb.state is H:
            successes_since_half_open += 1
        assert cb.state is model.state
        assert cb.due == model.due
        # restore(snapshot) is never less strict: same state, same due (or none)
        twin = _roundtrip(cb)
        assert twin.state is cb.state and twin.due == cb.due


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(p=breaker_params, head=st.lists(op_st, max_size=30), tail=st.lists(op_st, max_size=30))
def test_restored_twin_behaves_identically(p: BreakerParams, head: list, tail: list) -> None:
    def run(cb: CircuitBreaker, ops: list, t: float) -> tuple[list, float]:
        seen = []
        for op, dt, kind, entry, wants in ops:
            t += dt
            if op == "failure":
                seen.append(moves(cb.failure(Failure(t, kind))))
            elif op == "success":
                seen.append(moves(cb.success(t)))
            elif op == "admit":
                code, out = cb.admit(t, entry=entry, wants_permit=wants)
                seen.append((code, moves(out)))
            elif op == "advance":
                seen.append(moves(cb.advance(t)))
            elif op == "force_open":
                seen.append(moves(cb.force_open(t)))
            else:
                seen.append(moves(cb.reset(t)))
        return seen, t

    cb = CircuitBreaker(p)
    _, t = run(cb, head, 1000.0)
    twin = _roundtrip(cb)
    assert run(twin, tail, t)[0] == run(cb, tail, t)[0]

"""Kill switch, dead-man heartbeat, loss latch and restore of the breaker (DESIGN §4.3, §4.5, §5).

Facts from the contract:

* A kill (any mode; replay's ``admin`` kill acts as halt) moves the breaker to
  OPEN from any state — one line, also from HALF_OPEN — sticky, its timer
  dropped; it is not a trip. A kill of an already OPEN breaker makes it sticky
  and writes no line.
* Heartbeat: from the first heartbeat or check on, exactly
  ``heartbeat_timeout_s`` after the last one the daemon kills (cause
  ``heartbeat_lost``); every heartbeat and every check (valid or not) re-arms
  it; it fires once, then waits. As a timer: at the due time an event sees it
  fired; with the breaker's timer in one gap they fire in time order, and at
  the same instant the kill comes first and the breaker's timer is dropped.
* A loss trip (``loss_limit``) latches OPEN with no timer until an operator
  reset. From CLOSED or HALF_OPEN it is an automatic trip written as one line;
  already OPEN it becomes latched (no line, state unchanged). After a reset the
  next event still over the limit trips again.
* Backoff: open_timeout_s × backoff_multiplier^(n−1), capped at
  max_open_timeout_s.
* After a restart the breaker is never less strict than before it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pykka
import pytest
from gate_harness import sleg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.breaker_actor import BreakerActor, BreakerStateChanged, BreakerView
from actors.circuit_breaker import BreakerParams, CircuitBreaker
from actors.dead_man import DeadMan
from actors.gate.assessment import Admit, Assessment
from actors.messages import (
    Admin,
    AdminAction,
    BreakerState,
    BreakerTransition,
    CheckAnswer,
    Failure,
    FailureKind,
    FailureRecorded,
    GetBreakerState,
    Heartbeat,
    Kill,
    KillFired,
    KillMode,
    LossBreach,
    Success,
    TransitionReason,
)
from actors.probe import Probe
from actors.runtime import InlineDispatcher
from actors.scheduler import VirtualScheduler

C, O, H = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN  # noqa: E741
KILL = TransitionReason.KILL
LOSS = FailureKind.LOSS_LIMIT


def params(**kw: Any) -> BreakerParams:
    base: dict[str, Any] = {"open_timeout_s": 100.0, "half_open_max_tries": 2}
    base.update(kw)
    return BreakerParams(**base)


def moves(trs: list[BreakerTransition]) -> list[tuple[float, BreakerState, BreakerState, str]]:
    return [(t.t, t.from_state, t.to_state, t.cause.reason.value) for t in trs]


def opened(cb: CircuitBreaker, t: float = 0.0) -> CircuitBreaker:
    cb.failure(Failure(t, FailureKind.MARGIN))
    assert cb.state is O
    return cb


def half_opened(cb: CircuitBreaker) -> CircuitBreaker:
    opened(cb, 0.0)
    cb.advance(cb.params.open_timeout_s)
    assert cb.state is H
    return cb


def kill(cb: CircuitBreaker, t: float, *, timer_first: bool = True) -> list[BreakerTransition]:
    return cb.force_open(t, "op", KILL, timer_first=timer_first)


# ------------------------------------------------------------------- kill


def test_kill_from_closed_is_one_sticky_line_and_not_a_trip() -> None:
    cb = CircuitBreaker(params(max_trips_per_day=1))
    assert moves(kill(cb, 5.0)) == [(5.0, C, O, "kill")]
    assert (cb.forced, cb.due, cb.trips, cb.day_trips) == (True, None, 0, 0)
    assert moves(cb.advance(1e9)) == []
    assert cb.admit(1e9, entry=True, wants_permit=True)[0] is not None


def test_kill_from_half_open_is_one_line() -> None:
    cb = half_opened(CircuitBreaker(params()))
    assert moves(kill(cb, 150.0)) == [(150.0, H, O, "kill")]
    assert cb.forced and cb.due is None
    assert moves(cb.advance(1e9)) == []


def test_kill_of_an_open_breaker_writes_no_line_drops_the_timer_and_sticks() -> None:
    cb = opened(CircuitBreaker(params()))
    assert cb.due == 100.0
    assert kill(cb, 50.0) == []
    assert cb.state is O and cb.forced and cb.due is None
    assert moves(cb.advance(100.0)) == [] and cb.state is O
    assert moves(cb.success(200.0)) == [] and cb.state is O
    assert moves(cb.reset(300.0, "op")) == [(300.0, O, C, "operator_reset")]


def test_kill_at_the_due_instant_timer_first_or_kill_first() -> None:
    operator = opened(CircuitBreaker(params()))
    # an operator's kill at the due time sees HALF_OPEN first (an event at due sees it)
    assert moves(kill(operator, 100.0)) == [(100.0, O, H, "open_timeout"), (100.0, H, O, "kill")]
    heartbeat = opened(CircuitBreaker(params()))
    # the heartbeat's kill at the same instant comes first: the timer is dropped, no line
    assert kill(heartbeat, 100.0, timer_first=False) == []
    assert heartbeat.state is O and heartbeat.due is None and heartbeat.forced


def test_heartbeat_kill_after_the_due_time_follows_the_timer() -> None:
    cb = opened(CircuitBreaker(params()))
    assert moves(kill(cb, 100.5, timer_first=False)) == [
        (100.0, O, H, "open_timeout"),
        (100.5, H, O, "kill"),
    ]


# --------------------------------------------------------------- loss latch


def loss(t: float) -> Failure:
    return Failure(t, LOSS, None, "daily P&L reached the limit")


def test_loss_trip_from_closed_latches_with_one_line() -> None:
    cb = CircuitBreaker(params())
    trs = cb.failure(loss(10.0))
    assert moves(trs) == [(10.0, C, O, "trip_kind")]
    assert trs[0].cause.latched and cb.latched and cb.due is None
    assert (cb.trips, cb.day_trips) == (1, 1)  # an automatic trip
    assert moves(cb.advance(1e9)) == [] and cb.state is O


def test_loss_trip_from_half_open_is_one_line_and_latches() -> None:
    cb = half_opened(CircuitBreaker(params()))
    trs = cb.failure(loss(150.0))
    assert moves(trs) == [(150.0, H, O, "trip_kind")] and trs[0].cause.latched
    assert cb.due is None and moves(cb.advance(1e9)) == []


def test_loss_when_already_open_latches_without_a_line() -> None:
    cb = opened(CircuitBreaker(params()))
    assert cb.failure(loss(50.0)) == []
    assert cb.state is O and cb.latched and cb.due is None
    assert moves(cb.advance(100.0)) == [] and cb.state is O


def test_loss_retrips_after_a_reset() -> None:
    cb = CircuitBreaker(params())
    cb.failure(loss(1.0))
    assert moves(cb.reset(2.0)) == [(2.0, O, C, "operator_reset")] and not cb.latched
    assert moves(cb.failure(loss(3.0))) == [(3.0, C, O, "trip_kind")] and cb.latched


def test_loss_limit_cannot_be_configured_away() -> None:
    from actors.circuit_breaker import KindPolicy

    p = params(kinds={k: KindPolicy(weight=0.0, trip=False) for k in FailureKind})
    cb = CircuitBreaker(p)
    assert moves(cb.failure(loss(1.0))) == [(1.0, C, O, "trip_kind")] and cb.latched


# ---------------------------------------------------------------- backoff


@pytest.mark.parametrize(
    ("mult", "trips"), [(1e308, 3), (2.0, 10_000), (10.0, 400), (1.7976931348623157e308, 2)]
)
def test_open_duration_never_overflows_past_the_cap(mult: float, trips: int) -> None:
    p = params(backoff_multiplier=mult, max_open_timeout_s=3600.0)
    assert p.open_duration(trips) == 3600.0


def test_open_duration_exact_growth() -> None:
    p = params(open_timeout_s=10.0, backoff_multiplier=2.0, max_open_timeout_s=35.0)
    assert [p.open_duration(n) for n in (0, 1, 2, 3, 4)] == [10.0, 10.0, 20.0, 35.0, 35.0]


def test_a_breaker_with_huge_backoff_keeps_tripping_to_the_cap() -> None:
    cb = CircuitBreaker(params(backoff_multiplier=1e300, max_open_timeout_s=500.0))
    t = 0.0
    for _ in range(5):
        cb.failure(Failure(t, FailureKind.MARGIN))
        assert cb.state is O and cb.due is not None and cb.due - t <= 500.0
        t = cb.due
        cb.advance(t)
        assert cb.state is H


# ----------------------------------------------------------------- dead man


def test_dead_man_fires_exactly_at_the_deadline_once_then_waits() -> None:
    dm = DeadMan(30.0)
    assert not dm.due(1e9)  # never armed before the first heartbeat or check
    assert dm.beat(10.0) == 40.0
    assert not dm.due(39.999)
    assert dm.due(40.0)
    assert dm.fire() == 40.0
    assert not dm.due(1e9)
    assert dm.beat(50.0) == 80.0 and dm.due(80.0)


def test_dead_man_is_re_armed_by_each_beat() -> None:
    dm = DeadMan(30.0)
    dm.beat(0.0)
    dm.beat(20.0)
    assert not dm.due(30.0) and dm.due(50.0)


def test_dead_man_off_by_default() -> None:
    dm = DeadMan(None)
    assert dm.beat(1.0) is None and not dm.due(1e12)


# ------------------------------------------------------------ breaker actor


@pytest.fixture
def inline() -> Iterator[InlineDispatcher]:
    d = InlineDispatcher()
    yield d
    pykka.ActorRegistry.stop_all()


def start(
    d: InlineDispatcher,
    *,
    heartbeat: float | None = None,
    action: KillMode = KillMode.HALT,
    **kw: Any,
) -> tuple[Any, list[Any], VirtualScheduler]:
    seen: list[Any] = []
    sched = VirtualScheduler()
    probe = Probe.start(dispatcher=d, into=seen)
    ref = BreakerActor.start(
        params(**kw),
        dispatcher=d,
        scheduler=sched,
        subscriber=probe,
        heartbeat_timeout_s=heartbeat,
        heartbeat_action=action,
    )
    return ref, seen, sched


def lines(seen: list[Any]) -> list[tuple[float, BreakerState, BreakerState, str]]:
    return moves([m for m in seen if isinstance(m, BreakerTransition)])


def state(ref: Any) -> BreakerView:
    view: BreakerView = ref.ask(GetBreakerState())
    return view


def admit(ref: Any, t: float, *, invalid: bool = False) -> CheckAnswer:
    a = Assessment(t, "c", (sleg("AAPL", 1, 1.0),), invalid="bad" if invalid else None)
    f: pykka.Future[CheckAnswer] = pykka.ThreadingFuture()
    ref.tell(Admit(a, None, f))
    return f.get(timeout=5)


@pytest.mark.parametrize("mode", list(KillMode))
def test_kill_message_from_each_state(inline: InlineDispatcher, mode: KillMode) -> None:
    ref, seen, sched = start(inline)
    ref.tell(Kill(1.0, mode, "alice"))
    assert lines(seen) == [(1.0, C, O, "kill")]
    fired = [m for m in seen if isinstance(m, KillFired)]
    assert [(k.kill.mode, k.state) for k in fired] == [(mode, C)]
    ref.tell(Admin(2.0, AdminAction.RESET))
    ref.tell(Failure(3.0, FailureKind.MARGIN))  # OPEN, timer at 103
    ref.tell(Kill(4.0, mode))  # already OPEN: sticky, no line
    assert lines(seen)[-1] == (3.0, C, O, "trip_kind")
    assert any(isinstance(m, BreakerStateChanged) for m in seen)
    sched.advance_to(1000.0)
    assert state(ref).state is O and lines(seen)[-1] == (3.0, C, O, "trip_kind")
    ref.tell(Admin(1001.0, AdminAction.RESET))
    ref.tell(Failure(1002.0, FailureKind.MARGIN))
    sched.advance_to(1102.0)  # HALF_OPEN
    ref.tell(Kill(1103.0, mode))
    assert lines(seen)[-2:] == [(1102.0, O, H, "open_timeout"), (1103.0, H, O, "kill")]


def test_admin_kill_acts_as_halt(inline: InlineDispatcher) -> None:
    ref, seen, _ = start(inline)
    ref.tell(Admin(1.0, AdminAction.KILL, "bob"))
    assert lines(seen) == [(1.0, C, O, "kill")]
    assert state(ref).snapshot["forced"] is True


def test_heartbeat_kills_exactly_at_the_deadline(inline: InlineDispatcher) -> None:
    ref, seen, sched = start(inline, heartbeat=30.0, action=KillMode.FLATTEN)
    sched.advance_to(1000.0)
    assert lines(seen) == []  # not armed before the first heartbeat
    ref.tell(Heartbeat(1000.0))
    sched.advance_to(1029.999)
    assert lines(seen) == []
    sched.advance_to(1030.0)
    assert lines(seen) == [(1030.0, C, O, "heartbeat_lost")]
    fired = [m for m in seen if isinstance(m, KillFired)]
    assert [(k.kill.mode, k.kill.t, k.kill.cause) for k in fired] == [
        (KillMode.FLATTEN, 1030.0, TransitionReason.HEARTBEAT_LOST)
    ]
    sched.advance_to(5000.0)
    assert len([m for m in seen if isinstance(m, KillFired)]) == 1  # fires once


def test_every_check_valid_or_not_re_arms_the_heartbeat(inline: InlineDispatcher) -> None:
    ref, seen, sched = start(inline, heartbeat=30.0)
    admit(ref, 0.0, invalid=True)  # a check arms it too
    sched.advance_to(20.0)
    admit(ref, 20.0, invalid=True)
    sched.advance_to(49.0)
    assert lines(seen) == []
    admit(ref, 49.0)
    sched.advance_to(78.5)
    assert lines(seen) == []
    sched.advance_to(79.0)
    assert lines(seen) == [(79.0, C, O, "heartbeat_lost")]


def test_heartbeat_and_open_timer_at_one_instant_kill_first_timer_dropped(
    inline: InlineDispatcher,
) -> None:
    ref, seen, sched = start(inline, heartbeat=100.0)
    ref.tell(Heartbeat(0.0))
    ref.tell(Failure(0.0, FailureKind.MARGIN))  # OPEN, due 100
    sched.advance_to(100.0)
    assert lines(seen) == [(0.0, C, O, "trip_kind")]  # kill of an OPEN breaker: no line
    v = state(ref)
    assert v.state is O and v.snapshot["forced"] and v.snapshot["due"] is None
    assert [m.kill.cause for m in seen if isinstance(m, KillFired)] == [
        TransitionReason.HEARTBEAT_LOST
    ]
    sched.advance_to(10_000.0)
    assert state(ref).state is O


def test_heartbeat_and_open_timer_in_one_gap_fire_in_time_order(
    inline: InlineDispatcher,
) -> None:
    ref, seen, sched = start(inline, heartbeat=100.0)
    ref.tell(Failure(0.0, FailureKind.MARGIN))  # due 100
    ref.tell(Heartbeat(10.0))  # deadline 110
    sched.advance_to(500.0)
    assert lines(seen) == [
        (0.0, C, O, "trip_kind"),
        (100.0, O, H, "open_timeout"),
        (110.0, H, O, "heartbeat_lost"),
    ]
    ref2, seen2, sched2 = start(inline, heartbeat=100.0)
    ref2.tell(Heartbeat(0.0))  # deadline 100
    ref2.tell(Failure(10.0, FailureKind.MARGIN))  # due 110
    sched2.advance_to(500.0)
    assert lines(seen2) == [(10.0, C, O, "trip_kind")]  # the kill at 100 dropped the timer


def test_loss_breach_latches_once(inline: InlineDispatcher) -> None:
    ref, seen, sched = start(inline)
    b = LossBreach(5.0, "max_daily_loss", -1000.0, 99_000.0, 100_000.0, 100_000.0)
    ref.tell(b)
    assert lines(seen) == [(5.0, C, O, "trip_kind")]
    n = len(seen)
    ref.tell(LossBreach(6.0, "max_daily_loss", -1100.0, 98_900.0, 100_000.0, 100_000.0))
    assert len(seen) == n  # already latched: nothing to journal again
    sched.advance_to(1e6)
    assert state(ref).state is O


def test_loss_breach_when_open_latches_and_drops_the_timer(inline: InlineDispatcher) -> None:
    ref, seen, sched = start(inline)
    ref.tell(Failure(0.0, FailureKind.MARGIN))
    ref.tell(LossBreach(5.0, "max_drawdown_pct", -1.0, 70_000.0, 100_000.0, 100_000.0))
    recorded = [m for m in seen if isinstance(m, FailureRecorded)]
    assert recorded[-1].failure.kind is LOSS and recorded[-1].snapshot is not None
    assert recorded[-1].snapshot["latched"] is True
    sched.advance_to(100.0)
    assert lines(seen) == [(0.0, C, O, "trip_kind")] and state(ref).state is O
    ref.tell(Admin(200.0, AdminAction.RESET))
    ref.tell(LossBreach(201.0, "max_drawdown_pct", -1.0, 70_000.0, 100_000.0, 100_000.0))
    assert lines(seen)[-1] == (201.0, C, O, "trip_kind")


def test_success_after_kill_changes_nothing(inline: InlineDispatcher) -> None:
    ref, seen, sched = start(inline, half_open_max_tries=1)
    ref.tell(Kill(0.0, KillMode.HALT))
    ref.tell(Success(1.0))
    sched.advance_to(1e6)
    assert lines(seen) == [(0.0, C, O, "kill")]


# ------------------------------------------------- (d) snapshot → restore

K = FailureKind
op = st.one_of(
    st.tuples(st.just("failure"), st.sampled_from([K.DATA_FEED, K.MARGIN, K.OTHER, LOSS])),
    st.tuples(st.just("success"), st.none()),
    st.tuples(st.just("admit"), st.booleans()),
    st.tuples(st.just("advance"), st.none()),
    st.tuples(st.just("force_open"), st.none()),
    st.tuples(st.just("kill"), st.booleans()),
    st.tuples(st.just("reset"), st.none()),
)
step = st.tuples(op, st.sampled_from([0.0, 0.5, 1.0, 30.0, 100.0, 250.0]))
bparams = st.builds(
    BreakerParams,
    failure_threshold=st.sampled_from([1.0, 2.0, 3.0]),
    failure_window_s=st.sampled_from([10.0, 60.0]),
    open_timeout_s=st.sampled_from([50.0, 100.0]),
    half_open_max_tries=st.integers(1, 3),
    backoff_multiplier=st.sampled_from([1.0, 2.0, 1e308]),
    max_open_timeout_s=st.sampled_from([200.0, 3600.0]),
    max_trips_per_day=st.sampled_from([None, 2, 4]),
)


def apply(cb: CircuitBreaker, ops: list[Any], t: float) -> tuple[list[Any], float]:
    seen: list[Any] = []
    for (name, arg), dt in ops:
        t += dt
        if name == "failure":
            seen.append(moves(cb.failure(Failure(t, arg))))
        elif name == "success":
            seen.append(moves(cb.success(t)))
        elif name == "admit":
            code, out = cb.admit(t, entry=arg, wants_permit=True)
            seen.append((code, moves(out)))
        elif name == "advance":
            seen.append(moves(cb.advance(t)))
        elif name == "force_open":
            seen.append(moves(cb.force_open(t)))
        elif name == "kill":
            seen.append(moves(cb.force_open(t, "k", KILL, timer_first=arg)))
        else:
            seen.append(moves(cb.reset(t)))
        seen.append((cb.state, cb.due, cb.latched, cb.forced, cb.permits_used))
    return seen, t


def strictness(cb: CircuitBreaker) -> tuple[Any, ...]:
    window = [(e.t, e.weight, e.failure.kind) for e in cb.window]
    return (
        cb.state,
        window,
        cb.permits_used,
        cb.successes,
        cb.due,
        cb.latched,
        cb.forced,
        cb.trips,
        cb.day,
        cb.day_trips,
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(p=bparams, head=st.lists(step, max_size=25), tail=st.lists(step, max_size=25))
def test_snapshot_restore_is_never_less_strict(p: BreakerParams, head: list, tail: list) -> None:
    cb = CircuitBreaker(p)
    _, t = apply(cb, head, 1_000.0)
    twin = CircuitBreaker.restore(p, json.loads(json.dumps(cb.snapshot())))
    assert strictness(twin) == strictness(cb)
    assert apply(twin, tail, t)[0] == apply(cb, tail, t)[0]


def test_snapshot_after_a_loss_trip_restores_latched() -> None:
    for setup in ("closed", "open", "half_open"):
        cb = CircuitBreaker(params())
        if setup == "open":
            opened(cb)
        elif setup == "half_open":
            half_opened(cb)
        cb.failure(loss(150.0))
        twin = CircuitBreaker.restore(cb.params, json.loads(json.dumps(cb.snapshot())))
        assert strictness(twin) == strictness(cb)
        assert twin.state is O and twin.latched and twin.due is None, setup
        assert moves(twin.advance(math.inf)) == []

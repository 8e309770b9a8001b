"""``[stop_guard]``: many stops triggering at once is a systemic failure (DESIGN §4.2).

Facts from the contract:

* Each TRIGGER after which at least ``max_triggers`` TRIGGERs (any position,
  closed ones included) have t in (t − window_s, t] reports a failure of kind
  ``stop_guard`` at that t, its detail naming the positions — so each further
  TRIGGER in the window reports again.
* It trips like any trip kind (trip = true by default; configurable); an
  automatic trip: it counts for backoff n and the day's trips.
* A strategy's TRIGGER is one TRIGGER (its detail naming the strategy).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pykka
import pytest

from actors.breaker_actor import BreakerActor, BreakerView
from actors.circuit_breaker import BreakerParams, KindPolicy, default_kinds
from actors.messages import (
    BreakerState,
    BreakerTransition,
    FailureKind,
    FailureRecorded,
    GetBreakerState,
    Triggered,
)
from actors.probe import Probe
from actors.runtime import InlineDispatcher
from actors.scheduler import VirtualScheduler
from actors.stop_guard import StopGuard, StopGuardParams


def test_reports_when_the_window_holds_max_triggers() -> None:
    g = StopGuard(StopGuardParams(max_triggers=3, window_s=10.0))
    assert g.trigger(0.0, "A") is None
    assert g.trigger(5.0, "B") is None
    f = g.trigger(9.5, "C")
    assert f is not None and f.kind is FailureKind.STOP_GUARD and f.t == 9.5
    assert all(name in f.detail for name in ("A", "B", "C"))


def test_each_further_trigger_in_the_window_reports_again() -> None:
    g = StopGuard(StopGuardParams(max_triggers=2, window_s=10.0))
    assert g.trigger(0.0, "A") is None
    assert g.trigger(1.0, "B") is not None
    f = g.trigger(2.0, "C")
    assert f is not None and all(n in f.detail for n in ("A", "B", "C"))


def test_a_trigger_exactly_window_s_old_no_longer_counts() -> None:
    g = StopGuard(StopGuardParams(max_triggers=2, window_s=10.0))
    assert g.trigger(0.0, "A") is None
    assert g.trigger(10.0, "B") is None  # (0, 10]: A is out
    f = g.trigger(19.75, "C")  # (9.75, 19.75]: B and C
    assert f is not None and "B" in f.detail and "C" in f.detail and "A" not in f.detail


def test_the_same_position_and_same_instant_count() -> None:
    g = StopGuard(StopGuardParams(max_triggers=2, window_s=10.0))
    assert g.trigger(3.0, "A") is None
    assert g.trigger(3.0, "A") is not None  # re-opened, re-triggered: two TRIGGERs


def test_max_triggers_one_reports_every_trigger() -> None:
    g = StopGuard(StopGuardParams(max_triggers=1, window_s=0.5))
    assert g.trigger(0.0, "A") is not None
    assert g.trigger(100.0, "B") is not None


# ------------------------------------------------------------------ actor


@pytest.fixture
def inline() -> Iterator[InlineDispatcher]:
    d = InlineDispatcher()
    yield d
    pykka.ActorRegistry.stop_all()


def breaker(
    d: InlineDispatcher, p: BreakerParams, guard: StopGuardParams
) -> tuple[Any, list[Any], VirtualScheduler]:
    seen: list[Any] = []
    sched = VirtualScheduler()
    ref = BreakerActor.start(
        p,
        dispatcher=d,
        scheduler=sched,
        subscriber=Probe.start(dispatcher=d, into=seen),
        stop_guard=guard,
    )
    return ref, seen, sched


def test_stop_guard_trips_the_breaker_as_an_automatic_trip(inline: InlineDispatcher) -> None:
    p = BreakerParams(open_timeout_s=100.0, max_trips_per_day=2)
    ref, seen, sched = breaker(inline, p, StopGuardParams(2, 60.0))
    ref.tell(Triggered(10.0, "A", "AAPL"))
    assert not [m for m in seen if isinstance(m, BreakerTransition)]
    ref.tell(Triggered(20.0, "S1", "MSFT"))  # a strategy: one TRIGGER
    trs = [m for m in seen if isinstance(m, BreakerTransition)]
    assert [(t.t, t.to_state) for t in trs] == [(20.0, BreakerState.OPEN)]
    cause = trs[0].cause
    assert cause.failure is not None and cause.failure.kind is FailureKind.STOP_GUARD
    assert "A" in cause.failure.detail and "S1" in cause.failure.detail
    view: BreakerView = ref.ask(GetBreakerState())
    assert view.snapshot["trips"] == 1 and view.snapshot["day_trips"] == 1
    assert view.snapshot["due"] == 120.0
    sched.advance_to(120.0)
    ref.tell(Triggered(121.0, "B", "IBM"))  # (61, 121]: A and S1 have left
    ref.tell(Triggered(125.0, "C", "IBM"))  # B and C: a failure in HALF_OPEN → OPEN, 2nd trip
    view = ref.ask(GetBreakerState())
    assert view.state is BreakerState.OPEN and view.snapshot["latched"]  # the day's 2nd trip


def test_stop_guard_can_be_configured_not_to_trip(inline: InlineDispatcher) -> None:
    kinds = default_kinds()
    kinds[FailureKind.STOP_GUARD] = KindPolicy(weight=1.0, trip=False)
    p = BreakerParams(failure_threshold=3.0, kinds=kinds)
    ref, seen, _ = breaker(inline, p, StopGuardParams(2, 60.0))
    for t, pid in ((1.0, "A"), (2.0, "B")):
        ref.tell(Triggered(t, pid, "AAPL"))
    recorded = [m for m in seen if isinstance(m, FailureRecorded)]
    assert [r.failure.kind for r in recorded] == [FailureKind.STOP_GUARD]
    assert not [m for m in seen if isinstance(m, BreakerTransition)]
    ref.tell(Triggered(3.0, "C", "AAPL"))
    ref.tell(Triggered(4.0, "D", "AAPL"))  # three stop_guard failures: the threshold
    trs = [m for m in seen if isinstance(m, BreakerTransition)]
    assert [(t.t, t.cause.reason.value) for t in trs] == [(4.0, "failure_threshold")]

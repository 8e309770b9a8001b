"""The system-level circuit breaker policy (DESIGN §5).

Pure and clock-free: every call carries its event time ``t``. One object per
state (as in Resilience4j's ``CircuitBreakerStateMachine``) decides what an
event means in that state; the :class:`CircuitBreaker` owns what outlives a
state (trip counts, the day's trips) and performs transitions. The actor that
wraps it only schedules the open timer and tells subscribers.

Time passing is itself an event: before anything else at time ``t`` the
breaker catches up with an open timer that fell due at or before ``t``, so an
event at exactly the due time sees HALF_OPEN, whether or not the timer message
has been delivered yet.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from actors.messages import (
    BreakerState,
    BreakerTransition,
    Failure,
    FailureKind,
    ReasonCode,
    TransitionCause,
    TransitionReason,
)

DAY_S = 86400.0


@dataclass(frozen=True, slots=True)
class KindPolicy:
    weight: float = 1.0
    trip: bool = False


# Kinds that trip at once unless configured otherwise; loss_limit always does.
_TRIP_BY_DEFAULT = frozenset({FailureKind.MARGIN, FailureKind.STOP_GUARD, FailureKind.LOSS_LIMIT})


def default_kinds() -> dict[FailureKind, KindPolicy]:
    return {k: KindPolicy(trip=k in _TRIP_BY_DEFAULT) for k in FailureKind}


@dataclass(frozen=True, slots=True)
class BreakerParams:
    failure_threshold: float = 5.0
    failure_window_s: float = 60.0
    open_timeout_s: float = 300.0
    half_open_max_tries: int = 3
    backoff_multiplier: float = 1.0
    max_open_timeout_s: float = 3600.0
    max_trips_per_day: int | None = None
    kinds: Mapping[FailureKind, KindPolicy] = field(default_factory=default_kinds)

    def kind(self, kind: FailureKind) -> KindPolicy:
        if kind is FailureKind.LOSS_LIMIT:
            return KindPolicy(trip=True)  # always trips (and latches): not configurable
        return self.kinds.get(kind, KindPolicy(trip=kind in _TRIP_BY_DEFAULT))

    def open_duration(self, trips: int) -> float:
        """Open time after the ``trips``-th automatic trip since the last CLOSED.

        Capped at ``max_open_timeout_s`` before it can overflow: a huge
        multiplier or trip count must give the cap, never an exception (an
        exception here once restarted the breaker actor into a weaker state).
        """
        cap = self.max_open_timeout_s
        try:
            duration = self.open_timeout_s * self.backoff_multiplier ** (max(trips, 1) - 1)
        except OverflowError:
            return cap
        return min(duration, cap)


@dataclass(slots=True)
class _WindowEntry:
    t: float
    weight: float
    failure: Failure


Transitions = list[BreakerTransition]


class _State:
    """What one breaker state does with each event; the machine does the moving."""

    name: BreakerState

    def on_failure(self, cb: CircuitBreaker, f: Failure) -> Transitions:
        return []

    def on_success(self, cb: CircuitBreaker, t: float) -> Transitions:
        return []

    def admit(self, cb: CircuitBreaker, *, entry: bool, wants_permit: bool) -> ReasonCode | None:
        return None


class _Closed(_State):
    name = BreakerState.CLOSED

    def on_failure(self, cb: CircuitBreaker, f: Failure) -> Transitions:
        policy = cb.params.kind(f.kind)
        cb.count(f)
        if f.kind is FailureKind.LOSS_LIMIT:
            return cb.trip(f.t, TransitionReason.TRIP_KIND, f, latch=True)
        # The weights as numbers, not their rounding residue: ten failures of
        # weight 0.1 reach a threshold of 1.0.
        total = math.fsum(e.weight for e in cb.window)
        if policy.trip:
            reason = TransitionReason.TRIP_KIND
        elif total >= cb.params.failure_threshold:
            reason = TransitionReason.FAILURE_THRESHOLD
        else:
            return []
        return cb.trip(f.t, reason, f)


class _Open(_State):
    name = BreakerState.OPEN

    def on_failure(self, cb: CircuitBreaker, f: Failure) -> Transitions:
        cb.count(f)  # counted (and journaled by the actor), changes nothing…
        if f.kind is FailureKind.LOSS_LIMIT:  # …but a loss latches: no timer until reset
            cb.latched = True
            cb.due = None
        return []

    def admit(self, cb: CircuitBreaker, *, entry: bool, wants_permit: bool) -> ReasonCode | None:
        return ReasonCode.BREAKER_OPEN if entry else None


class _HalfOpen(_State):
    name = BreakerState.HALF_OPEN

    def on_failure(self, cb: CircuitBreaker, f: Failure) -> Transitions:
        cb.count(f)
        if f.kind is FailureKind.LOSS_LIMIT:
            return cb.trip(f.t, TransitionReason.TRIP_KIND, f, latch=True)
        return cb.trip(f.t, TransitionReason.HALF_OPEN_FAILURE, f)

    def on_success(self, cb: CircuitBreaker, t: float) -> Transitions:
        cb.successes += 1
        if cb.successes < cb.params.half_open_max_tries:
            return []
        cause = TransitionCause(TransitionReason.HALF_OPEN_SUCCESSES, cb.failures_by_kind(t))
        return [cb.close(t, cause)]

    def admit(self, cb: CircuitBreaker, *, entry: bool, wants_permit: bool) -> ReasonCode | None:
        if not entry:
            return None
        if cb.permits_used >= cb.params.half_open_max_tries:
            return ReasonCode.BREAKER_HALF_OPEN_BUSY
        if wants_permit:
            cb.permits_used += 1
        return None


_STATES: dict[BreakerState, _State] = {s.name: s for s in (_Closed(), _Open(), _HalfOpen())}


class CircuitBreaker:
    """CLOSED → OPEN → HALF_OPEN → CLOSED, with weighted windows, backoff and latch."""

    def __init__(self, params: BreakerParams) -> None:
        self.params = params
        self._state: _State = _STATES[BreakerState.CLOSED]
        self.window: deque[_WindowEntry] = deque()
        self.trips = 0  # automatic trips since the last CLOSED: drives backoff
        self.day = -1  # UTC day (floor(t / 86400)) that day_trips counts
        self.day_trips = 0
        self.opened_at: float | None = None
        self.due: float | None = None  # None while OPEN means forced or latched
        self.forced = False
        self.latched = False
        self.permits_used = 0
        self.successes = 0
        self.version = 0  # bumped on every change: a saved state never overwrites a newer one

    # ------------------------------------------------------------ reading

    @property
    def state(self) -> BreakerState:
        return self._state.name

    def count(self, f: Failure) -> None:
        """Add a failure to the window, forgetting those ``failure_window_s`` old or more."""
        self._prune(f.t)
        self.window.append(_WindowEntry(f.t, self.params.kind(f.kind).weight, f))

    def _prune(self, t: float) -> None:
        window, horizon = self.window, self.params.failure_window_s
        while window and t - window[0].t >= horizon:
            window.popleft()

    def failures_by_kind(self, t: float | None = None) -> tuple[tuple[FailureKind, float], ...]:
        """Weights by kind of the failures in the window (as of ``t`` when given)."""
        if t is not None:
            self._prune(t)
        sums: dict[FailureKind, float] = {}
        for e in self.window:
            sums[e.failure.kind] = sums.get(e.failure.kind, 0.0) + e.weight
        return tuple((k, sums[k]) for k in FailureKind if k in sums)

    # ------------------------------------------------------------- events

    def advance(self, t: float, *, inclusive: bool = True) -> Transitions:
        """Catch up with the open timer: OPEN → HALF_OPEN at exactly its due time.

        ``inclusive=False`` catches up only with a timer due strictly before
        ``t``: another timer falling due at the same instant (the heartbeat's
        kill) comes first.
        """
        due = self.due
        if (
            self._state.name is BreakerState.OPEN
            and due is not None
            and (t >= due if inclusive else t > due)
        ):
            self.due = None
            self.permits_used = 0
            self.successes = 0
            return [
                self._move(
                    due, BreakerState.HALF_OPEN, TransitionCause(TransitionReason.OPEN_TIMEOUT)
                )
            ]
        return []

    def failure(self, f: Failure) -> Transitions:
        out = self.advance(f.t)
        return out + self._state.on_failure(self, f)

    def success(self, t: float) -> Transitions:
        out = self.advance(t)
        return out + self._state.on_success(self, t)

    def admit(
        self, t: float, *, entry: bool, wants_permit: bool
    ) -> tuple[ReasonCode | None, Transitions]:
        """The breaker's say on a check; takes a half-open permit when one is granted.

        ``entry`` is false for a risk-reducing order, which always passes.
        ``wants_permit`` is false when the limits already deny the order: a
        denied order takes no permit, but still hears that none is left.
        """
        out = self.advance(t)
        return self._state.admit(self, entry=entry, wants_permit=wants_permit), out

    def force_open(
        self,
        t: float,
        operator: str = "operator",
        reason: TransitionReason = TransitionReason.OPERATOR_FORCE_OPEN,
        *,
        timer_first: bool = True,
    ) -> Transitions:
        """OPEN with no timer until reset: an operator's call, a kill, the daemon's own halt.

        Not a trip (no backoff, no day count). From any state one line; an
        already OPEN breaker becomes sticky with no line. ``timer_first=False``
        is the heartbeat's kill: an open timer due at the same instant is dropped.
        """
        out = self.advance(t, inclusive=timer_first)
        self.forced = True
        self.due = None
        if self._state.name is BreakerState.OPEN:
            return out
        self.opened_at = t
        cause = TransitionCause(reason, self.failures_by_kind(t), operator=operator)
        return [*out, self._move(t, BreakerState.OPEN, cause)]

    def reset(self, t: float, operator: str = "operator") -> Transitions:
        out = self.advance(t)
        self.day_trips = 0
        cause = TransitionCause(
            TransitionReason.OPERATOR_RESET, self.failures_by_kind(t), operator=operator
        )
        if self._state.name is BreakerState.CLOSED:
            self._clear()
            return out
        return [*out, self.close(t, cause)]

    # -------------------------------------------------------- transitions

    def trip(
        self, t: float, reason: TransitionReason, f: Failure, *, latch: bool = False
    ) -> Transitions:
        """An automatic trip: counts toward backoff and the day's trips; ``latch``: no timer."""
        by_kind = self.failures_by_kind(t)
        self.trips += 1
        day = math.floor(t / DAY_S)
        if day != self.day:
            self.day, self.day_trips = day, 0
        self.day_trips += 1
        limit = self.params.max_trips_per_day
        self.latched = latch or self.latched or (limit is not None and self.day_trips >= limit)
        self.opened_at = t
        self.due = (
            None if self.latched or self.forced else t + self.params.open_duration(self.trips)
        )
        cause = TransitionCause(reason, by_kind, f, latched=self.latched)
        return [self._move(t, BreakerState.OPEN, cause)]

    def close(self, t: float, cause: TransitionCause) -> BreakerTransition:
        self._clear()
        return self._move(t, BreakerState.CLOSED, cause)

    def _clear(self) -> None:
        self.window.clear()
        self.trips = 0
        self.opened_at = None
        self.due = None
        self.forced = False
        self.latched = False
        self.permits_used = 0
        self.successes = 0

    def _move(self, t: float, to: BreakerState, cause: TransitionCause) -> BreakerTransition:
        before = self._state.name
        self._state = _STATES[to]
        return BreakerTransition(t, before, to, cause)

    # -------------------------------------------------------- persistence

    def snapshot(self) -> dict[str, Any]:
        """Everything needed to resume no less strict than now, as plain JSON."""
        return {
            "state": self.state.value,
            "trips": self.trips,
            "day": self.day,
            "day_trips": self.day_trips,
            "opened_at": self.opened_at,
            "due": self.due,
            "forced": self.forced,
            "latched": self.latched,
            "permits_used": self.permits_used,
            "successes": self.successes,
            "version": self.version,
            "window": [
                {
                    "t": e.t,
                    "weight": e.weight,
                    "kind": e.failure.kind.value,
                    "code": e.failure.code,
                    "detail": e.failure.detail,
                }
                for e in self.window
            ],
        }

    @classmethod
    def restore(cls, params: BreakerParams, snap: Mapping[str, Any]) -> CircuitBreaker:
        cb = cls(params)
        cb._state = _STATES[BreakerState(snap["state"])]
        cb.trips = int(snap["trips"])
        cb.day = int(snap["day"])
        cb.day_trips = int(snap["day_trips"])
        cb.opened_at = snap["opened_at"]
        cb.due = snap["due"]
        cb.forced = bool(snap["forced"])
        cb.latched = bool(snap["latched"])
        cb.permits_used = int(snap["permits_used"])
        cb.successes = int(snap["successes"])
        cb.version = int(snap.get("version", 0))
        for e in snap["window"]:
            f = Failure(float(e["t"]), FailureKind(e["kind"]), e["code"], e["detail"])
            cb.window.append(_WindowEntry(f.t, float(e["weight"]), f))
        return cb

"""BreakerActor: the system level, and the admission half of every check.

A thin shell over :class:`~actors.circuit_breaker.CircuitBreaker`. It is the
one place a check is finally decided (:class:`~actors.gate.admission.Admission`):
because an actor handles one message at a time, two concurrent checks can
never both take the last half-open permit or both be the N-th order of a rate
window. It also owns the stop guard (too many TRIGGERs at once), the loss
latch, the kill switch and the dead-man heartbeat.

Timers are messages: when the breaker opens with a timer, or a heartbeat
deadline is armed, the actor asks the scheduler for a message at the due
time, so it acts at that time by itself even if nothing else happens. At one
instant the heartbeat's kill comes before the open timer, which it drops.

Every change of state is published with a snapshot, so the journal stores the
state each decision leaves in the decision's own transaction, and a restart
(of the actor or the daemon) resumes no less strict.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, replace
from typing import Any

from actors.circuit_breaker import BreakerParams, CircuitBreaker, Transitions
from actors.dead_man import DeadMan
from actors.gate.admission import Admission, AllowedOrder
from actors.gate.assessment import Admit
from actors.gate.params import GateParams
from actors.handle import Recipient
from actors.messages import (
    Admin,
    AdminAction,
    BreakerState,
    Failure,
    FailureKind,
    FailureRecorded,
    GetBreakerState,
    Heartbeat,
    HeartbeatTimeout,
    Kill,
    KillFired,
    KillMode,
    LossBreach,
    OpenTimeout,
    Success,
    SystemHalt,
    TransitionReason,
    Triggered,
)
from actors.runtime import Dispatcher, PooledActor
from actors.scheduler import Scheduler
from actors.stop_guard import StopGuard, StopGuardParams

# At one instant the heartbeat's kill fires before the breaker's open timer.
HEARTBEAT_PRIORITY = 0
OPEN_TIMER_PRIORITY = 1


@dataclass(frozen=True, slots=True)
class BreakerView:
    state: BreakerState
    snapshot: dict[str, Any]
    heartbeat_deadline: float | None = None
    heartbeat_last: float | None = None
    heartbeat_fired: bool = False


@dataclass(frozen=True, slots=True)
class BreakerStateChanged:
    """The breaker's state changed without a transition (a failure counted, a latch)."""

    t: float
    snapshot: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SeedAdmission:
    """After a restart: the allowed orders and TRIGGERs the windows must remember."""

    allowed: tuple[AllowedOrder, ...] = ()
    triggers: tuple[Triggered, ...] = ()


class BreakerActor(PooledActor):
    def __init__(
        self,
        params: BreakerParams,
        *,
        dispatcher: Dispatcher,
        scheduler: Scheduler,
        subscriber: Recipient | None = None,
        restored: CircuitBreaker | None = None,
        gate: GateParams | None = None,
        stop_guard: StopGuardParams | None = None,
        heartbeat_timeout_s: float | None = None,
        heartbeat_action: KillMode = KillMode.HALT,
    ) -> None:
        super().__init__(dispatcher=dispatcher)
        self.cb = restored if restored is not None else CircuitBreaker(params)
        self.scheduler = scheduler
        self.subscriber = subscriber
        self.admission = Admission(gate if gate is not None else GateParams())
        self.guard = None if stop_guard is None else StopGuard(stop_guard)
        self.dead_man = DeadMan(heartbeat_timeout_s, heartbeat_action)
        self._scheduled: float | None = None
        self._heartbeat_timer: float | None = None

    def on_start(self) -> None:
        self._arm()

    def is_priority(self, message: Any) -> bool:
        """Checks jump the queue; a state query waits its turn so it sees what came before."""
        return isinstance(message, Admit)

    def coalesce_key(self, message: Any) -> Hashable | None:
        return None

    def on_receive(self, message: Any) -> Any:
        cb = self.cb
        if isinstance(message, Admit):
            return self._admit(message)
        if isinstance(message, Failure):
            self._failure(message)
        elif isinstance(message, Success):
            self._tell(message)
            self._publish(cb.success(message.t))
        elif isinstance(message, OpenTimeout):
            self._publish(cb.advance(message.t))
        elif isinstance(message, Triggered):
            if self.guard is not None:
                f = self.guard.trigger(message.t, message.id)
                if f is not None:
                    self._failure(f)
        elif isinstance(message, LossBreach):
            if cb.state is BreakerState.OPEN and cb.latched:
                return None  # already latched: nothing changes, nothing to journal again
            self._failure(Failure(message.t, FailureKind.LOSS_LIMIT, None, message.detail()))
        elif isinstance(message, Heartbeat):
            self._beat(message.t)
        elif isinstance(message, HeartbeatTimeout):
            self._heartbeat_due(message.t)
        elif isinstance(message, Kill):
            self._kill(message, timer_first=True)
            return cb.state
        elif isinstance(message, Admin):
            if message.action is AdminAction.FORCE_OPEN:
                self._publish(cb.force_open(message.t, message.operator))
            elif message.action is AdminAction.KILL:
                self._kill(Kill(message.t, KillMode.HALT, message.operator), timer_first=True)
            else:
                self._publish(cb.reset(message.t, message.operator))
            return cb.state
        elif isinstance(message, SystemHalt):
            self._publish(cb.force_open(message.t, message.detail or "daemon", message.reason))
        elif isinstance(message, GetBreakerState):
            dm = self.dead_man
            return BreakerView(cb.state, cb.snapshot(), dm.deadline, dm.last, dm.fired)
        elif isinstance(message, SeedAdmission):
            self.admission.reload(list(message.allowed))
            if self.guard is not None:
                for tr in message.triggers:
                    self.guard.recent.append((tr.t, tr.id))
        return None

    # ----------------------------------------------------------------- checks

    def _admit(self, message: Admit) -> Any:
        self._beat(message.assessment.t)  # every check, valid or not, is a heartbeat
        cb = self.cb
        permits, version = cb.permits_used, cb.version
        answer, moved = self.admission.decide(message.assessment, message.whatif, cb)
        self._publish(moved)
        if cb.permits_used != permits and cb.version == version:
            cb.version += 1  # a permit taken: the verdict is stored with the state it leaves
            answer = replace(answer, breaker_snapshot=cb.snapshot())
        if message.reply_to is not None:
            message.reply_to.set(answer)
        return answer

    # --------------------------------------------------------------- failures

    def _failure(self, f: Failure) -> None:
        cb = self.cb
        state = cb.state
        moved = cb.failure(f)
        if not moved:
            cb.version += 1
            self._tell(FailureRecorded(f, state, cb.snapshot()))
        else:
            self._tell(FailureRecorded(f, state))
        self._publish(moved)

    # ------------------------------------------------------------ kill switch

    def _kill(self, kill: Kill, *, timer_first: bool) -> None:
        cb = self.cb
        was = cb.state
        moved = cb.force_open(kill.t, kill.operator, kill.cause, timer_first=timer_first)
        if not moved:
            cb.version += 1  # already open: now sticky
            self._tell(BreakerStateChanged(kill.t, cb.snapshot()))
        self._publish(moved)
        self._tell(KillFired(kill, was))

    def _beat(self, t: float) -> None:
        dm = self.dead_man
        deadline = dm.beat(t)
        if deadline is not None and self._heartbeat_timer is None:
            self._heartbeat_timer = deadline
            self.scheduler.schedule(
                deadline, self.actor_ref, HeartbeatTimeout(deadline), HEARTBEAT_PRIORITY
            )

    def _heartbeat_due(self, due: float) -> None:
        if self._heartbeat_timer != due:
            return
        self._heartbeat_timer = None
        dm = self.dead_man
        if dm.deadline is None or dm.fired:
            return
        if dm.deadline > due:  # re-armed since: wait for the new deadline
            self._heartbeat_timer = dm.deadline
            self.scheduler.schedule(
                dm.deadline, self.actor_ref, HeartbeatTimeout(dm.deadline), HEARTBEAT_PRIORITY
            )
            return
        at = dm.fire()
        kill = Kill(at, dm.action, "heartbeat", TransitionReason.HEARTBEAT_LOST)
        self._kill(kill, timer_first=False)

    # ---------------------------------------------------------------- publish

    def _publish(self, transitions: Transitions) -> None:
        """Tell each transition; the last carries the state it leaves, to be stored with it."""
        if transitions:
            self.cb.version += 1
            *earlier, last = transitions
            for tr in earlier:
                self._tell(tr)
            self._tell(replace(last, snapshot=self.cb.snapshot()))
        self._arm()

    def _arm(self) -> None:
        due = self.cb.due
        if self.cb.state is BreakerState.OPEN and due is not None and due != self._scheduled:
            self._scheduled = due
            self.scheduler.schedule(due, self.actor_ref, OpenTimeout(due), OPEN_TIMER_PRIORITY)

    def _tell(self, message: Any) -> None:
        if self.subscriber is not None:
            self.subscriber.tell(message)

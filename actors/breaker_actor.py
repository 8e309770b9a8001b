"""BreakerActor: the system level. A thin shell over :class:`CircuitBreaker`.

It is the one place half-open permits are granted: the portfolio's verdict on
a check comes here as a :class:`GateRequest`, and because an actor handles one
message at a time, two concurrent checks can never both take the last permit.
When the breaker opens with a timer, the actor asks the scheduler for an
:class:`OpenTimeout` message at the due time, so it moves to HALF_OPEN by
itself even if nothing else happens.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, replace
from typing import Any

from actors.circuit_breaker import BreakerParams, CircuitBreaker, Transitions
from actors.limits import conclude
from actors.messages import (
    Admin,
    AdminAction,
    BreakerState,
    CheckAnswer,
    Failure,
    FailureRecorded,
    GateRequest,
    GetBreakerState,
    OpenTimeout,
    ReasonCode,
    Success,
    SystemHalt,
)
from actors.runtime import Dispatcher, PooledActor
from actors.scheduler import Scheduler


@dataclass(frozen=True, slots=True)
class BreakerView:
    state: BreakerState
    snapshot: dict[str, Any]


class BreakerActor(PooledActor):
    def __init__(
        self,
        params: BreakerParams,
        *,
        dispatcher: Dispatcher,
        scheduler: Scheduler,
        subscriber: Any = None,
        restored: CircuitBreaker | None = None,
    ) -> None:
        super().__init__(dispatcher=dispatcher)
        self.cb = restored if restored is not None else CircuitBreaker(params)
        self.scheduler = scheduler
        self.subscriber = subscriber
        self._scheduled: float | None = None

    def on_start(self) -> None:
        self._arm()

    def is_priority(self, message: Any) -> bool:
        """Checks jump the queue; a state query waits its turn so it sees what came before."""
        return isinstance(message, GateRequest)

    def coalesce_key(self, message: Any) -> Hashable | None:
        return None

    def on_receive(self, message: Any) -> Any:
        cb = self.cb
        if isinstance(message, GateRequest):
            return self._gate(message)
        if isinstance(message, Failure):
            self._tell(FailureRecorded(message, cb.state))
            self._publish(cb.failure(message))
        elif isinstance(message, Success):
            self._tell(message)
            self._publish(cb.success(message.t))
        elif isinstance(message, OpenTimeout):
            self._publish(cb.advance(message.t))
        elif isinstance(message, Admin):
            if message.action is AdminAction.FORCE_OPEN:
                self._publish(cb.force_open(message.t, message.operator))
            else:
                self._publish(cb.reset(message.t, message.operator))
            return cb.state
        elif isinstance(message, SystemHalt):
            self._publish(cb.force_open(message.t, message.detail or "daemon", message.reason))
        elif isinstance(message, GetBreakerState):
            return BreakerView(cb.state, cb.snapshot())
        return None

    def _gate(self, request: GateRequest) -> CheckAnswer:
        verdict = request.verdict
        code: ReasonCode | None = None
        invalid = any(r.code is ReasonCode.INVALID_ORDER for r in verdict.reasons)
        if not invalid:
            code, moved = self.cb.admit(
                verdict.t, entry=not verdict.risk_reducing, wants_permit=not verdict.reasons
            )
            self._publish(moved)
        answer = conclude(verdict, code, self.cb.state)
        if request.reply_to is not None:
            request.reply_to.set(answer)
        return answer

    def _publish(self, transitions: Transitions) -> None:
        """Tell each transition; the last carries the state it leaves, to be stored with it."""
        if transitions:
            *earlier, last = transitions
            for tr in earlier:
                self._tell(tr)
            self._tell(replace(last, snapshot=self.cb.snapshot()))
        self._arm()

    def _arm(self) -> None:
        due = self.cb.due
        if self.cb.state is BreakerState.OPEN and due is not None and due != self._scheduled:
            self._scheduled = due
            self.scheduler.schedule(due, self.actor_ref, OpenTimeout(due))

    def _tell(self, message: Any) -> None:
        if self.subscriber is not None:
            self.subscriber.tell(message)

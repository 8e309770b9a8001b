"""The dead-man heartbeat (DESIGN §4.5): a trader that goes silent is killed.

From the trader's first heartbeat or check on, each one re-arms a deadline
``heartbeat_timeout_s`` later; exactly at the deadline (an event at that
instant sees it fired) the daemon kills with ``heartbeat_action``. It fires
once, then waits for the next heartbeat or check. Pure: the breaker actor
turns deadlines into timer messages.
"""

from __future__ import annotations

from actors.messages import KillMode


class DeadMan:
    def __init__(self, timeout_s: float | None, action: KillMode = KillMode.HALT) -> None:
        self.timeout_s = timeout_s
        self.action = action
        self.last: float | None = None
        self.deadline: float | None = None
        self.fired = False

    @property
    def enabled(self) -> bool:
        return self.timeout_s is not None

    def beat(self, t: float) -> float | None:
        """A heartbeat or a check at ``t``: the new deadline (None when off).

        The last heartbeat is remembered even when the switch is off (shown in
        the state: the trader's last sign of life).
        """
        if self.last is None or t >= self.last:
            self.last = t
            if self.timeout_s is not None:
                self.deadline = t + self.timeout_s
                self.fired = False
        return self.deadline

    def due(self, t: float) -> bool:
        """Has the deadline come at ``t`` (and not fired yet)?"""
        return self.deadline is not None and t >= self.deadline and not self.fired

    def fire(self) -> float:
        """Fire once; returns the deadline it fired at."""
        assert self.deadline is not None
        at = self.deadline
        self.fired = True
        self.deadline = None
        return at

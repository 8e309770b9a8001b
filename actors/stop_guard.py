"""``[stop_guard]``: many stops triggering at once is a systemic failure, not bad luck.

Each TRIGGER after which at least ``max_triggers`` TRIGGERs (any position,
closed ones included, strategies counting once) have t in (t − window_s, t]
reports a failure of kind ``stop_guard`` to the breaker at that t, its detail
naming the positions — so each further TRIGGER in the window reports again
(DESIGN §4.2). Restarts reload the window from the journal's TRIGGER rows.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from actors.messages import Failure, FailureKind


@dataclass(frozen=True, slots=True)
class StopGuardParams:
    max_triggers: int
    window_s: float


class StopGuard:
    def __init__(self, params: StopGuardParams) -> None:
        self.params = params
        self.recent: deque[tuple[float, str]] = deque()

    def trigger(self, t: float, position_id: str) -> Failure | None:
        recent = self.recent
        recent.append((t, position_id))
        horizon = t - self.params.window_s
        while recent and recent[0][0] <= horizon:
            recent.popleft()
        in_window = [pid for tt, pid in recent if tt <= t]
        if len(in_window) < self.params.max_triggers:
            return None
        names = ", ".join(in_window)
        detail = (
            f"{len(in_window)} stops triggered within {self.params.window_s:g}s "
            f"(max_triggers {self.params.max_triggers}): {names}"
        )
        return Failure(t, FailureKind.STOP_GUARD, None, detail)

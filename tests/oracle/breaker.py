"""The circuit breaker (DESIGN §5, with §4.2 stop_guard, §4.3 loss_limit, §4.5 kill).

Facts copied from the contract:

- CLOSED: each failure adds its weight at t0 and counts while now - t0 <
  failure_window_s; counted weights >= failure_threshold, or a `trip` kind,
  -> OPEN.  A success in CLOSED or OPEN changes nothing.
- OPEN: failures change nothing.  Exactly open_timeout_s *
  backoff_multiplier**(n-1) after opening (n = automatic trips since the last
  CLOSED, HALF_OPEN -> OPEN included; capped at max_open_timeout_s) ->
  HALF_OPEN by itself; an event at exactly the due time sees HALF_OPEN.
- HALF_OPEN: each allowed non-risk-reducing entry takes one of
  half_open_max_tries permits (never returned); none left ->
  breaker_half_open_busy.  half_open_max_tries successes -> CLOSED (window,
  trips, permits cleared); any failure -> OPEN.  Successes and permits start
  at 0 on each entry into HALF_OPEN.
- force-open: OPEN, no timer, until reset (an OPEN breaker: sticky, no line).
  reset: CLOSED, everything cleared, the day's trip count too (a CLOSED
  breaker: no line, but cleared).
- The automatic trip that reaches max_trips_per_day in one UTC day
  (floor(t/86400)) latches OPEN (no timer) until reset; closing does not
  clear the day's count.
- kill (any mode) and the heartbeat timeout: OPEN from any state (one line,
  also from HALF_OPEN), sticky, timer dropped; not a trip.  An OPEN breaker is
  made sticky without a line.
- loss_limit (§4.3): from CLOSED or HALF_OPEN an automatic trip written as one
  line that latches OPEN without timer; already OPEN it becomes latched (no
  line).
- Only state changes write a line: {"t","type":"breaker","from","to","cause"}.

`cause` is free-form in the contract and ignored by the comparison; it is
written in the shape the project's semantics doc describes ({reason,
failures_by_kind, failure, operator, latched}) so that the example goldens
are close to what the project prints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from oracle.config import FAILURE_KINDS, BreakerConfig

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"


@dataclass
class Breaker:
    """One breaker; `lines` collects the output lines it writes, in order."""

    cfg: BreakerConfig
    lines: list[dict[str, Any]]
    state: str = CLOSED
    #: (t0, kind, weight) in arrival order, every state; cleared on reaching CLOSED.
    window: list[tuple[float, str, float]] = field(default_factory=list)
    trips_since_closed: int = 0
    due: float | None = None
    permits_taken: int = 0
    successes: int = 0
    day_trips: dict[int, int] = field(default_factory=dict)

    # -- output --------------------------------------------------------------

    def _by_kind(self, t: float) -> dict[str, float]:
        """The weights in the window at t, by kind in the kinds' order (for the cause only)."""
        out: dict[str, float] = {}
        for t0, kind, weight in self.window:
            if t - t0 < self.cfg.failure_window_s:
                out[kind] = out.get(kind, 0.0) + weight
        return {k: out[k] for k in FAILURE_KINDS if k in out}

    def _cause(
        self,
        t: float,
        reason: str,
        *,
        failure: dict[str, Any] | None = None,
        operator: str | None = None,
        latched: bool = False,
        window: bool = True,
    ) -> dict[str, Any]:
        """A cause in the semantics doc's shape."""
        return {
            "reason": reason,
            "failures_by_kind": self._by_kind(t) if window else {},
            "failure": failure,
            "operator": operator,
            "latched": latched,
        }

    def _move(self, t: float, to: str, cause: dict[str, Any]) -> None:
        """Change state and write the line (only called for a real change)."""
        self.lines.append({"t": t, "type": "breaker", "from": self.state, "to": to, "cause": cause})
        self.state = to
        if to == HALF_OPEN:
            self.permits_taken = 0
            self.successes = 0
        if to == CLOSED:
            self.window.clear()
            self.trips_since_closed = 0
            self.permits_taken = 0
            self.successes = 0
            self.due = None

    # -- automatic trips -----------------------------------------------------

    def _trip(self, t: float, reason: str, latch: bool, failure: dict[str, Any]) -> None:
        """An automatic trip: counts for backoff n and the day's trips; may latch."""
        self.trips_since_closed += 1
        day = math.floor(t / 86400)
        self.day_trips[day] = self.day_trips.get(day, 0) + 1
        limit = self.cfg.max_trips_per_day
        latched = latch or (limit is not None and self.day_trips[day] >= limit)
        if latched:
            self.due = None
        else:
            n = self.trips_since_closed
            duration = self.cfg.open_timeout_s * self.cfg.backoff_multiplier ** (n - 1)
            self.due = t + min(duration, self.cfg.max_open_timeout_s)
        self._move(t, OPEN, self._cause(t, reason, failure=failure, latched=latched))

    def failure(self, t: float, kind: str, code: object = None, detail: object = None) -> None:
        """A failure of a kind at t (kinds from lines, stop_guard from the stop guard)."""
        weight = self.cfg.weight(kind)
        self.window.append((t, kind, weight))
        self.window = [f for f in self.window if t - f[0] < self.cfg.failure_window_s]
        tipping = {"kind": kind, "code": code, "detail": "" if detail is None else detail}
        if self.state == CLOSED:
            total = 0.0
            for _, _, w in self.window:
                total += w
            if self.cfg.trip(kind):
                self._trip(t, "trip_kind", False, tipping)
            elif total >= self.cfg.failure_threshold:
                self._trip(t, "failure_threshold", False, tipping)
        elif self.state == HALF_OPEN:
            self._trip(t, "half_open_failure", False, tipping)
        # OPEN: counted and journaled, nothing changes.

    def loss_trip(self, t: float, detail: str) -> None:
        """A loss_limit failure (§4.3): always trips and latches."""
        if self.state == OPEN:
            self.due = None
            return
        self._trip(t, "loss_limit", True, {"kind": "loss_limit", "code": None, "detail": detail})

    def success(self, t: float) -> None:
        """A success: counts only in HALF_OPEN."""
        if self.state != HALF_OPEN:
            return
        self.successes += 1
        if self.successes >= self.cfg.half_open_max_tries:
            self._move(t, CLOSED, self._cause(t, "half_open_successes"))

    # -- operator and kill ---------------------------------------------------

    def force_open(
        self, t: float, reason: str = "operator_force_open", operator: str | None = "operator"
    ) -> None:
        """force-open, kill and the heartbeat loss: OPEN and sticky (timer dropped)."""
        self.due = None
        if self.state != OPEN:
            self._move(t, OPEN, self._cause(t, reason, operator=operator))
        self.due = None

    def reset(self, t: float, operator: str = "operator") -> None:
        """Operator reset: CLOSED with everything cleared, the day's trips too."""
        self.day_trips.clear()
        if self.state != CLOSED:
            self._move(t, CLOSED, self._cause(t, "operator_reset", operator=operator))
        self.window.clear()
        self.trips_since_closed = 0
        self.permits_taken = 0
        self.successes = 0
        self.due = None

    # -- timer ---------------------------------------------------------------

    def fire_timer(self) -> None:
        """OPEN -> HALF_OPEN at the exact due time."""
        assert self.due is not None and self.state == OPEN
        due = self.due
        self.due = None
        self._move(due, HALF_OPEN, self._cause(due, "open_timeout", window=False))

    # -- the gate's questions ------------------------------------------------

    def denial_code(self) -> str | None:
        """The code the breaker denies an entry with, or None when it would let one through."""
        if self.state == OPEN:
            return "breaker_open"
        if self.state == HALF_OPEN and self.permits_taken >= self.cfg.half_open_max_tries:
            return "breaker_half_open_busy"
        return None

    def take_permit(self) -> None:
        """An allowed entry in HALF_OPEN takes one permit."""
        if self.state == HALF_OPEN:
            self.permits_taken += 1

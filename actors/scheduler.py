"""Timers are messages: a scheduler tells an actor a message when its time comes.

Actors never sleep or read a clock; they ask a scheduler to deliver a message
at an event time. The live daemon uses a thread-backed scheduler on the wall
clock (``supervisor.core.wall_clock_scheduler``); replay and tests use :class:`VirtualScheduler`,
which fires timers only when told that event time has reached them, so a
timer transition lands at exactly its due time, deterministically.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Any, Protocol


class Scheduler(Protocol):
    def schedule(self, due: float, ref: Any, message: Any, priority: int = 1) -> None:
        """Deliver ``message`` to ``ref`` at ``due``; at one instant, lower ``priority`` first."""
        ...


class VirtualScheduler:
    """Timers on event time, fired by :meth:`advance_to` in (due, priority, scheduling) order."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int, Any, Any]] = []
        self._seq = itertools.count()

    def schedule(self, due: float, ref: Any, message: Any, priority: int = 1) -> None:
        heapq.heappush(self._heap, (due, priority, next(self._seq), ref, message))

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def advance_to(self, t: float) -> int:
        """Deliver every timer due at or before ``t``; returns how many fired."""
        fired = 0
        while self._heap and self._heap[0][0] <= t:
            _, _, _, ref, message = heapq.heappop(self._heap)
            ref.tell(message)
            fired += 1
        return fired

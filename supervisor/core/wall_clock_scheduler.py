"""Timers on the wall clock for the live daemon: one thread, one heap.

Actors ask for a message at an event time (:class:`actors.scheduler.Scheduler`);
this thread tells it when the injected clock reaches that time. A late timer
is harmless: the breaker also catches up by itself on the next event it sees.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

import pykka


class ThreadScheduler:
    def __init__(self, clock: Callable[[], float] = time.time, *, name: str = "timers") -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, int, Any, Any]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def schedule(self, due: float, ref: Any, message: Any, priority: int = 1) -> None:
        with self._cond:
            heapq.heappush(self._heap, (due, priority, next(self._seq), ref, message))
            self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    def stop(self, timeout: float = 2.0) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stopped:
                    return
                if not self._heap:
                    self._cond.wait()
                    continue
                wait = self._heap[0][0] - self._clock()
                if wait > 0:
                    self._cond.wait(min(wait, 1.0))  # re-read the clock at least each second
                    continue
                _, _, _, ref, message = heapq.heappop(self._heap)
            # a restarted actor's successor re-arms its own timers
            with contextlib.suppress(pykka.ActorDeadError):
                ref.tell(message)

"""Restarting crashed actors: how often, before the daemon gives up.

Actors are reached through :class:`actors.handle.Handle`, which the
supervisor points at a restarted actor's successor. Restarts are bounded
per actor kind (an intensity limit, as in Erlang/OTP): past it the daemon
stops with a non-zero exit code and lets systemd start it clean.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable


class RestartIntensityExceeded(RuntimeError):
    pass


class RestartPolicy:
    """At most ``max_restarts`` per actor kind within ``window_s`` seconds."""

    def __init__(
        self, clock: Callable[[], float], max_restarts: int = 5, window_s: float = 60.0
    ) -> None:
        self.clock = clock
        self.max_restarts = max_restarts
        self.window_s = window_s
        self._history: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, kind: str) -> bool:
        now = self.clock()
        with self._lock:
            h = self._history.setdefault(kind, deque())
            while h and now - h[0] >= self.window_s:
                h.popleft()
            if len(h) >= self.max_restarts:
                return False
            h.append(now)
            return True

"""Restarting crashed actors, and the stable handles that make a restart invisible.

pykka drops a dead actor's queued mail and its ``ActorRef`` stays dead, so a
restart is only as good as the re-wiring around it. Every actor is reached
through a :class:`Handle` that always points at the current incarnation; the
supervisor swaps the reference and nobody else notices. Restarts are bounded
per actor kind (an intensity limit, as in Erlang/OTP): past it the daemon
stops with a non-zero exit code and lets systemd start it clean.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import pykka


class Handle:
    """Tell/ask the current incarnation of an actor; swapped on restart."""

    __slots__ = ("kind", "name", "ref")

    def __init__(self, kind: str, name: str, ref: pykka.ActorRef[Any] | None = None) -> None:
        self.kind = kind
        self.name = name
        self.ref: pykka.ActorRef[Any] = ref  # type: ignore[assignment]  # set before use

    def tell(self, message: Any) -> None:
        # dead and being restarted: the successor resyncs its state
        with contextlib.suppress(pykka.ActorDeadError):
            self.ref.tell(message)

    def ask(self, message: Any, timeout: float | None = 5.0) -> Any:
        return self.ref.ask(message, timeout=timeout)

    def is_alive(self) -> bool:
        return bool(self.ref.is_alive())

    def stop(self) -> None:
        if self.ref.is_alive():
            self.ref.stop()


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

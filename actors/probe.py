"""A subscriber that keeps every message it is told: replay's sink and the tests' probe."""

from __future__ import annotations

import threading
from typing import Any

from actors.runtime import Dispatcher, PooledActor


class Probe(PooledActor):
    """Appends each message to ``into`` (a list the owner reads), or to its own list."""

    def __init__(self, *, dispatcher: Dispatcher, into: list[Any] | None = None) -> None:
        super().__init__(dispatcher=dispatcher)
        self._lock = threading.Lock()
        self.messages: list[Any] = [] if into is None else into

    def on_receive(self, message: Any) -> Any:
        with self._lock:
            self.messages.append(message)
        return None

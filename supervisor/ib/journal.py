"""The one way the IB side writes the decision journal: the core's journal writer.

The adapter never calls the store's journal methods itself: it receives a
:class:`Journal` at construction and calls it. :class:`WriterJournal` hands
each row to the daemon's one journal writer
(:class:`~supervisor.core.journal_writer.JournalWriter`), which owns the
store-down policy (rows held in memory, in order, written when the store is
back); rows are stamped with ``clock()`` and never earlier than the previous
one, so the adapter's rows never go back in time.

Threading: a Journal may be called from any thread; :class:`WriterJournal`
keeps its last time under its own lock and relies on the writer's for writes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from supervisor.core.journal_writer import Row
from supervisor.store.journal_kind import JournalKind

__all__ = ["Journal", "RowWriter", "WriterJournal"]

log = logging.getLogger(__name__)


class Journal(Protocol):
    """Write one journal row: its kind, its payload and the position it is about."""

    def __call__(self, kind: str, payload: Mapping[str, Any], position_id: str | None) -> None: ...


class RowWriter(Protocol):
    """The core's journal writer, as the adapter uses it."""

    def write(self, row: Row) -> bool: ...


class WriterJournal:
    """Journal rows through the core's writer, stamped with ``clock()``; never raises."""

    def __init__(self, writer: RowWriter, clock: Callable[[], float]) -> None:
        self.writer = writer
        self.clock = clock
        self._last_t = float("-inf")
        self._lock = threading.Lock()

    def __call__(self, kind: str, payload: Mapping[str, Any], position_id: str | None) -> None:
        with self._lock:
            t = self._last_t = max(self.clock(), self._last_t)
        try:
            row = Row(t, JournalKind(kind), dict(payload), position_id)
        except ValueError:
            log.error("not a journal kind: %r (%s)", kind, dict(payload))
            return
        try:
            self.writer.write(row)
        except Exception:  # a journal problem must not stop an order from being followed
            log.exception("journal %s not written (%s)", kind, dict(payload))

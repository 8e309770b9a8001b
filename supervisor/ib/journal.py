"""The one way the IB side writes the decision journal.

The adapter never calls the store's journal methods itself: it receives a
:class:`Journal` at construction (the core's journal writer, which owns the
store-down policy) and calls it. :class:`StoreJournal` is the store-backed
writer used until the core hands one over; it never raises, because a journal
row that cannot be written must not stop an exit order from being reconciled.

Threading: a Journal may be called from any thread; :class:`StoreJournal`
keeps its last time under its own lock and relies on the store's for writes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from supervisor.store.sqlite_store import StoreUnavailable

__all__ = ["Journal", "JournalStore", "StoreJournal"]

log = logging.getLogger(__name__)


class Journal(Protocol):
    """Write one journal row: its kind, its payload and the position it is about."""

    def __call__(self, kind: str, payload: Mapping[str, Any], position_id: str | None) -> None: ...


class JournalStore(Protocol):
    """The part of the store a :class:`StoreJournal` writes through."""

    def append(
        self, *, t: float, kind: str, payload: Mapping[str, Any], position_id: str | None = None
    ) -> int: ...


class StoreJournal:
    """Journal rows straight into the store, stamped with ``clock()``; never raises.

    ``clock`` is read at each call, and a row is stamped no earlier than the
    previous one: the journal's time never goes backwards, even when the wall
    clock steps back.
    """

    def __init__(self, store: JournalStore | None, clock: Callable[[], float]) -> None:
        self.store = store
        self.clock = clock
        self._last_t = float("-inf")
        self._lock = threading.Lock()

    def __call__(self, kind: str, payload: Mapping[str, Any], position_id: str | None) -> None:
        store = self.store
        if store is None:
            return
        with self._lock:
            t = self._last_t = max(self.clock(), self._last_t)
        try:
            store.append(t=t, kind=kind, payload=dict(payload), position_id=position_id)
        except StoreUnavailable as exc:
            log.error("journal %s not written: %s (%s)", kind, exc, dict(payload))

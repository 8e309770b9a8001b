"""The one journal writer: every decision reaches the store here, under one policy.

Stop decisions, breaker transitions and state changes, check verdicts,
operator actions, kills, money and strategy events and exit-order steps are
all written by :meth:`JournalWriter.write`, each row together with the state
it leaves (a stop's, the breaker's) in one transaction.

When the store fails (locked, read-only, full, replaced under us) the writer
keeps every row in memory, in order, tells the daemon once (which halts new
entries with cause ``store_unavailable``) and writes the backlog, oldest
first, as soon as the store answers again. Whoever writes a decision, it
survives a store fault the same way. A check verdict that is not durable is
reported as such to the gate, which then fails closed.

The breaker's state carries a version; a state older than the one already
written is never saved over it, so two verdicts written out of order by two
threads can never leave the store less strict than the breaker.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from actors.messages import CheckAnswer, CheckRequest, StopSnapshot
from supervisor import json_codec
from supervisor.store.journal_kind import JournalKind
from supervisor.store.sqlite_store import StoreUnavailable

log = logging.getLogger(__name__)


class JournalStore(Protocol):
    """The part of :class:`~supervisor.store.sqlite_store.Store` the writer uses."""

    def record(
        self,
        *,
        t: float,
        kind: str,
        payload: Mapping[str, Any],
        position_id: str | None = None,
        stop: StopSnapshot | None = None,
        breaker: Mapping[str, Any] | None = None,
    ) -> int: ...

    def healthy(self) -> bool: ...

    def save_stop(self, snap: StopSnapshot) -> None: ...

    def delete_stop(self, position_id: str) -> None: ...


@dataclass(slots=True)
class Row:
    """A journal row and the state it leaves; ``kind`` None: state only (no row)."""

    t: float
    kind: JournalKind | None
    payload: Mapping[str, Any]
    position_id: str | None = None
    stop: StopSnapshot | None = None
    breaker: Mapping[str, Any] | None = None
    delete_stop: str | None = None  # a closed position's stop state to forget


def _version(state: Mapping[str, Any] | None) -> int:
    if state is None:
        return -1
    v = state.get("version", 0)
    return v if isinstance(v, int) else 0


class JournalWriter:
    def __init__(
        self,
        store: JournalStore | None,
        *,
        on_fault: Callable[[str], None] | None = None,
        on_recovered: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.on_fault = on_fault
        self.on_recovered = on_recovered
        self._lock = threading.Lock()
        self.backlog: list[Row] = []
        self.down: str | None = None
        self._breaker_version = -1

    # ----------------------------------------------------------------- writes

    def write(self, row: Row) -> bool:
        """Journal a row and the state it leaves; False: held in memory (store down)."""
        if self.store is None:
            return True
        fault: str | None = None
        with self._lock:
            if self.down is None:
                try:
                    self._record(self.store, row)
                    return True
                except StoreUnavailable as exc:
                    fault = self.down = str(exc)
            self.backlog.append(row)
        if fault is not None:
            log.error("store unavailable, decisions held in memory: %s", fault)
            if self.on_fault is not None:
                self.on_fault(fault)
        return False

    def _record(self, store: JournalStore, row: Row) -> None:
        breaker = row.breaker
        if breaker is not None and _version(breaker) < self._breaker_version:
            breaker = None  # a newer state is already stored: never go back
        if row.kind is None:
            if row.stop is not None:
                store.save_stop(row.stop)
            if row.delete_stop is not None:
                store.delete_stop(row.delete_stop)
            return
        store.record(
            t=row.t,
            kind=row.kind.value,
            payload=row.payload,
            position_id=row.position_id,
            stop=row.stop,
            breaker=breaker,
        )
        if breaker is not None:
            self._breaker_version = _version(breaker)
        if row.delete_stop is not None:
            store.delete_stop(row.delete_stop)

    def verdict(self, request: CheckRequest, answer: CheckAnswer) -> bool:
        """A check's verdict, with what a restart needs to rebuild the order windows."""
        payload: dict[str, Any] = {**json_codec.check_line(answer), "detail": answer.detail}
        if answer.whatif is not None:
            payload["whatif"] = json_codec.whatif_fields(answer.whatif)
        if answer.allowed:
            payload["legs"] = [json_codec.leg_fields(leg) for leg in request.legs]
        return self.write(
            Row(answer.t, JournalKind.CHECK, payload, breaker=answer.breaker_snapshot)
        )

    # ---------------------------------------------------------------- recovery

    def retry(self) -> bool:
        """Write the backlog if the store answers again; True when nothing is held."""
        store = self.store
        with self._lock:
            if store is None or self.down is None:
                return True
            if not store.healthy():
                return False
            try:
                while self.backlog:  # oldest first, each row with its state, atomically
                    self._record(store, self.backlog[0])
                    self.backlog.pop(0)
            except StoreUnavailable as exc:
                self.down = str(exc)
                return False
            self.down = None
        log.warning("store available again: the journal rows held in memory are written")
        if self.on_recovered is not None:
            self.on_recovered()
        return True

"""Input events reach the recording in time order, as ``replay`` needs them.

The daemon records each input event as it enters (its event time stamped
then). A check is the exception: its line carries the IB what-if the gate
fetched while deciding, so it can only be written once the check is answered
— by which time quotes that arrived meanwhile have been recorded. A check
therefore reserves its place when its time is stamped, and the lines behind
it wait until it is filled (at most the gate's timeout). Times stamped by
different threads can still cross by microseconds; a line is never written
with a time before the line ahead of it (it takes that time), so replay
reads a non-decreasing file.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from typing import Any, Protocol


class EventSink(Protocol):
    def record(self, event: Mapping[str, Any]) -> None: ...


class Slot:
    __slots__ = ("event", "filled")

    def __init__(self) -> None:
        self.event: dict[str, Any] | None = None
        self.filled = False


class RecordingOrder:
    def __init__(self, sink: EventSink) -> None:
        self.sink = sink
        self._lock = threading.Lock()
        self._slots: deque[Slot] = deque()
        self._last_t = float("-inf")

    def now(self, event: Mapping[str, Any]) -> None:
        """An event recorded as it enters."""
        with self._lock:
            if not self._slots:
                self._write(dict(event))
                return
            slot = Slot()
            slot.event, slot.filled = dict(event), True
            self._slots.append(slot)

    def reserve(self) -> Slot:
        """A place for an event written later (a check, with its what-if)."""
        slot = Slot()
        with self._lock:
            self._slots.append(slot)
        return slot

    def fill(self, slot: Slot, event: Mapping[str, Any] | None) -> None:
        """The reserved event (None: nothing to record), and whatever waited behind it."""
        with self._lock:
            slot.event = None if event is None else dict(event)
            slot.filled = True
            slots = self._slots
            while slots and slots[0].filled:
                head = slots.popleft()
                if head.event is not None:
                    self._write(head.event)

    def _write(self, event: dict[str, Any]) -> None:
        t = event.get("t")
        if isinstance(t, int | float):
            if t < self._last_t:
                event["t"] = self._last_t
            else:
                self._last_t = float(t)
        self.sink.record(event)

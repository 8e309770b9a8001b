"""The TRIGGERs a restart recomputes the cooldown and the stop guard from.

Each journal row of kind ``stop`` whose payload's ``action`` is ``TRIGGER``
gets a row in ``triggers`` (same seq) in the same transaction, with the
symbol of its position or strategy (DESIGN §4.2: cooldown by symbol, stop
guard over every TRIGGER). A table of its own, indexed by time, so that
``triggers_since(t)`` reads a handful of rows instead of the journal.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

from supervisor.store.schema import TRIGGER_SELECT

__all__ = ["INSERT_TRIGGER", "TriggerRow", "is_trigger"]


class TriggerRow(NamedTuple):
    """One TRIGGER: when, of which position (or strategy), on which symbol."""

    t: float
    position_id: str
    symbol: str | None  # None only for a TRIGGER journaled with nothing naming its symbol


INSERT_TRIGGER: Final = (
    "INSERT INTO triggers (seq, t, position_id, symbol, trigger_id) "
    + TRIGGER_SELECT.format(symbol="?")
    + " WHERE j.seq = ?"
)


def is_trigger(kind: str, payload: Mapping[str, Any]) -> bool:
    """Is this journal row a stop's TRIGGER? (``action`` may be a str or an enum.)"""
    if kind != "stop":
        return False
    action = payload.get("action")
    if isinstance(action, enum.Enum):
        action = action.value
    return action == "TRIGGER"

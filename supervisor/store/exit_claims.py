"""Exit claims: at most one exit order per trigger, and one flatten order per position and kill.

A claim is a durable row keyed by its key, so "was it claimed?" has one answer
across threads, processes and restarts. Two kinds of key share the table:

* a stop's ``trigger_id`` (its TRIGGER's idempotency key): ``reason`` ``stop``;
* ``kill:<kill id>:<position id>`` for a flatten order of a kill (DESIGN
  §4.5: never two for the same position and kill): ``reason`` ``flatten``.

The reason is read from the key (``flatten_key`` builds one), so it cannot
disagree with it.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any, Final, NamedTuple

__all__ = [
    "EXIT_COLUMNS",
    "ExitClaim",
    "ExitReason",
    "exit_dict",
    "exit_reason",
    "flatten_key",
]

_FLATTEN_PREFIX: Final = "kill:"

EXIT_COLUMNS: Final = (
    "trigger_id, position_id, claimed_t, claimed_wall_t, order_id, detail, recorded_wall_t, "
    "reason, journal_seq"
)


class ExitReason(StrEnum):
    """Why an exit order was claimed."""

    STOP = "stop"  # a trailing stop's TRIGGER
    FLATTEN = "flatten"  # a kill's flatten order for one position (or strategy)


class ExitClaim(NamedTuple):
    """A claim to make with a journal row in ``Store.record(claim=...)``."""

    key: str  # a trigger id, or flatten_key(kill_id, position_id)
    position_id: str


def flatten_key(kill_id: str, position_id: str) -> str:
    """The claim key of a kill's flatten order for one position."""
    if not kill_id or not position_id:
        raise ValueError("a flatten key needs a kill id and a position id")
    return f"{_FLATTEN_PREFIX}{kill_id}:{position_id}"


def exit_reason(key: str) -> ExitReason:
    """``flatten`` for a ``kill:<kill id>:<position id>`` key, else ``stop``."""
    if key.startswith(_FLATTEN_PREFIX) and key.count(":") >= 2:
        return ExitReason.FLATTEN
    return ExitReason.STOP


def exit_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    """A ``SELECT {EXIT_COLUMNS}`` row as the dict ``exit_for``/``pending_exits`` return."""
    (trigger_id, position_id, claimed_t, claimed_wall_t, order_id, detail, recorded_wall_t,
     reason, journal_seq) = row  # fmt: skip
    return {
        "trigger_id": trigger_id,
        "position_id": position_id,
        "claimed_t": claimed_t,
        "claimed_wall_t": claimed_wall_t,
        "order_id": order_id,
        "detail": None if detail is None else json.loads(detail),
        "recorded_wall_t": recorded_wall_t,
        "reason": reason,
        "journal_seq": journal_seq,
    }

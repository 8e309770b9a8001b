"""A kill as the store keeps it: never lost, so that a restart sees it (DESIGN §4.5).

The store saves a kill in the transaction of its journal row
(``Store.record(kind="kill", kill=...)``), upserted by id: each step of the
kill (cancel sent, cancel confirmed, flatten orders claimed, …) saves the
same kill with its new ``state``. ``state`` is opaque JSON owned by the
daemon, kept exactly (NaN and ±inf included).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from supervisor.store.payload_codec import decode_state, encode_state

__all__ = ["KILL_COLUMNS", "SAVE_KILL", "KillRecord", "kill_from_row", "kill_params"]


@dataclass(frozen=True, slots=True)
class KillRecord:
    """One kill: who, when, how, why, and how far it got."""

    id: str
    t: float  # event time of the kill (epoch s)
    mode: str  # "halt" | "cancel" | "flatten" (KillMode's values)
    cause: str  # "kill", "heartbeat_lost", …
    operator: str | None = None
    state: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("a kill needs a non-empty id")
        if not self.mode:
            raise ValueError("a kill needs a mode")


KILL_COLUMNS: Final = "id, t, mode, cause, operator, state"
SAVE_KILL: Final = (
    "INSERT INTO kills (id, t, mode, cause, operator, state, created_wall_t, updated_wall_t) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET t = excluded.t, "
    "mode = excluded.mode, cause = excluded.cause, operator = excluded.operator, "
    "state = excluded.state, updated_wall_t = excluded.updated_wall_t"
)


def kill_params(kill: KillRecord, wall_t: float) -> tuple[Any, ...]:
    return (
        kill.id,
        kill.t,
        str(kill.mode),
        str(kill.cause),
        kill.operator,
        encode_state(kill.state),
        wall_t,
        wall_t,
    )


def kill_from_row(row: tuple[Any, ...]) -> KillRecord:
    id_, t, mode, cause, operator, state = row
    return KillRecord(
        id=id_,
        t=math.nan if t is None else float(t),
        mode=mode,
        cause=cause,
        operator=operator,
        state=decode_state(state, f"state of kill {id_!r}"),
    )

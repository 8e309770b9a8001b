"""A trader-declared strategy saved or forgotten, for ``Store.record(strategy=...)``.

The spec (its legs, whatever the daemon needs to rebuild it) is opaque JSON
owned by the daemon, kept exactly. Strategies survive a restart; their stop
state lives with the positions' in ``stops`` (see ``stop_rows``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, NamedTuple

__all__ = ["DELETE_STRATEGY", "SAVE_STRATEGY", "StrategyChange"]


class StrategyChange(NamedTuple):
    """Save ``spec`` under ``id``; a ``spec`` of None deletes the strategy."""

    id: str
    spec: Mapping[str, Any] | None


SAVE_STRATEGY: Final = (
    "INSERT INTO strategies (id, spec, updated_wall_t) VALUES (?, ?, ?) "
    "ON CONFLICT(id) DO UPDATE SET spec = excluded.spec, updated_wall_t = excluded.updated_wall_t"
)
DELETE_STRATEGY: Final = "DELETE FROM strategies WHERE id = ?"

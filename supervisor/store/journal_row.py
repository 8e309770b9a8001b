"""One journal entry as stored, and the set of kinds the store accepts."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from supervisor.store.journal_kind import JournalKind

__all__ = ["JOURNAL_KINDS", "JournalRow", "check_kind", "journal_row"]

JOURNAL_KINDS: Final = frozenset(k.value for k in JournalKind)


def check_kind(kind: str) -> None:
    """Refuse a kind outside :class:`JournalKind`: a typo would hide rows from every reader."""
    if kind not in JOURNAL_KINDS:
        known = ", ".join(sorted(JOURNAL_KINDS))
        raise ValueError(f"unknown journal kind {kind!r}: one of {known}")


@dataclass(frozen=True, slots=True)
class JournalRow:
    """One journal entry as stored.

    ``seq`` is the journal's own order (gap-free, never reused), ``t`` the event
    time the caller gave (NaN if it was not finite: SQLite cannot store NaN) and
    ``wall_t`` the wall clock when the row was written, which tells how far
    behind events the daemon was running.
    """

    seq: int
    t: float
    wall_t: float
    kind: str
    position_id: str | None
    payload: dict[str, Any]

    @classmethod
    def entry(
        cls,
        *,
        t: float,
        kind: str,
        payload: Mapping[str, Any],
        position_id: str | None = None,
    ) -> JournalRow:
        """A row for ``append_many``: the store assigns ``seq`` and ``wall_t`` itself."""
        return cls(0, t, 0.0, kind, position_id, dict(payload))


def journal_row(row: tuple[Any, ...]) -> JournalRow:
    """A ``SELECT seq, t, wall_t, kind, position_id, payload`` row as a JournalRow."""
    seq, t, wall_t, kind, position_id, payload = row
    return JournalRow(
        int(seq), math.nan if t is None else float(t), float(wall_t), kind, position_id,
        json.loads(payload),
    )  # fmt: skip

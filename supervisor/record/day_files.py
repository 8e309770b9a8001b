"""Names of a recording's files, and which of them retention removes.

One UTC day is recorded in one or more *parts*: every time the writer opens
the day (start-up, the first event after midnight UTC, recovery after a disk
error, a new config) it starts a new part instead of appending to an old one.
An old part may end in a frame a crash cut short, and a zstd stream cannot be
continued after a broken frame; a new file never inherits that damage, and
no line is ever written twice. Parts are numbered from 000 with a fixed width
so that a sorted listing (``ls``, a shell glob) is the order the lines were
written in::

    events-2026-12-06.000.jsonl.zst   events-2026-12-06.000.toml
    events-2026-12-06.001.jsonl.zst   events-2026-12-06.001.toml

Each part has the config text it ran with beside it, so a mid-day config
change keeps every version. Pure: names in, names out; no I/O.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

PREFIX = "events-"
DATA_SUFFIX = ".jsonl.zst"
CONFIG_SUFFIX = ".toml"
_NAME = re.compile(r"^events-(\d{4}-\d{2}-\d{2})\.(\d{3,})\.(jsonl\.zst|toml)$")


@dataclass(frozen=True, slots=True, order=True)
class Part:
    """One part of one day: ``events-<day>.<number>``."""

    day: dt.date
    number: int

    @property
    def stem(self) -> str:
        return f"{PREFIX}{self.day.isoformat()}.{self.number:03d}"

    @property
    def data_name(self) -> str:
        return self.stem + DATA_SUFFIX

    @property
    def config_name(self) -> str:
        return self.stem + CONFIG_SUFFIX


def utc_day(t: float) -> dt.date:
    """The UTC calendar day of an epoch time (event time or wall clock)."""
    if not math.isfinite(t):
        raise ValueError(f"not a time: {t!r}")
    return dt.datetime.fromtimestamp(t, tz=dt.UTC).date()


def parse_name(name: str) -> Part | None:
    """The part a file name belongs to (data or config file), or None for other files."""
    m = _NAME.match(name)
    if m is None:
        return None
    try:
        day = dt.date.fromisoformat(m.group(1))
    except ValueError:
        return None
    return Part(day, int(m.group(2)))


def next_part(day: dt.date, existing: Iterable[str]) -> Part:
    """The first unused part number of ``day``, after every part already on disk."""
    numbers = [p.number for p in map(parse_name, existing) if p is not None and p.day == day]
    return Part(day, max(numbers) + 1 if numbers else 0)


def expired(existing: Iterable[str], today: dt.date, retention_days: int) -> list[str]:
    """Files of days more than ``retention_days`` before ``today``.

    With ``retention_days = 30`` today and the 30 days before it are kept: a
    day is deleted once it is 31 days old.
    """
    oldest_kept = today - dt.timedelta(days=retention_days)
    out = []
    for name in existing:
        part = parse_name(name)
        if part is not None and part.day < oldest_kept:
            out.append(name)
    return sorted(out)

"""Missing or old data: the gate fails closed (``stale_data``), saying what and how old.

DESIGN §4: ``stale_data`` carries the largest age in seconds (null when
something is missing) and the age limit that failed. Several sources can be
stale at once (the portfolio's Greeks, a leg's quote for the collar, the daily
P&L, the what-if); the answer lists one ``stale_data`` reason made of them all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from actors.messages import Reason, ReasonCode


@dataclass(frozen=True, slots=True)
class StaleItem:
    """One missing (``age`` None) or too-old piece of data, and the bound it failed."""

    detail: str
    age: float | None = None
    limit: float | None = None


class Stale(Exception):
    """Raised where a decision needs data it does not have."""

    def __init__(self, detail: str, age: float | None = None, limit: float | None = None) -> None:
        super().__init__(detail)
        self.item = StaleItem(detail, age, limit)


def stale_reason(items: Iterable[StaleItem]) -> Reason | None:
    """One ``stale_data`` reason for all stale items, or None when there is none.

    ``value`` is the largest age, or null when anything is missing; ``limit``
    the bound of the item that gave the value (the first missing item when
    something is missing; the first of the oldest otherwise).
    """
    items = list(items)
    if not items:
        return None
    missing = [i for i in items if i.age is None]
    if missing:
        return Reason(ReasonCode.STALE_DATA, None, missing[0].limit)
    oldest = items[0]
    for i in items[1:]:
        assert i.age is not None and oldest.age is not None
        if i.age > oldest.age:
            oldest = i
    return Reason(ReasonCode.STALE_DATA, oldest.age, oldest.limit)

"""A running sum that can add and take away values without drifting.

Portfolio aggregates change by "subtract the old contribution, add the new"
on every Greek update. With plain floats that leaves rounding residue behind
(add 1e9 then take it away and small terms are gone), so after a day of
quotes the running total no longer equals a fresh sum. Keeping Shewchuk's
non-overlapping partials makes every update exact and the value the correctly
rounded sum of what is currently held — the same answer ``math.fsum`` gives
over the live contributions, in O(partials) per update (a handful at most).
"""

from __future__ import annotations

import math
from collections.abc import Iterable


class ExactSum:
    __slots__ = ("_partials",)

    def __init__(self, values: Iterable[float] = ()) -> None:
        self._partials: list[float] = []
        for v in values:
            self.add(v)

    def add(self, x: float) -> None:
        partials = self._partials
        i = 0
        for y in partials:
            if abs(x) < abs(y):
                x, y = y, x
            hi = x + y
            lo = y - (hi - x)
            if lo:
                partials[i] = lo
                i += 1
            x = hi
        partials[i:] = [x]

    def sub(self, x: float) -> None:
        self.add(-x)

    @property
    def value(self) -> float:
        return math.fsum(self._partials)

    def plus(self, extra: Iterable[float]) -> float:
        """The correctly rounded value of this sum with ``extra`` added, leaving it unchanged."""
        return math.fsum([*self._partials, *extra])

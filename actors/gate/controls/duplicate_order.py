"""``duplicate_window_s`` (code ``duplicate_order``): the same order sent twice.

Violated when an allowed order with the same legs — the same multiset of
(contract, qty, price), in any order — has t in (t − window, t].
"""

from __future__ import annotations

from collections import deque

from actors.gate.order import OrderKey
from actors.messages import Reason, ReasonCode


class DuplicateOrder:
    code = ReasonCode.DUPLICATE_ORDER

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.allowed: deque[tuple[float, OrderKey]] = deque()
        self._count: dict[OrderKey, int] = {}

    def _prune(self, t: float) -> None:
        allowed, counts = self.allowed, self._count
        while allowed and allowed[0][0] <= t - self.window_s:
            _, key = allowed.popleft()
            left = counts[key] - 1
            if left:
                counts[key] = left
            else:
                del counts[key]

    def judge(self, t: float, key: OrderKey) -> Reason | None:
        self._prune(t)
        if key in self._count:
            return Reason(self.code, None, self.window_s)
        return None

    def admitted(self, t: float, key: OrderKey) -> None:
        self._prune(t)
        self.allowed.append((t, key))
        self._count[key] = self._count.get(key, 0) + 1

    def horizon_s(self) -> float:
        return self.window_s

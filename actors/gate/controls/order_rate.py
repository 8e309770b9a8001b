"""``max_orders_per_window`` (code ``order_rate``): a bot stuck in a loop.

Violated when ``max_orders_per_window`` allowed orders already have t in
(t − order_window_s, t]. Only allowed orders count; a denied one changes
nothing. The window is a deque pruned from the left: O(1) amortized.
"""

from __future__ import annotations

from collections import deque

from actors.gate.order import OrderKey
from actors.messages import Reason, ReasonCode


class OrderRate:
    code = ReasonCode.ORDER_RATE

    def __init__(self, max_orders: int, window_s: float) -> None:
        self.limit = max_orders
        self.window_s = window_s
        self.allowed: deque[float] = deque()

    def _prune(self, t: float) -> None:
        allowed = self.allowed
        while allowed and allowed[0] <= t - self.window_s:
            allowed.popleft()

    def count(self, t: float) -> int:
        """Allowed orders with t in (t − window, t] (later ones, if any, do not count)."""
        self._prune(t)
        return sum(1 for x in self.allowed if x <= t)

    def judge(self, t: float, key: OrderKey) -> Reason | None:
        n = self.count(t)
        # a count and a count limit: whole numbers in the answer (2, not 2.0)
        return Reason(self.code, n, self.limit) if n >= self.limit else None

    def admitted(self, t: float, key: OrderKey) -> None:
        self.allowed.append(t)

    def revoke(self, t: float, key: OrderKey) -> None:
        allowed = self.allowed
        for i in range(len(allowed) - 1, -1, -1):
            if allowed[i] == t:
                del allowed[i]
                return

    def horizon_s(self) -> float:
        return self.window_s

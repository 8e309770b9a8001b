"""A kill's cancel (DESIGN §4.5): global cancel, then confirm that no order is left.

IB's ``reqGlobalCancel`` is fire-and-forget: it reaches every client's orders
(TWS's too) but says nothing back. So the cancel is confirmed from IB's own
list of open orders (``reqAllOpenOrders``), and the pair is retried with a
growing wait a bounded number of times; an order still listed after the last
attempt is an error (logged, and reported as a step). Every step goes to the
``report`` callback the core gives (``report(kill_id, step, detail)``).

Steps: ``global_cancel_sent`` (each attempt), ``still_open`` (orders left
after an attempt), ``confirmed`` (none left), ``error`` (one per order that
would not cancel), ``interrupted`` (the session was lost mid-way: carried out
again when IB is back). :meth:`CancelAll.run` also returns how it ended.

Threading: :meth:`CancelAll.run` is a coroutine on the IB loop thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from supervisor.ib.exit_orders import BrokerOrder
from supervisor.ib.session import describe

__all__ = ["CancelAll", "CancelOutcome", "KillPort", "KillReport"]

log = logging.getLogger(__name__)

Outcome = Literal["confirmed", "error", "interrupted"]


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    """How one kill's cancel ended, and the orders still open after its last attempt."""

    outcome: Outcome
    left: tuple[BrokerOrder, ...] = ()
    attempts: int = 0


class KillPort(Protocol):
    def global_cancel(self) -> None:
        """Send IB's global cancel; raises ConnectionError when it cannot be sent."""
        ...

    async def list_open_orders(self, timeout_s: float) -> Sequence[BrokerOrder]:
        """IB's open orders, every client's, still working."""
        ...


class KillReport(Protocol):
    """Where each step of a kill goes (the core's journal of the kill)."""

    def __call__(self, kill_id: str, step: str, detail: Mapping[str, Any]) -> None: ...


class CancelAll:
    """Global cancel and confirmation, ``attempts`` times at most, waits doubling."""

    def __init__(
        self,
        port: KillPort,
        report: KillReport,
        *,
        attempts: int = 5,
        first_wait_s: float = 0.25,
        max_wait_s: float = 4.0,
        list_timeout_s: float = 5.0,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be >= 1")
        self.port = port
        self.report = report
        self.attempts = attempts
        self.first_wait_s = first_wait_s
        self.max_wait_s = max_wait_s
        self.list_timeout_s = list_timeout_s

    async def run(self, kill_id: str) -> CancelOutcome:
        wait = self.first_wait_s
        left: Sequence[BrokerOrder] = ()
        for attempt in range(1, self.attempts + 1):
            try:
                self.port.global_cancel()
                self._step(kill_id, "global_cancel_sent", {"attempt": attempt})
                await asyncio.sleep(wait)
                left = await self.port.list_open_orders(self.list_timeout_s)
            except (ConnectionError, TimeoutError) as exc:
                self._step(kill_id, "interrupted", {"attempt": attempt, "detail": describe(exc)})
                return CancelOutcome("interrupted", tuple(left), attempt)
            if not left:
                self._step(kill_id, "confirmed", {"attempts": attempt})
                return CancelOutcome("confirmed", (), attempt)
            self._step(
                kill_id,
                "still_open",
                {"attempt": attempt, "orders": [_order(o) for o in left]},
            )
            wait = min(wait * 2, self.max_wait_s)
        for o in left:
            log.error(
                "kill %s: order %d (client %d, %s, %s) will not cancel after %d global cancels",
                kill_id,
                o.order_id,
                o.client_id,
                o.order_ref or "no orderRef",
                o.status,
                self.attempts,
            )
            self._step(
                kill_id,
                "error",
                {**_order(o), "detail": f"still open after {self.attempts} global cancels"},
            )
        return CancelOutcome("error", tuple(left), self.attempts)

    def _step(self, kill_id: str, step: str, detail: Mapping[str, Any]) -> None:
        level = logging.ERROR if step in ("error", "interrupted") else logging.WARNING
        log.log(level, "kill %s: %s %s", kill_id, step, dict(detail))
        try:
            self.report(kill_id, step, detail)
        except Exception:
            log.exception("reporting kill step %s failed", step)


def _order(o: BrokerOrder) -> dict[str, Any]:
    return {
        "order_id": o.order_id,
        "client_id": o.client_id,
        "order_ref": o.order_ref,
        "status": o.status,
        "con_ids": list(o.con_ids),
    }

"""A kill's cancel against a fake broker: confirmed, retried, an order that will not cancel."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from supervisor.ib.exit_orders import BrokerOrder
from supervisor.ib.kill import CancelAll


def order(order_id: int, client_id: int = 3) -> BrokerOrder:
    return BrokerOrder(order_id, client_id, "", (1001,), "Submitted", "BUY", 10.0)


class Broker:
    """Open orders; a global cancel cancels them, except those stuck (and the first N lag)."""

    def __init__(self, orders: list[BrokerOrder], stuck: set[int] = frozenset(), lag: int = 0):
        self.orders = orders
        self.stuck = set(stuck)
        self.lag = lag  # listings that still show cancelled orders (IB catching up)
        self.cancels = 0
        self.listings = 0
        self.drop_at: int | None = None  # the listing at which the connection drops

    def global_cancel(self) -> None:
        self.cancels += 1

    async def list_open_orders(self, timeout_s: float) -> Sequence[BrokerOrder]:
        self.listings += 1
        if self.drop_at == self.listings:
            raise ConnectionError("Socket disconnect")
        if self.cancels and self.listings > self.lag:
            self.orders = [o for o in self.orders if o.order_id in self.stuck]
        return list(self.orders)


class Steps:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, dict[str, Any]]] = []

    def __call__(self, kill_id: str, step: str, detail: Mapping[str, Any]) -> None:
        self.rows.append((kill_id, step, dict(detail)))

    @property
    def names(self) -> list[str]:
        return [s for _, s, _ in self.rows]


def run(broker: Broker, steps: Steps, attempts: int = 4) -> str:
    cancel = CancelAll(broker, steps, attempts=attempts, first_wait_s=0.001, max_wait_s=0.004)
    outcome = asyncio.run(cancel.run("k1"))
    assert outcome.left == tuple(broker.orders) or outcome.outcome == "interrupted"
    return outcome.outcome


def test_cancel_confirmed_at_once() -> None:
    broker, steps = Broker([order(1), order(2, client_id=0)]), Steps()
    assert run(broker, steps) == "confirmed"
    assert steps.names == ["global_cancel_sent", "confirmed"]
    assert broker.cancels == 1 and steps.rows[-1][2] == {"attempts": 1}


def test_cancel_retried_until_ib_has_caught_up() -> None:
    broker, steps = Broker([order(1)], lag=2), Steps()
    assert run(broker, steps) == "confirmed"
    assert steps.names == [
        "global_cancel_sent",
        "still_open",
        "global_cancel_sent",
        "still_open",
        "global_cancel_sent",
        "confirmed",
    ]
    assert steps.rows[1][2]["orders"][0]["order_id"] == 1


def test_an_order_that_will_not_cancel_is_an_error(caplog: pytest.LogCaptureFixture) -> None:
    broker, steps = Broker([order(1), order(2)], stuck={2}), Steps()
    with caplog.at_level(logging.ERROR, logger="supervisor.ib.kill"):
        assert run(broker, steps, attempts=3) == "error"
    assert broker.cancels == 3  # bounded
    assert steps.names[-1] == "error" and steps.rows[-1][2]["order_id"] == 2
    assert steps.names.count("error") == 1
    assert any("will not cancel" in r.getMessage() for r in caplog.records)


def test_a_lost_connection_interrupts_the_cancel() -> None:
    broker, steps = Broker([order(1)], lag=5), Steps()
    broker.drop_at = 2
    assert run(broker, steps) == "interrupted"
    assert steps.names == ["global_cancel_sent", "still_open", "global_cancel_sent", "interrupted"]


def test_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="attempts"):
        CancelAll(Broker([]), Steps(), attempts=0)

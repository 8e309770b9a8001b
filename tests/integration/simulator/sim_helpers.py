"""Shared pieces of the simulator's tests: a bounded runner, a poll, a connected client.

Every wait is bounded: each test coroutine runs under ``asyncio.wait_for``,
polls give up after a timeout, and the simulator and client are closed in
``finally``. (The file is not named ``test_*`` so pytest does not collect it.)
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar

from ib_async import IB, Option, Stock

from actors.pricing import bsm, year_fraction
from supervisor.simulator import GatewaySimulator, SimPosition

T = TypeVar("T")

ACCOUNT = "DU1234567"
EXPIRY = (dt.date.today() + dt.timedelta(days=60)).isoformat()
WIRE_EXPIRY = EXPIRY.replace("-", "")
STOCK_ID = 756733
PUT_ID = 555001
VOL = 0.2
DBL_MAX = 1.7976931348623157e308


def run(coro: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
    """Run one test coroutine on a fresh loop, bounded."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def until(pred: Callable[[], bool], timeout: float = 3.0, what: str = "condition") -> None:
    """Poll ``pred`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met in {timeout} s")
        await asyncio.sleep(0.01)


def put_price(strike: float, spot: float) -> float:
    """The BSM value of a SPY put at ``spot``, as the simulator's model prices it."""
    return bsm(False, spot, strike, year_fraction(EXPIRY, time.time()), 0.0, 0.0, VOL).price


def book(sim: GatewaySimulator) -> None:
    """SPY at 500 with 100 shares bought at 490 and 2 short 480 puts sold at 3.50."""
    sim.set_underlying("SPY", 500.0, vol=VOL)
    sim.add_position(SimPosition(STOCK_ID, "SPY", "STK", 100, 490.0))
    sim.add_position(
        SimPosition(PUT_ID, "SPY", "OPT", -2, 350.0, right="P", strike=480.0, expiry=EXPIRY)
    )


def spy() -> Stock:
    return Stock("SPY", "SMART", "USD", conId=STOCK_ID)


def put(strike: float = 480.0, con_id: int = 0) -> Option:
    return Option("SPY", WIRE_EXPIRY, strike, "P", "SMART", conId=con_id or 0)


@contextlib.asynccontextmanager
async def connected(
    setup: Callable[[GatewaySimulator], None] | None = book,
    client_id: int = 1,
    **kwargs: Any,
) -> AsyncIterator[tuple[GatewaySimulator, IB]]:
    """A started simulator (set up by ``setup``) and an ``IB`` connected to it."""
    sim = GatewaySimulator(**kwargs)
    ib = IB()
    try:
        await sim.start()
        if setup is not None:
            setup(sim)
        await asyncio.wait_for(ib.connectAsync("127.0.0.1", sim.port, clientId=client_id), 5)
        yield sim, ib
    finally:
        ib.disconnect()
        await sim.stop()


@contextlib.asynccontextmanager
async def client(sim: GatewaySimulator, client_id: int) -> AsyncIterator[IB]:
    """One more ``IB`` connected to a running simulator."""
    ib = IB()
    try:
        await asyncio.wait_for(ib.connectAsync("127.0.0.1", sim.port, clientId=client_id), 5)
        yield ib
    finally:
        ib.disconnect()

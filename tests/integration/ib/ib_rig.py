"""The IB adapter's test rig: the gateway simulator, a real daemon on a SQLite file, the adapter.

Every test runs a :class:`SimulatorThread` on 127.0.0.1, a real ``Daemon`` on
a SQLite store in ``tmp_path``, and an ``IbAdapter`` that connects with
ib_async exactly as in production. Waits are bounded polls, backoffs are
short (config), and everything is stopped in ``finally``.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from actors.messages import StopSnapshot
from supervisor.config import Config, IbConfig
from supervisor.core.daemon import Daemon
from supervisor.ib.adapter import IbAdapter
from supervisor.simulator import SimOrder, SimPosition, SimulatorThread
from supervisor.store.sqlite_store import Store

EXPIRY = (dt.date.today() + dt.timedelta(days=60)).isoformat()
STOCK_ID = 1001
PUT_ID = 2001
CLIENT_ID = 11
EXIT_PREFIX = "rs-exit:"

T = TypeVar("T")


def until(pred: Callable[[], T], timeout: float = 5.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        time.sleep(0.02)


def book(sim: SimulatorThread) -> None:
    """AAPL at 100 held long 100 shares; SPY at 500 with two short 480 puts."""

    def setup() -> None:
        g = sim.sim
        g.set_underlying("AAPL", 100.0, vol=0.25, push=False)
        g.set_underlying("SPY", 500.0, vol=0.2, push=False)
        g.add_position(SimPosition(STOCK_ID, "AAPL", "STK", 100, 100.0))
        g.add_position(
            SimPosition(
                PUT_ID,
                "SPY",
                "OPT",
                -2,
                350.0,
                right="P",
                strike=480.0,
                expiry=EXPIRY,
                multiplier=100,
            )
        )

    sim.call(setup)


def make_config(port: int, **ib: Any) -> Config:
    settings: dict[str, Any] = {
        "port": port,
        "client_id": CLIENT_ID,
        "exit_orders": True,
        "connect_timeout_s": 1.0,
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.2,
        "probe_interval_s": 3.0,
        **ib,
    }
    return Config(ib=IbConfig(**settings))


class Rig:
    """A daemon and its adapter on one store; restartable."""

    def __init__(
        self,
        sim: SimulatorThread,
        path: Path,
        *,
        store: Store | None = None,
        adapter: Mapping[str, Any] | None = None,
        **ib: Any,
    ) -> None:
        self.sim = sim
        self.config = make_config(sim.port, **ib)
        self.path = path
        self.store = store if store is not None else Store(path)
        self.adapter_kw = dict(adapter or {})
        self.daemon: Daemon | None = None
        self.adapter: IbAdapter | None = None

    def start(self, *, wait: bool = True, timeout: float = 5.0) -> IbAdapter:
        self.daemon = Daemon(self.config, store=self.store, housekeeping_s=0.2)
        self.daemon.start()
        self.adapter = IbAdapter(
            self.daemon, rng=random.Random(5), stop_timeout_s=3.0, **self.adapter_kw
        )
        self.adapter.start()
        if wait:
            assert self.adapter.wait_status("connected", timeout), "adapter did not connect"
        return self.adapter

    def stop(self) -> None:
        if self.adapter is not None:
            self.adapter.stop()
            self.adapter = None
        if self.daemon is not None:
            self.daemon.stop()
            self.daemon = None

    def new_store(self, path: Path) -> None:
        """The store is lost: the next start runs on an empty file."""
        self.store.close()
        self.path = path
        self.store = Store(path)

    @property
    def d(self) -> Daemon:
        assert self.daemon is not None
        return self.daemon

    @property
    def a(self) -> IbAdapter:
        assert self.adapter is not None
        return self.adapter

    def failures(self, code: int | None = None) -> list[dict[str, Any]]:
        rows = [r.payload for r in self.store.journal(kind="failure", limit=10_000)]
        return [p for p in rows if code is None or p.get("code") == code]

    def exit_rows(self) -> list[dict[str, Any]]:
        return [r.payload for r in self.store.journal(kind="exit_order", limit=10_000)]

    def exit_statuses(self) -> list[str]:
        return [p["status"] for p in self.exit_rows()]

    def price(self, pid: str) -> float | None:
        for row in self.d.portfolio_view().rows:
            if row["id"] == pid:
                p = row.get("price")
                return None if p is None else float(p)
        return None

    def metric(self, name: str, **labels: str) -> float | None:
        value = self.d.metrics.registry.get_sample_value("risk_supervisor_" + name, labels)
        return None if value is None else float(value)

    def quotes_flow(self, symbol: str, pid: str, price: float, timeout: float = 3.0) -> None:
        """Move a stock and wait for its new price to reach the portfolio."""
        move(self.sim, symbol, price)
        until(lambda: self.price(pid) == price, timeout, f"{symbol} at {price} in the portfolio")

    def option_quotes_flow(self, symbol: str, pid: str, und: float, timeout: float = 3.0) -> None:
        """Move an option's underlying and wait for the option's price to change."""
        before = self.price(pid)
        move(self.sim, symbol, und)
        until(lambda: self.price(pid) not in (None, before), timeout, f"{pid} requoted")

    def snapshot(self, pid: str) -> StopSnapshot | None:
        return snapshots(self.d).get(pid)

    def trigger_stock(self) -> StopSnapshot:
        """AAPL up 3 % (the stop arms), then down to 101 (it triggers)."""
        move(self.sim, "AAPL", 103.0)
        until(lambda: (s := self.snapshot(str(STOCK_ID))) is not None and s.active, what="ACTIVATE")
        move(self.sim, "AAPL", 101.0)
        return until(
            lambda: (s := self.snapshot(str(STOCK_ID))) is not None and s.triggered and s,
            what="TRIGGER",
        )


def move(sim: SimulatorThread, symbol: str, price: float) -> None:
    """Set an underlying's price (keeping its volatility) and push quotes."""
    g = sim.sim
    sim.call(lambda: g.set_underlying(symbol, price, g.market.underlyings[symbol].vol))


def exit_orders(sim: SimulatorThread) -> list[SimOrder]:
    """Every closing order the simulator received (orderRef ``rs-exit:…``)."""
    g = sim.sim
    return sim.call(lambda: [o for o in g.orders if o.order_ref.startswith(EXIT_PREFIX)])


@contextmanager
def rig(
    sim: SimulatorThread,
    tmp_path: Path,
    *,
    start: bool = True,
    store: Store | None = None,
    adapter: Mapping[str, Any] | None = None,
    **ib: Any,
) -> Iterator[Rig]:
    r = Rig(sim, tmp_path / "state.sqlite", store=store, adapter=adapter, **ib)
    try:
        if start:
            r.start()
        yield r
    finally:
        r.stop()
        r.store.close()


def snapshots(d: Daemon) -> dict[str, StopSnapshot]:
    return {s.id: s for s in d.stop_snapshots()}

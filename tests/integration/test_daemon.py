"""The daemon's core without IB: supervision, store faults, restore across restarts."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.messages import (
    AdminAction,
    BreakerState,
    Contract,
    FailureKind,
    PositionUpdate,
    Quote,
    ReasonCode,
    SecType,
)
from supervisor.config import parse
from supervisor.core.daemon import EXIT_RESTART_INTENSITY, Daemon
from supervisor.store.sqlite_store import Store

STK = Contract("AAPL", SecType.STK)
BUY = {"id": "buy", "legs": [{"symbol": "AAPL", "sec_type": "STK", "qty": 10, "price": 100.0}]}
SELL = {"id": "sell", "legs": [{"symbol": "AAPL", "sec_type": "STK", "qty": -10, "price": 100.0}]}


def wait_for(cond: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


class Clock:
    def __init__(self, t: float = 1_767_225_600.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    made: list[Daemon] = []

    def factory(doc: dict[str, Any] | None = None, clock: Clock | None = None, **kw: Any) -> Daemon:
        store = Store(tmp_path / "state.sqlite")
        d = Daemon(
            parse(doc or {"limits": {"max_portfolio_delta": 1000.0}}),
            store=store,
            clock=clock or Clock(),
            housekeeping_s=0.05,
            **kw,
        )
        d.start()
        made.append(d)
        return d

    yield factory
    for d in made:
        d.stop()


def stop_of(d: Daemon, pid: str) -> Any:
    snaps = {s.id: s for s in d.stop_snapshots()}
    return snaps.get(pid)


def open_position(
    d: Daemon, clock: Clock, pid: str = "A", prices: tuple[float, ...] = (101.0, 103.0, 105.0)
) -> None:
    d.position(PositionUpdate(clock(), pid, STK, 100, 100.0))
    for p in prices:
        clock.t += 1
        d.quote(Quote(clock(), pid, p, p + 0.1, p))
        wait_for(lambda p=p: (s := stop_of(d, pid)) is not None and s.extreme >= p)


def test_crashed_position_actor_restarts_with_its_state(make: Callable[..., Daemon]) -> None:
    clock = Clock()
    d = make(clock=clock)
    open_position(d, clock, "A")
    open_position(d, clock, "B", (100.5,))
    before_a, before_b = stop_of(d, "A"), stop_of(d, "B")
    urn_b = d.topology.positions["B"].ref.actor_urn
    assert before_a.active and before_a.stop == pytest.approx(105 * 0.985)
    d.quote(Quote(clock(), "A", "boom", 1.0, 1.0))  # type: ignore[arg-type]  # a bug inside the handler
    wait_for(
        lambda: (
            d.metrics.registry.get_sample_value(
                "risk_supervisor_actor_restarts_total", {"actor_kind": "position"}
            )
            == 1.0
        )
    )
    after = wait_for(lambda: stop_of(d, "A"))
    assert (after.active, after.stop, after.extreme) == (True, before_a.stop, before_a.extreme)
    assert d.topology.positions["B"].ref.actor_urn == urn_b and stop_of(d, "B") == before_b
    # the new incarnation works: a breach triggers
    clock.t += 1
    d.quote(Quote(clock(), "A", 100.0, 100.1, 100.0))
    assert wait_for(lambda: stop_of(d, "A").triggered)


def test_restart_intensity_stops_the_daemon_with_an_exit_code(make: Callable[..., Daemon]) -> None:
    clock = Clock()
    d = make(clock=clock)
    open_position(d, clock, "A", (100.5,))
    for _ in range(6):
        wait_for(lambda: "A" in d.position_ids() and d.topology.positions["A"].is_alive())
        d.quote(Quote(clock(), "A", "boom", 1.0, 1.0))  # type: ignore[arg-type]
        time.sleep(0.05)
        if d.stopped.is_set():
            break
    assert wait_for(d.stopped.is_set)
    assert d.exit_code == EXIT_RESTART_INTENSITY


def test_store_fault_halts_entries_keeps_stops_and_recovers(make: Callable[..., Daemon]) -> None:
    clock = Clock()
    d = make(clock=clock)
    open_position(d, clock, "A", (100.5,))
    assert d.check(BUY).allowed
    assert d.store is not None
    d.store._conn.execute("PRAGMA query_only = ON")  # the file turns read-only under us
    answer = d.check(BUY)
    assert not answer.allowed and ReasonCode.BREAKER_OPEN in [r.code for r in answer.reasons]
    wait_for(lambda: d.breaker_view().state is BreakerState.OPEN)
    assert not d.check(BUY).allowed
    # stops keep working in memory
    clock.t += 1
    d.quote(Quote(clock(), "A", 103.0, 103.1, 103.0))
    wait_for(lambda: stop_of(d, "A").active)
    clock.t += 1
    d.quote(Quote(clock(), "A", 101.0, 101.1, 101.0))
    assert wait_for(lambda: stop_of(d, "A").triggered)
    d.store._conn.execute("PRAGMA query_only = OFF")

    def stop_rows() -> list[str]:
        return [r.kind for r in d.store.journal(kind="stop", limit=100)]

    wait_for(lambda: len(stop_rows()) >= 2)
    assert stop_rows() == ["stop", "stop"]  # journaled once the store is back
    breaker_rows = d.store.journal(kind="breaker", limit=10)
    assert breaker_rows[0].payload["cause"]["reason"] == "store_unavailable"


def test_locked_database_denies_entries_but_the_daemon_lives(
    make: Callable[..., Daemon], tmp_path: Path
) -> None:
    d = make()
    other = sqlite3.connect(tmp_path / "state.sqlite", timeout=0.1, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        answer = d.check(BUY)
        assert not answer.allowed
    finally:
        other.execute("ROLLBACK")
        other.close()
    wait_for(lambda: d.breaker_view().state is BreakerState.OPEN)
    assert d.admin(AdminAction.RESET) is BreakerState.CLOSED
    assert d.check(BUY).allowed


def test_restart_restores_stops_and_a_never_looser_breaker(tmp_path: Path) -> None:
    clock = Clock()
    cfg = parse({"limits": {"max_portfolio_delta": 1000.0}, "breaker": {"open_timeout_s": 300}})
    first = Daemon(cfg, store=Store(tmp_path / "s.sqlite"), clock=clock, housekeeping_s=0.05)
    first.start()
    try:
        open_position(first, clock, "A")
        first.failure(FailureKind.MARGIN, None, "margin call")
        wait_for(lambda: first.breaker_view().state is BreakerState.OPEN)
        before = stop_of(first, "A")
        opened_at = clock()
    finally:
        first.stop()
    clock.t += 100  # down for 100 s of the 300 s open time
    second = Daemon(cfg, store=Store(tmp_path / "s.sqlite"), clock=clock, housekeeping_s=0.05)
    second.start()
    try:
        after = wait_for(lambda: stop_of(second, "A"))
        assert (after.active, after.stop, after.extreme) == (
            before.active,
            before.stop,
            before.extreme,
        )
        view = second.breaker_view()
        assert view.state is BreakerState.OPEN and view.snapshot["due"] == opened_at + 300
        assert not second.check(BUY).allowed and second.check(SELL).allowed
        clock.t = opened_at + 300  # the rest of the open time, on the wall clock
        wait_for(lambda: second.breaker_view().state is BreakerState.HALF_OPEN, timeout=5)
    finally:
        second.stop()


def test_portfolio_snapshot_tables(make: Callable[..., Daemon]) -> None:
    """The polars views behind /v1/state and the live view: per position, underlying, group."""
    clock = Clock()
    d = make(
        {
            "limits": {"max_correlated_pct": 50.0},
            "groups": {"tech": ["AAPL", "MSFT"]},
            "account": {"net_liquidation": 100_000.0},
        },
        clock=clock,
    )
    open_position(d, clock, "A", (100.0,))
    d.position(PositionUpdate(clock(), "M", Contract("MSFT", SecType.STK), -10, 400.0))
    d.quote(Quote(clock(), "M", 400.0, 400.2, 400.1))

    def ready() -> Any:
        v = d.portfolio_view()
        return v if len(v.rows) == 2 and all(r["price"] for r in v.rows) else None

    view = wait_for(ready)
    pos = view.positions()
    assert pos.height == 2 and set(pos["id"]) == {"A", "M"}
    und = view.by_underlying()
    assert und.filter(und["symbol"] == "MSFT")["delta"].item() == -10.0
    grp = view.by_group()
    assert grp["notional"].item() == 100 * 100.0 + 10 * 400.1
    assert grp["notional_pct"].item() == pytest.approx((10_000 + 4001) / 100_000 * 100)
    assert view.utilization["max_correlated_pct"] == pytest.approx(14.001 / 50.0)


def test_journal_command_reads_the_daemons_file(
    make: Callable[..., Daemon], tmp_path: Path
) -> None:
    import subprocess
    import sys

    d = make()
    d.check(BUY)
    d.check({"id": "bad", "legs": []})
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "supervisor",
            "journal",
            "--db",
            str(tmp_path / "state.sqlite"),
            "--type",
            "check",
            "--summary",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert "invalid_order" in res.stdout
    out = tmp_path / "checks.csv"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "supervisor",
            "journal",
            "--db",
            str(tmp_path / "state.sqlite"),
            "--type",
            "check",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0 and out.read_text().count("\n") == 3  # header + 2 checks

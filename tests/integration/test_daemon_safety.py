"""The daemon's promises under restarts and this round's controls, without IB.

Each test runs the real daemon (pooled actors, wall-clock timers, a real
SQLite file) with an injected clock, and a small in-memory broker port where
IB would be: what is asserted is what the core asks of the broker.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from actors.messages import (
    BreakerState,
    Contract,
    FailureKind,
    KillMode,
    Leg,
    PnlUpdate,
    PositionUpdate,
    Quote,
    ReasonCode,
    Right,
    SecType,
    StopEvent,
    WhatIf,
)
from supervisor.config import parse
from supervisor.core.closing_orders import exit_for_trigger
from supervisor.core.daemon import Daemon
from supervisor.core.facade import StrategyLegSpec, StrategyRefused
from supervisor.core.ports import CancelResult, ClosingOrder
from supervisor.store.sqlite_store import Store

T0 = 1_767_225_600.0
STK = Contract("AAPL", SecType.STK)


def wait_for(cond: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Broker:
    """The broker port as the core uses it, recording every request."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.cancels: list[str] = []
        self.orders: list[ClosingOrder] = []
        self.whatifs: list[tuple[Leg, ...]] = []
        self.answer = WhatIf(1000.0, 2000.0, 500.0, 1000.0, 100_000.0, 100_000.0)

    def status(self) -> str:
        return "connected"

    def whatif(self, legs: tuple[Leg, ...], timeout_s: float) -> WhatIf:
        with self.lock:
            self.whatifs.append(legs)
        return self.answer

    def ensure_quote(self, contract: Contract, wait_s: float) -> bool:
        return False

    def place_closing(self, order: ClosingOrder) -> None:
        with self.lock:
            self.orders.append(order)

    def cancel_all(self, kill_id: str, timeout_s: float) -> CancelResult:
        with self.lock:
            self.cancels.append(kill_id)
        return CancelResult(True)


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    made: list[Daemon] = []

    def factory(doc: dict[str, Any], clock: Clock, **kw: Any) -> Daemon:
        d = Daemon(
            parse(doc),
            store=Store(tmp_path / "state.sqlite"),
            clock=clock,
            housekeeping_s=0.05,
            **kw,
        )
        d.start()
        made.append(d)
        return d

    yield factory
    for d in made:
        d.stop()


def stock(qty: float, price: float) -> dict[str, Any]:
    return {"symbol": "AAPL", "sec_type": "STK", "qty": qty, "price": price}


def reasons(answer: Any) -> list[ReasonCode]:
    return [r.code for r in answer.reasons]


# ------------------------------------------------------------ never weaker


def test_failure_window_survives_a_restart(make: Callable[..., Daemon]) -> None:
    """4 failures then a restart must not leave the window empty (the 5th trips)."""
    clock = Clock()
    doc = {"breaker": {"failure_threshold": 5, "failure_window_s": 60}}
    d = make(doc, clock)
    for _ in range(4):
        d.failure(FailureKind.DATA_FEED, None, "feed")
    wait_for(lambda: len(d.breaker_view().snapshot["window"]) == 4)
    d.stop()
    second = make(doc, clock)
    assert len(second.breaker_view().snapshot["window"]) == 4
    second.failure(FailureKind.DATA_FEED, None, "the fifth")
    wait_for(lambda: second.breaker_view().state is BreakerState.OPEN)


def test_half_open_permits_survive_a_restart(make: Callable[..., Daemon]) -> None:
    """HALF_OPEN with 2 permits used, restart: still 2 used (never 4 entries in one period)."""
    clock = Clock()
    doc = {"breaker": {"open_timeout_s": 10, "half_open_max_tries": 3}}
    d = make(doc, clock)
    d.failure(FailureKind.MARGIN, None, "trip")
    wait_for(lambda: d.breaker_view().state is BreakerState.OPEN)
    clock.t += 10
    wait_for(lambda: d.breaker_view().state is BreakerState.HALF_OPEN)
    assert d.check({"id": "a", "legs": [stock(1, 100.0)]}).allowed
    assert d.check({"id": "b", "legs": [stock(2, 100.0)]}).allowed
    d.stop()
    second = make(doc, clock)
    assert second.breaker_view().snapshot["permits_used"] == 2
    assert second.check({"id": "c", "legs": [stock(3, 100.0)]}).allowed
    denied = second.check({"id": "d", "legs": [stock(4, 100.0)]})
    assert reasons(denied) == [ReasonCode.BREAKER_HALF_OPEN_BUSY]


def _checks_from_threads(d: Daemon, threads: int, each: int) -> list[Any]:
    """Distinct entries checked from several threads at once, while quotes keep the
    portfolio busy: some checks run in the caller's thread, some queue (both paths)."""
    answers: list[Any] = []
    lock = threading.Lock()
    stop = threading.Event()
    clock_t = [0.0]

    def quotes() -> None:
        i = 0
        while not stop.is_set() and i < 50_000:
            i += 1
            p = 100.0 + (i % 7) * 0.01
            d.quote(Quote(1_767_225_600.0 + clock_t[0], "A", p, p + 0.1, p))

    def trader(k: int) -> None:
        for i in range(each):
            a = d.check({"id": f"t{k}-{i}", "legs": [stock(1 + k * each + i, 100.0)]})
            with lock:
                answers.append(a)

    feeder = threading.Thread(target=quotes)
    feeder.start()
    workers = [threading.Thread(target=trader, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    stop.set()
    feeder.join(30)
    assert len(answers) == threads * each
    return answers


def test_concurrent_checks_never_exceed_the_order_rate(make: Callable[..., Daemon]) -> None:
    """Six traders at once, 60 distinct orders, a cap of 20 per window: exactly 20 go out."""
    clock = Clock()
    d = make({"orders": {"max_orders_per_window": 20, "order_window_s": 3600}}, clock)
    d.position(PositionUpdate(clock(), "A", STK, 100, 100.0))
    answers = _checks_from_threads(d, threads=6, each=10)
    assert sum(a.allowed for a in answers) == 20
    assert all(reasons(a) == [ReasonCode.ORDER_RATE] for a in answers if not a.allowed)


def test_concurrent_checks_take_exactly_the_half_open_permits(
    make: Callable[..., Daemon],
) -> None:
    clock = Clock()
    doc = {"breaker": {"open_timeout_s": 10, "half_open_max_tries": 3}}
    d = make(doc, clock)
    d.position(PositionUpdate(clock(), "A", STK, 100, 100.0))
    d.failure(FailureKind.MARGIN, None, "trip")
    wait_for(lambda: d.breaker_view().state is BreakerState.OPEN)
    clock.t += 10
    wait_for(lambda: d.breaker_view().state is BreakerState.HALF_OPEN)
    answers = _checks_from_threads(d, threads=4, each=5)
    assert sum(a.allowed for a in answers) == 3
    assert d.breaker_view().snapshot["permits_used"] == 3


def test_huge_backoff_never_crashes_the_breaker_into_a_weaker_state(
    make: Callable[..., Daemon],
) -> None:
    clock = Clock()
    doc = {"breaker": {"backoff_multiplier": 1e200, "open_timeout_s": 10, "max_open_timeout_s": 60}}
    d = make(doc, clock)
    for i in range(4):
        d.failure(FailureKind.MARGIN, None, f"trip {i}")
        wait_for(lambda: d.breaker_view().state is BreakerState.OPEN)
        clock.t += 61
        wait_for(lambda: d.breaker_view().state is BreakerState.HALF_OPEN)
    assert d.metrics.registry.get_sample_value(
        "risk_supervisor_actor_restarts_total", {"actor_kind": "breaker"}
    ) in (None, 0.0)
    snap = d.breaker_view().snapshot
    assert snap["trips"] == 4


def test_cooldown_and_order_windows_survive_a_restart(make: Callable[..., Daemon]) -> None:
    clock = Clock()
    doc = {
        "cooldown": {"after_trigger_s": 300},
        "orders": {"duplicate_window_s": 600},
        "trailing_stop": {"activation_pct": 1.0, "trailing_pct": 1.0},
    }
    d = make(doc, clock)
    d.position(PositionUpdate(clock(), "A", STK, 100, 100.0))
    clock.t += 1
    d.quote(Quote(clock(), "A", 102.0, 102.1, 102.0))
    wait_for(lambda: any(s.active for s in d.stop_snapshots()))  # not folded into the next
    clock.t += 1
    d.quote(Quote(clock(), "A", 100.0, 100.1, 100.0))
    wait_for(lambda: any(s.triggered for s in d.stop_snapshots()))
    entry = {"id": "msft", "legs": [{"symbol": "MSFT", "sec_type": "STK", "qty": 1, "price": 1.0}]}
    assert d.check(entry).allowed
    d.stop()
    clock.t += 10
    second = make(doc, clock)
    assert reasons(second.check({"id": "aapl", "legs": [stock(10, 100.0)]})) == [
        ReasonCode.COOLDOWN
    ]
    assert reasons(second.check(entry)) == [ReasonCode.DUPLICATE_ORDER]


def test_high_water_mark_survives_a_restart(make: Callable[..., Daemon]) -> None:
    clock = Clock()
    doc = {"loss": {"max_drawdown_pct": 10.0}}
    d = make(doc, clock)
    d.account(100_000.0)
    d.pnl(PnlUpdate(clock(), 0.0))
    clock.t += 1
    d.pnl(PnlUpdate(clock(), 5_000.0))  # estimate 105 000: the new high
    wait_for(lambda: d.state().money.high_water == 105_000.0)
    d.stop()
    second = make(doc, clock)
    clock.t += 1
    second.pnl(PnlUpdate(clock(), -5_000.0))  # 95 000: 9.5 % below the mark, not 10 %
    wait_for(lambda: second.state().money.daily_pnl == -5_000.0)
    assert second.state().money.high_water == 105_000.0
    clock.t += 1
    second.pnl(PnlUpdate(clock(), -5_500.0))  # 94 500 = 105 000 × 0.9: trips and latches
    wait_for(lambda: second.breaker_view().state is BreakerState.OPEN)
    assert second.state().money.loss_latched
    clock.t += 10_000
    time.sleep(0.2)
    assert second.breaker_view().state is BreakerState.OPEN  # latched: no timer


# ------------------------------------------------------------------ kill


def test_kill_flatten_cancels_then_closes_each_position_once(
    make: Callable[..., Daemon],
) -> None:
    clock = Clock()
    d = make({"kill": {"flatten_slippage_pct": 1.0}}, clock)
    broker = Broker()
    d.broker = broker
    d.position(PositionUpdate(clock(), "A", STK, 100, 100.0))
    d.position(PositionUpdate(clock(), "M", Contract("MSFT", SecType.STK), -10, 400.0))
    d.quote(Quote(clock(), "A", 101.0, 101.1, 101.05))
    d.quote(Quote(clock(), "M", 400.0, 400.2, 400.1))
    wait_for(lambda: all(r["bid"] for r in d.portfolio_view().rows))
    status = d.kill(KillMode.FLATTEN, "ops")
    assert status.breaker is BreakerState.OPEN
    wait_for(lambda: len(broker.orders) == 2)
    assert broker.cancels == [status.kill_id]
    by_key = {o.key: o for o in broker.orders}
    sell = by_key[f"kill:{status.kill_id}:A"]
    assert (sell.action, sell.qty, sell.limit_price) == ("SELL", 100.0, 99.99)  # 101 × 0.99
    buy = by_key[f"kill:{status.kill_id}:M"]
    assert (buy.action, buy.qty, buy.limit_price) == ("BUY", 10.0, 404.21)  # 400.2 × 1.01
    # a kill is sticky: only an operator reset reopens entries
    assert not d.check({"id": "x", "legs": [stock(1, 101.0)]}).allowed
    assert d.state().kill is not None and d.state().kill.mode is KillMode.FLATTEN


def test_a_flatten_handed_over_but_never_claimed_resumes_after_a_restart(
    make: Callable[..., Daemon], tmp_path: Path
) -> None:
    """``flatten_done`` is journaled once the orders are handed to the IB side, which
    claims each on its own loop; a SIGKILL in between left positions with no claim,
    no order and a kill that looked finished (found by the SIGKILL-mid-flatten e2e)."""
    clock = Clock()
    doc = {"kill": {"flatten_slippage_pct": 1.0}}
    d = make(doc, clock)
    d.broker = Broker()  # takes the orders and dies before claiming any
    d.position(PositionUpdate(clock(), "A", STK, 100, 100.0))
    d.position(PositionUpdate(clock(), "M", Contract("MSFT", SecType.STK), -10, 400.0))
    d.quote(Quote(clock(), "A", 101.0, 101.1, 101.05))
    d.quote(Quote(clock(), "M", 400.0, 400.2, 400.1))
    wait_for(lambda: all(r["bid"] for r in d.portfolio_view().rows))
    kill_id = d.kill(KillMode.FLATTEN, "ops").kill_id
    store = Store(tmp_path / "state.sqlite")
    wait_for(lambda: (k := store.last_kill()) is not None and k.state["step"] == "flatten_done")
    d.stop()

    second = make(doc, clock)
    broker = Broker()
    second.broker = broker
    clock.t += 1
    second.quote(Quote(clock(), "A", 101.0, 101.1, 101.05))
    second.quote(Quote(clock(), "M", 400.0, 400.2, 400.1))
    wait_for(lambda: len(broker.orders) == 2)
    assert sorted(o.key for o in broker.orders) == [f"kill:{kill_id}:A", f"kill:{kill_id}:M"]


def test_heartbeat_loss_kills_with_the_configured_action(make: Callable[..., Daemon]) -> None:
    clock = Clock()
    d = make({"api": {"heartbeat_timeout_s": 5.0, "heartbeat_action": "cancel"}}, clock)
    broker = Broker()
    d.broker = broker
    d.heartbeat()
    clock.t += 4.9
    time.sleep(0.1)
    assert d.breaker_view().state is BreakerState.CLOSED
    clock.t += 0.1  # exactly the timeout after the last heartbeat
    wait_for(lambda: d.breaker_view().state is BreakerState.OPEN, timeout=5)
    wait_for(lambda: len(broker.cancels) == 1)
    assert d.metrics.registry.get_sample_value("risk_supervisor_heartbeat_lost_total") == 1.0


# ------------------------------------------------------------ strategies


def call(strike: float, qty: float, entry: float) -> PositionUpdate:
    c = Contract("XYZ", SecType.OPT, Right.CALL, strike, "2027-06-18", 100.0)
    return PositionUpdate(T0, f"C{strike:g}", c, qty, entry)


def test_a_declared_vertical_is_one_stop_with_one_combo_exit(make: Callable[..., Daemon]) -> None:
    clock = Clock()
    d = make({"trailing_stop": {"activation_pct": 1.0, "trailing_pct": 1.0}}, clock)
    triggers: list[StopEvent] = []
    d.on_trigger = triggers.append
    long_leg, short_leg = call(100, 2, 5.0), call(110, -2, 3.0)
    d.position(long_leg)
    spec = [
        StrategyLegSpec(1, contract=long_leg.contract),
        StrategyLegSpec(-1, contract=short_leg.contract),
    ]
    waiting = d.put_strategy("VERT", spec)
    assert waiting.state == "waiting"  # the short leg is not held yet
    d.position(short_leg)
    wait_for(lambda: [s.state for s in d.strategies()] == ["waiting"] or d.strategies())
    for pid, bid, ask in (
        ("C100", 5.0, 5.2),
        ("C110", 2.8, 3.0),
        ("C100", 6.0, 6.2),
        ("C110", 3.2, 3.4),
    ):
        clock.t += 1
        d.quote(Quote(clock(), pid, bid, ask, None))
    event = wait_for(lambda: triggers[0] if triggers else None)
    assert event.id == "VERT" and event.ref_price == pytest.approx(2.6)
    order = exit_for_trigger(event)
    assert order is not None and order.reason == "stop"
    assert [(leg.position_id, leg.action, leg.ratio) for leg in order.legs] == [
        ("C100", "SELL", 1),
        ("C110", "BUY", 1),
    ]
    assert order.qty == 2.0 and order.action == "BUY" and order.limit_price == -2.6
    # the per-leg stops stayed off: no leg triggered alone
    assert not any(s.triggered for s in d.stop_snapshots())


def test_a_strategy_with_zero_entry_is_refused(make: Callable[..., Daemon]) -> None:
    clock = Clock()
    d = make({}, clock)
    a, b = call(100, 1, 4.0), call(110, -1, 4.0)
    d.position(a)
    d.position(b)
    with pytest.raises(StrategyRefused, match="E = 0"):
        d.put_strategy(
            "Z", [StrategyLegSpec(1, contract=a.contract), StrategyLegSpec(-1, contract=b.contract)]
        )


def test_gate_uses_the_broker_whatif_and_never_waits_inside_an_actor(
    make: Callable[..., Daemon],
) -> None:
    clock = Clock()
    d = make(
        {"margin": {"max_init_margin_pct": 1.0}, "account": {"net_liquidation": 100_000.0}}, clock
    )
    broker = Broker()
    d.broker = broker
    answer = d.check({"id": "m", "legs": [stock(10, 100.0)]})
    assert [(r.code, r.value) for r in answer.reasons] == [(ReasonCode.MAX_INIT_MARGIN_PCT, 2.0)]
    assert len(broker.whatifs) == 1
    broker.answer = WhatIf(error="timeout after 2.0s")
    answer = d.check({"id": "n", "legs": [stock(11, 100.0)]})
    assert [(r.code, r.value, r.limit) for r in answer.reasons] == [
        (ReasonCode.STALE_DATA, None, None)
    ]


def test_non_finite_usage_never_allows(make: Callable[..., Daemon]) -> None:
    """A leg's iv of 1.7e308 once made the stress loss NaN and the order allowed."""
    clock = Clock()
    d = make({"limits": {"max_stress_loss": 1000.0}}, clock)
    leg = {
        "symbol": "XYZ",
        "sec_type": "OPT",
        "qty": 100,
        "price": 5.0,
        "right": "C",
        "strike": 100.0,
        "expiry": "2027-06-18",
        "multiplier": 100,
        "greeks": {
            "delta": 0.5,
            "gamma": 0.01,
            "vega": 0.1,
            "theta": -0.01,
            "iv": 1.7e308,
            "und_price": 100.0,
        },
    }
    answer = d.check({"id": "nan", "legs": [leg]})
    assert not answer.allowed
    assert reasons(answer)[0] in (ReasonCode.STALE_DATA, ReasonCode.INVALID_ORDER)
    # and afterwards an absurd order is still judged, not waved through
    big = d.check({"id": "big", "legs": [stock(-100_000, 100.0)]})
    assert not big.allowed
    assert math.isfinite(big.reasons[0].value or 0.0)


def _sorted(orders: Sequence[ClosingOrder]) -> list[str]:
    return sorted(o.key for o in orders)

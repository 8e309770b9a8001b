"""Message-level tests of the three actors: send messages, assert replies and what they tell on.

A recording probe stands in for every subscriber; time is the messages' own
event time, and timers run on a VirtualScheduler moved by hand.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pykka
import pytest

from actors.breaker_actor import BreakerActor, BreakerView
from actors.circuit_breaker import BreakerParams
from actors.gate.params import GateParams, LimitParams
from actors.messages import (
    AccountUpdate,
    Admin,
    AdminAction,
    BreakerState,
    BreakerTransition,
    CheckAnswer,
    CheckRequest,
    Contract,
    Failure,
    FailureKind,
    FailureRecorded,
    GetBreakerState,
    GetPortfolio,
    GetStopState,
    Greeks,
    Leg,
    Mark,
    PositionClosed,
    PositionUpdate,
    Quote,
    ReasonCode,
    Resync,
    Right,
    SecType,
    StopAction,
    StopEvent,
    StopSnapshot,
    Success,
    SystemHalt,
    TransitionReason,
)
from actors.portfolio_actor import PortfolioActor
from actors.portfolio_view import PortfolioView
from actors.position_actor import PositionActor, trigger_id
from actors.probe import Probe
from actors.runtime import InlineDispatcher, PoolDispatcher, PooledActor
from actors.scheduler import VirtualScheduler
from actors.trailing_stop import StopParams

STK = Contract("AAPL", SecType.STK)
OPT = Contract("AAPL", SecType.OPT, Right.CALL, 200.0, "2027-06-18", 100.0)


@pytest.fixture
def inline() -> Iterator[InlineDispatcher]:
    d = InlineDispatcher()
    yield d
    pykka.ActorRegistry.stop_all()


def probe(d: Any) -> tuple[pykka.ActorRef[Any], list[Any]]:
    seen: list[Any] = []
    return Probe.start(dispatcher=d, into=seen), seen


def of(kind: type, seen: list[Any]) -> list[Any]:
    return [m for m in seen if isinstance(m, kind)]


# ------------------------------------------------------------------ position


def test_position_actor_turns_quotes_into_stop_events_and_marks(inline: InlineDispatcher) -> None:
    sub, events = probe(inline)
    port, marks = probe(inline)
    pos = PositionActor.start(
        PositionUpdate(0.0, "A", STK, 100, 100.0),
        StopParams(),
        dispatcher=inline,
        portfolio=port,
        subscriber=sub,
    )
    assert of(PositionUpdate, marks) == [PositionUpdate(0.0, "A", STK, 100, 100.0)]
    for t, bid in ((1, 101.0), (2, 102.0), (3, 104.0), (4, 102.0)):
        pos.tell(Quote(float(t), "A", bid, bid + 0.1, bid))
    stops = of(StopEvent, events)
    assert [(e.t, e.action) for e in stops] == [
        (2.0, StopAction.ACTIVATE),
        (3.0, StopAction.UPDATE),
        (4.0, StopAction.TRIGGER),
    ]
    assert stops[-1].trigger_id == trigger_id("A", 0.0) and stops[-1].qty == 100
    assert len(of(Mark, marks)) == 4
    snap = pos.ask(GetStopState())
    assert snap.triggered and snap.trigger_id == trigger_id("A", 0.0)
    # a triggered position keeps its Greeks flowing, and never triggers twice
    pos.tell(Quote(5.0, "A", 90.0, 90.1, 90.0, Greeks(delta=1.0)))
    assert len(of(StopEvent, events)) == 3 and of(Mark, marks)[-1].greeks == Greeks(delta=1.0)


def test_ignored_quote_reaches_nobody(inline: InlineDispatcher) -> None:
    sub, events = probe(inline)
    port, marks = probe(inline)
    pos = PositionActor.start(
        PositionUpdate(0.0, "A", STK, 100, 100.0),
        StopParams(),
        dispatcher=inline,
        portfolio=port,
        subscriber=sub,
    )
    before = (len(events), len(marks))
    for q in (
        Quote(1.0, "A", float("nan"), 110.0, 110.0, Greeks(delta=1.0)),
        Quote(2.0, "A", 111.0, 110.0, 110.0, Greeks(delta=1.0)),  # crossed
        Quote(3.0, "A", -5.0, 110.0, 110.0),
    ):
        pos.tell(q)
    assert (len(events), len(marks)) == before
    assert pos.ask(GetStopState()).ignored_quotes == 3


def test_update_keeps_the_stop_and_zero_quantity_closes(inline: InlineDispatcher) -> None:
    sub, events = probe(inline)
    port, marks = probe(inline)
    pos = PositionActor.start(
        PositionUpdate(0.0, "A", STK, 100, 100.0),
        StopParams(),
        dispatcher=inline,
        portfolio=port,
        subscriber=sub,
    )
    pos.tell(Quote(1.0, "A", 103.0, 103.1, 103.0))
    pos.tell(PositionUpdate(2.0, "A", STK, 50, 101.0))
    snap: StopSnapshot = pos.ask(GetStopState())
    assert (snap.qty, snap.entry_price, snap.active, snap.extreme) == (50, 101.0, True, 103.0)
    pos.tell(PositionUpdate(3.0, "A", STK, 0, 101.0))
    assert of(PositionClosed, events) == [PositionClosed(3.0, "A")]
    assert of(PositionClosed, marks) == [PositionClosed(3.0, "A")]
    assert not pos.is_alive()


def test_restored_position_resumes_its_stop(inline: InlineDispatcher) -> None:
    sub, events = probe(inline)
    snap = StopSnapshot("A", STK, 100, 100.0, 0.0, True, 110.0, 108.35, 0, False, 0)
    pos = PositionActor.start(
        PositionUpdate(5.0, "A", STK, 100, 100.0),
        StopParams(),
        dispatcher=inline,
        subscriber=sub,
        restored=snap,
    )
    pos.tell(Quote(6.0, "A", 108.0, 108.1, 108.0))
    assert [(e.action, e.stop) for e in of(StopEvent, events)] == [(StopAction.TRIGGER, 108.35)]


def test_resync_resends_position_and_last_mark(inline: InlineDispatcher) -> None:
    port, marks = probe(inline)
    pos = PositionActor.start(
        PositionUpdate(0.0, "A", STK, 100, 100.0),
        StopParams(),
        dispatcher=inline,
        portfolio=port,
    )
    pos.tell(Quote(1.0, "A", 101.0, 101.1, 101.0))
    marks.clear()
    pos.tell(Resync())
    assert [type(m) for m in marks] == [PositionUpdate, Mark]


def test_coalescing_keeps_the_peak_of_folded_quotes() -> None:
    """Quotes queued while the pool is busy fold into the newest; the peak rides along."""
    d = PoolDispatcher(threads=1, name="test-coalesce")
    try:
        sub, _events = probe(d)
        gate = threading.Event()
        blocker = _Blocker.start(dispatcher=d)
        pos = PositionActor.start(
            PositionUpdate(0.0, "A", STK, 100, 100.0),
            StopParams(),
            dispatcher=d,
            subscriber=sub,
        )
        pos.ask(GetStopState(), timeout=5)
        blocker.tell(_Block(gate))  # occupy the only worker thread
        for t, bid in ((1, 101.0), (2, 105.0), (3, 101.5)):
            pos.tell(Quote(float(t), "A", bid, bid + 0.1, bid))
        gate.set()
        snap = pos.ask(GetStopState(), timeout=5)
        assert snap.extreme == 105.0 and snap.active  # 105 was folded, not lost
        assert d.coalesced >= 1
    finally:
        pykka.ActorRegistry.stop_all()
        d.shutdown()


class _Block:
    def __init__(self, gate: threading.Event) -> None:
        self.gate = gate


class _Blocker(PooledActor):
    def on_receive(self, message: Any) -> Any:
        message.gate.wait(timeout=5)


def test_folded_marks_never_lose_greeks() -> None:
    """Under overload, a newer mark without Greeks does not erase one that had them."""
    d = PoolDispatcher(threads=1, name="test-marks")
    try:
        gate = threading.Event()
        blocker = _Blocker.start(dispatcher=d)
        pref = PortfolioActor.start(
            GateParams(LimitParams({ReasonCode.MAX_PORTFOLIO_DELTA: 1e9}, 60.0)), dispatcher=d
        )
        pref.tell(PositionUpdate(0.0, "O", OPT, 5, 6.0))
        pref.ask(GetPortfolio(0.0), timeout=5)
        blocker.tell(_Block(gate))  # occupy the only worker: the marks queue up
        pref.tell(Mark(1.0, "O", 6.0, 6.2, 6.1, Greeks(0.5, 0.01, 0.3, -0.02, 0.25, 190.0)))
        pref.tell(Mark(2.0, "O", 6.1, 6.3, 6.2, None))
        pref.tell(Mark(3.0, "O", 6.2, 6.4, 6.3, None))
        gate.set()
        # the query is priority mail: poll until the queued marks are all handled
        deadline = time.monotonic() + 5
        while True:
            view: PortfolioView = pref.ask(GetPortfolio(3.0), timeout=5)
            if view.rows[0]["price"] == 6.3 or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        assert view.rows[0]["price"] == 6.3  # the newest prices
        assert view.delta == 250.0 and view.rows[0]["greeks_t"] == 1.0  # Greeks kept
        assert d.coalesced == 1  # the two Greek-less marks folded together
    finally:
        pykka.ActorRegistry.stop_all()
        d.shutdown()


# ------------------------------------------------------------------- breaker


def breaker(
    inline: InlineDispatcher, **kw: Any
) -> tuple[pykka.ActorRef[Any], list[Any], VirtualScheduler]:
    sub, seen = probe(inline)
    sched = VirtualScheduler()
    ref = BreakerActor.start(
        BreakerParams(**kw), dispatcher=inline, scheduler=sched, subscriber=sub
    )
    return ref, seen, sched


def test_breaker_trips_publishes_cause_and_schedules_its_own_timer(
    inline: InlineDispatcher,
) -> None:
    ref, seen, sched = breaker(inline, failure_threshold=2, open_timeout_s=30.0)
    ref.tell(Failure(1.0, FailureKind.ORDER_REJECTED, 201, "no"))
    ref.tell(Failure(2.0, FailureKind.DATA_FEED, 2103, "farm"))
    trs = of(BreakerTransition, seen)
    assert [(t.t, t.to_state) for t in trs] == [(2.0, BreakerState.OPEN)]
    cause = trs[0].cause
    assert cause.reason is TransitionReason.FAILURE_THRESHOLD
    assert dict(cause.failures_by_kind) == {
        FailureKind.ORDER_REJECTED: 1.0,
        FailureKind.DATA_FEED: 1.0,
    }
    assert cause.failure == Failure(2.0, FailureKind.DATA_FEED, 2103, "farm")
    assert len(of(FailureRecorded, seen)) == 2
    assert sched.next_due() == 32.0
    # nothing arrives, the timer alone moves it at exactly the due time
    sched.advance_to(31.999)
    assert ref.ask(GetBreakerState()).state is BreakerState.OPEN
    sched.advance_to(40.0)
    assert of(BreakerTransition, seen)[-1].t == 32.0
    assert ref.ask(GetBreakerState()).state is BreakerState.HALF_OPEN


def _gate(
    ref: pykka.ActorRef[Any], t: float, *, risk_reducing: bool = False, denied: bool = False
) -> CheckAnswer:
    from actors.gate.assessment import Admit, Assessment
    from actors.messages import Leg, Reason, SecType

    reasons = (Reason(ReasonCode.MAX_PORTFOLIO_DELTA, 600.0, 500.0),) if denied else ()
    legs = (Leg("AAPL", SecType.STK, 1.0, 1.0),)
    future: pykka.Future[CheckAnswer] = pykka.ThreadingFuture()
    ref.tell(
        Admit(Assessment(t, "c", legs, None, reasons, risk_reducing=risk_reducing), None, future)
    )
    return future.get(timeout=5)


def test_breaker_gate_permits_in_half_open(inline: InlineDispatcher) -> None:
    ref, seen, sched = breaker(inline, half_open_max_tries=2, open_timeout_s=10.0)
    ref.tell(Failure(0.0, FailureKind.MARGIN))
    assert [r.code for r in _gate(ref, 1.0).reasons] == [ReasonCode.BREAKER_OPEN]
    assert _gate(ref, 1.0, risk_reducing=True).allowed
    sched.advance_to(10.0)
    assert _gate(ref, 10.0).allowed and _gate(ref, 10.0).allowed
    busy = _gate(ref, 11.0)
    assert [r.code for r in busy.reasons] == [ReasonCode.BREAKER_HALF_OPEN_BUSY]
    denied = _gate(ref, 11.0, denied=True)
    assert [r.code for r in denied.reasons] == [
        ReasonCode.MAX_PORTFOLIO_DELTA,
        ReasonCode.BREAKER_HALF_OPEN_BUSY,
    ]
    assert _gate(ref, 11.0, risk_reducing=True).allowed
    ref.tell(Success(12.0))
    ref.tell(Success(13.0))
    assert of(BreakerTransition, seen)[-1].to_state is BreakerState.CLOSED


def test_operator_and_system_halts(inline: InlineDispatcher) -> None:
    ref, seen, sched = breaker(inline)
    ref.tell(Admin(1.0, AdminAction.FORCE_OPEN, "alice"))
    ref.tell(Admin(2.0, AdminAction.FORCE_OPEN, "bob"))  # no change, no transition
    assert sched.next_due() is None
    ref.tell(Admin(3.0, AdminAction.RESET, "alice"))
    ref.tell(SystemHalt(4.0, TransitionReason.STORE_UNAVAILABLE, "store_unavailable"))
    trs = of(BreakerTransition, seen)
    assert [(t.to_state, t.cause.reason, t.cause.operator) for t in trs] == [
        (BreakerState.OPEN, TransitionReason.OPERATOR_FORCE_OPEN, "alice"),
        (BreakerState.CLOSED, TransitionReason.OPERATOR_RESET, "alice"),
        (BreakerState.OPEN, TransitionReason.STORE_UNAVAILABLE, "store_unavailable"),
    ]
    # each transition carries the state it leaves, to be stored with it atomically
    assert [t.snapshot["state"] for t in trs if t.snapshot] == ["open", "closed", "open"]


def test_concurrent_checks_never_share_the_last_permit() -> None:
    """Many threads asking at once in HALF_OPEN get exactly half_open_max_tries grants."""
    d = PoolDispatcher(threads=2, name="test-permits")
    try:
        sched = VirtualScheduler()
        ref = BreakerActor.start(
            BreakerParams(half_open_max_tries=3, open_timeout_s=1.0), dispatcher=d, scheduler=sched
        )
        ref.tell(Failure(0.0, FailureKind.MARGIN))
        assert ref.ask(GetBreakerState(), timeout=5).state is BreakerState.OPEN  # in order
        sched.advance_to(1.0)
        assert ref.ask(GetBreakerState(), timeout=5).state is BreakerState.HALF_OPEN
        answers: list[CheckAnswer] = []
        lock = threading.Lock()
        start = threading.Barrier(16)

        def ask() -> None:
            start.wait(timeout=5)
            for _ in range(5):
                a = _gate(ref, 2.0)
                with lock:
                    answers.append(a)

        threads = [threading.Thread(target=ask) for _ in range(16)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=10)
        assert len(answers) == 80
        assert sum(a.allowed for a in answers) == 3
        view: BreakerView = ref.ask(GetBreakerState(), timeout=5)
        assert view.snapshot["permits_used"] == 3
    finally:
        pykka.ActorRegistry.stop_all()
        d.shutdown()


# ----------------------------------------------------------------- portfolio


def portfolio(
    inline: InlineDispatcher, limits: dict[ReasonCode, float], **kw: Any
) -> tuple[Any, Any, list[Any]]:
    bref, seen, _sched = breaker(inline, **kw)
    params = GateParams(LimitParams(limits, 60.0))
    pref = PortfolioActor.start(params, dispatcher=inline, breaker=bref, net_liquidation=1e6)
    return pref, bref, seen


def check(pref: Any, t: float, *legs: Leg) -> CheckAnswer:
    future: pykka.Future[CheckAnswer] = pykka.ThreadingFuture()
    pref.tell(CheckRequest(t, "c", legs, future))
    return future.get(timeout=5)


def test_portfolio_answers_for_limits_and_breaker_together(inline: InlineDispatcher) -> None:
    pref, bref, _ = portfolio(inline, {ReasonCode.MAX_PORTFOLIO_DELTA: 500.0})
    pref.tell(PositionUpdate(0.0, "O", OPT, 5, 6.0))
    # no Greeks yet for the option: fail closed
    a = check(pref, 1.0, Leg("AAPL", SecType.STK, 10, 190.0))
    assert [r.code for r in a.reasons] == [ReasonCode.STALE_DATA]
    pref.tell(Mark(1.0, "O", 6.0, 6.2, 6.1, Greeks(0.5, 0.01, 0.3, -0.02, 0.25, 190.0)))
    view: PortfolioView = pref.ask(GetPortfolio(1.0))
    assert view.delta == 250.0  # 0.5 × 5 × 100
    a = check(pref, 2.0, Leg("AAPL", SecType.STK, 300, 190.0))
    assert [(r.code, r.value, r.limit) for r in a.reasons] == [
        (ReasonCode.MAX_PORTFOLIO_DELTA, 550.0, 500.0)
    ]
    bref.tell(Failure(3.0, FailureKind.MARGIN))
    a = check(pref, 4.0, Leg("AAPL", SecType.STK, 300, 190.0))
    assert [r.code for r in a.reasons] == [ReasonCode.MAX_PORTFOLIO_DELTA, ReasonCode.BREAKER_OPEN]
    a = check(pref, 4.0, Leg("AAPL", SecType.STK, -100, 190.0))  # reduces delta: passes while OPEN
    assert a.allowed and a.risk_reducing
    a = check(pref, 5.0)  # no legs
    assert [r.code for r in a.reasons] == [ReasonCode.INVALID_ORDER]
    a = check(pref, 61.0, Leg("AAPL", SecType.STK, -100, 190.0))  # Greeks exactly 60 s old: fresh
    assert a.allowed
    a = check(pref, 61.5, Leg("AAPL", SecType.STK, -100, 190.0))
    assert [r.code for r in a.reasons] == [ReasonCode.STALE_DATA, ReasonCode.BREAKER_OPEN]


def test_portfolio_account_and_close(inline: InlineDispatcher) -> None:
    bref, _, _ = breaker(inline)
    params = GateParams(LimitParams({ReasonCode.MAX_SINGLE_POSITION_PCT: 10.0}, 60.0))
    pref = PortfolioActor.start(params, dispatcher=inline, breaker=bref)
    a = check(pref, 1.0, Leg("AAPL", SecType.STK, 10, 190.0))
    assert [r.code for r in a.reasons] == [ReasonCode.STALE_DATA]  # NLV unknown
    pref.tell(AccountUpdate(1.0, 100_000.0))
    a = check(pref, 2.0, Leg("AAPL", SecType.STK, 100, 190.0))  # 19 000 / 100 000 = 19 %
    assert [(r.code, r.value) for r in a.reasons] == [(ReasonCode.MAX_SINGLE_POSITION_PCT, 19.0)]
    pref.tell(PositionUpdate(3.0, "S", STK, 40, 190.0))
    pref.tell(Mark(3.0, "S", 190.0, 190.2, 190.0, None))
    pref.tell(PositionClosed(4.0, "S"))
    assert pref.ask(GetPortfolio(4.0)).rows == ()

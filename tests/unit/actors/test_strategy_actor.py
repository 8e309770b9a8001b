"""Message-level tests of the strategy actor, and of the gate's one entry point.

The strategy actor (DESIGN §3.1): leg quotes in, stop events with the
strategy's id out; a TRIGGER is told to the portfolio on the strategy's symbol
(cooldown, stop guard) and carries the whole combo; a leg leaving before the
trigger ends it and gives the remaining legs their own stops back.

The gate (``supervisor.core.gate.Gate`` over the replay topology, DESIGN §4,
§4.4, §9): every check passes it; it fetches the what-if outside the actors
when the margin rules need one; a verdict that cannot be journaled turns an
allowance into ``breaker_open``; only allowed orders count toward
``order_rate`` and ``duplicate_order``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pykka
import pytest
from gate_harness import codes, sleg, stk, triples

from actors.messages import (
    BreakerState,
    CheckAnswer,
    CheckRequest,
    Contract,
    Failure,
    FailureKind,
    GetStrategyState,
    Leg,
    LegJoined,
    LegLeft,
    LegQuote,
    PositionUpdate,
    Quote,
    Right,
    SecType,
    SetLeg,
    StopAction,
    StopEvent,
    StrategyEvent,
    Triggered,
    WhatIf,
)
from actors.probe import Probe
from actors.runtime import InlineDispatcher
from actors.scheduler import VirtualScheduler
from actors.strategy_actor import StrategyActor, StrategyView, strategy_trigger_id
from actors.strategy_stop import StrategyState
from actors.topology import Topology
from actors.trailing_stop import StopParams
from supervisor.config import parse
from supervisor.core.gate import Gate

EXP = "2027-01-15"
P = StopParams(activation_pct=25.0, trailing_pct=50.0, min_move_pct=0.0)


def call(strike: float) -> Contract:
    return Contract("X", SecType.OPT, Right.CALL, strike, EXP, 100.0)


@pytest.fixture
def inline() -> Iterator[InlineDispatcher]:
    d = InlineDispatcher()
    yield d
    pykka.ActorRegistry.stop_all()


def started(d: InlineDispatcher) -> tuple[Any, list[Any], list[Any], list[Any], list[Any]]:
    sink: list[Any] = []
    port: list[Any] = []
    leg_l: list[Any] = []
    leg_h: list[Any] = []
    ref = StrategyActor.start(
        "S",
        "X",
        P,
        7.0,
        dispatcher=d,
        portfolio=Probe.start(dispatcher=d, into=port),
        subscriber=Probe.start(dispatcher=d, into=sink),
    )
    ref.tell(LegJoined(7.0, "L", call(100.0), 1, 5.0, Probe.start(dispatcher=d, into=leg_l)))
    ref.tell(LegJoined(7.0, "H", call(110.0), -1, 3.0, Probe.start(dispatcher=d, into=leg_h)))
    return ref, sink, port, leg_l, leg_h


def stops(sink: list[Any]) -> list[StopEvent]:
    return [m for m in sink if isinstance(m, StopEvent)]


def test_leg_quotes_become_stop_events_with_the_strategy_id(inline: InlineDispatcher) -> None:
    ref, sink, port, _, _ = started(inline)
    ref.tell(LegQuote(8.0, "L", 5.0, 5.5, None))
    assert stops(sink) == [] and not [m for m in sink if isinstance(m, StrategyEvent)]
    ref.tell(LegQuote(9.0, "H", 2.5, 3.0, None))  # start: net 2
    assert [(e.what) for e in sink if isinstance(e, StrategyEvent)] == ["started"]
    ref.tell(LegQuote(10.0, "L", 5.5, 6.0, None))  # 2.5: ACTIVATE at 1.25
    ref.tell(LegQuote(11.0, "L", -1.0, 6.0, None))  # ignored: changes nothing
    ref.tell(LegQuote(12.0, "H", 4.5, 5.0, None))  # 0.5: TRIGGER
    events = stops(sink)
    assert [(e.t, e.id, e.action, e.stop, e.ref_price, e.extreme) for e in events] == [
        (10.0, "S", StopAction.ACTIVATE, 1.25, 2.5, 2.5),
        (12.0, "S", StopAction.TRIGGER, 1.25, 0.5, 2.5),
    ]
    trig = events[-1]
    assert trig.trigger_id == strategy_trigger_id("S", 7.0)
    assert [(c.position_id, c.contract, c.qty) for c in trig.combo] == [
        ("L", call(100.0), 1),
        ("H", call(110.0), -1),
    ]
    assert [(m.t, m.id, m.symbol) for m in port if isinstance(m, Triggered)] == [(12.0, "S", "X")]
    ref.tell(LegQuote(13.0, "L", 9.0, 9.5, None))
    assert len(stops(sink)) == 2  # never a second TRIGGER
    view: StrategyView = ref.ask(GetStrategyState())
    assert view.state is StrategyState.TRIGGERED and view.stop == 1.25


def test_a_leg_leaving_before_the_trigger_frees_the_others(inline: InlineDispatcher) -> None:
    ref, sink, _, leg_l, leg_h = started(inline)
    ref.tell(LegQuote(8.0, "L", 5.0, 5.5, None))
    ref.tell(LegQuote(9.0, "H", 2.5, 3.0, None))
    ref.tell(LegLeft(10.0, "H"))
    assert [e.what for e in sink if isinstance(e, StrategyEvent)][-1] == "ended"
    assert [(m.t, m.strategy_id, m.fresh_stop) for m in leg_l if isinstance(m, SetLeg)] == [
        (10.0, None, True)
    ]
    assert not [m for m in leg_h if isinstance(m, SetLeg)]  # the topology frees the leaver
    assert not ref.is_alive()


def test_a_leg_leaving_after_the_trigger_frees_nobody(inline: InlineDispatcher) -> None:
    ref, sink, _, leg_l, _ = started(inline)
    for t, leg, bid, ask in (
        (8.0, "L", 5.0, 5.5),
        (9.0, "H", 2.5, 3.0),
        (9.5, "L", 5.5, 6.0),
        (10.0, "L", 3.0, 3.5),
    ):
        ref.tell(LegQuote(t, leg, bid, ask, None))
    assert stops(sink)[-1].action is StopAction.TRIGGER
    ref.tell(LegLeft(11.0, "H"))
    assert not [m for m in leg_l if isinstance(m, SetLeg)]
    assert ref.is_alive()
    ref.tell(LegLeft(12.0, "L"))
    assert not ref.is_alive()  # its last leg closed


def test_restored_strategy_actor_resumes(inline: InlineDispatcher) -> None:
    ref, _, _, _, _ = started(inline)
    for t, leg, bid, ask in ((8.0, "L", 5.0, 5.5), (9.0, "H", 2.5, 3.0), (10.0, "L", 5.5, 6.0)):
        ref.tell(LegQuote(t, leg, bid, ask, None))
    snap = ref.ask(GetStrategyState()).snapshot
    sink: list[Any] = []
    twin = StrategyActor.start(
        "S",
        "X",
        P,
        7.0,
        dispatcher=inline,
        subscriber=Probe.start(dispatcher=inline, into=sink),
        restored=snap,
    )
    twin.tell(LegQuote(11.0, "H", 4.5, 5.0, None))
    assert [(e.action, e.stop) for e in stops(sink)] == [(StopAction.TRIGGER, 1.25)]


# --------------------------------------------------------------------- gate


class Journal:
    """A verdict journal that can be made to fail (the store is down)."""

    def __init__(self) -> None:
        self.ok = True
        self.rows: list[tuple[CheckRequest, CheckAnswer]] = []

    def verdict(self, request: CheckRequest, answer: CheckAnswer) -> bool:
        self.rows.append((request, answer))
        return self.ok


class Broker:
    """An IB what-if source that answers what it is told to."""

    def __init__(self, answer: WhatIf | Exception) -> None:
        self.answer = answer
        self.calls: list[tuple[tuple[Leg, ...], float]] = []

    def whatif(self, legs: tuple[Leg, ...], timeout_s: float) -> WhatIf:
        self.calls.append((legs, timeout_s))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@pytest.fixture
def wiring() -> Iterator[Any]:
    built: list[Topology] = []

    def build(cfg: dict[str, Any], **gate_kw: Any) -> tuple[Topology, Gate, VirtualScheduler]:
        d = InlineDispatcher()
        sched = VirtualScheduler()
        config = parse(cfg)
        sink = Probe.start(dispatcher=d)
        topo = Topology(config, dispatcher=d, scheduler=sched, sink=sink)
        built.append(topo)
        gate = Gate(topo.portfolio, topo.breaker, margin=config.gate.margin, **gate_kw)
        return topo, gate, sched

    yield build
    for topo in built:
        topo.stop()
    pykka.ActorRegistry.stop_all()


def ask(gate: Gate, t: float, *legs: Leg, whatif: WhatIf | None = None) -> CheckAnswer:
    return gate.check(CheckRequest(t, f"c{t}", legs, whatif=whatif))


def test_gate_answers_through_both_actors(wiring: Any) -> None:
    topo, gate, _ = wiring({"limits": {"max_portfolio_delta": 150.0}})
    topo.position(PositionUpdate(0.0, "A", stk("AAPL"), 100, 100.0))
    assert ask(gate, 1.0, sleg("AAPL", 50, 100.0)).allowed
    assert triples(ask(gate, 1.0, sleg("AAPL", 51, 100.0))) == [
        ("max_portfolio_delta", 151.0, 150.0)
    ]
    topo.failure(Failure(2.0, FailureKind.MARGIN))
    a = ask(gate, 3.0, sleg("AAPL", -10, 100.0))
    assert a.allowed and a.risk_reducing and a.breaker_state is BreakerState.OPEN
    assert codes(ask(gate, 3.0, sleg("AAPL", 10, 100.0))) == ["breaker_open"]


def test_gate_journals_every_verdict_and_fails_closed_without_a_journal(wiring: Any) -> None:
    journal = Journal()
    _, gate, _ = wiring({}, journal=journal)
    assert ask(gate, 1.0, sleg("AAPL", 1, 1.0)).allowed
    journal.ok = False
    a = ask(gate, 2.0, sleg("AAPL", 2, 1.0))
    assert not a.allowed and codes(a) == ["breaker_open"]
    # the allowance that could not be journaled is withdrawn; its denial is journaled
    assert [answer.allowed for _, answer in journal.rows] == [True, True, False]


def test_an_answer_that_could_not_be_journaled_is_not_counted_as_allowed(
    wiring: Any,
) -> None:
    """The trader was told "denied": that order must not count toward the duplicate
    window (DESIGN §4.2: only allowed orders count; a denied order changes neither)."""
    journal = Journal()
    _, gate, _ = wiring({"orders": {"duplicate_window_s": 60.0}}, journal=journal)
    journal.ok = False
    assert not ask(gate, 1.0, sleg("AAPL", 1, 100.0)).allowed
    journal.ok = True
    retry = ask(gate, 2.0, sleg("AAPL", 1, 100.0))
    assert retry.allowed, triples(retry)


def test_an_answer_that_could_not_be_journaled_takes_no_half_open_permit(
    wiring: Any,
) -> None:
    """DESIGN §5: each *allowed* entry takes a permit; the trader was told "denied"."""
    journal = Journal()
    cfg = {"breaker": {"open_timeout_s": 10.0, "half_open_max_tries": 1}}
    topo, gate, sched = wiring(cfg, journal=journal)
    topo.failure(Failure(0.0, FailureKind.MARGIN))
    sched.advance_to(10.0)
    journal.ok = False
    assert codes(ask(gate, 10.0, sleg("AAPL", 1, 1.0))) == ["breaker_open"]
    journal.ok = True
    retry = ask(gate, 11.0, sleg("AAPL", 1, 1.0))
    assert retry.allowed, triples(retry)


def test_gate_fetches_the_whatif_outside_the_actors_only_when_needed(wiring: Any) -> None:
    broker = Broker(WhatIf(0.0, 90_000.0, 0.0, 0.0, 0.0, 0.0))
    cfg = {
        "account": {"net_liquidation": 100_000.0},
        "margin": {"max_init_margin_pct": 50.0, "whatif_timeout_s": 0.75},
        "orders": {"max_leg_shares": 100.0},
    }
    _, gate, _ = wiring(cfg, broker=broker)
    a = ask(gate, 1.0, sleg("AAPL", 10, 1.0))
    assert triples(a) == [("max_init_margin_pct", 90.0, 50.0)]
    assert a.whatif == broker.answer
    assert broker.calls == [((sleg("AAPL", 10, 1.0),), 0.75)]
    # denied by a control: no what-if asked
    assert codes(ask(gate, 2.0, sleg("AAPL", 1000, 1.0))) == ["max_leg_shares"]
    assert len(broker.calls) == 1


def test_a_broken_whatif_source_fails_closed(wiring: Any) -> None:
    cfg = {"account": {"net_liquidation": 100_000.0}, "margin": {"min_excess_liquidity": 1.0}}
    _, gate, _ = wiring(cfg, broker=Broker(RuntimeError("socket closed")))
    assert triples(ask(gate, 1.0, sleg("AAPL", 1, 1.0))) == [("stale_data", None, None)]


def test_gate_margin_denials_take_no_half_open_permit(wiring: Any) -> None:
    broker = Broker(WhatIf(0.0, 90_000.0, 0.0, 0.0, 0.0, 0.0))
    cfg = {
        "account": {"net_liquidation": 100_000.0},
        "margin": {"max_init_margin_pct": 50.0},
        "breaker": {"open_timeout_s": 10.0, "half_open_max_tries": 1},
    }
    topo, gate, sched = wiring(cfg, broker=broker)
    topo.failure(Failure(0.0, FailureKind.MARGIN))
    sched.advance_to(10.0)
    for t in (10.0, 11.0, 12.0):
        assert codes(ask(gate, t, sleg("AAPL", 1, 1.0))) == ["max_init_margin_pct"]
    broker.answer = WhatIf(0.0, 1_000.0, 0.0, 0.0, 0.0, 0.0)
    assert ask(gate, 13.0, sleg("AAPL", 1, 1.0)).allowed  # the one permit was still free
    assert codes(ask(gate, 14.0, sleg("AAPL", 1, 1.0))) == ["breaker_half_open_busy"]


def test_a_leg_quote_reaches_the_gate_as_the_collars_quote(wiring: Any) -> None:
    topo, gate, _ = wiring({"orders": {"price_collar_pct": 2.5}})
    topo.position(PositionUpdate(0.0, "L", call(100.0), 1, 5.0), "S")
    topo.position(PositionUpdate(0.0, "H", call(110.0), -1, 3.0), "S")
    topo.quote(Quote(1.0, "L", 4.875, 5.125, None))
    # a leg's accepted quote is its contract's collar quote: band 5 × 2.5 % = 0.125
    inside = Leg("X", SecType.OPT, 1, 5.25, Right.CALL, 100.0, EXP, 100.0)
    outside = Leg("X", SecType.OPT, 1, 5.375, Right.CALL, 100.0, EXP, 100.0)
    assert ask(gate, 2.0, inside).allowed
    assert triples(ask(gate, 2.0, outside)) == [("price_collar_pct", 5.375, 2.5)]


def test_a_gate_whose_actors_do_not_answer_fails_closed(inline: InlineDispatcher) -> None:
    silent = Probe.start(dispatcher=inline)  # takes every message, answers none
    gate = Gate(silent, silent, timeout_s=0.05)
    a = ask(gate, 1.0, sleg("AAPL", 1, 1.0))
    assert not a.allowed and codes(a) == ["stale_data"]

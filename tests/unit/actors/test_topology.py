"""The one topology (daemon and replay): routing and the strategy rules of DESIGN §3.1.

Facts from the contract:

* A position whose ``strategy`` is set is a leg from its position line on; its
  per-leg stop is off while the strategy lives — also while it is the only leg.
* A position is a leg of at most one strategy; strategy ids and position ids
  share one namespace (a clash is a bad line). All legs have one underlying
  symbol; a position line that would give a strategy a second symbol is a bad
  line. An update without ``strategy`` keeps the leg's strategy; ``null`` takes
  it out, which counts as that leg closing alone.
* A leg closed alone before the TRIGGER ends the strategy's stop; each
  remaining leg's per-leg stop starts fresh (extreme = its entry, not active,
  no breaches) from its next accepted quote; the strategy id is then spent (a
  position line naming it is a bad line).
* After its TRIGGER a strategy stays triggered until its last leg closes;
  closing its legs re-enables nothing.
* A quote feeds one position and writes at most one stop line — its
  strategy's or its own.
* A refused input changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pykka
import pytest

from actors.messages import (
    Contract,
    GetStopState,
    PositionUpdate,
    Quote,
    Right,
    SecType,
    StopAction,
    StopEvent,
    StopSnapshot,
    StrategyEvent,
)
from actors.probe import Probe
from actors.runtime import InlineDispatcher
from actors.scheduler import VirtualScheduler
from actors.strategy_stop import StrategyState
from actors.topology import KEEP, Refused, Topology
from supervisor.config import parse

EXP = "2027-01-15"
# Exact percentages: activation 25 %, trailing 50 %, no minimum move.
STOPS = {"trailing_stop": {"activation_pct": 25.0, "trailing_pct": 50.0, "min_move_pct": 0.0}}


def call(symbol: str, strike: float) -> Contract:
    return Contract(symbol, SecType.OPT, Right.CALL, strike, EXP, 100.0)


@pytest.fixture
def topo() -> Iterator[tuple[Topology, list[Any]]]:
    d = InlineDispatcher()
    seen: list[Any] = []
    sink = Probe.start(dispatcher=d, into=seen)
    t = Topology(parse(STOPS), dispatcher=d, scheduler=VirtualScheduler(), sink=sink)
    yield t, seen
    t.stop()
    pykka.ActorRegistry.stop_all()


def pos(t: float, id: str, contract: Contract, qty: float, entry: float) -> PositionUpdate:
    return PositionUpdate(t, id, contract, qty, entry)


def spread(topo: Topology, sid: str = "S", symbol: str = "X") -> None:
    """A debit call spread: long 1 × 100 C at 5, short 1 × 110 C at 3 (E = 2)."""
    topo.position(pos(0.0, "L", call(symbol, 100.0), 1, 5.0), sid)
    topo.position(pos(0.0, "H", call(symbol, 110.0), -1, 3.0), sid)


def stops(seen: list[Any]) -> list[tuple[float, str, StopAction]]:
    return [(e.t, e.id, e.action) for e in seen if isinstance(e, StopEvent)]


def notes(seen: list[Any]) -> list[tuple[str, str]]:
    return [(e.id, e.what) for e in seen if isinstance(e, StrategyEvent)]


def q(t: float, id: str, bid: float, ask: float) -> Quote:
    return Quote(t, id, bid, ask, None)


def stop_state(topo: Topology, id: str) -> StopSnapshot:
    snap: StopSnapshot = topo.positions[id].ask(GetStopState())
    return snap


# ------------------------------------------------------------------ routing


def test_quotes_and_closes_for_unknown_positions_are_not_routed(topo: Any) -> None:
    t, seen = topo
    assert not t.quote(q(1.0, "nobody", 1.0, 1.1))
    assert not t.close(1.0, "nobody")
    t.position(pos(0.0, "A", Contract("A", SecType.STK), 10, 100.0))
    assert t.quote(q(1.0, "A", 130.0, 130.5))
    assert stops(seen) == [(1.0, "A", StopAction.ACTIVATE)]
    assert t.close(2.0, "A") and not t.quote(q(3.0, "A", 1.0, 1.1))


# ------------------------------------------------------------ namespace


def test_ids_share_one_namespace(topo: Any) -> None:
    t, _ = topo
    spread(t)
    with pytest.raises(Refused):
        t.validate(pos(1.0, "S", call("X", 120.0), 1, 1.0), KEEP)  # a position named S
    with pytest.raises(Refused):
        t.validate(pos(1.0, "N", call("X", 120.0), 1, 1.0), "L")  # a strategy named L
    with pytest.raises(Refused):
        t.validate(pos(1.0, "N", call("X", 120.0), 1, 1.0), "N")  # its own id


def test_a_position_is_a_leg_of_at_most_one_strategy(topo: Any) -> None:
    t, _ = topo
    spread(t)
    with pytest.raises(Refused):
        t.position(pos(1.0, "L", call("X", 100.0), 1, 5.0), "T")
    assert t.leg_of == {"L": "S", "H": "S"} and "T" not in t.strategies


def test_a_second_symbol_is_refused_when_naming_the_strategy(topo: Any) -> None:
    t, _ = topo
    spread(t)
    with pytest.raises(Refused):
        t.position(pos(1.0, "W", call("Y", 100.0), 1, 1.0), "S")
    assert "W" not in t.positions and t.strategies["S"].legs == ["L", "H"]


def test_a_second_symbol_is_refused_when_a_leg_keeps_its_strategy(topo: Any) -> None:
    """An update without ``strategy`` keeps the leg's strategy, so moving the leg to
    another underlying would give the strategy a second symbol: a bad line."""
    t, _ = topo
    spread(t)
    with pytest.raises(Refused):
        t.validate(pos(1.0, "L", call("Y", 100.0), 1, 5.0), KEEP)


def test_a_stock_and_options_on_it_mix(topo: Any) -> None:
    t, _ = topo
    t.position(pos(0.0, "STK", Contract("X", SecType.STK), 100, 50.0), "CC")
    t.position(pos(0.0, "C", call("X", 60.0), -1, 2.0), "CC")
    assert t.strategies["CC"].legs == ["STK", "C"]


# ------------------------------------------------------- per-leg stop off


def test_a_lone_leg_has_no_per_leg_stop(topo: Any) -> None:
    t, seen = topo
    t.position(pos(0.0, "L", call("X", 100.0), 1, 5.0), "S")
    for i, bid in enumerate((7.0, 9.0, 1.0)):  # would ACTIVATE, UPDATE and TRIGGER alone
        t.quote(q(1.0 + i, "L", bid, bid + 0.1))
    assert stops(seen) == []
    assert stop_state(t, "L").strategy == "S"


def test_a_strategy_writes_one_stop_line_per_quote_with_its_id(topo: Any) -> None:
    t, seen = topo
    spread(t)
    t.quote(q(1.0, "L", 5.0, 5.5))
    t.quote(q(2.0, "H", 2.5, 3.0))  # start: net 2
    t.quote(q(3.0, "L", 5.5, 6.0))  # net 2.5: ACTIVATE (stop 1.25)
    t.quote(q(4.0, "H", 4.5, 5.0))  # net 0.5: TRIGGER
    assert stops(seen) == [(3.0, "S", StopAction.ACTIVATE), (4.0, "S", StopAction.TRIGGER)]
    trigger = [e for e in seen if isinstance(e, StopEvent)][-1]
    assert {leg.position_id for leg in trigger.combo} == {"L", "H"}
    assert trigger.trigger_id is not None


# ----------------------------------------------------- leaving and ending


def test_a_leg_closed_alone_ends_it_and_the_others_start_fresh(topo: Any) -> None:
    t, seen = topo
    spread(t)
    t.quote(q(1.0, "L", 5.0, 5.5))
    t.quote(q(2.0, "H", 2.5, 3.0))
    t.quote(q(3.0, "L", 5.5, 6.0))  # strategy active
    t.close(4.0, "H")
    assert ("S", "ended") in notes(seen)
    assert "S" in t.spent and "S" not in t.strategies and "L" not in t.leg_of
    snap = stop_state(t, "L")
    assert snap.strategy is None and not snap.active and snap.extreme == 5.0
    assert snap.breaches == 0 and not snap.triggered
    t.quote(q(5.0, "L", 6.25, 6.5))  # its own stop now: 6.25 ≥ 5 × 1.25
    assert stops(seen)[-1] == (5.0, "L", StopAction.ACTIVATE)
    with pytest.raises(Refused):
        t.position(pos(6.0, "N", call("X", 120.0), 1, 1.0), "S")  # spent


def test_strategy_null_counts_as_closing_alone(topo: Any) -> None:
    t, seen = topo
    spread(t)
    t.position(pos(1.0, "H", call("X", 110.0), -1, 3.0), None)
    assert ("S", "ended") in notes(seen) and "S" in t.spent
    assert stop_state(t, "H").strategy is None and stop_state(t, "L").strategy is None
    assert "H" in t.positions  # still held, with its own stop


def test_an_update_without_strategy_keeps_the_leg_and_a_change_restarts(topo: Any) -> None:
    t, seen = topo
    spread(t)
    t.quote(q(1.0, "L", 5.0, 5.5))
    t.quote(q(2.0, "H", 2.5, 3.0))
    t.position(pos(3.0, "H", call("X", 110.0), -1, 2.0), KEEP)  # entry changed: E = 3
    assert t.leg_of["H"] == "S"
    assert notes(seen)[-1] == ("S", "restarted")
    view = t.strategy_view("S")
    assert view is not None and view.state is StrategyState.WAITING
    t.quote(q(4.0, "L", 5.0, 5.5))  # the next accepted leg quote starts it: E = 3
    view = t.strategy_view("S")
    assert view is not None and view.state is StrategyState.LIVE and view.entry == 3.0


def test_after_the_trigger_closing_legs_re_enables_nothing(topo: Any) -> None:
    t, seen = topo
    spread(t)
    t.quote(q(1.0, "L", 5.0, 5.5))
    t.quote(q(2.0, "H", 2.5, 3.0))
    t.quote(q(3.0, "L", 5.5, 6.0))
    t.quote(q(4.0, "H", 4.5, 5.0))  # TRIGGER
    t.close(5.0, "H")
    assert "S" in t.strategies and t.leg_of == {"L": "S"}
    assert stop_state(t, "L").strategy == "S"
    for i, bid in enumerate((9.0, 12.0, 1.0)):
        t.quote(q(6.0 + i, "L", bid, bid + 0.1))
    assert stops(seen)[-1] == (4.0, "S", StopAction.TRIGGER)  # no per-leg stop came back
    t.close(10.0, "L")
    assert "S" not in t.strategies and "S" in t.spent


def test_e_zero_has_no_stop_and_the_legs_stay_off(topo: Any) -> None:
    t, seen = topo
    t.position(pos(0.0, "L", call("X", 100.0), 1, 3.0), "Z")
    t.position(pos(0.0, "H", call("X", 110.0), -1, 3.0), "Z")
    for i, (pid, bid) in enumerate((("L", 3.0), ("H", 3.0), ("L", 9.0), ("L", 0.5))):
        t.quote(q(1.0 + i, pid, bid, bid + 0.1))
    assert stops(seen) == [] and ("Z", "no_stop") in notes(seen)
    assert stop_state(t, "L").strategy == "Z"


def test_a_refused_line_changes_nothing(topo: Any) -> None:
    t, seen = topo
    spread(t)
    before = (dict(t.leg_of), list(t.strategies["S"].legs), set(t.positions), len(seen))
    for bad, strat in (
        (pos(1.0, "W", call("Y", 100.0), 1, 1.0), "S"),
        (pos(1.0, "S", call("X", 100.0), 1, 1.0), KEEP),
        (pos(1.0, "L", call("X", 100.0), 1, 5.0), "T"),
    ):
        with pytest.raises(Refused):
            t.position(bad, strat)
    assert (dict(t.leg_of), list(t.strategies["S"].legs), set(t.positions), len(seen)) == before

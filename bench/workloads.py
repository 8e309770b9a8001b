"""The real position actor as a sweep workload: ``--workload workloads:position``.

(a) our ``PositionActor`` on the pooled dispatcher, unchanged but counted;
(b) the same pure ``TrailingStop`` in a plain pykka ``ThreadingActor`` per position;
(c) ``TrailingStop.on_quote`` called in a loop. Each quote is a real quote that
moves the peak, so stops activate and update as they would live.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pykka

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_sweep import Done, Workload, counting_subclass

from actors.messages import Contract, PositionUpdate, Quote, SecType
from actors.position_actor import PositionActor
from actors.trailing_stop import StopParams, TrailingStop

PARAMS = StopParams()
Counted = counting_subclass(PositionActor)


def _update(i: int) -> PositionUpdate:
    return PositionUpdate(0.0, f"P{i}", Contract(f"S{i % 50}", SecType.STK), 100, 100.0)


def _quote(i: int, k: int) -> Quote:
    p = 100.0 + (k % 40) * 0.25  # a saw-tooth: activates, trails, breaches now and then
    return Quote(float(k), f"P{i}", p, p + 0.01, p)


def _pooled(d: Any, i: int, done: Done) -> pykka.ActorRef[Any]:
    ref = Counted.start(_update(i), PARAMS, dispatcher=d)
    ref._actor_weakref().bench_done = done
    return ref


class _NaivePosition(pykka.ThreadingActor):
    def __init__(self, done: Done) -> None:
        super().__init__()
        self.trail = TrailingStop(PARAMS, long=True, entry_price=100.0)
        self.done = done

    def on_receive(self, message: Any) -> Any:
        self.trail.on_quote(message.bid, message.ask, message.last)
        self.done()


def _plain(i: int, done: Done) -> Any:
    trail = TrailingStop(PARAMS, long=True, entry_price=100.0)

    def handle(q: Quote) -> None:
        trail.on_quote(q.bid, q.ask, q.last)
        done()

    return handle


def position() -> Workload:
    return Workload(
        name="PositionActor (real trailing stop)",
        pooled=_pooled,
        naive=lambda i, done: _NaivePosition.start(done),
        plain=_plain,
        message=_quote,
    )

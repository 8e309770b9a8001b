"""The pool dispatcher times priority mail: how long it waited, how long its handler ran.

This is what feeds a pre-trade check's ``queue`` and ``evaluate`` stages
(``Metrics.check_stage``); the dispatcher reads the clock, never the actor.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pykka
import pytest

from actors.runtime import PoolDispatcher, PooledActor

WAIT = 5.0


class Slow(PooledActor):
    """Priority: ("prio", seconds) sleeps that long; anything else: (sleep, then) append."""

    def __init__(self, *, dispatcher: PoolDispatcher, seen: list[Any]) -> None:
        super().__init__(dispatcher=dispatcher)
        self.seen = seen

    def is_priority(self, message: Any) -> bool:
        return isinstance(message, tuple) and message[0] == "prio"

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, tuple):
            time.sleep(message[1])
            if message[0] == "die":
                raise RuntimeError("asked to")
        self.seen.append(message)
        return message


@pytest.fixture
def pool() -> Any:
    d = PoolDispatcher(threads=1, name="timing")
    yield d
    d.shutdown(timeout=WAIT)


def test_priority_mail_is_timed_waiting_and_running(pool: PoolDispatcher) -> None:
    timings: list[tuple[Any, float, float]] = []
    done = threading.Event()

    def on_priority(message: Any, waited: float, handled: float) -> None:
        timings.append((message, waited, handled))
        done.set()

    pool.on_priority = on_priority
    seen: list[Any] = []
    ref = Slow.start(dispatcher=pool, seen=seen)
    try:
        ref.tell(("normal", 0.05))  # keeps the only worker busy
        time.sleep(0.01)
        assert ref.ask(("prio", 0.02), timeout=WAIT) == ("prio", 0.02)
        assert done.wait(WAIT)
        (message, waited, handled), *rest = timings
        assert message == ("prio", 0.02) and rest == []
        assert 0.02 <= waited < WAIT  # behind the 50 ms normal message's remainder
        assert 0.015 <= handled < WAIT
        ref.tell("plain")  # normal mail is not timed
        ref.ask(("prio", 0.0), timeout=WAIT)
        assert [m for m, _, _ in timings] == [("prio", 0.02), ("prio", 0.0)]
    finally:
        ref.stop()


def test_timed_priority_mail_still_queued_when_the_actor_dies_is_answered(
    pool: PoolDispatcher,
) -> None:
    pool.on_priority = lambda m, w, h: None
    seen: list[Any] = []
    ref = Slow.start(dispatcher=pool, seen=seen)
    ref.tell(("die", 0.1))  # the handler sleeps, then fails: the actor dies
    time.sleep(0.02)
    future = ref.ask(("prio", 0.0), block=False)  # queued, timed, behind the dying handler
    with pytest.raises(pykka.ActorDeadError):
        future.get(timeout=WAIT)
    assert not ref.is_alive()

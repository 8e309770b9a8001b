"""Message-level tests of the pooled actor runtime (actors/runtime.py).

Every wait is bounded; every test stops the actors it started and shuts its
dispatcher down (the ``dispatchers`` fixture does both, even on failure).
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Any

import pykka
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.runtime import InlineDispatcher, PoolDispatcher, PooledActor

WAIT = 5.0  # seconds: the bound on every wait in this file

Failures = list[tuple[pykka.ActorRef[Any], BaseException]]


class Harness:
    """Makes dispatchers, records failures, and cleans up after the test."""

    def __init__(self) -> None:
        self.made: list[PoolDispatcher | InlineDispatcher] = []
        self.failures: Failures = []
        self.failed = threading.Event()

    def _on_failure(self, ref: pykka.ActorRef[Any], exc: BaseException) -> None:
        self.failures.append((ref, exc))
        self.failed.set()

    def pool(self, threads: int = 2, throughput: int = 64) -> PoolDispatcher:
        d = PoolDispatcher(threads=threads, name="test", throughput=throughput)
        d.on_failure = self._on_failure
        self.made.append(d)
        return d

    def inline(self, throughput: int = 1) -> InlineDispatcher:
        d = InlineDispatcher(throughput=throughput)
        d.on_failure = self._on_failure
        self.made.append(d)
        return d

    def make(self, kind: str) -> PoolDispatcher | InlineDispatcher:
        return self.pool() if kind == "pool" else self.inline()

    def close(self) -> None:
        pykka.ActorRegistry.stop_all(timeout=WAIT)
        for d in self.made:
            if isinstance(d, PoolDispatcher):
                d.shutdown(timeout=WAIT)


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness()
    try:
        yield harness
    finally:
        harness.close()


KINDS = ["pool", "inline"]


# --------------------------------------------------------------------------- actors


class Probe(PooledActor):
    """Records what it receives; a few control messages for the tests."""

    def __init__(self, *, dispatcher: Any, log: list[Any] | None = None, name: str = "") -> None:
        super().__init__(dispatcher=dispatcher)
        self.seen: list[Any] = []
        self.log = log  # shared, global order across actors
        self.name = name
        self.stopped_with: list[Any] | None = None
        self.failure_hook: list[BaseException | None] = []
        self.value = 0

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Block):
            message.entered.set()
            assert message.release.wait(WAIT)
        if message == "boom":
            raise ValueError("boom")
        if message == "get":
            return list(self.seen)
        self.seen.append(message)
        if self.log is not None:
            self.log.append((self.name, message))
        return ("ack", message)

    def on_stop(self) -> None:
        self.stopped_with = list(self.seen)

    def on_failure(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.failure_hook.append(exc)

    def double(self, x: int) -> int:
        return 2 * x


@dataclass(frozen=True)
class Block:
    """A message that parks the thread running its actor until released."""

    entered: threading.Event
    release: threading.Event


def blocker() -> Block:
    return Block(threading.Event(), threading.Event())


@dataclass(frozen=True)
class Urgent:
    tag: Any


@dataclass(frozen=True)
class Quote:
    key: str
    px: float
    high: float | None = None
    low: float | None = None


class Prioritised(Probe):
    def is_priority(self, message: Any) -> bool:
        return isinstance(message, Urgent)


class Coalescing(Prioritised):
    def coalesce_key(self, message: Any) -> Hashable | None:
        return message.key if isinstance(message, Quote) else None


class Extremes(Coalescing):
    def coalesce(self, old: Any, new: Any) -> Any:
        prices = [p for q in (old, new) for p in (q.px, q.high, q.low) if p is not None]
        return Quote(new.key, new.px, high=max(prices), low=min(prices))


def build_queue(
    d: PoolDispatcher | InlineDispatcher, target: pykka.ActorRef[Any], msgs: list[Any]
) -> None:
    """Get ``msgs`` queued in ``target``'s mailbox at once, then let it run.

    On the pool the target is parked on a Block while the messages are told; on
    the inline dispatcher a driver actor tells them from inside its handler
    (mail sent by a handler is processed only after the handler returns).
    """
    if isinstance(d, PoolDispatcher):
        b = blocker()
        target.tell(b)
        assert b.entered.wait(WAIT)
        for m in msgs:
            target.tell(m)
        b.release.set()
    else:
        driver = Driver.start(dispatcher=d)
        driver.tell((target, msgs))
        driver.stop(timeout=WAIT)


class Driver(PooledActor):
    def on_receive(self, message: Any) -> Any:
        target, msgs = message
        for m in msgs:
            target.tell(m)


def seen(ref: pykka.ActorRef[Any]) -> list[Any]:
    result: list[Any] = ref.ask("get", block=True, timeout=WAIT)
    return result


def drop_blocks(items: list[Any]) -> list[Any]:
    return [m for m in items if not isinstance(m, Block)]


# --------------------------------------------------------------------------- basics


@pytest.mark.parametrize("kind", KINDS)
def test_fifo_order_per_actor(h: Harness, kind: str) -> None:
    d = h.make(kind)
    refs = [Probe.start(dispatcher=d) for _ in range(5)]
    for i in range(300):
        for r in refs:
            r.tell(i)
    for r in refs:
        assert seen(r) == list(range(300))


@pytest.mark.parametrize("kind", KINDS)
def test_ask_tell_and_proxy(h: Harness, kind: str) -> None:
    d = h.make(kind)
    ref = Probe.start(dispatcher=d)
    ref.tell("a")
    assert ref.ask("b", timeout=WAIT) == ("ack", "b")
    fut = ref.ask("c", block=False)
    assert fut.get(timeout=WAIT) == ("ack", "c")
    proxy = ref.proxy()
    assert proxy.double(21).get(timeout=WAIT) == 42  # method call through the mailbox
    assert proxy.seen.get(timeout=WAIT) == ["a", "b", "c"]  # attribute read
    proxy.value = 7  # attribute write (blocks until done)
    assert proxy.value.get(timeout=WAIT) == 7
    proxy.double.defer(1)  # told proxy call
    assert proxy.mailbox_depth.get(timeout=WAIT) == 0
    assert ref.is_alive()
    assert pykka.ActorRegistry.get_by_urn(ref.actor_urn) is ref


def test_inline_ask_is_already_resolved(h: Harness) -> None:
    d = h.inline()
    ref = Probe.start(dispatcher=d)
    fut = ref.ask("x", block=False)
    assert fut.get(timeout=0) == ("ack", "x")


class Early(Probe):
    """Hands its ref out from __init__, before pykka has even registered it."""

    def __init__(self, *, dispatcher: Any, gate: threading.Event) -> None:
        super().__init__(dispatcher=dispatcher)
        self.gate = gate
        self.actor_ref.tell("from-init")

    def on_start(self) -> None:
        assert self.gate.wait(WAIT)
        self.seen.append("started")


@pytest.mark.parametrize("kind", KINDS)
def test_on_start_runs_before_any_message(h: Harness, kind: str) -> None:
    d = h.make(kind)
    gate = threading.Event()
    if kind == "inline":
        gate.set()  # on_start runs inside start() on the inline dispatcher
    ref = Early.start(dispatcher=d, gate=gate)
    ref.tell("after-start")
    gate.set()
    assert seen(ref) == ["started", "from-init", "after-start"]


@pytest.mark.parametrize("kind", KINDS)
def test_stop_processes_queued_mail_then_on_stop_then_dead(h: Harness, kind: str) -> None:
    d = h.make(kind)
    ref = Probe.start(dispatcher=d)
    actor = ref._actor_weakref()
    assert actor is not None
    for i in range(50):
        ref.tell(i)
    assert ref.stop(timeout=WAIT) is True
    assert actor.stopped_with == list(range(50))  # on_stop ran after all queued mail
    assert not ref.is_alive()
    assert pykka.ActorRegistry.get_by_urn(ref.actor_urn) is None
    with pytest.raises(pykka.ActorDeadError):
        ref.tell("late")
    with pytest.raises(pykka.ActorDeadError):
        ref.ask("late", timeout=WAIT)
    assert ref.stop(timeout=WAIT) is False  # already dead, as in pykka
    assert h.failures == []


def test_asks_queued_behind_stop_fail_with_actor_dead(h: Harness) -> None:
    d = h.pool()
    ref = Probe.start(dispatcher=d)
    b = blocker()
    ref.tell(b)
    assert b.entered.wait(WAIT)
    stop = ref.stop(block=False)
    late = ref.ask("late", block=False)
    b.release.set()
    assert stop.get(timeout=WAIT) is True
    with pytest.raises(pykka.ActorDeadError):
        late.get(timeout=WAIT)


@pytest.mark.parametrize("kind", KINDS)
def test_ask_exception_goes_to_caller_and_actor_lives(h: Harness, kind: str) -> None:
    d = h.make(kind)
    ref = Probe.start(dispatcher=d)
    with pytest.raises(ValueError, match="boom"):
        ref.ask("boom", timeout=WAIT)
    assert ref.is_alive()
    assert ref.ask("next", timeout=WAIT) == ("ack", "next")
    assert h.failures == []


@pytest.mark.parametrize("kind", KINDS)
def test_told_exception_kills_actor_and_calls_back(h: Harness, kind: str) -> None:
    d = h.make(kind)
    ref = Probe.start(dispatcher=d)
    actor = ref._actor_weakref()
    assert actor is not None
    ref.tell(1)
    ref.tell("boom")
    pending = ref.ask("after", block=False) if kind == "pool" else None
    assert h.failed.wait(WAIT)
    [(failed_ref, exc)] = h.failures
    assert failed_ref is ref
    assert isinstance(exc, ValueError)
    assert actor.failure_hook == [exc]  # pykka's on_failure hook ran too
    assert actor.stopped_with is None  # ...and on_stop did not, as in pykka
    assert not ref.is_alive()
    assert pykka.ActorRegistry.get_by_urn(ref.actor_urn) is None
    with pytest.raises(pykka.ActorDeadError):
        ref.tell("late")
    if pending is not None:
        with pytest.raises(pykka.ActorDeadError):
            pending.get(timeout=WAIT)


class BadStart(Probe):
    def on_start(self) -> None:
        raise RuntimeError("no start")


@pytest.mark.parametrize("kind", KINDS)
def test_on_start_failure_is_reported(h: Harness, kind: str) -> None:
    d = h.make(kind)
    ref = BadStart.start(dispatcher=d)
    assert h.failed.wait(WAIT)
    assert h.failures[0][0] is ref
    assert isinstance(h.failures[0][1], RuntimeError)
    assert pykka.ActorRegistry.get_by_urn(ref.actor_urn) is None
    with pytest.raises(pykka.ActorDeadError):
        ref.tell("x")


class Interrupting(Probe):
    def on_receive(self, message: Any) -> Any:
        if message == "interrupt":
            raise KeyboardInterrupt
        return super().on_receive(message)


def test_inline_base_exception_stops_all_and_propagates(h: Harness) -> None:
    d = h.inline()
    bystander = Probe.start(dispatcher=d)
    ref = Interrupting.start(dispatcher=d)
    with pytest.raises(KeyboardInterrupt):
        ref.tell("interrupt")
    assert not ref.is_alive()
    assert [type(e) for _, e in h.failures] == [KeyboardInterrupt]
    # pykka asks every actor to stop; the inline stops run at the next drain.
    Probe.start(dispatcher=d).stop(timeout=WAIT)
    assert not bystander.is_alive()


def test_pool_worker_survives_base_exception(h: Harness) -> None:
    d = h.pool(threads=1)
    ref = Interrupting.start(dispatcher=d)
    ref.tell("interrupt")
    assert h.failed.wait(WAIT)
    fresh = Probe.start(dispatcher=d)
    assert fresh.ask("alive?", timeout=WAIT) == ("ack", "alive?")


# --------------------------------------------------------------------------- priority


@pytest.mark.parametrize("kind", KINDS)
def test_priority_overtakes_queued_normal_messages(h: Harness, kind: str) -> None:
    d = h.make(kind)
    ref = Prioritised.start(dispatcher=d)
    build_queue(d, ref, ["n1", "n2", Urgent(1), "n3", Urgent(2), "n4"])
    got = drop_blocks(seen(ref))
    assert got == [Urgent(1), Urgent(2), "n1", "n2", "n3", "n4"]


@pytest.mark.parametrize("kind", KINDS)
def test_priority_ask_overtakes_and_answers(h: Harness, kind: str) -> None:
    d = h.make(kind)
    ref = Prioritised.start(dispatcher=d)
    if kind == "pool":
        b = blocker()
        ref.tell(b)
        assert b.entered.wait(WAIT)
        for i in range(5):
            ref.tell(i)
        answer = ref.ask(Urgent("check"), block=False)
        b.release.set()
        assert answer.get(timeout=WAIT) == ("ack", Urgent("check"))
        assert drop_blocks(seen(ref)) == [Urgent("check"), 0, 1, 2, 3, 4]
    else:
        assert ref.ask(Urgent("check"), timeout=WAIT) == ("ack", Urgent("check"))


def test_priority_overtakes_other_actors_in_the_run_queue(h: Harness) -> None:
    """A pre-trade check must not wait behind a sweep of quotes to other actors."""
    d = h.pool(threads=1)
    log: list[Any] = []
    gate = Probe.start(dispatcher=d, log=log, name="gate")
    others = [Probe.start(dispatcher=d, log=log, name=f"o{i}") for i in range(50)]
    target = Prioritised.start(dispatcher=d, log=log, name="target")
    for r in others:
        r.ask("warm", timeout=WAIT)
    target.ask("warm", timeout=WAIT)
    log.clear()
    b = blocker()
    gate.tell(b)
    assert b.entered.wait(WAIT)
    for r in others:
        r.tell("quote")
    target.tell("quote")
    answer = target.ask(Urgent("check"), block=False)
    b.release.set()
    answer.get(timeout=WAIT)
    for r in others:
        seen(r)
    entries = [(name, m) for name, m in log if not isinstance(m, Block)]
    assert entries[0] == ("target", Urgent("check"))
    assert len(entries) == 52


def test_a_busy_worker_ends_its_slice_for_a_waiting_check(h: Harness) -> None:
    """Under a flood every worker is inside some position's slice of ``throughput``
    quotes; a check's hint must not wait for the slice to end, only for the
    message in hand."""
    d = h.pool(threads=1, throughput=64)
    log: list[Any] = []
    flooded = Probe.start(dispatcher=d, log=log, name="flooded")
    target = Prioritised.start(dispatcher=d, log=log, name="target")
    flooded.ask("warm", timeout=WAIT)
    target.ask("warm", timeout=WAIT)
    log.clear()
    b = blocker()
    flooded.tell(b)
    assert b.entered.wait(WAIT)  # the only worker is inside the flooded actor's slice
    for i in range(10):
        flooded.tell(("quote", i))
    answer = target.ask(Urgent("check"), block=False)
    b.release.set()
    answer.get(timeout=WAIT)
    assert len(seen(flooded)) == 12  # warm, the block, ten quotes
    entries = [(name, m) for name, m in log if not isinstance(m, Block)]
    assert entries[0] == ("target", Urgent("check"))
    assert [m for name, m in entries if name == "flooded"] == [("quote", i) for i in range(10)]


# --------------------------------------------------------------------------- call_here


class Where(Prioritised):
    """Records the thread each message was handled on; ``"fail"`` raises, ``"self"`` tells
    itself an urgent message from inside the handler."""

    def __init__(self, *, dispatcher: Any, log: list[Any] | None = None, name: str = "") -> None:
        super().__init__(dispatcher=dispatcher, log=log, name=name)
        self.threads: list[str] = []

    def on_receive(self, message: Any) -> Any:
        self.threads.append(threading.current_thread().name)
        if message == "fail":
            raise RuntimeError("fail")
        if message == "self":
            self.actor_ref.tell(Urgent("told from inside"))
        return super().on_receive(message)


def here(ref: pykka.ActorRef[Any], message: Any) -> tuple[bool, Any]:
    result: tuple[bool, Any] = ref.actor_inbox.call_here(message)  # type: ignore[attr-defined]
    return result


def test_call_here_handles_in_the_callers_thread_when_the_actor_is_free(h: Harness) -> None:
    d = h.pool(threads=2)
    ref = Where.start(dispatcher=d, name="w")
    ref.ask("warm", timeout=WAIT)
    assert here(ref, Urgent("check")) == (True, ("ack", Urgent("check")))
    actor = ref._actor_weakref()  # type: ignore[attr-defined]
    assert actor.threads[-1] == threading.current_thread().name
    assert seen(ref) == ["warm", Urgent("check")]


def test_call_here_declines_while_a_thread_is_inside(h: Harness) -> None:
    d = h.pool(threads=2)
    ref = Where.start(dispatcher=d, name="w")
    b = blocker()
    ref.tell(b)
    assert b.entered.wait(WAIT)
    assert here(ref, Urgent("check")) == (False, None)
    b.release.set()
    assert drop_blocks(seen(ref)) == []  # declined: nothing was handled


def busy_pool(h: Harness) -> tuple[pykka.ActorRef[Any], Block]:
    """A ``Where`` actor, idle, on a one-thread pool whose thread is parked elsewhere."""
    d = h.pool(threads=1)
    busy = Probe.start(dispatcher=d, name="busy")
    ref = Where.start(dispatcher=d, name="w")
    busy.ask("warm", timeout=WAIT)
    ref.ask("warm", timeout=WAIT)
    b = blocker()
    busy.tell(b)
    assert b.entered.wait(WAIT)
    return ref, b


def test_call_here_declines_while_priority_mail_waits_and_keeps_its_order(h: Harness) -> None:
    ref, b = busy_pool(h)
    ref.tell(Urgent("first"))  # waits in the priority lane
    assert here(ref, Urgent("second")) == (False, None)
    b.release.set()
    assert seen(ref) == ["warm", Urgent("first")]


def test_call_here_overtakes_queued_ordinary_mail_like_the_priority_lane(h: Harness) -> None:
    ref, b = busy_pool(h)
    for i in range(3):
        ref.tell(("quote", i))  # queued, its ticket behind the busy worker
    assert here(ref, Urgent("check")) == (True, ("ack", Urgent("check")))
    b.release.set()
    assert seen(ref) == ["warm", Urgent("check"), ("quote", 0), ("quote", 1), ("quote", 2)]


def test_priority_mail_told_during_call_here_is_still_handled(h: Harness) -> None:
    d = h.pool(threads=2)
    ref = Where.start(dispatcher=d, name="w")
    ref.ask("warm", timeout=WAIT)
    assert here(ref, "self")[0]
    deadline = time.monotonic() + WAIT
    while Urgent("told from inside") not in seen(ref):
        assert time.monotonic() < deadline, "the urgent mail told during call_here was lost"
        time.sleep(0.005)


def test_a_failure_in_call_here_is_a_told_failure_and_reaches_the_caller(h: Harness) -> None:
    d = h.pool(threads=2)
    ref = Where.start(dispatcher=d, name="w")
    ref.ask("warm", timeout=WAIT)
    with pytest.raises(RuntimeError, match="fail"):
        here(ref, "fail")
    assert h.failed.wait(WAIT)
    assert h.failures[0][0] is ref
    assert not ref.is_alive()
    assert here(ref, Urgent("after")) == (False, None)


def test_call_here_declines_on_the_inline_dispatcher(h: Harness) -> None:
    ref = Where.start(dispatcher=h.inline(), name="w")
    assert here(ref, Urgent("check")) == (False, None)


def test_call_here_is_one_thread_inside_under_contention(h: Harness) -> None:
    """Callers in several threads and the pool's own slices never overlap in one actor."""
    d = h.pool(threads=2)
    inside = [0]
    overlaps: list[int] = []

    class Counting(Prioritised):
        def on_receive(self, message: Any) -> Any:
            inside[0] += 1
            if inside[0] != 1:
                overlaps.append(inside[0])
            time.sleep(0.0001)
            inside[0] -= 1
            return super().on_receive(message)

    ref = Counting.start(dispatcher=d, name="c")
    ref.ask("warm", timeout=WAIT)
    ran = [0]
    lock = threading.Lock()

    def caller(k: int) -> None:
        for i in range(100):
            if here(ref, Urgent((k, i)))[0]:
                with lock:
                    ran[0] += 1
            else:
                ref.tell(Urgent((k, i)))

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(3)]
    for th in threads:
        th.start()
    for i in range(300):
        ref.tell(("quote", i))
    for th in threads:
        th.join(WAIT)
    assert len(seen(ref)) == 1 + 300 + 300
    assert overlaps == []
    assert ran[0] > 0


# --------------------------------------------------------------------------- coalescing


@pytest.mark.parametrize("kind", KINDS)
def test_coalescing_newest_wins_in_place(h: Harness, kind: str) -> None:
    d = h.make(kind)
    ref = Coalescing.start(dispatcher=d)
    msgs = [Quote("a", 1), Quote("b", 5), "x", Quote("a", 3), "y", Quote("a", 2), Quote("b", 6)]
    build_queue(d, ref, msgs)
    assert drop_blocks(seen(ref)) == [Quote("a", 2), Quote("b", 6), "x", "y"]
    assert d.coalesced == 3


@pytest.mark.parametrize("kind", KINDS)
def test_custom_coalesce_carries_extremes(h: Harness, kind: str) -> None:
    d = h.make(kind)
    ref = Extremes.start(dispatcher=d)
    build_queue(d, ref, [Quote("a", 2), Quote("a", 9), Quote("a", 1), Quote("a", 4)])
    assert drop_blocks(seen(ref)) == [Quote("a", 4, high=9, low=1)]


def test_a_quote_to_an_idle_pool_actor_is_queued_plainly_and_later_ones_fold_behind_it(
    h: Harness,
) -> None:
    """The first quote to an idle actor has nothing to fold into: it skips the slot
    (and the mutex the worker would take), and quotes that come before the worker
    gets to it fold behind it — none lost, in order, extremes carried."""
    d = h.pool(threads=1)
    busy = Probe.start(dispatcher=d, name="busy")
    ref = Extremes.start(dispatcher=d)
    busy.ask("warm", timeout=WAIT)
    ref.ask("warm", timeout=WAIT)
    b = blocker()
    busy.tell(b)
    assert b.entered.wait(WAIT)  # the only worker is elsewhere: the actor stays queued
    for px in (2, 9, 1, 4):
        ref.tell(Quote("a", px))
    b.release.set()
    assert seen(ref) == ["warm", Quote("a", 2), Quote("a", 4, high=9, low=1)]
    assert d.coalesced == 2


def test_asks_are_never_coalesced(h: Harness) -> None:
    d = h.pool()
    ref = Coalescing.start(dispatcher=d)
    b = blocker()
    ref.tell(b)
    assert b.entered.wait(WAIT)
    ref.tell(Quote("a", 1))
    asked = ref.ask(Quote("a", 2), block=False)
    ref.tell(Quote("a", 3))  # folds into the told slot, not into the ask
    assert ref._actor_weakref().mailbox_depth == 2  # type: ignore[union-attr]
    b.release.set()
    assert asked.get(timeout=WAIT) == ("ack", Quote("a", 2))
    assert drop_blocks(seen(ref)) == [Quote("a", 3), Quote("a", 2)]
    assert d.coalesced == 1


def test_coalescing_after_the_slot_was_taken_queues_a_new_one(h: Harness) -> None:
    d = h.pool(threads=1)
    ref = Coalescing.start(dispatcher=d)
    ref.tell(Quote("a", 1))
    assert seen(ref) == [Quote("a", 1)]
    ref.tell(Quote("a", 2))
    assert seen(ref) == [Quote("a", 1), Quote("a", 2)]
    assert d.coalesced == 0


class Limited(Probe):
    max_mailbox = 3


def test_max_mailbox_is_a_soft_limit_nothing_dropped(h: Harness) -> None:
    d = h.pool()
    ref = Limited.start(dispatcher=d)
    b = blocker()
    ref.tell(b)
    assert b.entered.wait(WAIT)
    for i in range(6):
        ref.tell(i)
    assert ref._actor_weakref().mailbox_depth == 6  # type: ignore[union-attr]
    assert d.overflowed == 3
    b.release.set()
    assert drop_blocks(seen(ref)) == list(range(6))


# Model-based check of the mailbox order: priority first (FIFO), then the normal
# queue where a told keyed message folds into its queued slot in place.
_op = st.one_of(
    st.tuples(st.just("quote"), st.sampled_from("abc"), st.integers(0, 99)),
    st.tuples(st.just("plain"), st.integers(0, 99)),
    st.tuples(st.just("urgent"), st.integers(0, 99)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(_op, max_size=30))
def test_mailbox_order_matches_model(ops: list[tuple[Any, ...]]) -> None:
    d = InlineDispatcher()
    ref = Coalescing.start(dispatcher=d)
    try:
        msgs: list[Any] = []
        prio: list[Any] = []
        normal: list[list[Any]] = []
        slots: dict[str, list[Any]] = {}
        for op in ops:
            if op[0] == "quote":
                q = Quote(op[1], op[2])
                msgs.append(q)
                if op[1] in slots:
                    slots[op[1]][0] = q
                else:
                    slots[op[1]] = [q]
                    normal.append(slots[op[1]])
            elif op[0] == "plain":
                msgs.append(op[1])
                normal.append([op[1]])
            else:
                msgs.append(Urgent(op[1]))
                prio.append(Urgent(op[1]))
        build_queue(d, ref, msgs)
        assert seen(ref) == prio + [slot[0] for slot in normal]
        assert d.coalesced == sum(1 for op in ops if op[0] == "quote") - len(slots)
    finally:
        ref.stop(timeout=WAIT)


# --------------------------------------------------------------------------- concurrency


class Checked(PooledActor):
    """Records per-sender sequences and proves no two threads are ever inside."""

    def __init__(self, *, dispatcher: Any) -> None:
        super().__init__(dispatcher=dispatcher)
        self.inside = threading.Lock()
        self.violations = 0
        self.normal: dict[int, list[int]] = {}
        self.urgent: dict[int, list[int]] = {}

    def on_receive(self, message: Any) -> Any:
        if not self.inside.acquire(blocking=False):
            self.violations += 1
            return None
        try:
            if message == "report":
                return self.violations, self.normal, self.urgent
            sender, seq, urgent = message
            (self.urgent if urgent else self.normal).setdefault(sender, []).append(seq)
            if seq % 7 == 0:
                time.sleep(0)  # invite a thread switch while inside
            return None
        finally:
            self.inside.release()


class CheckedPrio(Checked):
    def is_priority(self, message: Any) -> bool:
        return type(message) is tuple and message[2]


def test_stress_every_message_once_in_order_one_thread_inside(h: Harness) -> None:
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # force frequent GIL hand-offs to provoke races
    try:
        d = h.pool(threads=4, throughput=8)
        n_actors, n_senders, per_sender = 200, 8, 2500
        refs = [(CheckedPrio if i % 2 else Checked).start(dispatcher=d) for i in range(n_actors)]
        sent: list[dict[int, list[tuple[int, bool]]]] = [{} for _ in range(n_senders)]
        go = threading.Event()

        def sender(s: int) -> None:
            rng = random.Random(s)
            assert go.wait(WAIT)
            for seq in range(per_sender):
                a = rng.randrange(n_actors)
                urgent = a % 2 == 1 and rng.random() < 0.2
                sent[s].setdefault(a, []).append((seq, urgent))
                if rng.random() < 0.05:
                    refs[a].ask((s, seq, urgent), timeout=WAIT)
                else:
                    refs[a].tell((s, seq, urgent))

        threads = [threading.Thread(target=sender, args=(s,)) for s in range(n_senders)]
        for t in threads:
            t.start()
        go.set()
        for t in threads:
            t.join(WAIT * 4)
            assert not t.is_alive()
        for a, ref in enumerate(refs):
            report: Any = ref.ask("report", timeout=WAIT)
            violations, normal, urgent = report
            assert violations == 0
            for s in range(n_senders):
                mine = sent[s].get(a, [])
                assert normal.get(s, []) == [seq for seq, u in mine if not u]
                assert urgent.get(s, []) == [seq for seq, u in mine if u]
        assert h.failures == []
    finally:
        sys.setswitchinterval(old)


def test_many_senders_to_one_actor_lose_nothing(h: Harness) -> None:
    """Hammers the idle/busy hand-off of one mailbox (the lost-wake-up window)."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        d = h.pool(threads=2, throughput=1)
        ref = Checked.start(dispatcher=d)

        def sender(s: int) -> None:
            for seq in range(2000):
                ref.tell((s, seq, False))
                if seq % 100 == 0:
                    time.sleep(0.0005)  # let the actor go idle now and then

        threads = [threading.Thread(target=sender, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT * 4)
        violations, normal, _ = ref.ask("report", timeout=WAIT)
        assert violations == 0
        assert normal == {s: list(range(2000)) for s in range(4)}
    finally:
        sys.setswitchinterval(old)


# --------------------------------------------------------------------------- determinism


class Link(PooledActor):
    """Forwards to the next links and logs; a little tree of cascading tells."""

    def __init__(self, *, dispatcher: Any, name: str, log: list[Any]) -> None:
        super().__init__(dispatcher=dispatcher)
        self.name = name
        self.log = log
        self.next: list[pykka.ActorRef[Any]] = []

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, list):
            self.next = message
            return None
        self.log.append((self.name, message))
        if message > 0:
            for i, n in enumerate(self.next):
                n.tell(message - 1 - (i % 2))
        return None


def _chain_run() -> list[Any]:
    d = InlineDispatcher()
    log: list[Any] = []
    links = [Link.start(dispatcher=d, name=f"L{i}", log=log) for i in range(6)]
    try:
        for i, ref in enumerate(links):
            ref.tell([links[(i + 1) % 6], links[(i + 3) % 6]])
        links[0].tell(9)
        links[4].tell(5)
        return log
    finally:
        for ref in links:
            ref.stop(timeout=WAIT)


def test_inline_dispatcher_is_deterministic() -> None:
    first = _chain_run()
    second = _chain_run()
    assert len(first) > 100
    assert first == second


# --------------------------------------------------------------------------- lifecycle


def test_shutdown_stops_remaining_actors(h: Harness) -> None:
    d = h.pool()
    refs = [Probe.start(dispatcher=d) for _ in range(10)]
    for r in refs:
        r.tell("x")
    d.shutdown(timeout=WAIT)
    assert all(not r.is_alive() for r in refs)
    with pytest.raises(RuntimeError):
        Probe.start(dispatcher=d)
    assert all(not t.is_alive() for t in threading.enumerate() if t.name.startswith("test-"))


def test_pool_threads_are_named_daemons(h: Harness) -> None:
    d = PoolDispatcher(threads=3, name="named")
    h.made.append(d)
    names = {t.name: t.daemon for t in threading.enumerate() if t.name.startswith("named-")}
    assert names == {"named-0": True, "named-1": True, "named-2": True}


def test_failure_callback_error_does_not_kill_the_worker(h: Harness) -> None:
    d = h.pool(threads=1)
    calls: list[Any] = []

    def bad_callback(ref: pykka.ActorRef[Any], exc: BaseException) -> None:
        calls.append(exc)
        raise RuntimeError("supervisor bug")

    d.on_failure = bad_callback
    Probe.start(dispatcher=d).tell("boom")
    fresh = Probe.start(dispatcher=d)
    assert fresh.ask("ok", timeout=WAIT) == ("ack", "ok")
    assert len(calls) == 1


def _wait_until(cond: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.001)
    return False


def test_actor_can_stop_itself_and_list_messages_arrive_intact(h: Harness) -> None:
    d = h.pool()
    ref = Probe.start(dispatcher=d)
    ref.tell([1, 2])  # a list is also the mailbox's slot type: must arrive as a list
    assert seen(ref) == [[1, 2]]
    actor = ref._actor_weakref()
    assert actor is not None
    actor.stop()  # pykka's Actor.stop(): a told stop
    assert _wait_until(lambda: not ref.is_alive())
    assert actor.stopped_with == [[1, 2]]


class Counted(PooledActor):
    """Coalesces per sender, carrying how many sends each delivery stands for."""

    def __init__(self, *, dispatcher: Any) -> None:
        super().__init__(dispatcher=dispatcher)
        self.seqs: dict[int, list[int]] = {}
        self.counts: dict[int, int] = {}

    def coalesce_key(self, message: Any) -> Hashable | None:
        return message[0] if type(message) is tuple else None

    def coalesce(self, old: Any, new: Any) -> Any:
        return (new[0], new[1], old[2] + new[2])

    def on_receive(self, message: Any) -> Any:
        if message == "report":
            return self.seqs, self.counts
        sender, seq, n = message
        self.seqs.setdefault(sender, []).append(seq)
        self.counts[sender] = self.counts.get(sender, 0) + n
        return None


def test_coalescing_under_contention_accounts_for_every_send(h: Harness) -> None:
    """Folds race the worker taking the slot: no send may be lost or counted twice."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        d = h.pool(threads=2, throughput=4)
        refs = [Counted.start(dispatcher=d) for _ in range(10)]
        per_sender = 3000

        def sender(s: int) -> None:
            for seq in range(per_sender):
                refs[seq % len(refs)].tell((s, seq, 1))

        threads = [threading.Thread(target=sender, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT * 4)
        deliveries = 0
        for i, ref in enumerate(refs):
            report: Any = ref.ask("report", timeout=WAIT)
            seqs, counts = report
            for s in range(4):
                assert counts[s] == per_sender // len(refs)  # every send, exactly once
                assert seqs[s] == sorted(set(seqs[s]))  # folds keep the newest, in order
                assert seqs[s][-1] == per_sender - len(refs) + i  # the last send arrived
                deliveries += len(seqs[s])
        assert d.coalesced == 4 * per_sender - deliveries
    finally:
        sys.setswitchinterval(old)


class Manual:
    """A Dispatcher that only collects tickets: the test runs them by hand."""

    def __init__(self) -> None:
        self.tickets: list[PooledActor] = []

    def schedule(self, actor: PooledActor) -> None:
        self.tickets.append(actor)

    def pump(self) -> None:
        while self.tickets:
            actor = self.tickets.pop(0)
            if actor._rt_run(64, True):
                self.tickets.append(actor)


class _SneakyFlag:
    """Wraps the mailbox's ``scheduled`` flag; tells once just before releasing it."""

    def __init__(self, real: Any, sneak: Callable[[], None]) -> None:
        self.real = real
        self.sneak: Callable[[], None] | None = sneak

    def acquire(self, blocking: bool = True) -> bool:
        return bool(self.real.acquire(blocking))

    def release(self) -> None:
        if self.sneak is not None:
            sneak, self.sneak = self.sneak, None
            sneak()  # a sender appends now: it sees the flag still held
        self.real.release()

    def locked(self) -> bool:
        return bool(self.real.locked())


def test_no_lost_wakeup_when_mail_arrives_while_going_idle() -> None:
    d = Manual()
    ref = Probe.start(dispatcher=d)
    actor = ref._actor_weakref()
    assert actor is not None
    d.pump()  # on_start; the actor goes idle
    ref.tell("first")
    assert len(d.tickets) == 1
    mailbox = actor._rt_mailbox
    sneaky = _SneakyFlag(mailbox._scheduled, lambda: ref.tell("sneaky"))
    mailbox._scheduled = sneaky  # type: ignore[assignment]
    [ticket] = d.tickets
    d.tickets.clear()
    assert ticket._rt_run(64, True) != 0  # the re-check caught "sneaky"...
    assert d.tickets == []  # ...and kept the ticket rather than making a second one
    d.tickets.append(ticket)
    d.pump()
    assert actor.seen == ["first", "sneaky"]
    stop = ref.stop(block=False)
    d.pump()
    assert stop.get(timeout=WAIT) is True

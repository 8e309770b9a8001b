"""The inline dispatcher's shortcuts change nothing anyone can see.

Two shortcuts (actors/runtime.py): a message told to an idle actor from
outside a drain is handed over at once instead of through the run queue, and
a *quiet* message (``is_quiet``) is held until the actor's next other message.
Replay's byte-for-byte output rests on both, so here random networks of
actors that tell each other (with priority and coalescing mail, and actors
that stop) run the same inputs with the shortcuts and without; the global
order of every non-quiet message handled, and each actor's own sequence,
quiet ones included, must be identical.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import pykka
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.runtime import InlineDispatcher, PooledActor


@dataclass(frozen=True)
class Msg:
    n: int
    sends: tuple[tuple[int, Msg], ...] = ()  # (actor, message) told on receipt
    quiet: bool = False  # sends nothing (the generator makes sure)
    prio: bool = False
    key: int | None = None  # coalescing key (never on quiet ones)
    stop: bool = False  # the actor stops itself after this one


class Node(PooledActor):
    def __init__(
        self, name: int, peers: list[Any], trace: list[Any], own: list[Any], **kw: Any
    ) -> None:
        super().__init__(**kw)
        self.name, self.peers, self.trace, self.own = name, peers, trace, own

    def is_priority(self, message: Any) -> bool:
        return isinstance(message, Msg) and message.prio

    def is_quiet(self, message: Any) -> bool:
        return isinstance(message, Msg) and message.quiet

    def coalesce_key(self, message: Any) -> Hashable | None:
        return message.key if isinstance(message, Msg) else None

    def coalesce(self, old: Any, new: Any) -> Any:
        return Msg(old.n * 1000 + new.n, old.sends + new.sends, key=new.key)

    def on_receive(self, message: Any) -> Any:
        self.own.append(message.n)
        if not message.quiet:
            self.trace.append((self.name, message.n))
        for target, sub in message.sends:
            try:
                self.peers[target].tell(sub)
            except pykka.ActorDeadError:
                self.trace.append((self.name, "dead", target))
        if message.stop:
            self.actor_ref.stop(block=False)
        return None


ACTORS = 4
counter = iter(range(10**9))


def _leaf(draw: Any) -> Msg:
    quiet = draw(st.booleans())
    return Msg(
        next(counter),
        quiet=quiet,
        prio=not quiet and draw(st.booleans()),
        key=None if quiet else draw(st.sampled_from([None, None, 1, 2])),
    )


@st.composite
def messages(draw: Any, depth: int = 2) -> Msg:
    leaf = _leaf(draw)
    if depth == 0 or leaf.quiet or draw(st.booleans()):
        return leaf
    sends = tuple(
        (draw(st.integers(0, ACTORS - 1)), draw(messages(depth - 1)))
        for _ in range(draw(st.integers(1, 3)))
    )
    return Msg(leaf.n, sends, prio=leaf.prio, key=leaf.key, stop=draw(st.integers(0, 30)) == 0)


def _run(inputs: list[tuple[int, Msg]], shortcuts: bool) -> tuple[list[Any], list[list[Any]]]:
    d = InlineDispatcher()
    trace: list[Any] = []
    owns: list[list[Any]] = [[] for _ in range(ACTORS)]
    peers: list[Any] = []
    refs = [Node.start(i, peers, trace, owns[i], dispatcher=d) for i in range(ACTORS)]
    peers.extend(refs)
    if not shortcuts:
        for ref in refs:
            mailbox = ref._actor_weakref()._rt_mailbox
            mailbox._inline = None
            mailbox._quiet = False
    try:
        for target, message in inputs:
            try:
                refs[target].tell(message)
            except pykka.ActorDeadError:
                trace.append(("outside", "dead", target))
    finally:
        for ref in refs:
            if ref.is_alive():
                ref.stop()
    return trace, owns


@settings(max_examples=300, deadline=None)
@given(inputs=st.lists(st.tuples(st.integers(0, ACTORS - 1), messages()), max_size=25))
def test_shortcuts_keep_every_order(inputs: list[tuple[int, Msg]]) -> None:
    assert _run(inputs, shortcuts=True) == _run(inputs, shortcuts=False)


def test_the_shortcuts_are_taken() -> None:
    """Guard for the test above: with shortcuts on, quiet mail is really held."""
    d = InlineDispatcher()
    trace: list[Any] = []
    own: list[Any] = []
    ref = Node.start(0, [], trace, own, dispatcher=d)
    try:
        ref.tell(Msg(1, quiet=True))
        ref.tell(Msg(2, quiet=True))
        assert own == [] and ref._actor_weakref().mailbox_depth == 2  # held
        ref.tell(Msg(3))
        assert own == [1, 2, 3]  # handed over, in order, before the next other one
    finally:
        ref.stop()


def test_priority_mail_overtakes_held_quiet_mail_whose_turn_has_not_come() -> None:
    d = InlineDispatcher()
    own: list[Any] = []
    peers: list[Any] = []
    ref = Node.start(0, peers, [], own, dispatcher=d)
    peers.append(ref)
    try:
        # From inside a drain: a quiet one (held), a normal one, a priority one;
        # as if queued, the priority one goes first.
        ref.tell(Msg(1, sends=((0, Msg(2, quiet=True)), (0, Msg(3)), (0, Msg(4, prio=True)))))
        assert own == [1, 4, 2, 3]
    finally:
        ref.stop()

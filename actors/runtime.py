"""Pooled pykka actors: one actor per position, a few threads for all of them.

pykka's ``ThreadingActor`` gives every actor an OS thread. With a thousand
positions a quote sweep then pays a GIL hand-off per actor, which costs two
orders of magnitude more than the work itself. This module keeps pykka's model
and API — every actor has its own mailbox and state, processes one message at
a time in order, and is driven through ``ActorRef.tell`` / ``ask`` / ``proxy``
/ ``stop`` and ``ActorRegistry`` — but multiplexes the actors on a
*dispatcher*, as Akka does:

* :class:`PoolDispatcher` runs actors on a small fixed pool of worker threads.
* :class:`InlineDispatcher` runs them in the calling thread, deterministically,
  for ``replay`` and message-level tests.

Only the mailbox and the scheduling are new. Message handling (``on_receive``,
proxy calls, ``on_start`` / ``on_stop`` / ``on_failure``, the registry) is
pykka's own code, called the way pykka's actor loop calls it, so an actor class
behaves the same on either runtime.

How an actor is scheduled
-------------------------
Each mailbox has two flags, both ``threading.Lock`` objects used as atomic
test-and-set bits (``acquire(blocking=False)``):

``scheduled``
    Held while the actor has an *owning ticket*: it is in the dispatcher's run
    queue or a worker is running it. A sender appends to the deque (deque
    appends are thread-safe) and then tries to take ``scheduled``; only the
    sender that takes it queues the actor, so a burst to one actor costs one
    run-queue operation, and mail for an actor a worker is already running
    costs no hand-off at all. The owning worker, when it finds the mailbox
    empty, releases ``scheduled`` and *then* looks at the deques again: a
    message appended in between is either seen by that re-check or its sender
    took the released flag itself. No wake-up is lost.

``running``
    Held while a thread is inside the actor, by owning tickets and by *urgent
    hints* alike, so there are never two threads inside one actor. Only actors
    that take priority mail can get hints; the others have one ticket at most
    and skip this flag.

Priority mail goes to a second deque that is always emptied first. When it
arrives for an actor that is waiting in the run queue, the mailbox also gives
the dispatcher an urgent hint (``schedule_urgent``): a non-owning ticket on a
lane workers check first, so a pre-trade check overtakes other actors' quotes
too, not only this actor's.

Coalescing keeps a ``key -> slot`` index; a mutex covers the index and the
slots, so a fold either lands in a slot before the actor reads it or finds the
slot gone and queues a new one. That mutex is the only lock a message ever
waits on, and only for coalescing actors.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, Final, NoReturn, Protocol

import pykka
from pykka import ActorDeadError, ActorRegistry, ThreadingFuture
from pykka._envelope import Envelope
from pykka.messages import ProxyCall, ProxyGetAttr, ProxySetAttr, _ActorStop

if TYPE_CHECKING:
    from types import TracebackType

    from pykka._actor import ActorInbox

__all__ = [
    "DEFAULT_THREADS",
    "Dispatcher",
    "FailureCallback",
    "InlineDispatcher",
    "PoolDispatcher",
    "PooledActor",
]

logger = logging.getLogger(__name__)
_pykka_logger = logging.getLogger("pykka")

FailureCallback = Callable[["pykka.ActorRef[Any]", BaseException], None]
"""``on_failure(ref, exc)``: an actor died of ``exc``; a supervisor may restart it."""

PriorityTiming = Callable[[Any, float, float], None]
"""``on_priority(message, waited_s, handled_s)``: a priority message waited this long
in its mailbox, then its handler ran this long (``time.perf_counter`` seconds)."""

DEFAULT_THREADS: Final = 2
"""Default pool size, chosen with ``bench/bench_sweep.py`` on this 2-core machine.

Handlers are short pure-Python functions, so the GIL serialises them: 1, 2 and
4 workers measured the same within noise, both on the 1000-actor sweep (best
runs about 0.9-1.0 ms for each) and on flat-out quote throughput. Two, because
then a handler that blocks or spends time outside the GIL (numpy in the
pre-trade gate, a journal write) holds up only half the pool instead of every
position's stop. More threads buy nothing but GIL hand-offs.
"""

# pykka's own messages must go through ``Actor._handle_receive``; anything else
# is a user message and goes straight to ``on_receive`` (one call instead of four
# isinstance tests plus a call, on the hot path).
_PYKKA_MESSAGES: Final = frozenset({_ActorStop, ProxyCall, ProxyGetAttr, ProxySetAttr})
# Queue items that are not a plain told user message (see _Mailbox).
_SPECIAL: Final = _PYKKA_MESSAGES | {list, Envelope}

# What an owning ticket's slice tells its dispatcher.
_IDLE: Final = 0  # mailbox empty (or actor dead): drop the ticket
_AGAIN: Final = 1  # ``throughput`` messages done, mail left: queue the actor again
_URGENT: Final = 2  # as _AGAIN, and some of the mail left is priority mail


class Dispatcher(Protocol):
    """Runs actors that have mail.

    ``schedule(actor)`` hands over an *owning ticket*: the dispatcher must
    eventually call ``actor._rt_run(throughput, True)`` and, while that returns
    non-zero, call it again later (2 asks for it to be soon: priority mail).
    A dispatcher may also offer ``schedule_urgent(actor)``: a hint, run with
    ``actor._rt_run(throughput, False)`` ahead of ordinary tickets, whose result
    is ignored. Both are called with no mailbox mutex held, from any thread.
    """

    def schedule(self, actor: PooledActor) -> None: ...


class _DispatcherBase:
    """What both dispatchers share: the failure callback and the counters."""

    on_failure: FailureCallback | None
    """Called, outside any actor lock, when an actor died of an exception in a
    told message or in ``on_start`` (or of a ``BaseException``). The actor is
    already stopped and unregistered, so a supervisor can start a replacement.
    Not called for asked messages (the caller gets the exception and the actor
    lives on) nor for an ``on_stop`` failure (the actor was being stopped)."""

    coalesced: int
    """Told messages folded into an already-queued one by coalescing mailboxes."""

    on_priority: PriorityTiming | None
    """Timing of every priority message (a pre-trade check's queue and evaluate
    stages), read when an actor starts: set it before starting the actors. Called
    by the thread that ran the handler, after it; must be quick and not raise."""

    overflowed: int
    """Messages accepted while their mailbox already held ``max_mailbox``."""

    def __init__(self, on_failure: FailureCallback | None) -> None:
        self.on_failure = on_failure
        self.on_priority = None
        self.coalesced = 0
        self.overflowed = 0
        # Bumped from many sender threads: ``+=`` on an attribute is not atomic,
        # and metrics must not drift.
        self._stats_lock = threading.Lock()

    def _note_coalesced(self) -> None:
        with self._stats_lock:
            self.coalesced += 1

    def _note_overflow(self) -> None:
        with self._stats_lock:
            self.overflowed += 1

    def _report_failure(self, ref: pykka.ActorRef[Any], exc: BaseException) -> None:
        callback = self.on_failure
        if callback is None:
            return
        try:
            callback(ref, exc)
        except Exception:
            # The callback is the supervisor; if it fails there is no one left to
            # tell but the log, and the thread running it serves other actors.
            logger.exception("on_failure callback raised for %s", ref)


class PoolDispatcher(_DispatcherBase):
    """Runs actors on a fixed pool of daemon worker threads.

    The run queue is a ``queue.SimpleQueue`` (C code; it wakes one sleeping
    worker per item). ``throughput`` bounds how many messages one actor
    processes before its ticket goes to the back of the queue, so one flooded
    actor cannot starve the others.
    """

    def __init__(
        self,
        threads: int = DEFAULT_THREADS,
        name: str = "pool",
        throughput: int = 64,
        *,
        on_failure: FailureCallback | None = None,
    ) -> None:
        if threads < 1:
            raise ValueError("threads must be >= 1")
        if throughput < 1:
            raise ValueError("throughput must be >= 1")
        super().__init__(on_failure)
        self.name = name
        self.throughput = throughput
        # ``None`` is a wake-up with no ticket (for the urgent lane, and to end
        # a worker once ``_shut`` is set).
        self._runq: queue.SimpleQueue[PooledActor | None] = queue.SimpleQueue()
        self._enqueue = self._runq.put  # see _Mailbox.bind
        self._urgent: deque[PooledActor] = deque()
        self._shut = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def threads(self) -> int:
        return len(self._threads)

    def schedule(self, actor: PooledActor) -> None:
        if self._shut:
            raise RuntimeError(f"dispatcher {self.name!r} is shut down")
        self._runq.put(actor)

    def schedule_urgent(self, actor: PooledActor) -> None:
        if self._shut:
            raise RuntimeError(f"dispatcher {self.name!r} is shut down")
        self._urgent.append(actor)
        self._runq.put(None)  # wake a sleeping worker; a busy one checks the lane anyway

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop this dispatcher's actors that are still running, then the workers.

        The actors are stopped as ``ActorRegistry.stop_all`` would (newest
        first, queued mail processed, ``on_stop`` run), because an actor left
        registered on a dispatcher with no threads would take mail that no one
        ever processes and hang its askers without a word. Starting an actor
        on a shut-down dispatcher raises ``RuntimeError``.
        """
        if self._shut:
            return
        deadline = time.monotonic() + timeout
        stops = [
            ref.stop(block=False)
            for ref in reversed(ActorRegistry.get_all())
            if isinstance(actor := ref._actor_weakref(), PooledActor) and actor.dispatcher is self
        ]
        for stop in stops:
            try:
                stop.get(timeout=max(0.0, deadline - time.monotonic()))
            except pykka.Timeout:
                logger.warning("%s: an actor did not stop within %.1fs", self.name, timeout)
                break
        self._shut = True
        for _ in self._threads:
            self._runq.put(None)
        for thread in self._threads:
            if thread is threading.current_thread():
                continue
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                logger.warning("%s did not stop within %.1fs", thread.name, timeout)

    def _work(self) -> None:
        get = self._runq.get
        put = self._runq.put
        urgent = self._urgent
        throughput = self.throughput
        while True:
            actor = get()
            while urgent:
                try:
                    hinted = urgent.popleft()
                except IndexError:  # another worker took it
                    break
                try:
                    hinted._rt_run(throughput, False)
                except BaseException:
                    logger.debug("worker survived a BaseException", exc_info=True)
            if actor is None:
                if self._shut:
                    return
                continue
            try:
                again = actor._rt_run(throughput, True)
            except BaseException:
                # The mailbox already applied pykka's semantics (the actor is
                # stopped, every actor was asked to stop); this thread serves
                # other actors, so it must not die with this one.
                logger.debug("worker survived a BaseException", exc_info=True)
                continue
            if again:
                put(actor)
                if again == _URGENT:
                    urgent.append(actor)
                    put(None)


class InlineDispatcher(_DispatcherBase):
    """Runs actors in the calling thread, deterministically.

    ``schedule`` appends to a FIFO run queue and, unless this thread is already
    draining, drains it: every pending message of every actor is processed
    before ``tell`` returns, so ``ask`` returns a resolved future and the global
    order of processing is a pure function of the inputs — ``replay`` output is
    identical run to run. Mail sent by a handler is queued and processed after
    the handler returns, never re-entrantly, so a handler must not block on an
    ``ask`` (it would wait for itself); tell back instead.

    Several threads may share one ``InlineDispatcher`` safely (each actor still
    runs one message at a time) but then the order is no longer deterministic.
    """

    def __init__(
        self,
        throughput: int = 1,
        *,
        on_failure: FailureCallback | None = None,
    ) -> None:
        # throughput=1 interleaves actors message by message: the order a reader
        # of a replay log expects ("A's message, then B's reaction"). Any value
        # is deterministic.
        if throughput < 1:
            raise ValueError("throughput must be >= 1")
        super().__init__(on_failure)
        self.throughput = throughput
        # Actors with mail, and mailboxes whose held quiet mail takes a turn.
        self._runq: deque[PooledActor | _Mailbox] = deque()
        self._urgent: deque[PooledActor] = deque()
        self._local = threading.local()

    def schedule(self, actor: PooledActor) -> None:
        self._runq.append(actor)
        self._drain()

    def schedule_urgent(self, actor: PooledActor) -> None:
        self._urgent.append(actor)
        self._drain()

    def _drain(self) -> None:
        local = self._local
        if getattr(local, "draining", False):
            return
        local.draining = True
        try:
            self._run_queued()
        finally:
            # A KeyboardInterrupt in a handler propagates to the caller (a replay
            # can be interrupted); what is still queued is drained by the next
            # schedule on this dispatcher.
            local.draining = False

    def _run_queued(self) -> None:
        runq = self._runq
        urgent = self._urgent
        throughput = self.throughput
        while True:
            while urgent:
                urgent.popleft()._rt_run(throughput, False)
            if not runq:  # (tested first: an IndexError costs more than the test)
                return
            try:
                actor = runq.popleft()
            except IndexError:  # another thread sharing this dispatcher took it
                return
            if isinstance(actor, _Mailbox):
                again = actor.turn(throughput)
                if again:
                    runq.append(actor)
                    if again == _URGENT:
                        urgent.append(actor._actor)
                continue
            again = actor._rt_run(throughput, True)
            if again:
                runq.append(actor)
                if again == _URGENT:
                    urgent.append(actor)

    def schedule_turn(self, mailbox: _Mailbox) -> None:
        """A run-queue turn for held quiet mail (``_Mailbox.turn``)."""
        self._runq.append(mailbox)
        self._drain()

    def idle(self) -> bool:
        """Nothing queued and this thread is not draining: a tell now is handled at once."""
        return not (self._runq or self._urgent or getattr(self._local, "draining", False))

    def tell_now(self, mailbox: _Mailbox, message: Any) -> bool:
        """Handle a plain told message at once, if that is what queueing it would do.

        When this thread is not draining and nothing is queued, ``tell`` would
        queue the message, schedule its idle actor and drain — and the first
        thing the drain does is hand that message to the actor. This does the
        same without the queueing (no mailbox slot, no run-queue round trip),
        then drains what the handler sent. False: not that case; queue it.
        """
        if self._runq or self._urgent or type(message) in _SPECIAL:
            return False
        local = self._local
        if getattr(local, "draining", False):
            return False
        local.draining = True
        try:
            if not mailbox.run_one(message, self):
                return False
            self._run_queued()
        finally:
            local.draining = False
        return True


_LATER_MAX: Final = 4096
"""Quiet messages an inline mailbox holds before it has the actor handle them."""

# The priority lane of every actor that has no priority messages: always empty
# (nothing is ever appended to it), and shared, so the ``if prio`` test of the
# hot path reads one cache-hot object instead of a deque per actor.
_NO_PRIORITY: Final[deque[Any]] = deque(maxlen=0)


class _Mailbox:
    """An actor's mail and scheduling state (see the module docstring).

    Queue items are the told message itself (no per-tell allocation), a pykka
    ``Envelope`` for asks, or a ``[message, key]`` list for a coalescable told
    message whose ``message`` may still be replaced in place. A told message
    that is itself a list or an Envelope is wrapped in an Envelope so the three
    stay distinguishable by ``type()``.
    """

    __slots__ = (
        "_actor",
        "_closed",
        "_coalescing",
        "_direct",
        "_dispatcher",
        "_done",
        "_guarded",
        "_here",
        "_index",
        "_inline",
        "_later",
        "_limit",
        "_live",
        "_mutex",
        "_normal",
        "_over",
        "_plain_idle",
        "_prio",
        "_prioritising",
        "_quiet",
        "_ref",
        "_running",
        "_schedule",
        "_schedule_urgent",
        "_scheduled",
        "_slow",
        "_stats",
        "_timing",
        "_try_schedule",
        "_yield_to",
    )

    def __init__(self) -> None:
        self._prio: deque[Any] = _NO_PRIORITY  # replaced in bind() if used
        self._normal: deque[Any] = deque()
        # Guards the coalescing index together with the slots it points to, so
        # a fold never lands in a slot the actor has already taken.
        self._mutex = threading.Lock()
        self._index: dict[Hashable, list[Any]] = {}
        self._scheduled = threading.Lock()
        self._running = threading.Lock()
        # Held from the start: mail sent to a ref that __init__ handed out waits
        # for the start ticket, and so for on_start.
        self._scheduled.acquire()
        self._try_schedule = self._scheduled.acquire
        self._live = False
        self._closed = False
        self._over = False
        self._slow = False
        self._prioritising = False
        self._coalescing = False
        self._direct = True
        self._limit = 0
        self._inline: InlineDispatcher | None = None
        self._guarded = False  # takes urgent hints: ``running`` keeps it one thread inside
        self._here = False  # may handle priority mail in the sender's thread (call_here)
        self._plain_idle = False  # a coalescable tell to an idle pool actor skips the slot
        # on_priority, if set: priority items are then queued as (enqueued_at, item).
        self._timing: PriorityTiming | None = None
        # Quiet messages held for later (inline dispatcher only; see PooledActor.is_quiet):
        # the first ``_done`` of them have had their turn (the actor must take them
        # before anything else), the rest wait for theirs, at the head of the
        # normal lane.
        self._later: deque[Any] = deque()
        self._done = 0
        self._quiet = False
        # The pool's urgent lane: while a priority hint waits in it, a slice
        # ends after its current message (see ``run``). Shared and always
        # empty until bind() says otherwise.
        self._yield_to: deque[Any] = _NO_PRIORITY

    def bind(self, actor: PooledActor, dispatcher: Dispatcher) -> None:
        cls = type(actor)
        self._actor = actor
        self._ref: pykka.ActorRef[Any] = actor.actor_ref
        self._dispatcher = dispatcher
        # A dispatcher may expose ``_enqueue``, a cheaper ``schedule`` for actors
        # that are already started (the pool's is its run queue's C ``put``).
        self._schedule: Callable[[PooledActor], None] = getattr(
            dispatcher, "_enqueue", dispatcher.schedule
        )
        self._schedule_urgent: Callable[[PooledActor], None] | None = getattr(
            dispatcher, "schedule_urgent", None
        )
        self._stats: _DispatcherBase | None = (
            dispatcher if isinstance(dispatcher, _DispatcherBase) else None
        )
        # Hooks that are not overridden are never called: an actor that uses
        # none of the three features pays one flag test per message for them.
        self._prioritising = cls.is_priority is not PooledActor.is_priority
        self._coalescing = cls.coalesce_key is not PooledActor.coalesce_key
        self._limit = max(0, int(actor.max_mailbox))
        self._slow = self._prioritising or self._coalescing or self._limit > 0
        if self._prioritising:
            self._prio = deque()
            if self._stats is not None:
                self._timing = self._stats.on_priority
        self._direct = cls._handle_receive is pykka.Actor._handle_receive
        # Only an actor that can get urgent hints needs the ``running`` flag.
        hinted = self._prioritising and self._schedule_urgent is not None
        actor._rt_run = self.run_guarded if hinted else self.run
        self._guarded = hinted
        if isinstance(dispatcher, PoolDispatcher):
            self._yield_to = dispatcher._urgent
            self._here = hinted
            self._plain_idle = True
        # The inline dispatcher's shortcut keeps the order only when every slice
        # is one message (see InlineDispatcher.tell_now); a handler that
        # pykka must route (an overridden _handle_receive) takes the queue.
        if isinstance(dispatcher, InlineDispatcher) and dispatcher.throughput == 1 and self._direct:
            self._inline = dispatcher
            self._quiet = cls.is_quiet is not PooledActor.is_quiet

    def arm(self) -> None:
        """Give the dispatcher the first owning ticket (it runs ``on_start``)."""
        try:
            self._dispatcher.schedule(self._actor)
        except BaseException:
            # pykka registered the actor already; a registered actor that never
            # runs would hang ActorRegistry.stop_all() forever.
            self._closed = True
            ActorRegistry.unregister(self._ref)
            self._actor.actor_stopped.set()
            raise

    def refuse(self) -> None:
        """Refuse new mail from now on: the actor is stopping or has failed."""
        self._closed = True

    # -- sender side: any thread ----------------------------------------------------

    def tell(self, message: Any) -> None:
        """``ActorRef.tell`` for this actor (installed on the ref as ``tell``)."""
        if self._closed:
            raise ActorDeadError(f"{self._ref} not found")
        if self._quiet and self._hold(message):
            return
        if self._inline is not None and self._inline.tell_now(self, message):
            return
        if self._slow:
            self._tell_slow(message)
            return
        cls = type(message)
        if cls is list or cls is Envelope:
            message = Envelope(message)
        self._normal.append(message)
        if self._try_schedule(False):
            self._schedule(self._actor)

    def _hold(self, message: Any) -> bool:
        """Hold a quiet message instead of queueing it; False: queue it as usual.

        Held, it keeps the place queueing would have given it: from outside a
        drain, to an idle actor with nothing queued, its turn is now (it is
        *done*: queueing would have had it handled before ``tell`` returned);
        inside a drain it waits at the head of the normal lane and the actor
        takes its run-queue turn as usual — a turn that, finding only held
        mail, just marks one done, without calling the handler.
        """
        if self._prio or self._normal or not self._live:
            return False
        if type(message) in _SPECIAL or not self._actor.is_quiet(message):
            return False
        later = self._later
        inline = self._inline
        assert inline is not None
        if not (inline._runq or inline._urgent or getattr(inline._local, "draining", False)):
            if len(later) != self._done or self._done >= _LATER_MAX:
                return False  # (queued ones first; or hand the pile over now)
            if not self._try_schedule(False):
                return False
            later.append(message)
            self._done += 1
            self._scheduled.release()
            return True
        later.append(message)
        if self._try_schedule(False):
            inline.schedule_turn(self)
        return True

    def turn(self, throughput: int) -> int:
        """The run-queue turn of held quiet mail: what ``run`` does, minus the calls.

        With nothing else queued the turn's message is the first held one
        still waiting, and handling it means marking it done; anything else
        (mail arrived meanwhile, the actor stopped, too many done) is left to
        the actor's own ``run``.
        """
        guarded = self._guarded
        if guarded and not self._running.acquire(False):
            return self._actor._rt_run(throughput, True)
        try:
            later = self._later
            if self._prio or self._normal or self._closed or self._done >= _LATER_MAX:
                return self.run(throughput, True)
            if len(later) > self._done:
                self._done += 1
            if len(later) > self._done:
                return _AGAIN
            if self._limit:
                self._over = False
            self._scheduled.release()
            if (self._prio or self._normal or len(later) > self._done) and self._try_schedule(
                False
            ):
                return _URGENT if self._prio else _AGAIN
            return _IDLE
        finally:
            if guarded:
                self._running.release()

    def _hand_over_done(self) -> bool:
        """Give the actor the held messages whose turn has passed; False if it died."""
        later = self._later
        on_receive = self._actor.on_receive
        while self._done:
            self._done -= 1
            message = later.popleft()
            try:
                on_receive(message)
            except Exception as exc:
                self._told_failure(exc)
                return False
            except BaseException as exc:
                self._fatal(None, exc)  # re-raises
            if self._closed:
                self._close()
                return False
        return True

    def _tell_slow(self, message: Any) -> None:
        """Tell with priority, coalescing or a mailbox limit.

        ``is_priority`` and ``coalesce_key`` run in the sender's thread with no
        lock held; ``coalesce`` runs under the mailbox mutex. All three must be
        pure functions of their arguments and must not send messages.
        """
        actor = self._actor
        cls = type(message)
        if cls is not _ActorStop:  # a stop keeps its place in the queue
            if self._prioritising and actor.is_priority(message):
                item = Envelope(message) if cls is list or cls is Envelope else message
                self._prio.append(item if self._timing is None else (time.perf_counter(), item))
                self._signal_priority()
                return
            if self._coalescing:
                key = actor.coalesce_key(message)
                if key is not None:
                    if self._plain_idle and not self._normal and self._try_schedule(False):
                        # On a pool, idle with nothing queued: nothing to fold into,
                        # so no slot for the worker to unlink and no mutex shared
                        # with it (the contended lock of a sweep). Tells that come
                        # before the worker takes it fold behind it as usual.
                        self._normal.append(
                            Envelope(message) if cls is list or cls is Envelope else message
                        )
                        if self._limit:
                            self._check_limit()
                        self._schedule(actor)
                        return
                    with self._mutex:
                        index = self._index
                        slot = index.get(key)
                        if slot is None:
                            index[key] = slot = [message, key]
                            self._normal.append(slot)
                        else:
                            slot[0] = actor.coalesce(slot[0], message)
                            slot = None
                    if slot is not None:
                        self._after_append()
                    elif self._stats is not None:
                        # The slot is still queued, or popped by a worker that has
                        # not read it yet: either way the fold will be processed.
                        self._stats._note_coalesced()
                    return
        self._normal.append(Envelope(message) if cls is list or cls is Envelope else message)
        self._after_append()

    def put(self, envelope: Envelope[Any], /) -> None:
        """pykka's ``ActorInbox.put``: asks, stops, and tells via pykka's own path."""
        if envelope.reply_to is None:
            self.tell(envelope.message)
            return
        if self._closed:
            _dead_letter(self._ref, envelope, leftover=False)
            return
        message = envelope.message
        if (
            self._prioritising
            and type(message) is not _ActorStop
            and self._actor.is_priority(message)
        ):
            self._prio.append(envelope if self._timing is None else (time.perf_counter(), envelope))
            self._signal_priority()
        else:
            self._normal.append(envelope)
            self._after_append()
        if self._closed:
            # The actor stopped while we were queueing: answer the ask if the
            # teardown missed it, instead of leaving its caller waiting forever.
            self._drain_dead()

    def _after_append(self) -> None:
        if self._limit:
            self._check_limit()
        if self._try_schedule(False):
            self._schedule(self._actor)

    def _signal_priority(self) -> None:
        if self._limit:
            self._check_limit()
        if self._try_schedule(False):
            # Idle actor: the owning ticket, plus a hint so it jumps the queue.
            self._schedule(self._actor)
            if self._schedule_urgent is not None:
                self._schedule_urgent(self._actor)
        elif self._live and not self._running.locked() and self._schedule_urgent is not None:
            # Waiting in the run queue: hint. (If it is running, the running
            # slice takes priority mail before anything else anyway.)
            self._schedule_urgent(self._actor)

    def call_here(self, message: Any) -> tuple[bool, Any]:
        """Handle a priority ``message`` in the caller's thread, if the actor can take it now.

        For the gate's check on a pool: when no thread is inside the actor and
        no priority mail waits, the priority lane would hand this message to
        the actor next; handling it here does exactly that, minus two thread
        hand-offs (waking a worker, then waking the caller), which are most of
        a check's latency. Queued ordinary mail (marks) stays queued, as the
        priority lane would leave it. ``(False, None)``: not now (a thread is
        inside, priority mail waits, the actor is not running): send it as
        usual. An exception in the handler is a told failure (the actor
        restarts) and propagates to the caller, which fails closed.
        """
        if not self._here or not self._live or self._closed:
            return False, None
        running = self._running
        if not running.acquire(False):
            return False, None
        try:
            if self._prio or self._closed:
                return False, None
            try:
                result = self._actor.on_receive(message)
            except Exception as exc:
                self._told_failure(exc)
                raise
            if self._closed:  # the handler stopped the actor
                self._close()
            return True, result
        finally:
            running.release()
            # Priority mail that came meanwhile saw a thread inside and sent no
            # hint (the running slice takes it first; this one does not).
            if self._prio and not self._closed:
                self._signal_priority()

    def _check_limit(self) -> None:
        limit = self._limit
        if len(self._prio) + len(self._normal) > limit:
            if self._stats is not None:
                self._stats._note_overflow()
            if not self._over:
                self._over = True
                logger.warning(
                    "%s: mailbox above max_mailbox=%d; nothing is dropped "
                    "(is the actor stuck, or a message type missing a coalesce_key?)",
                    self._ref,
                    limit,
                )

    # -- dispatcher side ------------------------------------------------------------

    def run_guarded(self, throughput: int, owner: bool) -> int:
        """``run`` for actors that may get urgent hints: two tickets, one thread inside."""
        running = self._running
        if not running.acquire(False):
            if not owner:
                return _IDLE  # the thread inside takes priority mail first anyway
            # An urgent hint is inside: one slice at most. (Like any handler that
            # blocks, a handler that blocks on an ask to an actor of the same
            # pool can deadlock the pool; this wait adds no other way to.)
            running.acquire()
        try:
            return self.run(throughput, owner)
        finally:
            running.release()

    def run(self, throughput: int, owner: bool) -> int:
        """Process up to ``throughput`` messages; say what the ticket should do next.

        ``owner`` is True for an owning ticket (it holds ``scheduled`` and must
        release it or be queued again) and False for an urgent hint. This is
        the hot path of every sweep: the common message (a told, non-pykka
        message) costs two deque tests, a pop, a type test and the handler.
        """
        if self._closed:
            return _IDLE
        if not self._live and not self._start():
            return _IDLE
        actor = self._actor
        prio = self._prio
        normal = self._normal
        direct = self._direct
        remaining = throughput
        later = self._later
        timing = self._timing
        yield_to = self._yield_to
        while remaining:
            if self._done and not self._hand_over_done():
                return _IDLE
            timed: tuple[float, float] | None = None
            if prio:
                item = prio.popleft()
                if timing is not None:
                    enqueued, item = item
                    timed = (enqueued, time.perf_counter())
            elif later:
                # A held quiet message's turn: it is done (handed over before the
                # actor's next other message), the handler need not run yet.
                self._done += 1
                remaining -= 1
                if self._done >= _LATER_MAX and not self._hand_over_done():
                    return _IDLE
                continue
            elif normal:
                item = normal.popleft()
            else:
                break
            remaining -= 1
            if direct:
                cls = type(item)
                if cls is list:
                    # A coalescing slot: free its key, then handle what it holds now.
                    with self._mutex:
                        del self._index[item[1]]
                    item = item[0]
                    plain = type(item) not in _PYKKA_MESSAGES
                else:
                    plain = cls not in _SPECIAL
                if plain:
                    # pykka's _actor_loop_running, for a told user message.
                    try:
                        actor.on_receive(item)
                    except Exception as exc:
                        self._told_failure(exc)
                        return _IDLE
                    except BaseException as exc:
                        self._fatal(None, exc)  # re-raises
                elif self._special(item):
                    return _IDLE
            elif self._special(item):
                return _IDLE
            if timed is not None:
                self._report_timing(item, *timed)
            if self._closed:  # the handler stopped the actor
                self._close()
                return _IDLE
            if yield_to and owner and not prio:
                # A check waits for a worker (the pool's urgent lane): this
                # slice ends here, not after ``throughput`` more quotes, and
                # its ticket goes to the back of the run queue.
                break
        if not owner:
            return _IDLE
        waiting = len(later) > self._done  # held messages whose turn is still to come
        if not remaining and (prio or normal or waiting):
            return _URGENT if prio else _AGAIN
        if self._limit:
            self._over = False
        self._scheduled.release()
        # Re-check after releasing: a sender that appended before the release
        # saw the flag held and counted on us.
        if (prio or normal or len(later) > self._done) and self._try_schedule(False):
            return _URGENT if prio else _AGAIN
        return _IDLE

    def run_one(self, message: Any, dispatcher: InlineDispatcher) -> bool:
        """``InlineDispatcher.tell_now``: ``message`` as the only mail of an idle actor.

        Exactly what an owning ticket of one message does (``run(1, True)``)
        with the message in the queue; False, having changed nothing, when the
        actor is not idle, not started, or has mail queued.
        """
        if not self._live or self._closed or self._prio or self._normal:
            return False
        if len(self._later) != self._done:
            return False  # held ones wait for their turn first
        if not self._try_schedule(False):
            return False
        guarded = self._guarded
        running = self._running
        if guarded and not running.acquire(False):
            self._scheduled.release()
            return False
        try:
            if self._done and not self._hand_over_done():
                return True
            try:
                self._actor.on_receive(message)
            except Exception as exc:
                self._told_failure(exc)
                return True
            except BaseException as exc:
                self._fatal(None, exc)  # re-raises
            if self._closed:  # the handler stopped the actor
                self._close()
                return True
            prio, normal = self._prio, self._normal
            if not (prio or normal or len(self._later) > self._done):
                if self._limit:
                    self._over = False
                self._scheduled.release()
                if not (
                    (prio or normal or len(self._later) > self._done) and self._try_schedule(False)
                ):
                    return True
            # It told itself something: its ticket goes to the back of the queue.
            dispatcher._runq.append(self._actor)
            if prio:
                dispatcher._urgent.append(self._actor)
            return True
        finally:
            if guarded:
                running.release()

    def _report_timing(self, item: Any, enqueued: float, started: float) -> None:
        timing = self._timing
        assert timing is not None
        message = item.message if type(item) is Envelope else item
        try:
            timing(message, started - enqueued, time.perf_counter() - started)
        except Exception:  # metrics must never take an actor down
            logger.exception("on_priority callback raised")

    def _special(self, item: Any) -> bool:
        """Everything but a plain told message; True if the actor died of it."""
        actor = self._actor
        cls = type(item)
        reply_to: pykka.Future[Any] | None = None
        if cls is list:
            with self._mutex:
                del self._index[item[1]]
                message = item[0]
        elif cls is Envelope:
            message = item.message
            reply_to = item.reply_to
        else:
            message = item
        try:
            if self._direct and type(message) not in _PYKKA_MESSAGES:
                response = actor.on_receive(message)
            else:
                response = actor._handle_receive(message)
            if reply_to is not None:
                reply_to.set(response)
        except Exception as exc:
            if reply_to is None:
                self._told_failure(exc)
                return True
            _pykka_logger.info(
                f"Exception returned from {actor} to caller:", exc_info=sys.exc_info()
            )
            reply_to.set_exception()
        except BaseException as exc:
            self._fatal(reply_to, exc)
        return False

    def _told_failure(self, exc: Exception) -> None:
        """pykka's handling of an exception in a told message, plus the callback."""
        actor = self._actor
        actor._handle_failure(type(exc), exc, exc.__traceback__)
        try:
            actor.on_failure(type(exc), exc, exc.__traceback__)
        except Exception:
            actor._handle_failure(*sys.exc_info())
        self._close()
        self._report(exc)

    def _fatal(self, reply_to: pykka.Future[Any] | None, exc: BaseException) -> NoReturn:
        """pykka stops this actor and every other one on a BaseException.

        pykka's actor thread then ends; ours serves other actors, so the
        exception is re-raised for the dispatcher: the inline one propagates it
        (a replay can be interrupted), a pool worker logs it and carries on.
        """
        actor = self._actor
        _pykka_logger.debug(f"{exc!r} in {actor}. Stopping all actors.")
        if reply_to is not None:
            reply_to.set_exception((type(exc), exc, exc.__traceback__))
        actor._stop()
        self._close()
        self._report(exc)
        ActorRegistry.stop_all(block=False)
        raise exc

    def _start(self) -> bool:
        """pykka's ``_actor_loop_setup``; False if the actor died in ``on_start``."""
        actor = self._actor
        try:
            actor.on_start()
        except BaseException as exc:  # a ThreadingActor's thread would die of any
            actor._handle_failure(*sys.exc_info())
            self._close()
            self._report(exc)
            return False
        if self._closed:  # on_start stopped the actor
            self._close()
            return False
        self._live = True
        return True

    def _close(self) -> None:
        """Refuse new mail and answer what is left, as pykka's teardown does."""
        self._closed = True
        dropped = self._drain_dead()
        with self._mutex:
            self._index.clear()
        if dropped:
            logger.debug("%s stopped with %d told messages unprocessed", self._ref, dropped)

    def _drain_dead(self) -> int:
        """Answer every queued ask with ActorDeadError; return how many tells fell."""
        dropped = len(self._later)
        self._later.clear()
        self._done = 0
        for lane in (self._prio, self._normal):
            while True:
                try:
                    item = lane.popleft()
                except IndexError:
                    break
                if lane is self._prio and self._timing is not None:
                    item = item[1]
                if type(item) is Envelope and item.reply_to is not None:
                    _dead_letter(self._ref, item, leftover=True)
                else:
                    dropped += 1
        return dropped

    def _report(self, failure: BaseException) -> None:
        if self._stats is not None:
            self._stats._report_failure(self._ref, failure)

    # -- rest of pykka's ActorInbox protocol ----------------------------------------

    def get(self) -> Envelope[Any]:
        """Unused by the dispatchers; pykka's protocol has it. Never blocks."""
        if self._later:
            self._done = max(0, self._done - 1)
            return Envelope(self._later.popleft())
        for lane in (self._prio, self._normal):
            if lane:
                item = lane.popleft()
                if lane is self._prio and self._timing is not None:
                    item = item[1]
                if type(item) is list:
                    with self._mutex:
                        del self._index[item[1]]
                    return Envelope(item[0])
                if type(item) is Envelope:
                    return item
                return Envelope(item)
        raise queue.Empty

    def empty(self) -> bool:
        return not (self._prio or self._normal or self._later)

    def __len__(self) -> int:
        return len(self._prio) + len(self._normal) + len(self._later)


def _dead_letter(ref: pykka.ActorRef[Any], envelope: Envelope[Any], *, leftover: bool) -> None:
    """Answer an ask that reached a dead actor the way pykka does.

    A stop found queued at teardown succeeded (``stop()`` returns True: the
    actor was being stopped); one that arrived after is told the actor is dead.
    """
    reply_to = envelope.reply_to
    assert reply_to is not None
    if isinstance(envelope.message, _ActorStop) and leftover:
        reply_to.set(None)
        return
    if not leftover:
        reply_to.set_exception(exc_info=(ActorDeadError, ActorDeadError(f"{ref} not found"), None))
        return
    reply_to.set_exception(
        exc_info=(
            ActorDeadError,
            ActorDeadError(f"{ref} stopped before handling the message"),
            None,
        )
    )


class PooledActor(pykka.Actor):
    """A pykka actor that runs on a :class:`Dispatcher` instead of its own thread.

    Start it like any pykka actor: ``MyActor.start(..., dispatcher=d)``; the
    subclass passes ``dispatcher`` on with ``super().__init__(dispatcher=d)``.
    Everything else is pykka: ``on_start``, ``on_receive``, ``on_stop``,
    ``on_failure``, proxies, ``ActorRef.stop()``, ``ActorRegistry``.

    Guarantees: ``on_start`` runs before any message; one message at a time
    (never two threads inside one actor); normal messages in FIFO order per
    sender; priority messages before any queued normal message, FIFO among
    themselves. ``stop()`` processes the normal mail queued before it (and any
    priority mail that arrives before it is reached), then ``on_stop``; later
    tells raise ``ActorDeadError`` and later asks fail with it.
    """

    max_mailbox: int = 0
    """Soft limit on queued messages; 0 = unbounded. Read when the actor is made.

    Above the limit nothing is dropped and no sender blocks: each extra message
    is counted in ``dispatcher.overflowed`` and the first one logs a warning.
    Quotes stay bounded by coalescing (one slot per key); everything else —
    fills, orders, pre-trade checks, stops — must never be lost. Blocking the
    sender is no option either: a sender that is itself an actor on the same
    pool could block every worker on mailboxes only workers drain (and on the
    inline dispatcher it would deadlock at once).
    """

    def __init__(self, *, dispatcher: Dispatcher) -> None:
        super().__init__()
        mailbox = self.actor_inbox
        assert isinstance(mailbox, _Mailbox)
        self._rt_mailbox = mailbox
        self._rt_dispatcher = dispatcher
        self._rt_run: Callable[[int, bool], int]
        mailbox.bind(self, dispatcher)
        # The ref is pykka's own ActorRef; only its tell is short-circuited to the
        # mailbox. pykka's tell would cost an is_alive() call and an Envelope per
        # message, about as much as the whole rest of the path; the mailbox's
        # closed flag is set exactly when pykka sets actor_stopped (see _stop and
        # _handle_failure below), so the ActorDeadError behaviour is the same.
        self._actor_ref.tell = mailbox.tell  # type: ignore[method-assign]

    @staticmethod
    def _create_actor_inbox() -> ActorInbox:
        return _Mailbox()

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        # Thread-safe and resolvable from any thread, so it serves both the pool
        # (resolved by a worker) and the inline dispatcher (already resolved).
        return ThreadingFuture()

    def _start_actor_loop(self) -> None:
        self._rt_mailbox.arm()

    def _stop(self) -> None:
        self._rt_mailbox.refuse()
        super()._stop()

    def _handle_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._rt_mailbox.refuse()
        super()._handle_failure(exception_type, exception_value, traceback)

    @property
    def dispatcher(self) -> Dispatcher:
        return self._rt_dispatcher

    @property
    def mailbox_depth(self) -> int:
        """Messages waiting (priority + normal); a coalesced slot counts once."""
        return len(self._rt_mailbox)

    def is_priority(self, message: Any) -> bool:
        """Whether ``message`` jumps ahead of queued normal messages.

        Runs in the *sender's* thread: keep it a pure, cheap function of
        ``message`` (an ``isinstance`` test, say). Applies to asks too — a
        pre-trade check is usually asked. Override it in the class (not on an
        instance): the mailbox checks once whether it is overridden.
        """
        return False

    def is_quiet(self, message: Any) -> bool:
        """Whether handling ``message`` only updates this actor's own state.

        A quiet message's handler sends nothing, answers no one, returns
        nothing and does not fail: no one can tell *when* it ran, only that it
        ran before the actor's next other message. An inline dispatcher then
        holds it instead of scheduling the actor for it, and hands the held
        ones over, in order, before the next other message (or stop), or when
        4096 have piled up: replay's output is the same, minus a run-queue round
        trip per message. Pool dispatchers ignore this. Same constraints as
        :meth:`is_priority`; a quiet message is never coalesced inline.
        """
        return False

    def coalesce_key(self, message: Any) -> Hashable | None:
        """Key under which a *told* ``message`` may replace a queued one, or None.

        Same constraints as :meth:`is_priority`. Asked messages are never
        coalesced (each has a caller waiting for its own answer), nor are
        priority messages or pykka's stop.
        """
        return None

    def coalesce(self, old: Any, new: Any) -> Any:
        """Fold ``new`` into the still-queued ``old``; the result keeps old's place.

        Runs in the sender's thread under the mailbox's mutex: pure, cheap, no
        messages. The default keeps the newest.
        """
        return new

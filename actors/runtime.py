"""Pooled pykka actors: one actor per position, a few threads for all of them.

pykka's ``ThreadingActor`` gives every actor an OS thread. With a thousand
positions a quote sweep then pays a GIL hand-off per actor, which costs more
than the work itself by two orders of magnitude. This module keeps pykka's
model and API — every actor has its own mailbox and state, processes one
message at a time in order, and is driven through ``ActorRef.tell`` / ``ask`` /
``proxy`` / ``stop`` and ``ActorRegistry`` — but multiplexes the actors on a
*dispatcher*, as Akka does:

* :class:`PoolDispatcher` runs actors on a small fixed pool of worker threads.
* :class:`InlineDispatcher` runs them in the calling thread, deterministically,
  for ``replay`` and message-level tests.

Only the mailbox and the scheduling are new; message handling (``on_receive``,
proxy calls, ``on_start`` / ``on_stop`` / ``on_failure``, the registry) is
pykka's own code, called the way pykka's actor loop calls it, so an actor class
behaves the same on either runtime.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, Final, Protocol

import pykka
from pykka import ActorDeadError, ActorRegistry, ThreadingFuture
from pykka.messages import ProxyCall, ProxyGetAttr, ProxySetAttr, _ActorStop

if TYPE_CHECKING:
    from pykka._actor import ActorInbox
    from pykka._envelope import Envelope

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

DEFAULT_THREADS: Final = 1
"""Default pool size, chosen by ``bench/bench_sweep.py`` on this 2-core machine.

Handlers are short pure-Python functions, so the GIL serialises them anyway: a
second worker cannot add throughput, it only adds GIL hand-offs between the
workers (1 thread was measurably faster than 2 or 4 for the 1000-actor sweep
and for sustained quote throughput). Handlers that block on I/O are the case
for a larger pool: pass ``threads=`` explicitly.
"""

# pykka's own messages must go through ``Actor._handle_receive``; anything else
# is a user message and goes straight to ``on_receive`` (one call instead of four
# isinstance checks plus a call on the hot path).
_PYKKA_MESSAGES: Final = frozenset({_ActorStop, ProxyCall, ProxyGetAttr, ProxySetAttr})

# Results of one scheduling slice of an actor.
_IDLE: Final = 0  # nothing left to do (or the ticket was stale): drop the ticket
_AGAIN: Final = 1  # mail left after ``throughput`` messages: queue the actor again
_URGENT: Final = 2  # priority mail left: queue the actor again, ahead of the others
_DEAD: Final = -1  # (put only) the mailbox is closed


class Dispatcher(Protocol):
    """Runs actors that have mail.

    ``schedule`` is called at most once per idle-to-busy transition of an actor
    (plus once per priority message that arrives while the actor waits in the
    run queue, if the dispatcher has ``schedule_urgent``). The dispatcher must
    eventually call ``actor._mailbox.run(throughput)`` and, if that returns a
    non-zero value, schedule the actor again.
    """

    def schedule(self, actor: PooledActor) -> None: ...


class _DispatcherBase:
    """State shared by both dispatchers: the failure callback and the counters."""

    on_failure: FailureCallback | None
    """Called outside any actor lock when an actor died of an exception in a
    told message, in ``on_start``, or of a ``BaseException``: the actor is
    already stopped and unregistered, so a supervisor can start a replacement."""

    coalesced: int
    """Messages folded into an already-queued message by coalescing mailboxes."""

    overflowed: int
    """Messages accepted while their mailbox held ``max_mailbox`` or more."""

    def __init__(self, on_failure: FailureCallback | None) -> None:
        self.on_failure = on_failure
        self.coalesced = 0
        self.overflowed = 0
        # Counters are bumped from many sender threads; ``+=`` on an attribute
        # is not atomic, and metrics must not drift.
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
            # tell but the log, and the worker thread must survive it.
            logger.exception("on_failure callback raised for %s", ref)


class PoolDispatcher(_DispatcherBase):
    """Runs actors on a fixed pool of daemon worker threads.

    The run queue is a ``queue.SimpleQueue`` of actors (its ``put``/``get`` are
    C code and it wakes exactly one sleeping worker per item). An actor is in
    the queue at most once for normal mail, guarded by its mailbox's
    ``scheduled`` flag, so a burst of messages to one actor costs one queue
    operation, and a worker already running an actor picks up new mail without
    any hand-off. Priority mail for an actor that waits in the queue also puts
    the actor on an *urgent* lane that workers check before every slice, so a
    pre-trade check does not wait behind a thousand actors' quotes.
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
        self._runq: queue.SimpleQueue[PooledActor | None] = queue.SimpleQueue()
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
        # Wake a sleeping worker; a busy one sees the urgent lane before its
        # next slice anyway. ``None`` is a no-op ticket.
        self._runq.put(None)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop the workers; stop the actors first (e.g. ``ActorRegistry.stop_all()``).

        Actors already in the run queue are run once more; anything scheduled
        after this raises ``RuntimeError`` rather than queueing mail that no
        thread will ever process (which would hang its askers silently).
        """
        if self._shut:
            return
        self._shut = True
        for _ in self._threads:
            self._runq.put(None)  # with _shut set, None ends the worker that gets it
        deadline = time.monotonic() + timeout
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
                    first = urgent.popleft()
                except IndexError:  # another worker took it
                    break
                self._run(first, throughput)
            if actor is None:
                if self._shut:
                    return
                continue
            try:
                again = actor._mailbox.run(throughput)
            except BaseException:
                logger.debug("worker survived a BaseException", exc_info=True)
                continue
            if again:
                if again == _URGENT:
                    urgent.append(actor)
                    put(None)
                else:
                    put(actor)

    def _run(self, actor: PooledActor, throughput: int) -> None:
        try:
            again = actor._mailbox.run(throughput)
        except BaseException:
            # The mailbox already applied pykka's semantics (actor stopped, all
            # actors asked to stop); a worker thread serves every actor, so it
            # must not die with one of them.
            logger.debug("worker survived a BaseException", exc_info=True)
            return
        if again == _URGENT:
            self._urgent.append(actor)
            self._runq.put(None)
        elif again:
            self._runq.put(actor)


class InlineDispatcher(_DispatcherBase):
    """Runs actors in the calling thread, deterministically.

    ``schedule`` appends to a FIFO run queue and, unless this thread is already
    draining, drains it: every pending message of every actor is processed
    before ``tell`` returns, so ``ask`` returns a resolved future and the global
    order of processing is a pure function of the inputs — ``replay`` output is
    identical run to run. Mail sent by a handler is queued and processed after
    the handler returns (never re-entrantly), so handlers must not block on an
    ``ask`` (use the returned future's callbacks or tell back instead).

    Several threads may use one ``InlineDispatcher`` safely (each actor still
    runs one message at a time), but then the order is no longer deterministic.
    """

    def __init__(
        self,
        throughput: int = 1,
        *,
        on_failure: FailureCallback | None = None,
    ) -> None:
        # throughput=1 interleaves actors message by message, which is the
        # order a reader of a replay log expects ("A's message, then B's
        # reaction"); it is still deterministic for any value.
        if throughput < 1:
            raise ValueError("throughput must be >= 1")
        super().__init__(on_failure)
        self.throughput = throughput
        self._runq: deque[PooledActor] = deque()
        self._local = threading.local()

    def schedule(self, actor: PooledActor) -> None:
        self._runq.append(actor)
        self._drain()

    def schedule_urgent(self, actor: PooledActor) -> None:
        self._runq.appendleft(actor)
        self._drain()

    def _drain(self) -> None:
        local = self._local
        if getattr(local, "draining", False):
            return
        local.draining = True
        runq = self._runq
        throughput = self.throughput
        try:
            while True:
                try:
                    actor = runq.popleft()
                except IndexError:
                    return
                again = actor._mailbox.run(throughput)
                if again == _URGENT:
                    runq.appendleft(actor)
                elif again:
                    runq.append(actor)
        finally:
            # A KeyboardInterrupt inside a handler propagates to the caller (so a
            # replay can be interrupted); the rest of the queue stays queued and
            # is drained by the next schedule on this dispatcher.
            local.draining = False


class _Slot:
    """A queued coalescable told message; ``message`` is replaced in place."""

    __slots__ = ("key", "message", "reply_to")

    def __init__(self, message: Any, key: Hashable) -> None:
        self.message = message
        self.key = key
        self.reply_to: pykka.Future[Any] | None = None


class _Mailbox:
    """An actor's mailbox and its scheduling state, under one lock.

    One lock guards the queues, the coalescing index and the flags, so the
    idle-to-busy transition (``scheduled``) and the busy-to-idle transition
    (queue found empty) are atomic with respect to each other: a sender either
    sees ``scheduled`` set and knows the running slice will see its message, or
    sees it clear and schedules the actor itself. No wake-up can be lost and no
    re-check is needed.

    ``running`` is separate from ``scheduled`` because an actor can have two
    tickets in flight (its normal one and an urgent one): whichever is claimed
    first runs the actor, the other finds it running or idle and is dropped.
    """

    __slots__ = (
        "_actor",
        "_closed",
        "_coalescing",
        "_dispatcher",
        "_index",
        "_limit",
        "_live",
        "_lock",
        "_normal",
        "_over",
        "_prio",
        "_prioritising",
        "_ref",
        "_running",
        "_schedule",
        "_schedule_urgent",
        "_scheduled",
        "_slow",
        "_stats",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._prio: deque[Envelope[Any] | _Slot] = deque()
        self._normal: deque[Envelope[Any] | _Slot] = deque()
        self._index: dict[Hashable, _Slot] = {}
        # Held "scheduled" until the actor is started: mail sent to a ref handed
        # out from __init__ waits for on_start instead of racing it.
        self._scheduled = True
        self._running = False
        self._live = False
        self._closed = False
        self._over = False
        self._slow = False
        self._prioritising = False
        self._coalescing = False
        self._limit = 0
        self._actor: PooledActor | None = None

    def bind(self, actor: PooledActor, dispatcher: Dispatcher) -> None:
        cls = type(actor)
        self._actor = actor
        self._ref: pykka.ActorRef[Any] = actor.actor_ref
        self._dispatcher = dispatcher
        self._schedule: Callable[[PooledActor], None] = dispatcher.schedule
        self._schedule_urgent: Callable[[PooledActor], None] = getattr(
            dispatcher, "schedule_urgent", dispatcher.schedule
        )
        self._stats: _DispatcherBase | None = (
            dispatcher if isinstance(dispatcher, _DispatcherBase) else None
        )
        # Hooks that are not overridden are never called: the common actor pays
        # one flag test per message for all three features.
        self._prioritising = cls.is_priority is not PooledActor.is_priority
        self._coalescing = cls.coalesce_key is not PooledActor.coalesce_key
        self._limit = max(0, int(actor.max_mailbox))
        self._slow = self._prioritising or self._coalescing or self._limit > 0

    def arm(self) -> None:
        """Hand the actor to its dispatcher for the first time (runs ``on_start``)."""
        assert self._actor is not None
        self._schedule(self._actor)

    # -- the sender side (any thread) ------------------------------------------------

    def put(self, envelope: Envelope[Any], /) -> None:
        with self._lock:
            if self._closed:
                action = _DEAD
            elif self._slow:
                action = self._put_slow(envelope)
                if action == _IDLE:
                    return
            else:
                self._normal.append(envelope)
                if self._scheduled:
                    return  # queued or running: that slice will see it
                self._scheduled = True
                action = _AGAIN
            actor = self._actor
        if action == _DEAD:
            _dead_letter(self._ref, envelope)
            return
        assert actor is not None
        if action == _URGENT:
            self._schedule_urgent(actor)
        else:
            self._schedule(actor)

    def _put_slow(self, envelope: Envelope[Any]) -> int:
        """Queue with priority / coalescing / limit; the lock is held.

        The hooks run here, in the sender's thread under the mailbox lock: they
        must be pure functions of their arguments and must not send messages.
        """
        actor = self._actor
        assert actor is not None
        message = envelope.message
        if type(message) is not _ActorStop:  # stop keeps its place in the queue
            if self._prioritising and actor.is_priority(message):
                self._prio.append(envelope)
                self._check_limit()
                if self._running or (self._scheduled and not self._live):
                    return _IDLE  # the running slice (or on_start's) takes it first
                self._scheduled = True
                return _URGENT
            if envelope.reply_to is None and self._coalescing:
                key = actor.coalesce_key(message)
                if key is not None:
                    slot = self._index.get(key)
                    if slot is not None:
                        slot.message = actor.coalesce(slot.message, message)
                        if self._stats is not None:
                            self._stats._note_coalesced()
                        return _IDLE
                    slot = _Slot(message, key)
                    self._index[key] = slot
                    self._normal.append(slot)
                    return self._after_append()
        self._normal.append(envelope)
        return self._after_append()

    def _after_append(self) -> int:
        self._check_limit()
        if self._scheduled:
            return _IDLE
        self._scheduled = True
        return _AGAIN

    def _check_limit(self) -> None:
        limit = self._limit
        if limit and len(self._prio) + len(self._normal) > limit:
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

    # -- the dispatcher side (one thread at a time per actor) ---------------------------

    def run(self, throughput: int) -> int:
        """Process up to ``throughput`` messages; tell the dispatcher what next."""
        lock = self._lock
        with lock:
            if self._running or not self._scheduled or self._closed:
                return _IDLE  # a stale ticket: someone else has (or had) it
            self._running = True
            live = self._live
        actor = self._actor
        assert actor is not None
        stopped = actor.actor_stopped.is_set
        if not live:
            failure = _call_on_start(actor)
            if failure is not None or stopped():
                self._close()
                self._retire(failure)
                return _IDLE
            with lock:
                self._live = True
        prio = self._prio
        normal = self._normal
        index = self._index
        on_receive = actor.on_receive
        direct = type(actor)._handle_receive is pykka.Actor._handle_receive
        remaining = throughput
        while True:
            with lock:
                if prio:
                    envelope = prio.popleft()
                elif normal:
                    envelope = normal.popleft()
                    if index and type(envelope) is _Slot:
                        del index[envelope.key]
                else:
                    self._running = False
                    self._scheduled = False
                    self._over = False
                    return _IDLE
            message = envelope.message
            reply_to = envelope.reply_to
            failure = None
            # Mirrors pykka's Actor._actor_loop_running, so on_failure and the
            # registry behave exactly as on a ThreadingActor.
            try:
                if direct and type(message) not in _PYKKA_MESSAGES:
                    response = on_receive(message)
                else:
                    response = actor._handle_receive(message)
                if reply_to is not None:
                    reply_to.set(response)
            except Exception as exc:
                if reply_to is not None:
                    _pykka_logger.info(
                        f"Exception returned from {actor} to caller:", exc_info=sys.exc_info()
                    )
                    reply_to.set_exception()
                else:
                    failure = exc
                    actor._handle_failure(*sys.exc_info())
                    try:
                        actor.on_failure(*sys.exc_info())
                    except Exception:
                        actor._handle_failure(*sys.exc_info())
            except BaseException as exc:
                # pykka: stop this actor and every other one. Its thread then
                # ends; ours serves other actors, so re-raise for the dispatcher
                # (the inline one propagates it, a pool worker logs it).
                _pykka_logger.debug(f"{exc!r} in {actor}. Stopping all actors.")
                if reply_to is not None:
                    reply_to.set_exception()
                actor._stop()
                self._close()
                self._retire(exc)
                ActorRegistry.stop_all(block=False)
                raise
            if stopped():
                self._close()
                self._retire(failure)
                return _IDLE
            remaining -= 1
            if not remaining:
                with lock:
                    self._running = False
                    if prio:
                        return _URGENT
                    if normal:
                        return _AGAIN
                    self._scheduled = False
                    self._over = False
                    return _IDLE

    def _close(self) -> None:
        """Refuse new mail and answer what is left, as pykka's teardown does."""
        with self._lock:
            self._closed = True
            self._running = False
            self._scheduled = False
            left = [*self._prio, *self._normal]
            self._prio.clear()
            self._normal.clear()
            self._index.clear()
        for envelope in left:
            if envelope.reply_to is not None:
                _dead_letter(self._ref, envelope)
        dropped = sum(1 for envelope in left if envelope.reply_to is None)
        if dropped:
            logger.debug("%s stopped with %d told messages unprocessed", self._ref, dropped)

    def _retire(self, failure: BaseException | None) -> None:
        # The actor is dead and unregistered; drop it so a supervisor that
        # keeps old refs around does not keep dead actors' state alive.
        self._actor = None
        if failure is not None and self._stats is not None:
            self._stats._report_failure(self._ref, failure)

    # -- pykka's ActorInbox protocol ---------------------------------------------------

    def get(self) -> Envelope[Any]:
        """Not used by the dispatchers; present because pykka's protocol has it."""
        with self._lock:
            if self._prio:
                return self._prio.popleft()  # type: ignore[return-value]
            if self._normal:
                envelope = self._normal.popleft()
                if type(envelope) is _Slot:
                    del self._index[envelope.key]
                return envelope  # type: ignore[return-value]
        raise queue.Empty

    def empty(self) -> bool:
        return not (self._prio or self._normal)

    def __len__(self) -> int:
        return len(self._prio) + len(self._normal)


def _dead_letter(ref: pykka.ActorRef[Any], envelope: Envelope[Any] | _Slot) -> None:
    """Answer mail that reached a dead actor the way pykka does."""
    reply_to = envelope.reply_to
    if reply_to is None:
        raise ActorDeadError(f"{ref} not found")
    if isinstance(envelope.message, _ActorStop):
        reply_to.set(None)
    else:
        reply_to.set_exception(
            exc_info=(
                ActorDeadError,
                ActorDeadError(f"{ref} stopped before handling the message"),
                None,
            )
        )


def _call_on_start(actor: PooledActor) -> BaseException | None:
    """pykka's ``_actor_loop_setup``, returning the failure for the supervisor."""
    try:
        actor.on_start()
    except BaseException as exc:
        actor._handle_failure(*sys.exc_info())
        return exc
    return None


class PooledActor(pykka.Actor):
    """A pykka actor that runs on a :class:`Dispatcher` instead of its own thread.

    Start it like any pykka actor: ``MyActor.start(..., dispatcher=d)``; the
    subclass passes ``dispatcher`` on with ``super().__init__(dispatcher=d)``.
    Everything else is pykka: ``on_start``, ``on_receive``, ``on_stop``,
    ``on_failure``, proxies, ``ActorRef.stop()``, ``ActorRegistry``.

    Guarantees: ``on_start`` runs before any message; one message at a time
    (never two threads inside one actor); normal messages in FIFO order per
    actor; priority messages before any queued normal one, FIFO among
    themselves. ``stop()`` processes the normal mail queued before it (and any
    priority mail that arrives before it is processed), then ``on_stop``.
    """

    max_mailbox: int = 0
    """Soft limit on queued messages; 0 = unbounded.

    Above the limit nothing is dropped and no sender blocks: each extra message
    is counted in ``dispatcher.overflowed`` and the first one logs a warning.
    Quotes stay bounded by coalescing (one slot per key), and the rest — fills,
    orders, pre-trade checks, stops — must never be lost. Blocking the sender
    is not an option either: a sender that is itself an actor on the same pool
    could block every worker on mailboxes that only workers drain (and on the
    inline dispatcher it would deadlock at once).
    """

    def __init__(self, *, dispatcher: Dispatcher) -> None:
        super().__init__()
        mailbox = self.actor_inbox
        assert isinstance(mailbox, _Mailbox)
        self._mailbox = mailbox
        self._dispatcher = dispatcher
        mailbox.bind(self, dispatcher)

    @staticmethod
    def _create_actor_inbox() -> ActorInbox:
        return _Mailbox()

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        # Thread-safe and resolvable from any thread, so it serves both the pool
        # (resolved by a worker) and the inline dispatcher (already resolved).
        return ThreadingFuture()

    def _start_actor_loop(self) -> None:
        self._mailbox.arm()

    @property
    def dispatcher(self) -> Dispatcher:
        return self._dispatcher

    @property
    def mailbox_depth(self) -> int:
        """Messages waiting (priority + normal), coalesced slots counted once."""
        return len(self._mailbox)

    def is_priority(self, message: Any) -> bool:
        """Whether ``message`` jumps ahead of queued normal messages.

        Called in the *sender's* thread under the mailbox lock: keep it a pure,
        cheap function of ``message`` (e.g. an ``isinstance`` test). Applies to
        asks too — a pre-trade check is usually asked.
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

        Same constraints as :meth:`is_priority`. The default keeps the newest.
        """
        return new

"""One ib_async connection kept alive: connect, set up, probe, lose, back off, again.

Why a thread and an event loop of its own: ib_async is asyncio and keeps state
tied to the loop it runs on, while the daemon's actors run on their own
threads. The session owns one loop in one thread and the ``IB`` object on it;
the adapter's parts (feed, closing orders, kill) run on that loop too.

Reconnection: exponential backoff with jitter between ``reconnect_min_s`` and
``reconnect_max_s``. A socket that stays open but no longer answers is found
by ``IB.setTimeout(probe_interval_s)``: after that long without any incoming
data the session asks for the server time and, without an answer within the
same interval, treats the connection as lost (also while a session is being
set up). ib_async answers a refused client id (326) only with a timeout; the
session aborts the attempt as soon as IB says 326 or closes the socket.

The handshake is bounded by ``connect_timeout_s``; setting the session up
(positions, orders, executions, account: :meth:`SessionHooks.session_up`) is
not — it has its own timeouts, so a large book is not cut off by a connect
timeout meant for a TCP handshake.

Threading: :meth:`Session.start`, :meth:`Session.stop`, :meth:`Session.status`,
:meth:`Session.wait_status`, :meth:`Session.call_soon` and
:meth:`Session.run_coroutine` may be called from any thread; everything else
runs on the session's loop thread, hooks included.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import random
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

from ib_async import IB, StartupFetch

from actors.messages import FailureKind
from supervisor.asyncio_thread import start_loop_thread
from supervisor.config import IbConfig
from supervisor.ib.errors import DATA_LOST

__all__ = ["ConnectionMetrics", "Session", "SessionHooks", "backoff_delay", "describe"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: ib_async's own start-up requests are skipped: the adapter makes them itself,
#: in order and with timeouts of its own (see SessionHooks.session_up).
_NO_STARTUP_FETCH = StartupFetch(0)


def backoff_delay(attempt: int, min_s: float, max_s: float, rng: random.Random) -> float:
    """Seconds to wait before reconnect attempt ``attempt`` (0 for the first).

    Exponential with jitter: uniform between ``min_s`` and
    ``min(max_s, min_s·2^(attempt+1))``. Jitter keeps several daemons that
    lost the same gateway from reconnecting in lockstep.
    """
    hi = min(max_s, min_s * 2.0 ** min(attempt + 1, 60))
    lo = min(min_s, hi)
    return rng.uniform(lo, hi)


def describe(exc: BaseException) -> str:
    """An exception as one line for a log or a failure's detail."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class ConnectionMetrics(Protocol):
    def ib_state(self, state: str) -> None: ...

    def ib_disconnect(self) -> None: ...


class SessionHooks(Protocol):
    """What the session asks of the adapter; every hook runs on the loop thread."""

    async def session_up(self, ib: IB, session: int) -> None:
        """Set up a fresh session (sync, reconcile); raise to fail the connect attempt."""
        ...

    def session_lost(self) -> None:
        """The session is gone: forget what belonged to it."""
        ...

    def data_lost(self) -> None:
        """IB 1101: connectivity restored, market-data subscriptions lost."""
        ...

    def error(self, req_id: int, code: int, message: str, contract: object) -> None:
        """Any other IB error or notice (``contract``: the request's, as ib_async knows it)."""
        ...


class Session:
    """Keeps one ib_async connection alive and tells its hooks what happens to it.

    ``start()`` returns at once and connecting goes on in the background;
    ``stop()`` disconnects and joins the thread within ``stop_timeout_s``.
    ``failure`` is told of every connectivity failure (a lost socket, a failed
    connect, an unanswered probe), once per loss.
    """

    def __init__(
        self,
        config: IbConfig,
        hooks: SessionHooks,
        *,
        failure: Callable[[FailureKind, int | None, str], None],
        metrics: ConnectionMetrics,
        rng: random.Random | None = None,
        stop_timeout_s: float = 5.0,
    ) -> None:
        self.config = config
        self.hooks = hooks
        self.failure = failure
        self.metrics = metrics
        self.rng = rng if rng is not None else random.Random()
        self.stop_timeout_s = stop_timeout_s
        #: Successful connects so far (the first one included).
        self.connects = 0
        #: The current session's number (a new one at every connect).
        self.session = 0
        self.ib: IB | None = None
        self._state = "disconnected"
        self._state_cv = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._main_task: concurrent.futures.Future[None] | None = None
        self._stopping = threading.Event()
        self._stop_evt: asyncio.Event | None = None
        self._lost: asyncio.Event | None = None
        self._live = False  # a session is up and its loss not yet reported
        self._connecting = False
        self._connect_error: tuple[int | None, str] | None = None
        self._connect_abort: asyncio.Event | None = None
        self._probing = False
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ life

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    @property
    def live(self) -> bool:
        """A connection is up and its loss has not been reported (loop thread)."""
        return self._live

    def start(self) -> None:
        """Start the loop thread and begin connecting; returns at once."""
        if self._thread is not None:
            return
        self._stopping.clear()
        loop, self._thread = start_loop_thread(
            "ib-adapter", ready_timeout_s=self.stop_timeout_s, drain_s=1.0
        )
        self._loop = loop
        self._main_task = asyncio.run_coroutine_threadsafe(self._main(), loop)
        self._main_task.add_done_callback(self._main_ended)

    def _main_ended(self, fut: concurrent.futures.Future[None]) -> None:
        """Never a silently dead adapter: a crash of the connection loop is logged loudly."""
        if fut.cancelled() or self._stopping.is_set():
            return
        exc = fut.exception()
        if exc is not None:
            log.critical("the IB adapter's connection loop crashed", exc_info=exc)
            self._set_state("disconnected")

    def stop(self) -> None:
        """Disconnect and stop the loop thread; bounded by ``stop_timeout_s``."""
        self._stopping.set()
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            fut = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            try:
                fut.result(self.stop_timeout_s)
            except Exception:
                log.warning("IB adapter did not shut down cleanly in time", exc_info=True)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(self.stop_timeout_s)
        self._loop = None
        self._thread = None
        self._set_state("disconnected")

    async def _shutdown(self) -> None:
        if self._stop_evt is not None:
            self._stop_evt.set()
        self._live = False
        ib = self.ib
        if ib is not None:
            with contextlib.suppress(Exception):
                ib.disconnect()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=max(0.5, self.stop_timeout_s / 2))

    def call_soon(self, fn: Callable[..., object], *args: Any) -> bool:
        """Run ``fn(*args)`` on the loop thread; False when the loop is not running."""
        loop = self._loop
        if loop is None or self._stopping.is_set():
            return False
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # closed between the check and the call
            return False
        return True

    def run_coroutine(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T] | None:
        """Schedule ``coro`` on the loop from any thread; None when the loop is not running."""
        loop = self._loop
        if loop is None or self._stopping.is_set() or not loop.is_running():
            coro.close()
            return None
        return asyncio.run_coroutine_threadsafe(coro, loop)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """A task on the loop (loop thread), kept referenced until it ends."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("IB adapter task failed", exc_info=task.exception())

    # ---------------------------------------------------------------- status

    def status(self) -> str:
        """The connection state for /healthz: connected, connecting or disconnected."""
        return self._state

    def wait_status(self, state: str, timeout: float) -> bool:
        """Block until the session is in ``state``; False after ``timeout`` seconds."""
        with self._state_cv:
            return self._state_cv.wait_for(lambda: self._state == state, timeout)

    def _set_state(self, state: str) -> None:
        with self._state_cv:
            if self._state == state:
                return
            self._state = state
            self._state_cv.notify_all()
        self.metrics.ib_state(state)

    # -------------------------------------------------------------- the loop

    async def _main(self) -> None:
        """Connect, serve the session until it is lost, back off, again — until stopped."""
        self._stop_evt = asyncio.Event()
        self._lost = asyncio.Event()
        self._connect_abort = asyncio.Event()
        ib = self.ib = IB()
        ib.errorEvent += self._on_error
        ib.disconnectedEvent += self._on_disconnected
        ib.timeoutEvent += self._on_timeout
        ib.client.apiError += self._on_api_error
        attempt = 0
        cfg = self.config
        stable_s = max(5.0, cfg.reconnect_max_s)
        try:
            while not self._stop_evt.is_set():
                self._set_state("connecting")
                try:
                    await self._connect(ib)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._set_state("disconnected")
                    reported = self._lost.is_set()  # lost mid-setup: already counted
                    code, detail = self._connect_error or (None, describe(exc))
                    delay = backoff_delay(
                        attempt, cfg.reconnect_min_s, cfg.reconnect_max_s, self.rng
                    )
                    attempt += 1
                    log.error(
                        "IB connect to %s:%d (client id %d) failed: %s; retrying in %.2fs",
                        cfg.host,
                        cfg.port,
                        cfg.client_id,
                        detail,
                        delay,
                    )
                    if not reported:
                        self.failure(FailureKind.CONNECTIVITY, code, f"connect failed: {detail}")
                    await self._sleep(delay)
                    continue
                started = asyncio.get_running_loop().time()
                await self._wait_lost()
                if self._stop_evt.is_set():
                    break
                if asyncio.get_running_loop().time() - started >= stable_s:
                    attempt = 0
                delay = backoff_delay(attempt, cfg.reconnect_min_s, cfg.reconnect_max_s, self.rng)
                attempt += 1
                log.warning("IB connection lost; reconnecting in %.2fs", delay)
                await self._sleep(delay)
        finally:
            self._live = False
            with contextlib.suppress(Exception):
                ib.disconnect()

    async def _sleep(self, seconds: float) -> None:
        assert self._stop_evt is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_evt.wait(), seconds)

    async def _wait_lost(self) -> None:
        assert self._stop_evt is not None and self._lost is not None
        lost = asyncio.ensure_future(self._lost.wait())
        stop = asyncio.ensure_future(self._stop_evt.wait())
        try:
            await asyncio.wait({lost, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            stop.cancel()

    async def _connect(self, ib: IB) -> None:
        """One connect attempt and the session's set-up; raises when either fails."""
        cfg = self.config
        assert self._connect_abort is not None and self._lost is not None
        self._connect_error = None
        self._connect_abort.clear()
        self._lost.clear()
        self._connecting = True
        try:
            connect = asyncio.ensure_future(
                ib.connectAsync(
                    cfg.host,
                    cfg.port,
                    clientId=cfg.client_id,
                    timeout=cfg.connect_timeout_s,
                    readonly=cfg.readonly,
                    account=cfg.account,
                    fetchFields=_NO_STARTUP_FETCH,
                )
            )
            abort = asyncio.ensure_future(self._connect_abort.wait())
            try:
                await asyncio.wait({connect, abort}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                abort.cancel()
            if not connect.done():
                connect.cancel()
                with contextlib.suppress(BaseException):
                    await connect
                _, why = self._connect_error or (None, "aborted")
                raise ConnectionError(why)
            connect.result()
        finally:
            self._connecting = False
        self.session += 1
        self._live = True
        ib.setTimeout(cfg.probe_interval_s)  # a hang while setting up is found too
        try:
            await self.hooks.session_up(ib, self.session)
            if not self._live or not ib.isConnected():
                raise ConnectionError("the connection was lost while the session was set up")
        except BaseException:
            self._live = False
            with contextlib.suppress(Exception):
                ib.disconnect()
            raise
        self.connects += 1
        self._set_state("connected")
        log.info("IB connected to %s:%d as client %d", cfg.host, cfg.port, cfg.client_id)

    def lose(self, detail: str) -> None:
        """The session is gone: report it once, tell the hooks, reconnect (loop thread)."""
        if not self._live:
            return
        self._live = False
        log.error("IB connection lost: %s", detail)
        self.failure(FailureKind.CONNECTIVITY, None, detail)
        self.metrics.ib_disconnect()
        self._set_state("disconnected")
        try:
            self.hooks.session_lost()
        except Exception:
            log.exception("forgetting the lost session failed")
        ib = self.ib
        if ib is not None and ib.isConnected():
            ib.disconnect()
        if self._lost is not None:
            self._lost.set()

    # ------------------------------------------------------------ IB events

    def _on_disconnected(self) -> None:
        if self._stopping.is_set():
            return
        self.lose("socket lost")

    def _on_api_error(self, msg: str) -> None:
        if self._connecting and self._connect_abort is not None:
            if self._connect_error is None:
                self._connect_error = (None, msg)
            self._connect_abort.set()

    def _on_timeout(self, idle: float) -> None:
        if self._live and not self._probing:
            self.spawn(self._probe(self.session, idle))

    async def _probe(self, session: int, idle: float) -> None:
        """No data for a while: ask for the server time; no answer means a hung socket."""
        ib = self.ib
        if ib is None:
            return
        self._probing = True
        interval = self.config.probe_interval_s
        try:
            await asyncio.wait_for(ib.reqCurrentTimeAsync(), interval)
        except (TimeoutError, ConnectionError) as exc:
            if session == self.session and self._live:
                self.lose(
                    f"IB did not answer a probe within {interval:g}s after {idle:.1f}s "
                    f"without data (hung socket): {describe(exc)}"
                )
            return
        finally:
            self._probing = False
        if session == self.session and self._live and ib.isConnected():
            ib.setTimeout(interval)

    def _on_error(self, req_id: int, code: int, message: str, contract: Any) -> None:
        try:
            if self._connecting and code == 326:
                self._connect_error = (
                    code,
                    f"client id {self.config.client_id} in use (326): {message}",
                )
                assert self._connect_abort is not None
                self._connect_abort.set()
                return
            if code == DATA_LOST:
                log.warning("IB: %s; subscribing to market data again", message)
                self.hooks.data_lost()
                return
            self.hooks.error(req_id, code, message, contract)
        except Exception:
            log.exception("handling IB error %s failed", code)

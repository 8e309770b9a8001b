"""A gateway simulator on its own event loop, for synchronous callers."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, overload

from supervisor.asyncio_thread import start_loop_thread

from .server import GatewaySimulator

P = ParamSpec("P")
R = TypeVar("R")


class SimulatorThread:
    """A :class:`GatewaySimulator` on its own event loop in a daemon thread.

    Synchronous code (the daemon's tests, ``risk-supervisor demo``) cannot
    share the simulator's loop, and the simulator's control methods are not
    thread-safe; :meth:`call` runs them inside the loop and waits for them.
    """

    def __init__(self, *, call_timeout: float = 10.0, **kwargs: Any) -> None:
        self.sim = GatewaySimulator(**kwargs)
        self.call_timeout = call_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        return self.sim.port

    def start(self) -> int:
        """Start the loop thread and the server; return the bound port."""
        if self._thread is not None:
            return self.sim.port
        self._loop, self._thread = start_loop_thread(
            "gateway-simulator", ready_timeout_s=self.call_timeout, drain_s=2.0
        )
        return self.call(self.sim.start)

    @overload
    def call(self, fn: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs) -> R: ...

    @overload
    def call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R: ...

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` on the simulator's loop and return its result.

        ``fn`` may be a plain function or a coroutine function (then it is
        awaited). Exceptions propagate to the caller; waits at most
        ``call_timeout`` seconds.
        """
        loop = self._loop
        if loop is None or not loop.is_running():
            raise RuntimeError("simulator thread is not running")

        async def invoke() -> Any:
            result = fn(*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(invoke(), loop).result(self.call_timeout)

    def stop(self) -> None:
        """Stop the server, then the loop, then join the thread; bounded."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            if loop.is_running():
                self.call(self.sim.stop)
        finally:
            if not loop.is_closed():
                loop.call_soon_threadsafe(loop.stop)
            thread.join(self.call_timeout)
            self._loop = None
            self._thread = None

    def __enter__(self) -> SimulatorThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

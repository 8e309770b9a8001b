"""An asyncio event loop on its own daemon thread.

ib_async and the gateway simulator are asyncio code; the daemon around them is
threads and actors. Each runs its loop on a dedicated thread and is driven
from other threads with ``asyncio.run_coroutine_threadsafe``. On stop, tasks
still pending are cancelled and given ``drain_s`` to finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


def start_loop_thread(
    name: str, *, ready_timeout_s: float, drain_s: float
) -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    """Start a new event loop running forever on a daemon thread; return both."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            with contextlib.suppress(Exception):
                pending = asyncio.all_tasks(loop)
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.wait(pending, timeout=drain_s))
            loop.close()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    if not ready.wait(ready_timeout_s):
        raise RuntimeError(f"the {name} event loop did not start")
    return loop, thread

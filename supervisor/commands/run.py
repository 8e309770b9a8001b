"""``risk-supervisor run --config FILE``: the daemon, wired to IB, served, until told to stop.

Start order is store → daemon (restores stops and breaker) → IB adapter →
metrics → API, so that nothing can ask the daemon anything before it has
restored what it knew, and the API only answers once everything behind it is
up. Stop order is the reverse, each part bounded in time.

A configuration the daemon cannot honour is refused before anything starts,
with one line on stderr and exit code 2: a non-loopback API bind without a
token, a token variable that is not set, a store that cannot be opened, a
port already in use, or exit orders / global cancels asked of a read-only IB
session.

Exit codes: 0 after a clean stop (SIGTERM, SIGINT, or the caller's
``stop_event``); 2 for a refused configuration; the daemon's own code when
it stopped itself (3: actors restarting too often — systemd should restart
the process from the store).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from supervisor.api.app import ServedApi
from supervisor.api.serving import start as start_api
from supervisor.config import Config, runtime_problems, token_file_path
from supervisor.core.daemon import Daemon
from supervisor.ib.adapter import IbAdapter
from supervisor.metrics import Metrics, ServedMetrics
from supervisor.record import Recorder
from supervisor.store.sqlite_store import Store, StoreUnavailable

__all__ = ["EXIT_CONFIG", "RunningDaemon", "configure_logging", "run_daemon"]

log = logging.getLogger(__name__)

#: Exit code for a configuration the daemon cannot honour.
EXIT_CONFIG = 2

_LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


@dataclass(frozen=True)
class RunningDaemon:
    """Everything ``run_daemon`` started, handed to its ``ready`` callback."""

    config: Config
    daemon: Daemon
    adapter: IbAdapter
    store: Store
    api: ServedApi
    metrics: ServedMetrics | None

    @property
    def api_url(self) -> str:
        return self.api.url

    @property
    def metrics_url(self) -> str | None:
        return None if self.metrics is None else self.metrics.url


def configure_logging(level: int = logging.INFO) -> None:
    """Log to stderr, unless the process already configured logging (then keep it).

    ib_async logs every position and order status at INFO; at WARNING it still
    reports its errors, and the adapter logs what matters at INFO itself.
    """
    logging.basicConfig(level=level, format=_LOG_FORMAT, stream=sys.stderr)
    logging.getLogger("ib_async").setLevel(max(level, logging.WARNING))


def _refuse(why: str) -> int:
    print(f"risk-supervisor: {why}", file=sys.stderr)
    return EXIT_CONFIG


def run_daemon(
    config: Config,
    *,
    install_signals: bool = True,
    ready: Callable[[RunningDaemon], None] | None = None,
    stop_event: threading.Event | None = None,
    config_text: str | None = None,
) -> int:
    """Run the daemon until SIGTERM/SIGINT, ``stop_event``, or the daemon stops itself.

    ``ready`` is called (on this thread) once everything is up. Signal
    handlers are installed only when asked and only on the main thread, and
    the previous handlers are put back before returning. ``config_text`` is
    stored beside the recording (``[record]``): the configuration the day ran
    with, as ``replay --config`` will read it.
    """
    configure_logging()
    problems = runtime_problems(config, os.environ)
    if problems:
        return _refuse("; ".join(problems))
    try:
        store = Store(config.store.path)
    except (StoreUnavailable, OSError) as exc:
        return _refuse(f"store.path: cannot open {config.store.path!r}: {exc}")

    stopping = stop_event if stop_event is not None else threading.Event()
    metrics = Metrics()
    daemon = Daemon(config, store=store, metrics=metrics)
    recorder: Recorder | None = None
    if config.record.enabled:
        recorder = Recorder(
            config.record.dir,
            config.record.retention_days,
            time.time,
            config_text if config_text is not None else "",
            on_written=metrics.recorded,
            on_dropped=metrics.recording_drop,
        )
        daemon.recorder = recorder
    adapter: IbAdapter | None = None
    served_metrics: ServedMetrics | None = None
    served_api: ServedApi | None = None
    previous: dict[int, Any] = {}
    signalled: list[str] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        signalled.append(signal.Signals(signum).name)
        stopping.set()

    try:
        daemon.start()
        adapter = IbAdapter(daemon, on_closing=daemon.kill_switch.closing_update)
        adapter.start()
        if config.metrics.enabled:
            listen = config.metrics.listen
            try:
                served_metrics = metrics.serve(listen.host, listen.port)
            except OSError as exc:
                return _refuse(f"metrics.listen: cannot listen on {listen}: {exc}")
        try:
            served_api = start_api(
                daemon,
                config.api,
                token_file=token_file_path(config.api),
                allowed_hosts=config.api.allowed_hosts,
            )
        except ValueError as exc:
            return _refuse(str(exc))
        except (OSError, RuntimeError) as exc:
            return _refuse(f"api.listen: cannot listen on {config.api.listen}: {exc}")
        log.info(
            "risk-supervisor running: IB %s:%d (client id %d), API %s, metrics %s, store %s",
            config.ib.host,
            config.ib.port,
            config.ib.client_id,
            served_api.url,
            served_metrics.url if served_metrics else "off",
            config.store.path,
        )
        if install_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, on_signal)
        if ready is not None:
            ready(RunningDaemon(config, daemon, adapter, store, served_api, served_metrics))
        while not (stopping.is_set() or daemon.stopped.is_set()):
            stopping.wait(0.2)
        if daemon.stopped.is_set() and daemon.exit_code is not None:
            log.critical("daemon stopped itself (exit code %d)", daemon.exit_code)
        else:
            log.info("stopping (%s)", signalled[0] if signalled else "asked to stop")
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _shut_down(served_api, served_metrics, adapter, daemon, store)
        if recorder is not None and not recorder.close():
            log.warning("the recording could not write everything before stopping")
    return daemon.exit_code if daemon.exit_code is not None else 0


def _shut_down(
    api: ServedApi | None,
    metrics: ServedMetrics | None,
    adapter: IbAdapter | None,
    daemon: Daemon,
    store: Store,
) -> None:
    """Stop in reverse start order; one part failing to stop does not keep the others up."""
    steps: list[tuple[str, Callable[[], None] | None]] = [
        ("api", None if api is None else api.close),
        ("metrics", None if metrics is None else metrics.close),
        ("ib", None if adapter is None else adapter.stop),
        ("daemon", daemon.stop),
        ("store", store.close),
    ]
    for name, step in steps:
        if step is None:
            continue
        try:
            step()
        except Exception:
            log.exception("stopping %s failed", name)

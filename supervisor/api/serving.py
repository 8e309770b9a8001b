"""Serving the API: uvicorn on a socket bound here, in a background thread.

The socket is bound in the caller's thread, so a port in use fails at once
with the real ``OSError`` (uvicorn would log it and end its thread), port 0
gives the actual port — which the Host check needs — and the daemon knows
its URL before the first request.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import uvicorn
from fastapi import FastAPI

from supervisor.api.port import ApiPort
from supervisor.api.security import RequestGuard, check_bind
from supervisor.api.token_file import server_token
from supervisor.config import ApiConfig, Listen

__all__ = ["ServedApi", "serve", "start"]


@dataclass
class ServedApi:
    """The API running in a background thread; ``close()`` stops it."""

    app: FastAPI
    server: uvicorn.Server
    thread: threading.Thread
    sock: socket.socket
    host: str
    port: int
    token: str | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting, let requests in flight finish briefly, then force it down."""
        self.server.should_exit = True
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(1.0)
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _family(host: str) -> socket.AddressFamily:
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return socket.AF_INET  # a name such as "localhost"


def _listening_socket(listen: Listen) -> socket.socket:
    """A bound, listening TCP socket.

    Created with ``proto=IPPROTO_TCP`` on purpose: asyncio sets TCP_NODELAY on
    accepted connections only when the socket says it is TCP, and without it
    every response waits ~40 ms for Nagle and the peer's delayed ACK
    (``socket.create_server`` leaves ``proto`` at 0).
    """
    family = _family(listen.host)
    host = "127.0.0.1" if listen.host == "localhost" else listen.host
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, listen.port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def serve(app: FastAPI, listen: Listen, *, ready_timeout_s: float = 10.0) -> ServedApi:
    """Serve ``app`` with uvicorn in a daemon thread; return once it accepts connections.

    Binding tells the app's request guard its port (the Host and Origin
    checks; an app not made by ``create_app`` has none and is served as is,
    e.g. a benchmark's baseline). uvicorn is given ``log_config=None`` so it
    does not reconfigure the daemon's logging.
    """
    sock = _listening_socket(listen)
    port = int(sock.getsockname()[1])
    guard: RequestGuard | None = getattr(app.state, "guard", None)
    if guard is not None:
        guard.bind(port)
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"api-{port}", daemon=True
    )
    token: str | None = getattr(app.state, "token", None)
    served = ServedApi(app, server, thread, sock, listen.host, port, token)
    thread.start()
    deadline = time.monotonic() + ready_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            served.close(timeout=1.0)
            raise RuntimeError(f"api: could not start serving on {listen.host}:{port}")
        time.sleep(0.01)
    return served


def start(
    daemon: ApiPort,
    api: ApiConfig,
    *,
    token_file: Path | None = None,
    allowed_hosts: Sequence[str] = (),
) -> ServedApi:
    """The API as ``run`` starts it: token, bind check, app, server.

    The token follows :mod:`supervisor.api.token_file`'s rule: the variable
    ``api.token_env`` names if set, else ``token_file`` (created 0600 with a
    fresh token on first start), else none — and then only a loopback bind is
    allowed. Raises ValueError for a configuration it cannot honour and
    OSError when the port cannot be bound.
    """
    from supervisor.api.app import create_app  # app imports this module

    token = server_token(api.token_env, token_file)
    check_bind(api, token)
    return serve(create_app(daemon, token=token, allowed_hosts=allowed_hosts), api.listen)

"""One served API over a fake or a real daemon, and what the API's tests do with it.

``Harness`` hides which daemon is behind the HTTP API so a test written once
runs against both: the fake port (deterministic, no actors) and the real
:class:`Daemon` with a SQLite store, through :class:`RealDaemonPort`.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from fake_daemon import FakeClock, FakeDaemon
from real_daemon_port import RealDaemonPort

from actors.messages import Contract, PositionUpdate, Quote, SecType
from supervisor.api.app import ServedApi, create_app, serve
from supervisor.config import Listen, parse
from supervisor.core.daemon import Daemon
from supervisor.store.sqlite_store import Store

LOOPBACK = Listen("127.0.0.1", 0)
TOKEN = "s3cret-token-for-tests"

T = TypeVar("T")


def wait_until(what: Callable[[], T], timeout: float = 5.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def raw_post(sock: socket.socket, port: int, path: str, body: bytes) -> int | None:
    """One POST on an open keep-alive socket: the status, or None if the server hung up."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    try:
        sock.sendall(head.encode() + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            data += chunk
        header, rest = data.split(b"\r\n\r\n", 1)
        lines = header.split(b"\r\n")
        length = next(
            int(x.split(b":")[1]) for x in lines if x.lower().startswith(b"content-length")
        )
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            rest += chunk
    except OSError:
        return None
    return int(lines[0].split()[1])


def stock(qty: float, price: float = 150.0, symbol: str = "AAPL") -> dict[str, Any]:
    return {"symbol": symbol, "sec_type": "STK", "qty": qty, "price": price}


@dataclass
class Harness:
    kind: str  # "fake" or "real"
    port: FakeDaemon | RealDaemonPort
    served: ServedApi
    http: httpx.Client  # plain, no token
    token: str | None

    @property
    def url(self) -> str:
        return self.served.url

    @property
    def fake(self) -> FakeDaemon:
        assert isinstance(self.port, FakeDaemon), "a fake-only test ran on the real daemon"
        return self.port

    @property
    def daemon(self) -> Daemon:
        assert isinstance(self.port, RealDaemonPort), "a real-only test ran on the fake"
        return self.port.daemon

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def post(self, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        """A JSON POST as the trader sends it (``{}`` when no body is given)."""
        headers = {**self.auth(), **kw.pop("headers", {})}
        return self.http.post(path, json={} if body is None else body, headers=headers, **kw)

    def hold(self, position_id: str, symbol: str, qty: float, price: float = 150.0) -> None:
        """A stock position the gate counts, visible in ``/v1/state`` when this returns."""
        if isinstance(self.port, FakeDaemon):
            self.port.hold(position_id, symbol, qty, price)
        else:
            now = time.time()
            contract = Contract(symbol, SecType.STK)
            self.daemon.position(PositionUpdate(now, position_id, contract, qty, price))
            self.daemon.quote(Quote(now, position_id, price - 0.1, price + 0.1, price))
        wait_until(
            lambda: (
                any(p["id"] == position_id for p in self.http.get("/v1/state").json()["positions"])
                and any(
                    h["id"] == position_id
                    for h in self.http.get("/v1/state").json()["portfolio"]["holdings"]
                )
            )
        )

    def tick(self) -> None:
        """Let event time move on (the fake's clock stands still unless told)."""
        if isinstance(self.port, FakeDaemon) and isinstance(self.port.clock, FakeClock):
            self.port.clock.advance(1.0)
        else:
            time.sleep(0.002)

    def breaker_state(self) -> str:
        state: str = self.http.get("/v1/state").json()["breaker"]["state"]
        return state


def real_daemon(tmp_path: Path) -> tuple[Daemon, Store]:
    cfg = parse({"limits": {"max_portfolio_delta": 500.0}, "account": {"net_liquidation": 1e6}})
    store = Store(tmp_path / "api.sqlite")
    daemon = Daemon(cfg, store=store)
    daemon.start()
    return daemon, store


class ServerPool:
    """One served app per token for a whole session; each test brings its own daemon.

    Starting and stopping uvicorn costs ~0.3 s; swapping ``app.state.daemon``
    costs nothing, and the app keeps no other state between requests.
    """

    def __init__(self) -> None:
        self._served: dict[str | None, ServedApi] = {}

    def get(self, token: str | None, port: FakeDaemon | RealDaemonPort) -> ServedApi:
        served = self._served.get(token)
        if served is None:
            served = self._served[token] = serve(create_app(port, token=token), LOOPBACK)
        served.app.state.daemon = port
        return served

    def close(self) -> None:
        for served in self._served.values():
            served.close()


@contextlib.contextmanager
def harness(
    kind: str,
    tmp_path: Path,
    *,
    token: str | None = None,
    fake: FakeDaemon | None = None,
    pool: ServerPool | None = None,
) -> Iterator[Harness]:
    """A daemon of ``kind`` behind the API: a fresh server, or one of ``pool``'s."""
    stack = contextlib.ExitStack()
    with stack:
        port: FakeDaemon | RealDaemonPort
        if kind == "fake":
            port = fake or FakeDaemon()
        else:
            daemon, store = real_daemon(tmp_path)
            stack.callback(store.close)
            stack.callback(daemon.stop)
            port = RealDaemonPort(daemon)
        if pool is None:
            served = serve(create_app(port, token=token), LOOPBACK)
            stack.callback(served.close)
        else:
            served = pool.get(token, port)
        http = stack.enter_context(httpx.Client(base_url=served.url, timeout=10.0))
        yield Harness(kind, port, served, http, token)

"""Who may talk to the API: the token, the browser defences and the body limits.

The API controls real money (it resets a tripped breaker, it flattens the
book), and it listens on loopback, where every web page the operator opens
can reach it. So, beside the bearer token (see ``docs/api-security.md``):

* **Host** (DNS rebinding): a page on ``evil.example`` whose name later
  resolves to 127.0.0.1 talks to us with ``Host: evil.example``. A rebinding
  needs a DNS name, so the Host must be an IP literal, ``localhost`` or a name
  the operator allowed, on the port we are bound to; else **421**.
* **Origin** (cross-site requests): browsers name the page's origin on every
  cross-origin POST. None (not a browser), or an origin passing the Host
  rule, is accepted; any other (``null`` included) is **403**, as is
  ``Sec-Fetch-Site: cross-site``.
* **Content type**: a page can POST ``text/plain``, a form or an empty body
  without a CORS preflight; it cannot send ``application/json``. POST and PUT
  must declare ``application/json``, else **415** — and carry a JSON object
  (``{}`` when there is nothing to say).
* **Size**: a body over :data:`MAX_BODY_BYTES` is **413**, judged from
  ``Content-Length`` before reading and counted while streaming (chunked).

The checks run in one ASGI middleware over the raw headers, before routing:
about 2 µs a request (middleware with its body counter, against a ~0.9 ms
loopback round trip), Host and Origin verdicts being cached.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from fastapi import Depends, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from supervisor.api.responses import Problem, SafeJSONResponse
from supervisor.api.schemas import ErrorOut
from supervisor.api.token_file import env_token
from supervisor.config import ApiConfig

__all__ = [
    "MAX_BODY_BYTES",
    "GuardMiddleware",
    "HostPolicy",
    "RequestGuard",
    "WriteGuard",
    "check_bind",
    "split_host",
    "token_from_env",
]

log = logging.getLogger("supervisor.api")

MAX_BODY_BYTES: Final = 64 * 1024
"""The largest request body accepted; a check of 100 option legs is about 25 KiB."""

_WRITE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_JSON_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


# ------------------------------------------------------------ pure rules


def split_host(value: str) -> tuple[str, int | None] | None:
    """``host[:port]`` (``[v6]:port`` for IPv6) as (lower-case host, port); None if malformed."""
    value = value.strip()
    if not value:
        return None
    port_text = ""
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        host, rest = value[1:end], value[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                return None
            port_text = rest[1:]
    elif value.count(":") == 1:
        host, port_text = value.split(":")
        if not port_text:
            return None
    elif ":" in value:
        return None  # a bare IPv6 address is not a valid Host
    else:
        host = value
    if not host:
        return None
    if not port_text:
        return host.lower(), None
    if not port_text.isascii() or not port_text.isdigit() or len(port_text) > 5:
        return None
    port = int(port_text)
    return (host.lower(), port) if 0 < port < 65536 else None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class HostPolicy:
    """Which ``Host`` and ``Origin`` values reach this API; pure, tested without a server.

    ``port`` is the port the socket is bound to; None until it is bound, and
    then every request is refused (fail closed).
    """

    port: int | None
    names: frozenset[str] = frozenset({"localhost"})

    @classmethod
    def of(cls, port: int | None, allowed_hosts: Iterable[str] = ()) -> HostPolicy:
        names = {"localhost", *(h.strip().lower().strip("[]") for h in allowed_hosts)}
        return cls(port, frozenset(n for n in names if n))

    def _name_ok(self, host: str) -> bool:
        return host in self.names or _is_ip(host)

    def host_ok(self, header: str | None) -> bool:
        if header is None or self.port is None:
            return False
        parsed = split_host(header)
        if parsed is None:
            return False
        host, port = parsed
        return self._name_ok(host) and (80 if port is None else port) == self.port

    def origin_ok(self, origin: str | None) -> bool:
        if origin is None:
            return True  # not a browser, or a same-origin GET
        if self.port is None:
            return False
        try:
            parts = urlsplit(origin.strip())
            scheme, host, port = parts.scheme, parts.hostname, parts.port
        except ValueError:
            return False
        if scheme not in _DEFAULT_PORTS or not host or parts.path not in ("", "/"):
            return False
        return self._name_ok(host.lower()) and (port or _DEFAULT_PORTS[scheme]) == self.port


def _media_type(content_type: bytes | None) -> bytes:
    return b"" if content_type is None else content_type.split(b";", 1)[0].strip().lower()


_CACHE_SIZE: Final = 256


@dataclass(slots=True)
class RequestGuard:
    """The request checks of the module docstring; ``bind`` tells it the socket's port."""

    allowed_hosts: tuple[str, ...] = ()
    max_body_bytes: int = MAX_BODY_BYTES
    policy: HostPolicy = field(default_factory=lambda: HostPolicy.of(None))
    # Verdicts on Host/Origin values seen: a client sends the same ones every time.
    _hosts: dict[bytes, bool] = field(default_factory=dict)
    _origins: dict[bytes, bool] = field(default_factory=dict)

    def bind(self, port: int) -> None:
        self.policy = HostPolicy.of(port, self.allowed_hosts)
        self._hosts.clear()
        self._origins.clear()

    def _host_ok(self, value: bytes | None) -> bool:
        if value is None:
            return False
        ok = self._hosts.get(value)
        if ok is None:
            ok = self.policy.host_ok(value.decode("latin-1"))
            if len(self._hosts) >= _CACHE_SIZE:
                self._hosts.clear()
            self._hosts[value] = ok
        return ok

    def _origin_ok(self, value: bytes | None) -> bool:
        if value is None:
            return True
        ok = self._origins.get(value)
        if ok is None:
            ok = self.policy.origin_ok(value.decode("latin-1"))
            if len(self._origins) >= _CACHE_SIZE:
                self._origins.clear()
            self._origins[value] = ok
        return ok

    def refusal(self, method: str, headers: Sequence[tuple[bytes, bytes]]) -> Problem | None:
        """Why this request is refused before routing, or None.

        ``headers`` as ASGI gives them (names lower-case). Pure but for a
        bounded cache of Host and Origin verdicts.
        """
        host = origin = content_type = length = fetch_site = None
        for name, value in headers:
            if name == b"host":
                host = value
            elif name == b"origin":
                origin = value
            elif name == b"content-type":
                content_type = value
            elif name == b"content-length":
                length = value
            elif name == b"sec-fetch-site":
                fetch_site = value
        if not self._host_ok(host):
            shown = None if host is None else host.decode("latin-1")[:100]
            return Problem(
                421,
                f"host: {shown!r} is not this API; use an IP address or localhost "
                f"with port {self.policy.port}",
            )
        if not self._origin_ok(origin) or (
            fetch_site is not None and fetch_site.strip().lower() == b"cross-site"
        ):
            shown = None if origin is None else origin.decode("latin-1")[:100]
            return Problem(403, f"origin: cross-site requests are refused (Origin {shown!r})")
        if length is not None:
            if not length.strip().isdigit():
                return Problem(400, f"content-length: not a number ({length[:40]!r})")
            if int(length) > self.max_body_bytes:
                return Problem(413, f"body: larger than {self.max_body_bytes} bytes")
        if method in _JSON_BODY_METHODS and _media_type(content_type) != b"application/json":
            shown = None if content_type is None else content_type.decode("latin-1")[:100]
            return Problem(
                415,
                f"content-type: must be application/json (with a JSON object), got {shown!r}",
            )
        return None


class _BodyTooLarge(Exception):
    pass


class GuardMiddleware:
    """The :class:`RequestGuard` as ASGI middleware, plus a streaming body cap.

    It also turns an exception that escaped every handler into a JSON 500
    here, so a bug answers without dropping the client's keep-alive
    connection (Starlette's last-resort handler re-raises to the server).
    """

    def __init__(self, app: ASGIApp, guard: RequestGuard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        problem = self.guard.refusal(method, scope["headers"])
        if problem is not None:
            await _respond(send, problem.status, problem.detail)
            return
        limit = self.guard.max_body_bytes
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge
            return message

        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted if method in _WRITE_METHODS else receive, tracked)
        except _BodyTooLarge:
            if started:
                raise
            await _respond(send, 413, f"body: larger than {limit} bytes")
        except Exception:
            if started:
                raise
            log.exception("%s %s failed", method, scope.get("path", "?"))
            await _respond(send, 500, "internal error (logged by the daemon)")


async def _respond(send: Send, status: int, detail: str) -> None:
    response = SafeJSONResponse({"detail": detail}, status_code=status)
    await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


# ----------------------------------------------------------------- token


@dataclass(frozen=True, slots=True)
class WriteGuard:
    """What every write route (POST, PUT, DELETE) carries: the token check, and its docs."""

    dependencies: tuple[Any, ...]
    responses: dict[int | str, dict[str, Any]]

    @classmethod
    def of(cls, token: str | None) -> WriteGuard:
        responses: dict[int | str, dict[str, Any]] = {
            403: {"model": ErrorOut, "description": "A cross-site request (foreign Origin)."},
            413: {"model": ErrorOut, "description": f"The body is over {MAX_BODY_BYTES} bytes."},
            415: {"model": ErrorOut, "description": "The body is not application/json."},
            421: {"model": ErrorOut, "description": "The Host is not this API (DNS rebinding)."},
        }
        if not token:
            return cls((), responses)
        expected = token.encode("utf-8")
        bearer = HTTPBearer(
            auto_error=False,
            description="The API token: the variable named by api.token_env, "
            "else the contents of the api.token_file.",
        )

        # async: it never blocks, and a plain def would cost every write a trip
        # through the thread pool before the route runs.
        async def require_token(
            credentials: HTTPAuthorizationCredentials | None = Security(bearer),  # noqa: B008
        ) -> None:
            # Header values reach us decoded as latin-1; back to the bytes sent,
            # so compare_digest never sees a non-ASCII str (it raises on those).
            given = b"" if credentials is None else credentials.credentials.encode("latin-1")
            if credentials is None or not hmac.compare_digest(given, expected):
                raise Problem(
                    401,
                    "authorization: a valid 'Authorization: Bearer <token>' header is required",
                    {"WWW-Authenticate": "Bearer"},
                )

        responses[401] = {"model": ErrorOut, "description": "Missing or wrong bearer token."}
        return cls((Depends(require_token),), responses)


def token_from_env(api: ApiConfig) -> str | None:
    """The bearer token from the variable ``api.token_env`` names; None when none is named.

    Raises ValueError when one is named but unset or empty: the operator asked
    for auth, and serving without it would open every write to anyone who can
    reach the port.
    """
    return env_token(api.token_env) if api.token_env else None


def check_bind(api: ApiConfig, token: str | None) -> None:
    """Refuse a non-loopback listen address without a token.

    Anyone who can reach the API can force the breaker open or reset it, so
    the API is exposed beyond this host only when it is guarded.
    """
    if not api.listen.loopback and not token:
        raise ValueError(
            f"api.listen: {api.listen} is not a loopback address and no token is configured; "
            "set api.token_env or api.token_file, or listen on 127.0.0.1"
        )

"""How the API answers: JSON that cannot fail to render, and errors that name the field.

Errors are always ``{"detail": "<field>: <what is wrong>"}``. Bad input is a
4xx naming the field, never a 5xx; 503 means the daemon itself could not
answer (it timed out, or its store is unavailable) and nothing was decided.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from supervisor.core.facade import DaemonTimeout, StrategyRefused
from supervisor.store.sqlite_store import StoreUnavailable

__all__ = ["Problem", "SafeJSONResponse", "install_handlers", "problem_response"]

log = logging.getLogger("supervisor.api")


def _finite(o: Any) -> Any:
    """The value with NaN and ±inf replaced by None (JSON has no such numbers)."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_finite(v) for v in o]
    return o


class SafeJSONResponse(JSONResponse):
    """ASCII JSON, non-finite numbers as null.

    Starlette's JSONResponse refuses NaN (a 500) and writes UTF-8, which fails
    on a lone surrogate that came in through a ``\\ud800`` escape. A risk API
    must be able to render whatever the market or a client put into its
    state, so this one cannot fail on either.
    """

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        try:
            text = json.dumps(content, ensure_ascii=True, allow_nan=False, default=str)
        except ValueError:
            text = json.dumps(_finite(content), ensure_ascii=True, allow_nan=False, default=str)
        return text.encode("ascii")


class Problem(Exception):
    """A request the API refuses, answered ``{"detail": ...}`` with ``status``."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers


def problem_response(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    return SafeJSONResponse({"detail": detail}, status_code=status, headers=headers)


def _field_errors(exc: RequestValidationError) -> str:
    """FastAPI's validation errors as one line, each naming its field (``query.limit: …``)."""
    parts = []
    for e in exc.errors():
        loc = ".".join(str(x) for x in e.get("loc", ()))
        parts.append(f"{loc}: {e.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def install_handlers(app: FastAPI) -> None:
    """Errors as JSON naming the field; 503 for daemon trouble; never a 5xx for input."""

    async def problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        if exc.status >= 500:
            log.warning("%s %s: %s", request.method, request.url.path, exc.detail)
        return problem_response(exc.status, exc.detail, exc.headers)

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return problem_response(422, _field_errors(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return problem_response(exc.status_code, str(exc.detail), dict(exc.headers or {}) or None)

    async def refused(request: Request, exc: Exception) -> Response:
        return problem_response(422, str(exc) or "the daemon refused the request")

    async def daemon_timeout(request: Request, exc: Exception) -> Response:
        log.warning("%s %s: the daemon did not answer: %r", request.method, request.url.path, exc)
        return problem_response(503, "daemon: did not answer in time, try again")

    async def store_down(request: Request, exc: Exception) -> Response:
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return problem_response(503, f"store: unavailable ({exc})")

    async def unexpected(request: Request, exc: Exception) -> Response:
        # A bug, not bad input: logged with its traceback, answered without one.
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return problem_response(500, "internal error (logged by the daemon)")

    app.add_exception_handler(Problem, problem)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(StrategyRefused, refused)
    app.add_exception_handler(DaemonTimeout, daemon_timeout)
    app.add_exception_handler(StoreUnavailable, store_down)
    app.add_exception_handler(Exception, unexpected)

"""The daemon's HTTP API (DESIGN §6): the routes assembled over one daemon port.

Every endpoint is a thin shell over :class:`~supervisor.api.port.ApiPort`;
the API decides nothing itself. Where things are:

=================  ===========================================================
``gate``           ``POST /v1/checks``
``breaker``        ``POST /v1/failures``, ``/v1/successes``, ``/v1/breaker/*``
``kill``           ``POST /v1/kill``, ``POST /v1/heartbeat``
``strategies``     ``GET /v1/strategies``, ``PUT``/``DELETE /v1/strategies/{id}``
``state``          ``GET /healthz``, ``/v1/state``, ``/v1/journal``
``schemas``        the OpenAPI models and request-body schemas
``security``       token, Host/Origin/content-type checks, body limits
``json_body``      bounded JSON parsing and field rules
``responses``      rendering and the error handlers
``serving``        uvicorn on a pre-bound socket; ``start`` (what ``run`` calls)
``token_file``     where the token comes from (env var, else a 0600 file)
=================  ===========================================================

Auth: with a token, every write (POST, PUT, DELETE) needs
``Authorization: Bearer <token>``. GETs stay open: they are read-only and a
monitoring probe must not need the trading secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from fastapi import FastAPI

from supervisor.api import breaker, gate, kill, state, strategies
from supervisor.api.port import ApiPort
from supervisor.api.responses import SafeJSONResponse, install_handlers
from supervisor.api.schemas import ErrorOut
from supervisor.api.security import (
    GuardMiddleware,
    RequestGuard,
    WriteGuard,
    check_bind,
    token_from_env,
)
from supervisor.api.serving import ServedApi, serve, start
from supervisor.version import package_version

__all__ = ["ServedApi", "check_bind", "create_app", "serve", "start", "token_from_env"]

_READ_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    403: {"model": ErrorOut, "description": "A cross-site request (foreign Origin)."},
    421: {"model": ErrorOut, "description": "The Host is not this API (DNS rebinding)."},
    422: {"model": ErrorOut, "description": "The request is malformed; detail names the field."},
    503: {"model": ErrorOut, "description": "The daemon could not answer (timeout, store down)."},
}
_BODY_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    400: {"model": ErrorOut, "description": "The body is not valid JSON."},
    **_READ_ERRORS,
}


def create_app(daemon: ApiPort, *, token: str | None, allowed_hosts: Sequence[str] = ()) -> FastAPI:
    """The API over ``daemon``; with a ``token`` every write needs it as a bearer token.

    ``allowed_hosts`` are DNS names (beside IP literals and ``localhost``)
    that may appear in ``Host``; the port is learnt when :func:`serve` binds,
    and until then every request is refused.
    """
    guarded = "Every POST, PUT and DELETE needs `Authorization: Bearer <token>`; GETs are open."
    app = FastAPI(
        title="risk-supervisor",
        version=package_version(),
        description=(
            "Pre-trade gate, circuit breaker, kill switch, strategies and state of the risk "
            "supervisor. "
            + (
                guarded
                if token
                else "No token is configured: the API must only listen on loopback."
            )
            + " POST and PUT send a JSON object (`{}` when there is nothing to say) as "
            "`application/json`, at most "
            "64 KiB; requests from other web sites are refused (Host and Origin checks)."
        ),
        default_response_class=SafeJSONResponse,
    )
    guard = RequestGuard(allowed_hosts=tuple(allowed_hosts))
    app.state.daemon = daemon
    app.state.guard = guard
    app.state.token = token
    install_handlers(app)
    app.add_middleware(GuardMiddleware, guard=guard)

    writes = WriteGuard.of(token)
    app.include_router(state.router(_READ_ERRORS))
    app.include_router(gate.router(writes, _BODY_ERRORS))
    app.include_router(breaker.router(writes, _BODY_ERRORS))
    app.include_router(kill.router(writes, _BODY_ERRORS))
    app.include_router(strategies.router(writes, _BODY_ERRORS, _READ_ERRORS))
    return app

"""The circuit breaker's inputs: failures and successes from the trader, operator actions.

Failures and successes are parsed by ``supervisor.json_codec`` as replay's
lines are, plus the API's own bounds: a kind the supervisor raises itself
(``stop_guard``, ``loss_limit``) is refused (DESIGN §4.2), an IB code is a
32-bit integer and a detail at most 2000 characters, since each is journaled.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from supervisor import json_codec
from supervisor.api.json_body import (
    MAX_DETAIL_CHARS,
    name_field,
    only_fields,
    read_object,
    text_field,
    whole_number,
)
from supervisor.api.port import Port
from supervisor.api.responses import Problem, SafeJSONResponse
from supervisor.api.schemas import (
    ADMIN_BODY,
    FAILURE_BODY,
    IB_CODE_RANGE,
    SUCCESS_BODY,
    AcceptedOut,
    AdminOut,
)
from supervisor.api.security import WriteGuard

__all__ = ["DEFAULT_OPERATOR", "router"]

DEFAULT_OPERATOR = "api"
"""The operator journaled when a request names none."""


def _accepted() -> Response:
    return SafeJSONResponse({"accepted": True}, status_code=202)


async def failure(request: Request, daemon: Port) -> Response:
    """Report a systemic failure to the circuit breaker (counted asynchronously)."""
    obj = await read_object(request, required=True)
    text_field(obj, "detail", default="", max_chars=MAX_DETAIL_CHARS, non_empty=False)
    if isinstance(obj.get("code"), int | float):  # bounded (and 201.0 as 201) before parsing
        obj["code"] = whole_number(obj, "code", *IB_CODE_RANGE)
    try:
        f = json_codec.failure(obj, daemon.clock())
    except json_codec.BadInput as exc:
        raise Problem(422, str(exc)) from None
    if f.kind.internal:
        raise Problem(422, f"kind: {f.kind.value} is raised by the supervisor only")
    await run_in_threadpool(daemon.failure, f.kind, f.code, f.detail)
    return _accepted()


async def success(request: Request, daemon: Port) -> Response:
    """Report a success (what closes a half-open breaker)."""
    obj = await read_object(request, required=True)
    text_field(obj, "detail", default="", max_chars=MAX_DETAIL_CHARS, non_empty=False)
    try:
        s = json_codec.success(obj, daemon.clock())
    except json_codec.BadInput as exc:
        raise Problem(422, str(exc)) from None
    await run_in_threadpool(daemon.success, s.detail)
    return _accepted()


async def operator_of(request: Request) -> str:
    """The operator of an admin body ``{"operator"?}`` (absent or null: ``api``)."""
    obj = await read_object(request, required=True)
    only_fields(obj, ("operator",))
    return name_field(obj, "operator", default=DEFAULT_OPERATOR)


async def force_open(request: Request, daemon: Port) -> Response:
    """Force the breaker open until reset (no timer)."""
    operator = await operator_of(request)
    state = await run_in_threadpool(daemon.force_open, operator)
    return SafeJSONResponse({"state": state.value})


async def reset(request: Request, daemon: Port) -> Response:
    """Close the breaker and clear its history, the day's trip count and a loss latch included."""
    operator = await operator_of(request)
    state = await run_in_threadpool(daemon.reset, operator)
    return SafeJSONResponse({"state": state.value})


def router(writes: WriteGuard, errors: dict[int | str, dict[str, Any]]) -> APIRouter:
    r = APIRouter(tags=["breaker"])
    common: dict[str, Any] = {
        "methods": ["POST"],
        "responses": {**errors, **writes.responses},
        "dependencies": list(writes.dependencies),
    }
    for path, endpoint, body in (
        ("/v1/failures", failure, FAILURE_BODY),
        ("/v1/successes", success, SUCCESS_BODY),
    ):
        r.add_api_route(
            path,
            endpoint,
            status_code=202,
            response_model=AcceptedOut,
            openapi_extra={"requestBody": body},
            **common,
        )
    for path, endpoint in (("/v1/breaker/force-open", force_open), ("/v1/breaker/reset", reset)):
        r.add_api_route(
            path,
            endpoint,
            response_model=AdminOut,
            openapi_extra={"requestBody": ADMIN_BODY},
            **common,
        )
    return r

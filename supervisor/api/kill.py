"""``POST /v1/kill`` and ``POST /v1/heartbeat``: the kill switch and the dead-man switch (§4.5).

A kill body is ``{"mode"?, "operator"?}``; no mode (or null) is ``halt``, an
unknown mode or an unknown field is a 422 — a typo must never silently turn
``flatten`` into ``halt``. The answer is the kill as the daemon recorded it,
with the flatten orders it claimed so far (``GET /v1/state`` follows them).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from actors.messages import KillMode
from supervisor.api.breaker import DEFAULT_OPERATOR
from supervisor.api.json_body import json_type, name_field, only_fields, read_object
from supervisor.api.port import Port
from supervisor.api.responses import Problem, SafeJSONResponse
from supervisor.api.schemas import HEARTBEAT_BODY, KILL_BODY, HeartbeatOut, KillOut
from supervisor.api.security import WriteGuard
from supervisor.core.facade import HeartbeatStatus, KillStatus

__all__ = ["heartbeat_out", "kill_out", "router"]


def kill_out(k: KillStatus) -> dict[str, Any]:
    return {
        "kill_id": k.kill_id,
        "t": k.t,
        "mode": k.mode.value,
        "cause": k.cause,
        "operator": k.operator,
        "breaker": k.breaker.value,
        "cancel": k.cancel,
        "orders": [
            {
                "position_id": o.position_id,
                "status": o.status,
                "order_id": o.order_id,
                "detail": o.detail,
            }
            for o in k.orders
        ],
    }


def heartbeat_out(h: HeartbeatStatus, now: float) -> dict[str, Any]:
    return {
        "timeout_s": h.timeout_s,
        "last_t": h.last_t,
        "deadline": h.deadline,
        "fired": h.fired,
        "age_s": None if h.last_t is None else max(0.0, now - h.last_t),
    }


def kill_mode(obj: dict[str, Any]) -> KillMode:
    mode = obj.get("mode")
    if mode is None:
        return KillMode.HALT
    if isinstance(mode, str):
        try:
            return KillMode(mode)
        except ValueError:
            pass
    allowed = ", ".join(repr(m.value) for m in KillMode)
    shown = repr(mode) if isinstance(mode, str) and len(mode) <= 40 else json_type(mode)
    raise Problem(422, f"mode: must be one of {allowed} (or absent: halt), got {shown}")


async def kill(request: Request, daemon: Port) -> Response:
    """The kill switch: ``halt`` (default), ``cancel`` or ``flatten`` (DESIGN §4.5).

    The breaker is OPEN and sticky when this answers; cancelling and
    flattening go on in the daemon, each step journaled.
    """
    obj = await read_object(request, required=True)
    only_fields(obj, ("mode", "operator"))
    mode = kill_mode(obj)
    operator = name_field(obj, "operator", default=DEFAULT_OPERATOR)
    status = await run_in_threadpool(daemon.kill, mode, operator)
    return SafeJSONResponse(kill_out(status))


async def heartbeat(request: Request, daemon: Port) -> Response:
    """The trader is alive: re-arms the dead-man switch (as every check does)."""
    obj = await read_object(request, required=True)
    only_fields(obj, ())
    status = await run_in_threadpool(daemon.heartbeat)
    return SafeJSONResponse(heartbeat_out(status, daemon.clock()))


def router(writes: WriteGuard, errors: dict[int | str, dict[str, Any]]) -> APIRouter:
    r = APIRouter(tags=["kill"])
    common: dict[str, Any] = {
        "methods": ["POST"],
        "responses": {**errors, **writes.responses},
        "dependencies": list(writes.dependencies),
    }
    r.add_api_route(
        "/v1/kill",
        kill,
        response_model=KillOut,
        openapi_extra={"requestBody": KILL_BODY},
        **common,
    )
    r.add_api_route(
        "/v1/heartbeat",
        heartbeat,
        response_model=HeartbeatOut,
        openapi_extra={"requestBody": HEARTBEAT_BODY},
        **common,
    )
    return r

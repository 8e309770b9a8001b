"""``POST /v1/checks``: the pre-trade gate.

The body goes, as parsed JSON, to ``DaemonPort.check``, which parses it with
the same ``supervisor.json_codec`` parser as ``replay``: a check posted here
and a check line in a replay file mean exactly the same thing. A malformed
*order* (no legs, quantity 0, a missing option field, a non-finite number) is
the gate's business and answered 200 with ``invalid_order``; only a body that
cannot be a check at all is refused with a 4xx.

**The id rule** (the same as replay's): a non-empty string, or an integer,
taken as its decimal digits (``7`` is the check ``"7"``). The API adds one
bound replay does not need: at most 200 characters (digits), since the id is
journaled and echoed.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from actors.messages import CheckAnswer
from supervisor import json_codec
from supervisor.api.json_body import MAX_NAME_CHARS, json_type, read_object
from supervisor.api.port import Port
from supervisor.api.responses import Problem, SafeJSONResponse
from supervisor.api.schemas import CHECK_BODY, CheckOut
from supervisor.api.security import WriteGuard

__all__ = ["check_out", "router"]


def _check_id(obj: dict[str, Any]) -> None:
    ident = obj.get("id")
    if isinstance(ident, int) and not isinstance(ident, bool):
        text = str(ident)
    elif isinstance(ident, str) and ident:
        text = ident
    else:
        raise Problem(
            422, f"id: required, a non-empty string or an integer; got {json_type(ident)}"
        )
    if len(text) > MAX_NAME_CHARS:
        raise Problem(422, f"id: at most {MAX_NAME_CHARS} characters, got {len(text)}")


def check_out(answer: CheckAnswer) -> dict[str, Any]:
    """The gate's answer as the API gives it: the replay line and the extras."""
    out = json_codec.check_line(answer)
    del out["type"]
    out["risk_reducing"] = answer.risk_reducing
    out["breaker_state"] = None if answer.breaker_state is None else answer.breaker_state.value
    out["detail"] = answer.detail
    return out


async def check(request: Request, daemon: Port) -> Response:
    """Ask the pre-trade gate about a proposed order.

    Always 200 with the gate's answer once the body is a JSON object with a
    usable id (a non-empty string, or an integer taken as its digits); a
    malformed order is denied with ``invalid_order``. The answer is journaled
    before it is returned.
    """
    obj = await read_object(request, required=True)
    _check_id(obj)
    try:
        answer = await run_in_threadpool(daemon.check, obj)
    except json_codec.BadInput as exc:
        raise Problem(422, str(exc)) from None
    return SafeJSONResponse(check_out(answer))


def router(writes: WriteGuard, errors: dict[int | str, dict[str, Any]]) -> APIRouter:
    r = APIRouter(tags=["gate"])
    r.add_api_route(
        "/v1/checks",
        check,
        methods=["POST"],
        response_model=CheckOut,
        responses={**errors, **writes.responses},
        openapi_extra={"requestBody": CHECK_BODY},
        dependencies=list(writes.dependencies),
    )
    return r

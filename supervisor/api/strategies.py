"""``/v1/strategies``: the trader declares its spreads, so each gets one stop on its net price.

``PUT /v1/strategies/{id}`` with ``{"legs": [...]}`` declares (or redeclares)
a strategy; each leg is ``{"con_id", "ratio"}`` or the contract's fields
(``symbol``, ``sec_type`` and for an option ``right``, ``strike``, ``expiry``,
``multiplier``) and ``ratio`` — a signed whole number, never 0. The API checks
the shape (422 naming the field); whether the daemon takes the strategy (one
underlying, a non-zero entry, no clash with a position id, DESIGN §3.1) is
the daemon's answer, a 422 with its reason when it refuses.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.responses import Response

from actors.messages import SecType
from supervisor import json_codec
from supervisor.api.json_body import (
    MAX_NAME_CHARS,
    json_type,
    only_fields,
    read_object,
    whole_number,
)
from supervisor.api.port import Port
from supervisor.api.responses import Problem, SafeJSONResponse
from supervisor.api.schemas import (
    MAX_CON_ID,
    MAX_RATIO,
    MAX_STRATEGY_LEGS,
    STRATEGY_BODY,
    DeletedOut,
    ErrorOut,
    StrategyOut,
)
from supervisor.api.security import WriteGuard
from supervisor.core.facade import StrategyLegSpec, StrategyStatus

__all__ = ["leg_specs", "router", "strategy_out"]

_STOCK_FIELDS = ("symbol", "sec_type", "ratio")
_OPTION_FIELDS = (*_STOCK_FIELDS, "right", "strike", "expiry", "multiplier")


class _AnyText(Convertor[str]):
    """A path segment run that may hold anything, "/" and newlines included.

    Starlette's ``path`` convertor stops at a newline, which would make such
    an id a 404 instead of the 422 it deserves.
    """

    regex = r"[\s\S]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("any_text", _AnyText())

StrategyId = Annotated[
    str,
    PathParam(
        min_length=1,
        max_length=MAX_NAME_CHARS,
        pattern=r"^[^\x00-\x1f\x7f-\x9f]+$",
        description="The strategy's id: no control characters (it names log and journal "
        "lines), may hold a '/'.",
    ),
]


def strategy_out(s: StrategyStatus) -> dict[str, Any]:
    legs = []
    for leg in s.legs:
        c = leg.contract
        fields: dict[str, Any] = (
            json_codec.contract_fields(c)
            if c is not None
            else dict.fromkeys(("symbol", "sec_type", "right", "strike", "expiry", "multiplier"))
        )
        legs.append({"position_id": leg.position_id, "ratio": leg.ratio, "qty": leg.qty, **fields})
    return {
        "id": s.id,
        "symbol": s.symbol,
        "state": s.state,
        "legs": legs,
        "entry": s.entry,
        "net_price": s.net_price,
        "stop": s.stop,
        "extreme": s.extreme,
        "active": s.active,
        "credit": s.credit,
        "detail": s.detail,
    }


def _whole(obj: dict[str, Any], name: str, lo: int, hi: int, where: str) -> int:
    v = whole_number(obj, name, lo, hi, where=where)
    if v is None:
        raise Problem(422, f"{where}{name}: required, an integer")
    return v


def _leg(obj: object, i: int) -> StrategyLegSpec:
    where = f"legs[{i}]."
    if not isinstance(obj, dict):
        raise Problem(422, f"legs[{i}]: must be an object, got {json_type(obj)}")
    ratio = _whole(obj, "ratio", -MAX_RATIO, MAX_RATIO, where)
    if ratio == 0:
        raise Problem(422, f"{where}ratio: must not be 0 (+ long, - short)")
    if "con_id" in obj:
        only_fields(obj, ("con_id", "ratio"), where)
        return StrategyLegSpec(ratio, con_id=_whole(obj, "con_id", 1, MAX_CON_ID, where))
    if "sec_type" not in obj and "symbol" not in obj:
        raise Problem(
            422, f"legs[{i}]: a con_id, or the contract's symbol and sec_type, is required"
        )
    option = obj.get("sec_type") == SecType.OPT.value
    only_fields(obj, _OPTION_FIELDS if option else _STOCK_FIELDS, where)
    try:
        contract = json_codec.contract(obj)
    except json_codec.BadInput as exc:
        raise Problem(422, f"{where}{exc}") from None
    if contract.expiry is not None:
        try:
            dt.date.fromisoformat(contract.expiry)
        except ValueError:
            raise Problem(422, f"{where}expiry: not a date, got {contract.expiry!r}") from None
    return StrategyLegSpec(ratio, contract=contract)


def leg_specs(obj: dict[str, Any]) -> list[StrategyLegSpec]:
    """The legs of a strategy body, or a 422 naming the field. Pure."""
    only_fields(obj, ("legs",))
    raw = obj.get("legs")
    if not isinstance(raw, list) or not raw:
        raise Problem(422, f"legs: required, a non-empty array; got {json_type(raw)}")
    if len(raw) > MAX_STRATEGY_LEGS:
        raise Problem(422, f"legs: at most {MAX_STRATEGY_LEGS} legs, got {len(raw)}")
    return [_leg(x, i) for i, x in enumerate(raw)]


def list_strategies(daemon: Port) -> Response:
    """Every declared strategy and its stop on the net price."""
    return SafeJSONResponse([strategy_out(s) for s in daemon.strategies()])


async def put_strategy(id: StrategyId, request: Request, daemon: Port) -> Response:
    """Declare or redeclare a strategy; its legs' own stops are off while it lives."""
    obj = await read_object(request, required=True)
    legs = leg_specs(obj)
    status = await run_in_threadpool(daemon.put_strategy, id, legs)
    return SafeJSONResponse(strategy_out(status))


async def delete_strategy(id: StrategyId, daemon: Port) -> Response:
    """Dissolve a strategy: its legs get their own stops back. 404 for an unknown id."""
    if not await run_in_threadpool(daemon.delete_strategy, id):
        raise Problem(404, f"id: no strategy {id!r}")
    return SafeJSONResponse({"id": id, "deleted": True})


def router(
    writes: WriteGuard, errors: dict[int | str, dict[str, Any]], reads: dict[int | str, Any]
) -> APIRouter:
    r = APIRouter(tags=["strategies"])
    r.add_api_route(
        "/v1/strategies",
        list_strategies,
        methods=["GET"],
        response_model=list[StrategyOut],
        responses=reads,
    )
    path = "/v1/strategies/{id:any_text}"
    r.add_api_route(
        path,
        put_strategy,
        methods=["PUT"],
        response_model=StrategyOut,
        responses={**errors, **writes.responses},
        openapi_extra={"requestBody": STRATEGY_BODY},
        dependencies=list(writes.dependencies),
    )
    not_found: dict[int | str, dict[str, Any]] = {
        404: {"model": ErrorOut, "description": "No strategy has this id."}
    }
    r.add_api_route(
        path,
        delete_strategy,
        methods=["DELETE"],
        response_model=DeletedOut,
        responses={**errors, **writes.responses, **not_found},
        dependencies=list(writes.dependencies),
    )
    return r

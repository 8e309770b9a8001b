"""``/v1/strategies``: declaring spreads over HTTP (DESIGN §3.1), fake and real."""

from __future__ import annotations

from typing import Any

import pytest
from api_harness import Harness

from actors.messages import Contract, Right, SecType
from supervisor.core.facade import StrategyLegSpec, StrategyLegStatus, StrategyStatus

pytestmark = pytest.mark.e2e

CALL_600 = {
    "symbol": "SPY", "sec_type": "OPT", "right": "C", "strike": 600.0, "expiry": "2026-06-19",
    "multiplier": 100,
}  # fmt: skip
CALL_610 = {**CALL_600, "strike": 610.0}
VERTICAL = {"legs": [{**CALL_600, "ratio": 1}, {**CALL_610, "ratio": -1}]}


@pytest.mark.needs("put_strategy", "strategies", "delete_strategy")
def test_declare_list_and_dissolve_a_strategy(api: Harness) -> None:
    r = api.http.put("/v1/strategies/spy-vertical", json=VERTICAL)
    assert r.status_code == 200, r.text
    s = r.json()
    assert s["id"] == "spy-vertical" and s["symbol"] == "SPY"
    assert [leg["ratio"] for leg in s["legs"]] == [1, -1]
    assert [leg["strike"] for leg in s["legs"]] == [600.0, 610.0]
    assert s["state"] in {"waiting", "live", "triggered", "ended", "refused"}
    assert [x["id"] for x in api.http.get("/v1/strategies").json()] == ["spy-vertical"]
    assert [x["id"] for x in api.http.get("/v1/state").json()["strategies"]] == ["spy-vertical"]

    r = api.http.delete("/v1/strategies/spy-vertical")
    assert r.status_code == 200 and r.json() == {"id": "spy-vertical", "deleted": True}
    assert api.http.get("/v1/strategies").json() == []
    r = api.http.delete("/v1/strategies/spy-vertical")
    assert r.status_code == 404 and r.json()["detail"].startswith("id")


def test_legs_reach_the_daemon_as_specs(fake_api: Harness) -> None:
    body = {"legs": [{**CALL_600, "ratio": 2}, {"con_id": 765432109, "ratio": -2},
                     {"symbol": "SPY", "sec_type": "STK", "ratio": -100}]}  # fmt: skip
    assert fake_api.http.put("/v1/strategies/s%2F1", json=body).status_code == 200
    name, (strategy_id, legs) = fake_api.fake.calls[-1]
    assert name == "put_strategy" and strategy_id == "s/1"
    assert legs == (
        StrategyLegSpec(
            2, contract=Contract("SPY", SecType.OPT, Right.CALL, 600.0, "2026-06-19", 100.0)
        ),
        StrategyLegSpec(-2, con_id=765432109),
        StrategyLegSpec(-100, contract=Contract("SPY", SecType.STK)),
    )


def _with_leg(**changes: Any) -> dict[str, Any]:
    leg = {**CALL_600, "ratio": 1, **changes}
    return {"legs": [{k: v for k, v in leg.items() if v is not ...}, {**CALL_610, "ratio": -1}]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "legs"),
        ({"legs": []}, "legs"),
        ({"legs": "x"}, "legs"),
        ({"legs": [{"con_id": i + 1, "ratio": 1} for i in range(33)]}, "legs"),
        ({**VERTICAL, "name": "x"}, "name"),
        ({"legs": [7]}, "legs[0]"),
        (_with_leg(ratio=0), "legs[0].ratio"),
        (_with_leg(ratio=1.5), "legs[0].ratio"),
        (_with_leg(ratio=True), "legs[0].ratio"),
        (_with_leg(ratio=10_001), "legs[0].ratio"),
        (_with_leg(ratio=...), "legs[0].ratio"),
        ({"legs": [{"con_id": 0, "ratio": 1}]}, "legs[0].con_id"),
        ({"legs": [{"con_id": 2**31, "ratio": 1}]}, "legs[0].con_id"),
        ({"legs": [{"con_id": "123", "ratio": 1}]}, "legs[0].con_id"),
        ({"legs": [{"con_id": 5, "ratio": 1, "symbol": "SPY"}]}, "legs[0].symbol"),
        ({"legs": [{"ratio": 1}]}, "legs[0]"),
        (_with_leg(strike=...), "legs[0].strike"),
        (_with_leg(strike=0), "legs[0].strike"),
        (_with_leg(expiry="2026-13-45"), "legs[0].expiry"),
        (_with_leg(expiry="soon"), "legs[0].expiry"),
        (_with_leg(right="X"), "legs[0].right"),
        (_with_leg(sec_type="FUT"), "legs[0]"),
        (_with_leg(symbol=""), "legs[0].symbol"),
        (_with_leg(greeks={}), "legs[0].greeks"),
        (
            {"legs": [{"symbol": "SPY", "sec_type": "STK", "ratio": 1, "strike": 5}]},
            "legs[0].strike",
        ),
    ],
)
def test_bad_strategy_bodies_are_422_naming_the_field(
    api: Harness, body: dict[str, Any], field: str
) -> None:
    r = api.http.put("/v1/strategies/s1", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith(field), r.text
    if api.kind == "fake":
        assert not [c for c, _ in api.fake.calls if c == "put_strategy"]


@pytest.mark.parametrize("token", [b"Infinity", b"NaN", b"-Infinity", b"1e400"])
def test_non_finite_contract_numbers_are_422(api: Harness, token: bytes) -> None:
    leg = b'{"symbol": "SPY", "sec_type": "OPT", "right": "C", "expiry": "2026-06-19", '
    body = b'{"legs": [' + leg + b'"multiplier": 100, "ratio": 1, "strike": ' + token + b"}]}"
    r = api.http.put(
        "/v1/strategies/s1", content=body, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422 and r.json()["detail"].startswith("legs[0].strike"), r.text


@pytest.mark.parametrize("bad", ["s" * 201, "a%0Ab", "tab%09", "nul%00", "del%7F", "c1%C2%85"])
def test_ids_are_bounded_and_without_control_characters(api: Harness, bad: str) -> None:
    r = api.http.put(f"/v1/strategies/{bad}", json=VERTICAL)
    assert r.status_code == 422 and r.json()["detail"].startswith("path.id"), r.text
    r = api.http.delete(f"/v1/strategies/{bad}")
    assert r.status_code == 422 and r.json()["detail"].startswith("path.id"), r.text


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"legs": [{"symbol": "AAPL", "sec_type": "STK", "ratio": 1}]}, "position id"),
        ({"legs": [{**CALL_600, "ratio": 1}, {"symbol": "QQQ", "sec_type": "STK", "ratio": -1}]},
         "one underlying"),
    ],
)  # fmt: skip
def test_a_refused_strategy_is_422_with_the_daemons_reason(
    fake_api: Harness, body: dict[str, Any], reason: str
) -> None:
    fake_api.hold("AAPL-STK", "AAPL", 100.0)
    strategy_id = "AAPL-STK" if reason == "position id" else "mixed"
    r = fake_api.http.put(f"/v1/strategies/{strategy_id}", json=body)
    assert r.status_code == 422 and reason in r.json()["detail"], r.text
    assert fake_api.http.get("/v1/strategies").json() == []


def test_strategies_show_their_stop_and_legs(fake_api: Harness) -> None:
    leg = Contract("SPY", SecType.OPT, Right.PUT, 590.0, "2026-06-19", 100.0)
    fake_api.fake.with_strategy(
        StrategyStatus(
            "spy-put-spread", "SPY", "live",
            (StrategyLegStatus("SPY-P590", leg, -1, -3.0), StrategyLegStatus(None, None, 1, None)),
            entry=1.25, net_price=1.1, stop=1.3, extreme=1.05, active=True, credit=True,
        )
    )  # fmt: skip
    [s] = fake_api.http.get("/v1/strategies").json()
    assert s == {
        "id": "spy-put-spread", "symbol": "SPY", "state": "live",
        "legs": [
            {"position_id": "SPY-P590", "ratio": -1, "qty": -3.0, "symbol": "SPY",
             "sec_type": "OPT", "right": "P", "strike": 590.0, "expiry": "2026-06-19",
             "multiplier": 100.0},
            {"position_id": None, "ratio": 1, "qty": None, "symbol": None, "sec_type": None,
             "right": None, "strike": None, "expiry": None, "multiplier": None},
        ],
        "entry": 1.25, "net_price": 1.1, "stop": 1.3, "extreme": 1.05, "active": True,
        "credit": True, "detail": "",
    }  # fmt: skip
    assert fake_api.http.get("/v1/state").json()["strategies"] == [s]

"""``POST /v1/checks`` over HTTP, against the fake and the real daemon.

The verdicts themselves are the gate's (tested with the actors); here: the
body reaches the gate exactly as replay's parser reads it, the answer and its
journal row, and every body that cannot be a check is a 4xx naming the field.
"""

from __future__ import annotations

import json
import socket

import pytest
from api_harness import Harness, raw_post, stock

pytestmark = pytest.mark.e2e

GATE_TIMEOUT = "the gate did not answer in time"  # Daemon.check's answer when it hears nothing
JSON = {"Content-Type": "application/json"}


def test_check_allowed_and_denied_with_exact_reasons(api: Harness) -> None:
    api.hold("AAPL-STK", "AAPL", 100.0)
    ok = api.post("/v1/checks", {"id": "buy-300", "legs": [stock(300)]})
    assert ok.status_code == 200
    body = ok.json()
    assert body["id"] == "buy-300" and body["allowed"] is True and body["reasons"] == []
    assert body["risk_reducing"] is False and body["breaker_state"] == "closed"
    assert isinstance(body["t"], float) and isinstance(body["detail"], str)
    # The verdict is journaled before the answer: no waiting here.
    [row] = api.http.get("/v1/journal", params={"type": "check"}).json()
    assert row["payload"]["id"] == "buy-300" and row["payload"]["allowed"] is True

    no = api.post("/v1/checks", {"id": "buy-450", "legs": [stock(450)]}).json()
    assert no["allowed"] is False
    assert no["reasons"] == [{"code": "max_portfolio_delta", "value": 550.0, "limit": 500.0}]
    rows = api.http.get("/v1/journal", params={"type": "check", "since": row["seq"]}).json()
    assert [r["payload"]["id"] for r in rows] == ["buy-450"]
    assert rows[0]["payload"]["reasons"] == no["reasons"]


def test_malformed_orders_are_invalid_order_answers(api: Harness) -> None:
    option_without_strike = {
        "symbol": "SPY", "sec_type": "OPT", "qty": 1, "price": 2.0, "right": "C",
        "expiry": "2030-01-18", "multiplier": 100,
    }  # fmt: skip
    for legs in ([], [stock(0)], [option_without_strike], "nope", [{"sec_type": "STK"}]):
        r = api.post("/v1/checks", {"id": "bad", "legs": legs})
        assert r.status_code == 200, r.text
        assert r.json()["allowed"] is False
        assert r.json()["reasons"] == [{"code": "invalid_order", "value": None, "limit": None}]
        assert r.json()["detail"]


def test_an_integer_id_is_its_digits_as_in_replay(api: Harness) -> None:
    """One id rule: what ``json_codec.check`` accepts for a replay line, the API accepts."""
    for ident, expected in ((7, "7"), (-12, "-12"), (10**150, str(10**150))):
        r = api.post("/v1/checks", {"id": ident, "legs": [stock(1)]})
        assert r.status_code == 200, r.text
        assert r.json()["id"] == expected
    journaled = api.http.get("/v1/journal", params={"type": "check"}).json()
    assert [row["payload"]["id"] for row in journaled] == ["7", "-12", str(10**150)]


@pytest.mark.parametrize(
    ("content", "status", "names"),
    [
        (b"{nope", 400, "body"),
        (b"", 422, "body"),
        (b"[1, 2]", 422, "body"),
        (b'{"legs": []}', 422, "id"),
        (b'{"id": 7.5, "legs": []}', 422, "id"),
        (b'{"id": true, "legs": []}', 422, "id"),
        (b'{"id": "", "legs": []}', 422, "id"),
        (b'{"id": "x\\ud800", "legs": []}', 422, "id"),
        (b'{"id": "' + b"x" * 201 + b'", "legs": []}', 422, "id"),
        (b'{"id": ' + b"9" * 201 + b', "legs": []}', 422, "body"),
        (b'{"id": "x", "legs": []}\xff', 400, "body"),
        (b"[" * 50_000 + b"]" * 50_000, 413, "body"),
    ],
)
def test_unusable_check_bodies_are_4xx_naming_the_field(
    api: Harness, content: bytes, status: int, names: str
) -> None:
    r = api.http.post("/v1/checks", content=content, headers=JSON)
    assert r.status_code == status, r.text
    assert r.json()["detail"].startswith(names)


def _leg_with(field: str, value: str) -> bytes:
    option = (
        '{"symbol": "SPY", "sec_type": "OPT", "qty": 1, "price": 2.0, "right": "C", '
        '"strike": 600, "expiry": "2030-01-18", "multiplier": 100, '
        '"greeks": {"delta": 0.5, "gamma": 0.01, "vega": 0.1, "theta": -0.1, "iv": 0.2}}'
    )
    obj = json.loads(option)
    text = json.dumps(obj)
    if field.startswith("greeks."):
        key = field.split(".")[1]
        return text.replace(
            f'"{key}": {json.dumps(obj["greeks"][key])}', f'"{key}": {value}'
        ).encode()
    return text.replace(f'"{field}": {json.dumps(obj[field])}', f'"{field}": {value}').encode()


@pytest.mark.parametrize(
    "field", ["qty", "price", "strike", "multiplier", "greeks.delta", "greeks.iv"]
)
def test_huge_integers_in_a_check_are_a_4xx_and_keep_the_connection(
    api: Harness, field: str
) -> None:
    """A 401-digit number was a 500 (float overflow) and a dropped keep-alive connection."""
    huge = "1" * 401
    body = b'{"id": "huge", "legs": [' + _leg_with(field, huge) + b"]}"
    assert huge.encode() in body
    r = api.http.post("/v1/checks", content=body, headers=JSON)
    assert r.status_code == 422, r.text
    assert "401 digits" in r.json()["detail"]
    # Just under the cap it is a number like any other: an answer, never a 500.
    body = b'{"id": "big", "legs": [' + _leg_with(field, "9" * 200) + b"]}"
    r = api.http.post("/v1/checks", content=body, headers=JSON)
    assert r.status_code == 200, r.text
    assert isinstance(r.json()["allowed"], bool) and r.json()["detail"] != GATE_TIMEOUT
    assert api.http.get("/healthz").status_code == 200


def test_a_refused_huge_number_keeps_the_keep_alive_connection(api: Harness) -> None:
    """Before, the 500 closed the connection: the trader's next check had to reconnect."""
    huge = b'{"id": "x", "legs": [{"symbol": "A", "sec_type": "STK", "qty": ' + b"1" * 401 + b"}]}"
    with socket.create_connection(("127.0.0.1", api.served.port), timeout=5.0) as sock:
        assert raw_post(sock, api.served.port, "/v1/checks", huge) == 422
        ok = b'{"id": "y", "legs": [{"symbol": "A", "sec_type": "STK", "qty": 1, "price": 1}]}'
        assert raw_post(sock, api.served.port, "/v1/checks", ok) == 200


def test_huge_quantities_do_not_crash_the_gate(api: Harness) -> None:
    """Finite but absurd numbers are an order to deny, not a way to stop the daemon."""
    body = {"id": "huge", "legs": [stock(1e308, price=1.0), stock(1e308, price=1.0)]}
    for _ in range(5):
        answer = api.post("/v1/checks", body).json()
        assert answer["allowed"] is False
        assert answer["detail"] != GATE_TIMEOUT
    assert api.http.get("/healthz").json()["status"] == "ok"

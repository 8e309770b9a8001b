"""Failures, successes and operator actions on the breaker, over HTTP, fake and real."""

from __future__ import annotations

import pytest
from api_harness import Harness, stock, wait_until

pytestmark = pytest.mark.e2e


def test_failures_open_the_breaker_entries_denied_risk_reducing_allowed(api: Harness) -> None:
    api.hold("AAPL-STK", "AAPL", 100.0)
    for i in range(5):
        r = api.post("/v1/failures", {"kind": "order_rejected", "code": 201, "detail": f"#{i}"})
        assert r.status_code == 202 and r.json() == {"accepted": True}
    # Failures are counted asynchronously (202): wait for the breaker to act.
    wait_until(lambda: api.breaker_state() == "open")

    entry = api.post("/v1/checks", {"id": "more", "legs": [stock(10)]}).json()
    assert entry["allowed"] is False and entry["breaker_state"] == "open"
    assert entry["reasons"] == [{"code": "breaker_open", "value": None, "limit": None}]
    exit_ = api.post("/v1/checks", {"id": "less", "legs": [stock(-50)]}).json()
    assert exit_["allowed"] is True and exit_["risk_reducing"] is True
    assert exit_["reasons"] == []

    failures = wait_until(
        lambda: (
            len(rows := api.http.get("/v1/journal", params={"type": "failure"}).json()) == 5
            and rows
        )
    )
    assert [f["payload"]["detail"] for f in failures] == [f"#{i}" for i in range(5)]
    transitions = api.http.get("/v1/journal", params={"type": "breaker"}).json()
    assert transitions[-1]["payload"]["to"] == "open"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "meteor"}, "kind"),
        ({}, "kind"),
        ({"kind": "other", "code": "x"}, "code"),
        ({"kind": "other", "code": 2**31}, "code"),
        ({"kind": "other", "code": -(2**31) - 1}, "code"),
        ({"kind": "other", "code": 10**150}, "code"),
        ({"kind": "other", "detail": 3}, "detail"),
        ({"kind": "other", "detail": "x" * 2001}, "detail"),
        # Raised by the supervisor only (DESIGN §4.2, §4.3).
        ({"kind": "stop_guard"}, "kind"),
        ({"kind": "loss_limit"}, "kind"),
    ],
)
def test_bad_failure_reports_are_422_naming_the_field(
    api: Harness, body: dict[str, object], field: str
) -> None:
    r = api.post("/v1/failures", body)
    assert r.status_code == 422 and r.json()["detail"].startswith(field), r.text
    assert api.http.get("/v1/journal", params={"type": "failure"}).json() == []


def test_failure_code_bounds_are_ib_codes(api: Harness) -> None:
    for code in (2**31 - 1, -(2**31), None, 0):
        assert api.post("/v1/failures", {"kind": "data_feed", "code": code}).status_code == 202


def test_successes_are_accepted_with_an_empty_object(api: Harness) -> None:
    assert api.post("/v1/successes", {}).status_code == 202
    r = api.post("/v1/successes", {"detail": "order 7 filled"})
    assert r.status_code == 202 and r.json() == {"accepted": True}
    assert api.breaker_state() == "closed"  # a success in CLOSED changes nothing
    for bad in ({"detail": 1}, {"detail": "x" * 2001}):
        r = api.post("/v1/successes", bad)
        assert r.status_code == 422 and r.json()["detail"].startswith("detail")


def test_force_open_and_reset(api: Harness) -> None:
    r = api.post("/v1/breaker/force-open", {"operator": "alice"})
    assert r.status_code == 200 and r.json() == {"state": "open"}
    # The answer means it: the very next check already sees the breaker open.
    denied = api.post("/v1/checks", {"id": "a", "legs": [stock(1)]}).json()
    assert denied["reasons"] == [{"code": "breaker_open", "value": None, "limit": None}]
    assert api.breaker_state() == "open"

    r = api.post("/v1/breaker/reset", {"operator": None})
    assert r.status_code == 200 and r.json() == {"state": "closed"}
    assert api.post("/v1/checks", {"id": "b", "legs": [stock(1)]}).json()["allowed"]
    admin = api.http.get("/v1/journal", params={"type": "admin"}).json()
    assert [(a["payload"]["action"], a["payload"]["operator"]) for a in admin] == [
        ("force_open", "alice"),
        ("reset", "api"),
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"operator": ""}, "operator"),
        ({"operator": 5}, "operator"),
        ({"operator": "o" * 201}, "operator"),
        ({"operatr": "alice"}, "operatr"),
    ],
)
def test_bad_operator_bodies_are_422_and_change_nothing(
    api: Harness, body: dict[str, object], field: str
) -> None:
    for path in ("/v1/breaker/force-open", "/v1/breaker/reset"):
        r = api.post(path, body)
        assert r.status_code == 422 and r.json()["detail"].startswith(field), r.text
    assert api.breaker_state() == "closed"
    assert api.http.get("/v1/journal", params={"type": "admin"}).json() == []

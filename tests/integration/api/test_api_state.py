"""The read side over HTTP: ``/healthz``, ``/v1/state``, ``/v1/journal``; the OpenAPI document."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from api_harness import TOKEN, Harness, harness, stock, wait_until

from actors.messages import BreakerState, KillMode
from supervisor.core.facade import DaemonTimeout, KillOrderStatus, KillStatus
from supervisor.store.sqlite_store import StoreUnavailable

pytestmark = pytest.mark.e2e

AAPL = "AAPL-STK"
STOP_FIELDS = {
    "id", "symbol", "sec_type", "right", "strike", "expiry", "multiplier", "qty",
    "entry_price", "active", "extreme", "stop", "breaches", "triggered", "trigger_id",
    "ignored_quotes", "strategy", "state",
}  # fmt: skip


def test_healthz_reports_breaker_store_and_ib(api: Harness) -> None:
    r = api.http.get("/healthz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["breaker"] == "closed" and body["store"] == "ok"
    assert set(body) == {"status", "breaker", "store", "ib", "detail"}
    api.post("/v1/breaker/force-open", {"operator": "alice"})
    assert api.http.get("/healthz").json()["breaker"] == "open"


def test_healthz_reports_what_the_daemon_says(fake_api: Harness) -> None:
    fake_api.fake.store, fake_api.fake.ib = "unavailable", "disconnected"
    assert fake_api.http.get("/healthz").json() == {
        "status": "ok", "breaker": "closed", "store": "unavailable", "ib": "disconnected",
        "detail": "store",
    }  # fmt: skip


def test_state_shows_breaker_portfolio_and_stops(api: Harness) -> None:
    api.hold(AAPL, "AAPL", 100.0)
    body = api.http.get("/v1/state").json()
    assert set(body) == {
        "t", "breaker", "portfolio", "positions", "money", "heartbeat", "kill", "strategies",
    }  # fmt: skip
    assert body["breaker"]["state"] == "closed" and body["breaker"]["snapshot"]["trips"] == 0
    pf = body["portfolio"]
    assert pf["delta"] == 100.0 and pf["net_liquidation"] == 1e6
    assert "beta_weighted_delta" in pf
    assert pf["limits"] == [
        {"limit": "max_portfolio_delta", "value": 500.0, "usage": 100.0, "utilization": 0.2}
    ]
    [row] = pf["by_underlying"]
    assert row["symbol"] == "AAPL" and row["positions"] == 1 and row["delta"] == 100.0
    [holding] = pf["holdings"]
    assert holding["id"] == AAPL and holding["qty"] == 100.0
    [pos] = body["positions"]
    assert set(pos) == STOP_FIELDS
    assert pos["id"] == AAPL and pos["symbol"] == "AAPL" and pos["sec_type"] == "STK"
    assert pos["qty"] == 100.0 and pos["entry_price"] == 150.0
    assert pos["active"] is False and pos["triggered"] is False
    assert body["kill"] is None and body["strategies"] == []
    assert body["heartbeat"]["fired"] is False
    assert body["money"]["loss_latched"] is False


def test_state_shows_money_kill_and_beta_weighted_delta(fake_api: Harness) -> None:
    fake = fake_api.fake
    fake.with_money(
        daily_pnl=-1200.0, pnl_t=fake.clock() - 1, nlv_reported=1e6, nlv_estimate=998_800.0,
        high_water=1_001_000.0, loss_latched=True,
    )  # fmt: skip
    fake.beta_weighted_delta = 42.5
    fake.with_kill(
        KillStatus(
            "kill-9", fake.clock(), KillMode.FLATTEN, "heartbeat_lost", "heartbeat",
            BreakerState.OPEN, "confirmed",
            (
                KillOrderStatus("SPY-C600", "placed", 41),
                KillOrderStatus("AAPL-STK", "error", None, "no quote"),
            ),
        )
    )  # fmt: skip
    body = fake_api.http.get("/v1/state").json()
    assert body["money"] == {
        "daily_pnl": -1200.0, "unrealized_pnl": None, "realized_pnl": None,
        "pnl_t": fake.clock() - 1, "nlv_reported": 1e6, "nlv_reported_t": None,
        "nlv_estimate": 998_800.0, "high_water": 1_001_000.0, "loss_latched": True,
    }  # fmt: skip
    assert body["portfolio"]["beta_weighted_delta"] == 42.5
    assert body["kill"] == {
        "kill_id": "kill-9", "t": fake.clock(), "mode": "flatten", "cause": "heartbeat_lost",
        "operator": "heartbeat", "breaker": "open", "cancel": "confirmed",
        "orders": [
            {"position_id": "SPY-C600", "status": "placed", "order_id": 41, "detail": ""},
            {"position_id": "AAPL-STK", "status": "error", "order_id": None, "detail": "no quote"},
        ],
    }  # fmt: skip


def test_non_finite_state_values_render_as_null(fake_api: Harness) -> None:
    fake_api.fake.with_money(daily_pnl=float("nan"), nlv_estimate=float("inf"))
    r = fake_api.http.get("/v1/state")
    assert r.status_code == 200
    assert r.json()["money"]["daily_pnl"] is None and r.json()["money"]["nlv_estimate"] is None


@pytest.mark.parametrize(
    ("error", "detail"),
    [
        (DaemonTimeout("breaker"), "did not answer"),
        (StoreUnavailable("append", "disk full", "SQLITE_FULL"), "store"),
    ],
)
def test_daemon_trouble_is_503_not_500(fake_api: Harness, error: Exception, detail: str) -> None:
    fake_api.fake.fail_with = error
    for method, path in (
        ("GET", "/healthz"), ("GET", "/v1/state"), ("GET", "/v1/journal"),
        ("GET", "/v1/strategies"), ("POST", "/v1/kill"), ("POST", "/v1/heartbeat"),
        ("POST", "/v1/checks"), ("POST", "/v1/breaker/reset"),
    ):  # fmt: skip
        body = {"id": "x", "legs": []} if path == "/v1/checks" else {}
        r = fake_api.http.request(method, path, json=body if method == "POST" else None)
        assert r.status_code == 503, (path, r.text)
        assert detail in r.json()["detail"]
    fake_api.fake.fail_with = None
    assert fake_api.http.get("/healthz").status_code == 200


def test_a_bug_is_a_json_500_that_keeps_the_connection(fake_api: Harness) -> None:
    fake_api.fake.fail_with = ZeroDivisionError("a bug")
    r = fake_api.http.get("/v1/state")
    assert r.status_code == 500 and r.json() == {"detail": "internal error (logged by the daemon)"}
    fake_api.fake.fail_with = None
    assert fake_api.http.get("/v1/state").status_code == 200


def test_journal_filters_and_bounds(api: Harness) -> None:
    api.hold(AAPL, "AAPL", 100.0)
    for i in range(3):
        api.tick()
        api.post("/v1/checks", {"id": f"c{i}", "legs": [stock(1)]})
    api.post("/v1/breaker/force-open", {"operator": "alice"})
    everything = api.http.get("/v1/journal", params={"limit": 10000}).json()
    seqs = [r["seq"] for r in everything]
    assert seqs == sorted(seqs) and {"check", "admin"} <= {r["kind"] for r in everything}
    checks = api.http.get("/v1/journal", params={"type": "check"}).json()
    assert [c["payload"]["id"] for c in checks] == ["c0", "c1", "c2"]
    page = api.http.get(
        "/v1/journal", params={"type": "check", "since": checks[0]["seq"], "limit": 1}
    )
    assert [c["payload"]["id"] for c in page.json()] == ["c1"]
    t_second = checks[1]["t"]
    window = api.http.get("/v1/journal", params={"type": "check", "from": t_second}).json()
    assert [c["payload"]["id"] for c in window] == ["c1", "c2"]
    before = api.http.get("/v1/journal", params={"type": "check", "until": t_second}).json()
    assert [c["payload"]["id"] for c in before] == ["c0"]
    if api.kind == "fake":  # today's store filters one kind at a time
        both = api.http.get("/v1/journal", params=[("type", "check"), ("type", "admin")])
        assert [r["kind"] for r in both.json()] == ["check"] * 3 + ["admin"]
    assert len(api.http.get("/v1/journal").json()) <= 100  # default limit

    for params, field in (
        ({"limit": 0}, "query.limit"),
        ({"limit": 10001}, "query.limit"),
        ({"limit": "x"}, "query.limit"),
        ({"since": -1}, "query.since"),
        ({"since": 2**63}, "query.since"),
        ({"type": "nope"}, "query.type"),
        ({"from": "nan"}, "query.from"),
        ({"position": "p" * 201}, "query.position"),
    ):
        r = api.http.get("/v1/journal", params=params)
        assert r.status_code == 422 and r.json()["detail"].startswith(field), r.text


def test_journal_of_a_position(api: Harness) -> None:
    if api.kind == "fake":
        api.fake.note("position", {"qty": 100.0}, AAPL)
        api.fake.note("check", {"id": "x"})
    else:
        api.hold(AAPL, "AAPL", 100.0)
        api.post("/v1/checks", {"id": "x", "legs": [stock(1)]})
    rows = wait_until(lambda: api.http.get("/v1/journal", params={"position": AAPL}).json())
    assert {r["position_id"] for r in rows} == {AAPL}


def test_journal_without_a_store_is_503(fake_api: Harness) -> None:
    fake_api.fake.store = "none"
    r = fake_api.http.get("/v1/journal")
    assert r.status_code == 503 and r.json()["detail"].startswith("journal")


def test_openapi_documents_every_endpoint_body_and_auth(fake_api: Harness, tmp_path: Path) -> None:
    doc = httpx.get(fake_api.url + "/openapi.json").json()
    assert set(doc["paths"]) == {
        "/healthz", "/v1/state", "/v1/checks", "/v1/failures", "/v1/successes",
        "/v1/breaker/force-open", "/v1/breaker/reset", "/v1/journal", "/v1/kill",
        "/v1/heartbeat", "/v1/strategies", "/v1/strategies/{id}",
    }  # fmt: skip
    body = doc["paths"]["/v1/checks"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["required"] == ["id", "legs"] and body["example"]["legs"]
    kill = doc["paths"]["/v1/kill"]["post"]["requestBody"]["content"]["application/json"]
    assert kill["schema"]["properties"]["mode"]["anyOf"][0]["enum"] == ["halt", "cancel", "flatten"]
    put = doc["paths"]["/v1/strategies/{id}"]["put"]["requestBody"]["content"]["application/json"]
    assert put["schema"]["required"] == ["legs"]
    state = doc["components"]["schemas"]["StateOut"]["properties"]
    assert {"money", "heartbeat", "kill", "strategies"} <= set(state)
    assert "beta_weighted_delta" in doc["components"]["schemas"]["PortfolioOut"]["properties"]
    for path, method in (("/v1/checks", "post"), ("/v1/strategies/{id}", "put")):
        assert "security" not in doc["paths"][path][method]
        assert {"413", "415"} <= set(doc["paths"][path][method]["responses"])
    with harness("fake", tmp_path, token=TOKEN) as guarded:
        secured = httpx.get(guarded.url + "/openapi.json").json()
    for path, method in (
        ("/v1/checks", "post"), ("/v1/kill", "post"), ("/v1/heartbeat", "post"),
        ("/v1/strategies/{id}", "put"), ("/v1/strategies/{id}", "delete"),
    ):  # fmt: skip
        assert "security" in secured["paths"][path][method], path
        assert "401" in secured["paths"][path][method]["responses"]
    for path in ("/v1/state", "/v1/strategies", "/healthz", "/v1/journal"):
        assert "security" not in secured["paths"][path]["get"]

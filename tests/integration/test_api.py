"""The HTTP API, its client and ``status`` against a live daemon on a real uvicorn.

Every test here talks HTTP to a :class:`Daemon` with a real SQLite store,
served by uvicorn on 127.0.0.1 port 0, and closes both in its fixtures. The
fuzz test drives schemathesis from the app's own OpenAPI document: no 5xx,
every response conforms to the documented schema and status codes, invalid
input is refused (except in ``/v1/checks``, where a malformed *order* is the
gate's ``invalid_order`` answer, per DESIGN §4) and valid input accepted.
"""

from __future__ import annotations

import io
import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pykka
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from actors.messages import Contract, FailureKind, Leg, PositionUpdate, Quote, SecType
from supervisor.api.app import ServedApi, check_bind, create_app, serve, token_from_env
from supervisor.client import RiskClient, RiskClientError
from supervisor.commands.status import run_status
from supervisor.config import ApiConfig, Listen, parse
from supervisor.core.daemon import Daemon
from supervisor.store.sqlite_store import Store

pytestmark = pytest.mark.e2e

TOKEN = "s3cret-token"
LOOPBACK = Listen("127.0.0.1", 0)
AAPL = "AAPL-STK"


def stock(qty: float, price: float = 150.0, symbol: str = "AAPL") -> dict[str, Any]:
    return {"symbol": symbol, "sec_type": "STK", "qty": qty, "price": price}


def wait_until(what: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


# ------------------------------------------------------------------ fixtures


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    cfg = parse({"limits": {"max_portfolio_delta": 500.0}, "account": {"net_liquidation": 1e6}})
    store = Store(tmp_path / "s.sqlite")
    d = Daemon(cfg, store=store)
    d.start()
    yield d
    d.stop()
    store.close()


@pytest.fixture
def served(daemon: Daemon) -> Iterator[ServedApi]:
    api = serve(create_app(daemon, token=None), LOOPBACK)
    yield api
    api.close()


@pytest.fixture
def http(served: ServedApi) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=5.0) as c:
        yield c


@pytest.fixture
def guarded(daemon: Daemon) -> Iterator[ServedApi]:
    api = serve(create_app(daemon, token=TOKEN), LOOPBACK)
    yield api
    api.close()


def hold_aapl(d: Daemon, http: httpx.Client, qty: float = 100.0) -> None:
    """A stock position the gate knows about (delta = qty), with a quote."""
    now = time.time()
    d.position(PositionUpdate(now, AAPL, Contract("AAPL", SecType.STK), qty, 150.0))
    d.quote(Quote(now, AAPL, 149.9, 150.1, 150.0))
    wait_until(lambda: http.get("/v1/state").json()["portfolio"]["delta"] == qty)


def breaker_state(http: httpx.Client) -> str:
    state: str = http.get("/v1/state").json()["breaker"]["state"]
    return state


# ------------------------------------------------------------ read endpoints


def test_healthz_reports_breaker_store_and_ib(served: ServedApi, http: httpx.Client) -> None:
    r = http.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "breaker": "closed", "store": "ok", "ib": None}
    served.app.state.ib_status = lambda: "connected"
    assert http.get("/healthz").json()["ib"] == "connected"


def test_state_shows_breaker_portfolio_and_stops(daemon: Daemon, http: httpx.Client) -> None:
    hold_aapl(daemon, http)
    body = wait_until(lambda: (b := http.get("/v1/state").json())["positions"] and b)
    assert body["breaker"]["state"] == "closed"
    assert body["breaker"]["snapshot"]["trips"] == 0
    pf = body["portfolio"]
    assert pf["delta"] == 100.0
    assert pf["net_liquidation"] == 1e6
    assert pf["limits"] == [
        {"limit": "max_portfolio_delta", "value": 500.0, "usage": 100.0, "utilization": 0.2}
    ]
    [row] = pf["by_underlying"]
    assert row["symbol"] == "AAPL" and row["positions"] == 1 and row["delta"] == 100.0
    [holding] = pf["holdings"]
    assert holding["id"] == AAPL and holding["qty"] == 100.0
    [pos] = body["positions"]
    assert pos["id"] == AAPL
    assert pos["symbol"] == "AAPL" and pos["sec_type"] == "STK" and pos["right"] is None
    assert pos["qty"] == 100.0 and pos["entry_price"] == 150.0
    assert set(pos) == {
        "id", "symbol", "sec_type", "right", "strike", "expiry", "multiplier", "qty",
        "entry_price", "active", "extreme", "stop", "breaches", "triggered", "trigger_id",
        "ignored_quotes",
    }  # fmt: skip
    assert pos["active"] is False and pos["triggered"] is False


def test_daemon_trouble_is_503_not_500(daemon: Daemon, http: httpx.Client) -> None:
    def timeout() -> Any:
        raise pykka.Timeout("breaker did not answer")

    daemon.breaker_view = timeout  # type: ignore[method-assign]
    for path in ("/healthz", "/v1/state"):
        r = http.get(path)
        assert r.status_code == 503
        assert "did not answer" in r.json()["detail"]


def test_openapi_documents_bodies_and_auth(served: ServedApi, guarded: ServedApi) -> None:
    doc = httpx.get(served.url + "/openapi.json").json()
    assert set(doc["paths"]) == {
        "/healthz", "/v1/state", "/v1/checks", "/v1/failures", "/v1/successes",
        "/v1/breaker/force-open", "/v1/breaker/reset", "/v1/journal",
    }  # fmt: skip
    body = doc["paths"]["/v1/checks"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["required"] == ["id", "legs"] and body["example"]["legs"]
    assert "security" not in doc["paths"]["/v1/checks"]["post"]
    secured = httpx.get(guarded.url + "/openapi.json").json()
    assert "security" in secured["paths"]["/v1/checks"]["post"]
    assert "security" not in secured["paths"]["/v1/state"]["get"]
    assert "401" in secured["paths"]["/v1/failures"]["post"]["responses"]


# --------------------------------------------------------------------- gate


def test_check_allowed_and_denied_with_exact_reasons(daemon: Daemon, http: httpx.Client) -> None:
    hold_aapl(daemon, http)
    ok = http.post("/v1/checks", json={"id": "buy-300", "legs": [stock(300)]})
    assert ok.status_code == 200
    body = ok.json()
    assert body["id"] == "buy-300" and body["allowed"] is True and body["reasons"] == []
    assert body["risk_reducing"] is False and body["breaker_state"] == "closed"
    assert isinstance(body["t"], float) and isinstance(body["detail"], str)
    # The verdict is journaled before the answer: no waiting here.
    [row] = http.get("/v1/journal", params={"type": "check"}).json()
    assert row["payload"]["id"] == "buy-300" and row["payload"]["allowed"] is True

    no = http.post("/v1/checks", json={"id": "buy-450", "legs": [stock(450)]}).json()
    assert no["allowed"] is False
    assert no["reasons"] == [{"code": "max_portfolio_delta", "value": 550.0, "limit": 500.0}]
    rows = http.get("/v1/journal", params={"type": "check", "since": row["seq"]}).json()
    assert [r["payload"]["id"] for r in rows] == ["buy-450"]
    assert rows[0]["payload"]["reasons"] == no["reasons"]


def test_malformed_orders_are_invalid_order_answers(http: httpx.Client) -> None:
    option_without_strike = {
        "symbol": "SPY", "sec_type": "OPT", "qty": 1, "price": 2.0, "right": "C",
        "expiry": "2030-01-18", "multiplier": 100,
    }  # fmt: skip
    for legs in ([], [stock(0)], [option_without_strike], "nope", [{"sec_type": "STK"}]):
        r = http.post("/v1/checks", json={"id": "bad", "legs": legs})
        assert r.status_code == 200, r.text
        assert r.json()["allowed"] is False
        assert r.json()["reasons"] == [{"code": "invalid_order", "value": None, "limit": None}]
        assert r.json()["detail"]


@pytest.mark.parametrize(
    ("content", "status", "names"),
    [
        (b"{nope", 400, "body"),
        (b"", 422, "body"),
        (b"[1, 2]", 422, "body"),
        (b'{"legs": []}', 422, "id"),
        (b'{"id": 7, "legs": []}', 422, "id"),
        (b'{"id": "", "legs": []}', 422, "id"),
        (b'{"id": "x\\ud800", "legs": []}', 422, "id"),
    ],
)
def test_unusable_check_bodies_are_4xx_naming_the_field(
    http: httpx.Client, content: bytes, status: int, names: str
) -> None:
    r = http.post("/v1/checks", content=content, headers={"Content-Type": "application/json"})
    assert r.status_code == status
    assert r.json()["detail"].startswith(names)


# ------------------------------------------------------------------- breaker


def test_failures_open_the_breaker_entries_denied_risk_reducing_allowed(
    daemon: Daemon, http: httpx.Client
) -> None:
    hold_aapl(daemon, http)
    for i in range(5):
        r = http.post(
            "/v1/failures", json={"kind": "order_rejected", "code": 201, "detail": f"#{i}"}
        )
        assert r.status_code == 202 and r.json() == {"accepted": True}
    # Failures are counted asynchronously (202): wait for the breaker to act.
    wait_until(lambda: breaker_state(http) == "open")

    entry = http.post("/v1/checks", json={"id": "more", "legs": [stock(10)]}).json()
    assert entry["allowed"] is False and entry["breaker_state"] == "open"
    assert entry["reasons"] == [{"code": "breaker_open", "value": None, "limit": None}]
    exit_ = http.post("/v1/checks", json={"id": "less", "legs": [stock(-50)]}).json()
    assert exit_["allowed"] is True and exit_["risk_reducing"] is True
    assert exit_["reasons"] == []

    failures = wait_until(
        lambda: (
            len(rows := http.get("/v1/journal", params={"type": "failure"}).json()) == 5 and rows
        )
    )
    assert [f["payload"]["detail"] for f in failures] == [f"#{i}" for i in range(5)]
    transitions = http.get("/v1/journal", params={"type": "breaker"}).json()
    assert transitions[-1]["payload"]["to"] == "open"
    assert transitions[-1]["payload"]["cause"]["reason"] == "failure_threshold"


def test_bad_failure_reports_are_422_naming_the_field(http: httpx.Client) -> None:
    for body, field in (
        ({"kind": "meteor"}, "kind"),
        ({}, "kind"),
        ({"kind": "other", "code": "x"}, "code"),
        ({"kind": "other", "detail": 3}, "detail"),
    ):
        r = http.post("/v1/failures", json=body)
        assert r.status_code == 422 and r.json()["detail"].startswith(field), r.text
    assert http.post("/v1/successes", json={"detail": 1}).status_code == 422


def test_successes_are_accepted_with_or_without_a_body(http: httpx.Client) -> None:
    assert http.post("/v1/successes").status_code == 202
    r = http.post("/v1/successes", json={"detail": "order 7 filled"})
    assert r.status_code == 202 and r.json() == {"accepted": True}
    assert breaker_state(http) == "closed"  # a success in CLOSED changes nothing


def test_force_open_and_reset(http: httpx.Client) -> None:
    r = http.post("/v1/breaker/force-open", json={"operator": "alice"})
    assert r.status_code == 200 and r.json() == {"state": "open"}
    # The answer means it: the very next check already sees the breaker open.
    denied = http.post("/v1/checks", json={"id": "a", "legs": [stock(1)]}).json()
    assert denied["reasons"] == [{"code": "breaker_open", "value": None, "limit": None}]
    assert breaker_state(http) == "open"

    r = http.post("/v1/breaker/reset")
    assert r.status_code == 200 and r.json() == {"state": "closed"}
    assert http.post("/v1/checks", json={"id": "b", "legs": [stock(1)]}).json()["allowed"]
    admin = http.get("/v1/journal", params={"type": "admin"}).json()
    assert [(a["payload"]["action"], a["payload"]["operator"]) for a in admin] == [
        ("force_open", "alice"),
        ("reset", "api"),
    ]
    r = http.post("/v1/breaker/force-open", json={"operator": ""})
    assert r.status_code == 422 and r.json()["detail"].startswith("operator")


# -------------------------------------------------------------------- journal


def test_journal_filters_and_bounds(daemon: Daemon, http: httpx.Client) -> None:
    hold_aapl(daemon, http)
    for i in range(3):
        http.post("/v1/checks", json={"id": f"c{i}", "legs": [stock(1)]})
    everything = http.get("/v1/journal", params={"limit": 10000}).json()
    seqs = [r["seq"] for r in everything]
    assert seqs == sorted(seqs) and {"restart", "check"} <= {r["kind"] for r in everything}
    checks = http.get("/v1/journal", params={"type": "check"}).json()
    assert [c["payload"]["id"] for c in checks] == ["c0", "c1", "c2"]
    page = http.get("/v1/journal", params={"type": "check", "since": checks[0]["seq"], "limit": 1})
    assert [c["payload"]["id"] for c in page.json()] == ["c1"]
    positions = wait_until(lambda: http.get("/v1/journal", params={"position": AAPL}).json())
    assert {r["position_id"] for r in positions} == {AAPL}
    assert len(http.get("/v1/journal").json()) <= 100  # default limit

    for params, field in (
        ({"limit": 0}, "query.limit"),
        ({"limit": 10001}, "query.limit"),
        ({"limit": "x"}, "query.limit"),
        ({"since": -1}, "query.since"),
        ({"type": "nope"}, "query.type"),
    ):
        r = http.get("/v1/journal", params=params)
        assert r.status_code == 422 and r.json()["detail"].startswith(field), r.text


# ----------------------------------------------------------------------- auth


def test_token_guards_every_post_but_not_gets(guarded: ServedApi) -> None:
    posts = [
        ("/v1/checks", {"id": "x", "legs": [stock(1)]}),
        ("/v1/failures", {"kind": "other"}),
        ("/v1/successes", {}),
        ("/v1/breaker/force-open", {}),
        ("/v1/breaker/reset", {}),
    ]
    with httpx.Client(base_url=guarded.url) as anon:
        for path, body in posts:
            r = anon.post(path, json=body)
            assert r.status_code == 401, path
            assert "Bearer" in r.json()["detail"] and r.headers["www-authenticate"] == "Bearer"
            wrong = anon.post(path, json=body, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
        latin = anon.post("/v1/successes", headers=[(b"Authorization", b"Bearer \xff\xfe")])
        assert latin.status_code == 401
        for path in ("/healthz", "/v1/state", "/v1/journal", "/openapi.json"):
            assert anon.get(path).status_code == 200, path
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=guarded.url, headers=auth) as ok:
        expected = [200, 202, 202, 200, 200]
        assert [ok.post(p, json=b).status_code for p, b in posts] == expected


def test_check_bind_refuses_public_address_without_token() -> None:
    public = ApiConfig(Listen("0.0.0.0", 8780), token_env="RISK_TOKEN")
    with pytest.raises(ValueError, match=r"0\.0\.0\.0:8780 is not a loopback address"):
        check_bind(public, None)
    with pytest.raises(ValueError, match="token"):
        check_bind(public, "")
    check_bind(public, TOKEN)
    check_bind(ApiConfig(), None)
    check_bind(ApiConfig(Listen("localhost", 8780)), None)
    check_bind(ApiConfig(Listen("::1", 8780)), None)


def test_token_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert token_from_env(ApiConfig()) is None
    api = ApiConfig(token_env="RISK_SUPERVISOR_TEST_TOKEN")
    monkeypatch.delenv("RISK_SUPERVISOR_TEST_TOKEN", raising=False)
    with pytest.raises(ValueError, match="RISK_SUPERVISOR_TEST_TOKEN is not set"):
        token_from_env(api)
    monkeypatch.setenv("RISK_SUPERVISOR_TEST_TOKEN", "  ")
    with pytest.raises(ValueError, match="RISK_SUPERVISOR_TEST_TOKEN"):
        token_from_env(api)
    monkeypatch.setenv("RISK_SUPERVISOR_TEST_TOKEN", TOKEN)
    assert token_from_env(api) == TOKEN


def test_serve_reports_a_port_in_use_and_closes_quickly(daemon: Daemon) -> None:
    app = create_app(daemon, token=None)
    api = serve(app, LOOPBACK)
    with pytest.raises(OSError):
        serve(app, Listen("127.0.0.1", api.port))
    started = time.monotonic()
    api.close()
    assert time.monotonic() - started < 3.0
    assert not api.thread.is_alive()
    with pytest.raises(httpx.ConnectError):
        httpx.get(api.url + "/healthz", timeout=1.0)


# -------------------------------------------------------------------- fuzzing

# Requests generated per operation and mode. Operations without inputs have
# nothing to vary (one request each) and nothing to negate.
_FUZZ = {
    "POST /v1/checks": (250, 100),
    "POST /v1/failures": (100, 100),
    "POST /v1/successes": (80, 80),
    "POST /v1/breaker/force-open": (60, 60),
    "POST /v1/breaker/reset": (60, 60),
    "GET /v1/journal": (150, 150),
    "GET /healthz": (1, 0),
    "GET /v1/state": (1, 0),
}


GATE_TIMEOUT = "the gate did not answer in time"  # Daemon.check's answer when it hears nothing


def _fuzz(
    op: Any,
    mode: Any,
    examples: int,
    checks: list[Any],
    url: str,
    auth: dict[str, str],
    session: requests.Session,
) -> int:
    """Run up to ``examples`` generated requests against one operation; how many ran."""
    ran = 0

    @given(case=op.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        nonlocal ran
        ran += 1
        response = case.call(base_url=url, session=session, headers=auth)
        assert response.status_code < 500, response.text
        if op.path == "/v1/checks" and response.status_code == 200:
            assert response.json()["detail"] != GATE_TIMEOUT, case.body  # the gate died
        case.validate_response(
            response, checks=checks, headers=auth, transport_kwargs={"session": session}
        )

    run()
    return ran


def test_fuzz_openapi_no_5xx_and_responses_conform(daemon: Daemon, guarded: ServedApi) -> None:
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.core.result import Err
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        ignored_auth,
        negative_data_rejection,
        positive_data_acceptance,
        response_schema_conformance,
        status_code_conformance,
    )

    base = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    doc = httpx.get(guarded.url + "/openapi.json").json()
    schema = schemathesis.openapi.from_dict(doc)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    session = requests.Session()
    counts: dict[str, int] = {}
    seen: set[str] = set()
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        op = result.ok()
        seen.add(op.label)
        positive, negative = _FUZZ[op.label]
        for mode, examples in (
            (GenerationMode.POSITIVE, positive),
            (GenerationMode.NEGATIVE, negative),
        ):
            if not examples:
                continue
            checks = list(base)
            if mode is GenerationMode.POSITIVE:
                checks.append(positive_data_acceptance)
                if op.method.upper() == "POST":
                    checks.append(ignored_auth)  # resends without the token: must be 401
            elif op.path != "/v1/checks":
                # In /v1/checks a schema-invalid *order* is answered 200 invalid_order.
                checks.append(negative_data_rejection)
            key = f"{op.label} {mode.value}"
            counts[key] = _fuzz(op, mode, examples, checks, guarded.url, auth, session)
    assert seen == set(_FUZZ)
    total = sum(counts.values())
    print(f"\nfuzzed {total} requests: {json.dumps(counts)}")
    assert total >= 1000, counts
    # The daemon survived all of it and still answers sensibly.
    assert daemon.exit_code is None and not daemon.stopped.is_set()
    with httpx.Client(base_url=guarded.url, headers=auth) as c:
        assert c.get("/healthz").json()["store"] == "ok"
        c.post("/v1/breaker/reset")
        assert c.post("/v1/checks", json={"id": "after", "legs": [stock(1)]}).status_code == 200


def test_huge_quantities_do_not_crash_the_gate(daemon: Daemon, http: httpx.Client) -> None:
    """Finite but absurd numbers are an order to deny, not a way to stop the daemon."""
    body = {"id": "huge", "legs": [stock(1e308, price=1.0), stock(1e308, price=1.0)]}
    for _ in range(5):
        answer = http.post("/v1/checks", json=body).json()
        assert answer["allowed"] is False
        assert answer["detail"] != GATE_TIMEOUT
    assert daemon.exit_code is None


# --------------------------------------------------------------------- client


def test_client_against_the_live_daemon(
    daemon: Daemon, served: ServedApi, http: httpx.Client
) -> None:
    hold_aapl(daemon, http)
    with RiskClient(served.url) as client:
        ok = client.check([stock(100)], id="c-1")
        assert ok.allowed and ok.reasons == () and ok.id == "c-1"
        assert ok.breaker_state == "closed" and ok.raw["id"] == "c-1"
        leg = Leg("AAPL", SecType.STK, 450.0, 150.0)
        no = client.check([leg])
        assert not no.allowed and no.codes == ("max_portfolio_delta",)
        assert (no.reasons[0].value, no.reasons[0].limit) == (550.0, 500.0)
        assert len(no.id) == 32  # a fresh uuid

        for _ in range(5):
            client.report_failure(FailureKind.CONNECTIVITY, code=1100, detail="link lost")
        wait_until(lambda: client.state()["breaker"]["state"] == "open")
        assert client.check([stock(1)]).codes == ("breaker_open",)
        reducing = client.check([stock(-10)])
        assert reducing.allowed and reducing.risk_reducing
        client.report_success("filled")

        assert client.reset(operator="bob") == "closed"
        assert client.force_open() == "open"
        assert client.reset() == "closed"
        state = client.state()
        assert state["portfolio"]["delta"] == 100.0 and state["positions"][0]["id"] == AAPL
        assert client.health()["status"] == "ok"
        rows = client.journal(type="check", limit=2)
        assert [r["payload"]["id"] for r in rows] == ["c-1", no.id]

        with pytest.raises(RiskClientError, match="422") as bad:
            client.report_failure("meteor")
        assert bad.value.status == 422 and "kind" in str(bad.value)


def test_client_fails_closed_when_unreachable() -> None:
    with RiskClient(f"http://127.0.0.1:{_closed_port()}", timeout=0.5) as client:
        with pytest.raises(RiskClientError, match="unreachable"):
            client.check([stock(1)])
        with pytest.raises(RiskClientError):
            client.report_failure("other")


def test_client_sends_the_token(guarded: ServedApi) -> None:
    with RiskClient(guarded.url, token=TOKEN) as client:
        assert client.check([stock(1)]).allowed
    with RiskClient(guarded.url) as anon:
        with pytest.raises(RiskClientError, match="401"):
            anon.check([stock(1)])
        assert anon.state()["breaker"]["state"] == "closed"


# --------------------------------------------------------------------- status


def test_status_prints_tables(daemon: Daemon, served: ServedApi, http: httpx.Client) -> None:
    hold_aapl(daemon, http)
    wait_until(lambda: http.get("/v1/state").json()["positions"])
    out = io.StringIO()
    assert run_status(served.url, None, out=out) == 0
    text = out.getvalue()
    for expected in (
        "Circuit breaker", "closed", "Portfolio vs limits", "delta", "500.00", "20.0%",
        "Positions and trailing stops", AAPL, "150.00", "waiting",
    ):  # fmt: skip
        assert expected in text, (expected, text)


def test_status_on_a_dead_daemon_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    assert run_status(f"http://127.0.0.1:{_closed_port()}", None, out=out) == 2
    assert out.getvalue() == ""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unreachable" in err


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port

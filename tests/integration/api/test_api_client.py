"""``RiskClient`` against a live API: gate, breaker, kill switch, strategies, heartbeats."""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path

import pytest
from api_harness import TOKEN, Harness, harness, stock, wait_until
from fake_daemon import FakeDaemon

from actors.messages import Contract, FailureKind, KillMode, Leg, Right, SecType
from supervisor.client import RiskClient, RiskClientError
from supervisor.core.facade import DaemonTimeout, StrategyLegSpec

pytestmark = pytest.mark.e2e


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_client_against_the_live_daemon(api: Harness) -> None:
    api.hold("AAPL-STK", "AAPL", 100.0)
    with RiskClient(api.url) as client:
        ok = client.check([stock(100)], id="c-1")
        assert ok.allowed and ok.reasons == () and ok.id == "c-1"
        assert ok.breaker_state == "closed" and ok.raw["id"] == "c-1"
        no = client.check([Leg("AAPL", SecType.STK, 450.0, 150.0)])
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
        assert state["portfolio"]["delta"] == 100.0 and state["positions"][0]["id"] == "AAPL-STK"
        assert client.health()["status"] == "ok"
        rows = client.journal(type="check", limit=2)
        assert [r["payload"]["id"] for r in rows] == ["c-1", no.id]

        with pytest.raises(RiskClientError, match="422") as bad:
            client.report_failure("meteor")
        assert bad.value.status == 422 and "kind" in str(bad.value)


@pytest.mark.needs("kill")
def test_client_kill(api: Harness) -> None:
    with RiskClient(api.url) as client:
        kill = client.kill(KillMode.CANCEL, operator="carol")
        assert kill["mode"] == "cancel" and kill["operator"] == "carol"
        assert kill["breaker"] == "open"
        assert client.kill()["mode"] == "halt"
        with pytest.raises(RiskClientError, match="422"):
            client.kill("nuke")


@pytest.mark.needs("heartbeat")
def test_client_heartbeat(api: Harness) -> None:
    with RiskClient(api.url) as client:
        hb = client.heartbeat()
        assert isinstance(hb["last_t"], float)


@pytest.mark.needs("put_strategy", "strategies", "delete_strategy")
def test_client_strategies(api: Harness) -> None:
    call = Contract("SPY", SecType.OPT, Right.CALL, 600.0, "2026-06-19", 100.0)
    with RiskClient(api.url) as client:
        s = client.strategy(
            "spy/vertical",  # quoted in the path: an id may hold a "/"
            [StrategyLegSpec(1, contract=call), {**_leg(call, 610.0), "ratio": -1}],
        )
        assert s["id"] == "spy/vertical" and [x["ratio"] for x in s["legs"]] == [1, -1]
        assert [x["id"] for x in client.strategies()] == ["spy/vertical"]
        assert client.delete_strategy("spy/vertical") is True
        assert client.delete_strategy("spy/vertical") is False
        assert client.strategies() == []


def _leg(c: Contract, strike: float) -> dict[str, object]:
    return {"symbol": c.symbol, "sec_type": "OPT", "right": "C", "strike": strike,
            "expiry": c.expiry, "multiplier": c.multiplier}  # fmt: skip


def test_client_sends_legs_by_con_id_and_by_contract(fake_api: Harness) -> None:
    with RiskClient(fake_api.url) as client:
        stock_leg = StrategyLegSpec(100, contract=Contract("SPY", SecType.STK))
        client.strategy("s", [StrategyLegSpec(-2, con_id=12345), stock_leg])
    name, (_, legs) = fake_api.fake.calls[-1]
    assert name == "put_strategy"
    assert legs == (
        StrategyLegSpec(-2, con_id=12345),
        StrategyLegSpec(100, contract=Contract("SPY", SecType.STK)),
    )


def test_background_heartbeats_run_and_stop_cleanly(fake_api: Harness) -> None:
    def beats() -> int:
        return sum(1 for name, _ in fake_api.fake.calls if name == "heartbeat")

    with RiskClient(fake_api.url) as client:
        client.start_heartbeat(0.02)
        with pytest.raises(RuntimeError, match="already running"):
            client.start_heartbeat(0.02)
        wait_until(lambda: beats() >= 3)
        assert client.last_heartbeat is not None and client.heartbeat_failures == 0
        started = time.monotonic()
        assert client.stop_heartbeat() is True
        assert time.monotonic() - started < 1.0
        stopped_at = beats()
        time.sleep(0.1)
        assert beats() == stopped_at
        assert client.stop_heartbeat() is True  # idempotent
        with client.heartbeating(0.02):
            wait_until(lambda: beats() >= stopped_at + 2)
        assert not any(t.name == "risk-heartbeat" for t in __import__("threading").enumerate())
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with RiskClient(fake_api.url) as client, pytest.raises(ValueError):
            client.start_heartbeat(bad)


def test_background_heartbeats_survive_failures_and_log_them(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    fake = FakeDaemon()
    with harness("fake", tmp_path, fake=fake) as api, RiskClient(api.url, timeout=0.5) as client:
        fake.fail_with = DaemonTimeout("busy")
        with caplog.at_level(logging.WARNING, logger="supervisor.client"):
            client.start_heartbeat(0.01)
            wait_until(lambda: client.heartbeat_failures >= 12)
            assert client.stop_heartbeat()
        failures = client.heartbeat_failures
        warnings = [r for r in caplog.records if r.name == "supervisor.client"]
        assert len(warnings) == (failures + 9) // 10  # the first of a run, then every tenth
        assert "503" in warnings[0].getMessage()
        fake.fail_with = None
        client.start_heartbeat(0.01)
        wait_until(lambda: client.heartbeat_failures == 0)
        assert client.stop_heartbeat()


def test_background_heartbeats_to_a_dead_daemon_keep_trying() -> None:
    with RiskClient(f"http://127.0.0.1:{_closed_port()}", timeout=0.2) as client:
        client.start_heartbeat(0.01)
        wait_until(lambda: client.heartbeat_failures >= 3)
        assert client.stop_heartbeat()


def test_client_fails_closed_when_unreachable() -> None:
    with RiskClient(f"http://127.0.0.1:{_closed_port()}", timeout=0.5) as client:
        with pytest.raises(RiskClientError, match="unreachable"):
            client.check([stock(1)])
        with pytest.raises(RiskClientError):
            client.report_failure("other")
        with pytest.raises(RiskClientError):
            client.kill("flatten")


def test_client_sends_the_token(guarded: Harness) -> None:
    with RiskClient(guarded.url, token=TOKEN) as client:
        assert client.check([stock(1)]).allowed
        assert client.force_open() == "open" and client.reset() == "closed"
    with RiskClient(guarded.url) as anon:
        with pytest.raises(RiskClientError, match="401"):
            anon.check([stock(1)])
        assert anon.state()["breaker"]["state"] == "closed"


def test_client_reads_the_token_file(tmp_path: Path) -> None:
    token_file = tmp_path / "api-token"
    token_file.write_text(TOKEN + "\n")
    with harness("fake", tmp_path, token=TOKEN) as api:
        with RiskClient(api.url, token_file=token_file) as client:
            assert client.heartbeat()["fired"] is False
        with (
            RiskClient(api.url, token_file=tmp_path / "missing") as anon,
            pytest.raises(RiskClientError, match="401"),
        ):
            anon.heartbeat()

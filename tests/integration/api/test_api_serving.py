"""Serving: ``start`` with its token rule, the bind check, ports, and a server that stops."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from pathlib import Path

import httpx
import pytest
from api_harness import LOOPBACK, TOKEN
from fake_daemon import FakeDaemon

from supervisor.api.app import check_bind, create_app, serve, start, token_from_env
from supervisor.api.token_file import TokenError
from supervisor.config import ApiConfig, Listen

pytestmark = pytest.mark.e2e

ENV = "RISK_SUPERVISOR_TEST_TOKEN"


def _writes(url: str, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(url + "/v1/heartbeat", json={}, headers=headers).status_code


def test_start_creates_a_private_token_file_and_requires_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV, raising=False)
    token_file = tmp_path / "config" / "risk-supervisor" / "api-token"
    api = ApiConfig(LOOPBACK)
    with start(FakeDaemon(), api, token_file=token_file) as served:
        token = token_file.read_text().strip()
        assert len(token) >= 40 and served.token == token
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
        assert _writes(served.url, None) == 401
        assert _writes(served.url, "wrong") == 401
        assert _writes(served.url, token) == 200
        assert httpx.get(served.url + "/v1/state").status_code == 200
    with start(FakeDaemon(), api, token_file=token_file) as again:
        assert again.token == token  # the same file, the same token: clients keep working
        assert [p.name for p in token_file.parent.iterdir()] == ["api-token"]


def test_start_takes_the_env_token_when_token_env_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, TOKEN)
    token_file = tmp_path / "api-token"
    with start(FakeDaemon(), ApiConfig(LOOPBACK, token_env=ENV), token_file=token_file) as s:
        assert s.token == TOKEN and _writes(s.url, TOKEN) == 200
    assert not token_file.exists()
    monkeypatch.delenv(ENV)
    with pytest.raises(ValueError, match=f"{ENV} is not set"):
        start(FakeDaemon(), ApiConfig(LOOPBACK, token_env=ENV), token_file=token_file)


def test_start_refuses_a_token_file_others_can_read(tmp_path: Path) -> None:
    token_file = tmp_path / "api-token"
    token_file.write_text("a-token-someone-else-may-have-read\n")
    os.chmod(token_file, 0o644)
    with pytest.raises(TokenError, match="chmod 600"):
        start(FakeDaemon(), ApiConfig(LOOPBACK), token_file=token_file)


def test_start_without_a_token_serves_loopback_only(tmp_path: Path) -> None:
    with start(FakeDaemon(), ApiConfig(LOOPBACK), token_file=None) as served:
        assert served.token is None and _writes(served.url, None) == 200
    # Refused before anything is bound (tests bind loopback only).
    with pytest.raises(ValueError, match="not a loopback address"):
        start(FakeDaemon(), ApiConfig(Listen("0.0.0.0", 0)), token_file=None)


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
    api = ApiConfig(token_env=ENV)
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(ValueError, match=f"{ENV} is not set"):
        token_from_env(api)
    monkeypatch.setenv(ENV, "  ")
    with pytest.raises(ValueError, match=ENV):
        token_from_env(api)
    monkeypatch.setenv(ENV, TOKEN)
    assert token_from_env(api) == TOKEN


def test_an_app_that_was_never_bound_refuses_everything() -> None:
    """The Host check needs the bound port: until serve() binds, fail closed."""
    app = create_app(FakeDaemon(), token=None)

    async def get() -> int:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            return (await c.get("/healthz")).status_code

    assert asyncio.run(get()) == 421


def test_allowed_hosts_extend_the_host_check(tmp_path: Path) -> None:
    app = create_app(FakeDaemon(), token=None, allowed_hosts=["Risk.Internal"])
    with serve(app, LOOPBACK) as served:
        port = served.port
        ok = httpx.get(served.url + "/healthz", headers={"Host": f"risk.internal:{port}"})
        assert ok.status_code == 200
        origin = {"Origin": f"http://risk.internal:{port}"}
        assert httpx.post(served.url + "/v1/heartbeat", json={}, headers=origin).status_code == 200
        other = httpx.get(served.url + "/healthz", headers={"Host": f"other.internal:{port}"})
        assert other.status_code == 421


def test_serve_reports_a_port_in_use_and_closes_quickly() -> None:
    app = create_app(FakeDaemon(), token=None)
    api = serve(app, LOOPBACK)
    with pytest.raises(OSError):
        serve(create_app(FakeDaemon(), token=None), Listen("127.0.0.1", api.port))
    started = time.monotonic()
    api.close()
    assert time.monotonic() - started < 3.0
    assert not api.thread.is_alive()
    with pytest.raises(httpx.ConnectError):
        httpx.get(api.url + "/healthz", timeout=1.0)

"""``risk-supervisor status`` and ``risk-supervisor kill`` against a live API."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest
from api_harness import TOKEN, Harness, harness
from fake_daemon import FakeDaemon

from actors.messages import BreakerState, Contract, KillMode, Right, SecType
from supervisor.commands.cli import main
from supervisor.commands.kill import run_kill
from supervisor.commands.status import run_status, run_status_command
from supervisor.core.facade import KillOrderStatus, KillStatus, StrategyLegStatus, StrategyStatus

pytestmark = pytest.mark.e2e


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_status_prints_breaker_portfolio_and_stops(api: Harness) -> None:
    api.hold("AAPL-STK", "AAPL", 100.0)
    out = io.StringIO()
    assert run_status(api.url, None, out=out) == 0
    text = out.getvalue()
    for expected in (
        "Circuit breaker", "closed", "Portfolio vs limits", "delta", "500.00", "20.0%",
        "β-wtd delta", "Money", "daily P&L", "Heartbeat", "off",
        "Positions and trailing stops", "AAPL-STK", "150.00", "waiting",
    ):  # fmt: skip
        assert expected in text, (expected, text)
    assert "Kill " not in text and "Strategies" not in text


def test_status_prints_money_kill_heartbeat_and_strategies(tmp_path: Path) -> None:
    fake = FakeDaemon(heartbeat_timeout_s=10.0)
    fake.beta_weighted_delta = 123.45
    fake.with_money(daily_pnl=-2500.0, nlv_estimate=997_500.0, nlv_reported=1e6,
                    high_water=1_000_000.0, loss_latched=True)  # fmt: skip
    fake.heartbeat()
    fake.with_kill(
        KillStatus("kill-7", fake.clock(), KillMode.FLATTEN, "heartbeat_lost", "heartbeat",
                   BreakerState.OPEN, "confirmed",
                   (KillOrderStatus("SPY-C600", "filled", 41),
                    KillOrderStatus("QQQ-STK", "error", None, "no quote")))
    )  # fmt: skip
    put = Contract("SPY", SecType.OPT, Right.PUT, 590.0, "2026-06-19", 100.0)
    fake.with_strategy(
        StrategyStatus("spy-put-spread", "SPY", "live",
                       (StrategyLegStatus("SPY-P590", put, -1, -3.0),),
                       entry=1.25, net_price=1.11, stop=1.3, extreme=1.05, active=True,
                       credit=True)
    )  # fmt: skip
    with harness("fake", tmp_path, fake=fake) as api:
        out = io.StringIO()
        assert run_status(api.url, None, out=out) == 0
    text = out.getvalue()
    for expected in (
        "-2,500.00", "997,500.00", "1,000,000.00", "drawdown 0.25%", "LATCHED",
        "Kill kill-7", "flatten", "heartbeat_lost", "SPY-C600", "filled", "41", "QQQ-STK",
        "error", "no quote", "cancel confirmed",
        "Heartbeat", "10.0 s", "0.0 s",
        "Strategies", "spy-put-spread", "-1×SPY 2026-06-19 590.00 P", "1.25", "1.11", "1.30",
        "1.05", "(credit)", "123.45",
    ):  # fmt: skip
        assert expected in text, (expected, text)


def test_status_on_a_dead_daemon_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    assert run_status(f"http://127.0.0.1:{_closed_port()}", None, out=out) == 2
    assert out.getvalue() == ""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unreachable" in err


def test_status_with_an_unset_token_variable_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RISK_STATUS_TOKEN", raising=False)
    assert run_status_command("http://127.0.0.1:1", "RISK_STATUS_TOKEN", None) == 2
    assert "RISK_STATUS_TOKEN" in capsys.readouterr().err


def test_kill_command_uses_the_token_file_and_prints_the_orders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token_file = tmp_path / "api-token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    with harness("fake", tmp_path, token=TOKEN) as api:
        api.fake.hold("MSFT-STK", "MSFT", 10.0, 400.0)
        code = main(["kill", "--mode", "flatten", "--url", api.url,
                     "--token-file", str(token_file), "--operator", "dave"])  # fmt: skip
        assert code == 0
        name, (mode, operator) = api.fake.calls[-1]
        assert (name, mode, operator) == ("kill", KillMode.FLATTEN, "dave")
        text = capsys.readouterr().out
        assert "flatten" in text and "MSFT-STK" in text and "claimed" in text

        assert main(["kill", "--url", api.url, "--token-file", str(token_file)]) == 0
        name, (mode, operator) = api.fake.calls[-1]
        assert mode is KillMode.HALT and operator.startswith("cli")


def test_kill_command_that_did_not_kill_says_so_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with harness("fake", tmp_path, token=TOKEN) as api:
        assert run_kill("halt", url=api.url, token_file=tmp_path / "none") == 2
        err = capsys.readouterr().err
        assert "NOT killed" in err and "401" in err
        assert not [c for c, _ in api.fake.calls if c == "kill"]
    assert run_kill("cancel", url=f"http://127.0.0.1:{_closed_port()}") == 2
    err = capsys.readouterr().err
    assert err.startswith("risk-supervisor kill: NOT killed") and "unreachable" in err


def test_kill_command_refuses_an_unknown_mode(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["kill", "--mode", "nuke"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err

"""Config: typed defaults, per-symbol overrides, and every bad key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.messages import FailureKind, PriceSource, ReasonCode
from supervisor.config import ConfigError, Listen, load, parse


def test_defaults_follow_design() -> None:
    c = parse({})
    ts = c.trailing_stop
    assert (ts.activation_pct, ts.trailing_pct, ts.min_move_pct, ts.confirm_quotes) == (
        2.0,
        1.5,
        0.5,
        1,
    )
    assert (ts.max_spread_pct, ts.min_trail_abs, ts.price_source) == (None, 0.0, PriceSource.EXIT)
    b = c.breaker
    assert (b.failure_threshold, b.failure_window_s, b.open_timeout_s, b.half_open_max_tries) == (
        5,
        60,
        300,
        3,
    )
    assert (b.backoff_multiplier, b.max_open_timeout_s, b.max_trips_per_day) == (1.0, 3600, None)
    assert b.kind(FailureKind.MARGIN).trip and not b.kind(FailureKind.ORDER_REJECTED).trip
    assert c.gate.stress.spot_shocks_pct == (-15, -10, -5, 0, 5, 10, 15)
    assert c.gate.stress.vol_shocks_pts == (-10, 0, 10)
    assert c.gate.limits.max_data_age_s == 60.0 and not c.gate.limits.values
    assert c.api.listen == Listen("127.0.0.1", 8780) and c.api.listen.loopback
    assert c.metrics.listen == Listen("127.0.0.1", 9108)


def test_overrides_and_sections() -> None:
    c = parse(
        {
            "trailing_stop": {"trailing_pct": 3.0, "symbols": {"SPY": {"confirm_quotes": 2}}},
            "limits": {"max_portfolio_delta": 500, "max_stress_loss": 1e5},
            "groups": {"tech": ["AAPL", "MSFT"]},
            "pricing": {"rate": 0.04, "dividend_yield": {"AAPL": 0.005}},
            "breaker": {"kinds": {"slippage": {"weight": 0.5}, "data_feed": {"trip": True}}},
            "account": {"net_liquidation": 1e6},
        }
    )
    assert c.stop_params("SPY").confirm_quotes == 2 and c.stop_params("SPY").trailing_pct == 3.0
    assert c.stop_params("AAPL").confirm_quotes == 1
    assert c.gate.limits.get(ReasonCode.MAX_PORTFOLIO_DELTA) == 500.0
    assert c.gate.groups == {"tech": ("AAPL", "MSFT")}
    assert c.gate.pricing.q("AAPL") == 0.005 and c.gate.pricing.q("X") == 0.0
    assert c.breaker.kind(FailureKind.SLIPPAGE).weight == 0.5
    assert c.breaker.kind(FailureKind.DATA_FEED).trip
    assert c.net_liquidation == 1e6


@pytest.mark.parametrize(
    ("doc", "key"),
    [
        ({"limtis": {}}, "limtis: unknown key"),
        ({"limits": {"max_portfolio_detla": 1}}, "limits.max_portfolio_detla: unknown key"),
        ({"limits": {"max_portfolio_delta": -1}}, "limits.max_portfolio_delta"),
        ({"limits": {"max_portfolio_delta": "lots"}}, "limits.max_portfolio_delta"),
        ({"limits": {"max_portfolio_delta": float("nan")}}, "limits.max_portfolio_delta"),
        ({"trailing_stop": {"trailing_pct": 0}}, "trailing_stop.trailing_pct"),
        ({"trailing_stop": {"confirm_quotes": 0}}, "trailing_stop.confirm_quotes"),
        ({"trailing_stop": {"confirm_quotes": True}}, "trailing_stop.confirm_quotes"),
        ({"trailing_stop": {"price_source": "bid"}}, "trailing_stop.price_source"),
        (
            {"trailing_stop": {"symbols": {"SPY": {"trailing_pcct": 1}}}},
            "trailing_stop.symbols.SPY.trailing_pcct",
        ),
        ({"breaker": {"half_open_max_tries": 0}}, "breaker.half_open_max_tries"),
        ({"breaker": {"backoff_multiplier": 0.5}}, "breaker.backoff_multiplier"),
        ({"breaker": {"kinds": {"gremlins": {}}}}, "breaker.kinds.gremlins: unknown key"),
        ({"breaker": {"kinds": {"margin": {"trip": "yes"}}}}, "breaker.kinds.margin.trip"),
        ({"groups": {"tech": "AAPL"}}, "groups.tech"),
        ({"stress": {"spot_shocks_pct": []}}, "stress.spot_shocks_pct"),
        ({"api": {"listen": "localhost"}}, "api.listen"),
        ({"account": {"net_liquidation": 0}}, "account.net_liquidation"),
        ({"ib": {"port": 0}}, "ib.port"),
    ],
)
def test_bad_values_are_refused_naming_the_key(doc: dict, key: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse(doc)
    assert any(key in p for p in e.value.problems), e.value.problems


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as e:
        parse(
            {"limits": {"max_portfolio_delta": -1, "bogus": 1}, "breaker": {"failure_threshold": 0}}
        )
    assert len(e.value.problems) == 3


def test_load_reports_unreadable_and_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[limits\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(bad)


def test_shipped_configs_are_valid() -> None:
    root = Path(__file__).resolve().parents[3]
    for path in [*root.glob("examples/*.toml")]:
        load(path)

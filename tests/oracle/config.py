"""The config sections replay needs, with the contract's defaults.

Facts copied from the contract (DESIGN §3, §4, §4.1-§4.5, §5, §6):

- `[trailing_stop]`: activation_pct 2.0, trailing_pct 1.5, min_move_pct 0.5,
  confirm_quotes 1, max_spread_pct off, min_trail_abs 0.0, price_source "exit";
  `[trailing_stop.symbols.<SYM>]` replaces keys one by one, the rest inherited.
- `[limits]`: the limit keys (all optional) and max_data_age_s (default 60).
- `[groups]`: name -> symbols.  `[stress]`: spot_shocks_pct (default
  -15..15 step 5), vol_shocks_pts (default -10, 0, 10).
- `[pricing]`: rate, `[pricing.dividend_yield]` per symbol (the contract gives
  no default rate: 0.0 here, see AMBIGUITIES.md).
- `[beta]`: index, default, `[beta.values]`.
- `[orders]`: the order controls; order_window_s defaults to 1.0.
- `[cooldown] after_trigger_s`, `[stop_guard] max_triggers, window_s`.
- `[loss]`: max_daily_loss, max_drawdown_pct, max_pnl_age_s (default 60).
- `[margin]`: max_init_margin_pct, min_excess_liquidity.
- `[api] heartbeat_timeout_s` (off by default).
- `[breaker]`: failure_threshold 5, failure_window_s 60, open_timeout_s 300,
  half_open_max_tries 3, backoff_multiplier 1.0, max_open_timeout_s 3600,
  max_trips_per_day off; `[breaker.kinds.<kind>]` weight 1.0, trip false
  (margin and stop_guard trip by default).

The oracle trusts its configs (the project's config validation is tested
elsewhere); it only refuses what would make the oracle itself meaningless.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from typing import Any

#: Every failure kind the breaker knows (DESIGN §5).
FAILURE_KINDS = (
    "order_rejected",
    "data_feed",
    "connectivity",
    "margin",
    "slippage",
    "other",
    "stop_guard",
    "loss_limit",
)

#: Kinds that trip at once unless configured otherwise.
DEFAULT_TRIP_KINDS = frozenset({"margin", "stop_guard"})

#: Portfolio limit keys in the order of DESIGN §4's table (the reason order).
LIMIT_KEYS = (
    "max_portfolio_delta",
    "max_portfolio_dollar_delta",
    "max_portfolio_gamma",
    "max_portfolio_vega",
    "max_portfolio_theta",
    "max_per_symbol_delta",
    "max_beta_weighted_delta",
    "max_single_position_pct",
    "max_correlated_pct",
    "max_stress_loss",
)

#: Limits that need option Greeks (DESIGN §4 fail closed: "any Greek limit").
GREEK_LIMIT_KEYS = frozenset(
    {
        "max_portfolio_delta",
        "max_portfolio_dollar_delta",
        "max_portfolio_gamma",
        "max_portfolio_vega",
        "max_portfolio_theta",
        "max_per_symbol_delta",
        "max_beta_weighted_delta",
        "max_stress_loss",
    }
)


@dataclass(frozen=True)
class StopParams:
    """One symbol's trailing-stop parameters (DESIGN §3)."""

    activation_pct: float = 2.0
    trailing_pct: float = 1.5
    min_move_pct: float = 0.5
    confirm_quotes: int = 1
    max_spread_pct: float | None = None
    min_trail_abs: float = 0.0
    price_source: str = "exit"


@dataclass(frozen=True)
class BreakerConfig:
    """`[breaker]` and its kinds (DESIGN §5)."""

    failure_threshold: float = 5.0
    failure_window_s: float = 60.0
    open_timeout_s: float = 300.0
    half_open_max_tries: int = 3
    backoff_multiplier: float = 1.0
    max_open_timeout_s: float = 3600.0
    max_trips_per_day: int | None = None
    weights: dict[str, float] = field(default_factory=dict)
    trips: dict[str, bool] = field(default_factory=dict)

    def weight(self, kind: str) -> float:
        """A kind's weight, 1.0 unless configured."""
        return self.weights.get(kind, 1.0)

    def trip(self, kind: str) -> bool:
        """Whether a kind trips at once: loss_limit always; margin and stop_guard by default."""
        if kind == "loss_limit":
            return True
        return self.trips.get(kind, kind in DEFAULT_TRIP_KINDS)


@dataclass(frozen=True)
class Config:
    """Everything replay reads from the config file."""

    net_liquidation: float | None = None
    stop_default: StopParams = field(default_factory=StopParams)
    stop_symbols: dict[str, StopParams] = field(default_factory=dict)
    limits: dict[str, float] = field(default_factory=dict)
    max_data_age_s: float = 60.0
    groups: dict[str, list[str]] = field(default_factory=dict)
    spot_shocks_pct: list[float] = field(
        default_factory=lambda: [-15.0, -10.0, -5.0, 0.0, 5.0, 10.0, 15.0]
    )
    vol_shocks_pts: list[float] = field(default_factory=lambda: [-10.0, 0.0, 10.0])
    rate: float = 0.0
    dividend_yield: dict[str, float] = field(default_factory=dict)
    beta_index: str | None = None
    beta_default: float | None = None
    beta_values: dict[str, float] = field(default_factory=dict)
    max_leg_contracts: float | None = None
    max_leg_shares: float | None = None
    max_order_notional: float | None = None
    max_order_premium: float | None = None
    price_collar_pct: float | None = None
    max_orders_per_window: int | None = None
    order_window_s: float = 1.0
    duplicate_window_s: float | None = None
    cooldown_after_trigger_s: float | None = None
    stop_guard_max_triggers: int | None = None
    stop_guard_window_s: float | None = None
    max_daily_loss: float | None = None
    max_drawdown_pct: float | None = None
    max_pnl_age_s: float = 60.0
    max_init_margin_pct: float | None = None
    min_excess_liquidity: float | None = None
    heartbeat_timeout_s: float | None = None
    breaker: BreakerConfig = field(default_factory=BreakerConfig)

    def stop_params(self, symbol: str) -> StopParams:
        """The parameters of a symbol: its override section, else `[trailing_stop]`."""
        return self.stop_symbols.get(symbol, self.stop_default)

    @property
    def loss_limit_set(self) -> bool:
        """DESIGN §4.3: 'with a loss limit (max_daily_loss or max_drawdown_pct) set'."""
        return self.max_daily_loss is not None or self.max_drawdown_pct is not None

    @property
    def margin_set(self) -> bool:
        """Whether any margin key (§4.4) is configured."""
        return self.max_init_margin_pct is not None or self.min_excess_liquidity is not None


def _num(section: dict[str, Any], key: str) -> float | None:
    """An optional number of a section."""
    value = section.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} must be a number")
    return float(value)


def _int(section: dict[str, Any], key: str) -> int | None:
    """An optional integer count of a section."""
    value = section.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} must be an integer")
    return value


def _stop_params(section: dict[str, Any], base: StopParams) -> StopParams:
    """Stop parameters from a section, inheriting every key it does not set."""
    source = section.get("price_source", base.price_source)
    if source not in ("exit", "mid", "last"):
        raise ValueError("price_source must be exit, mid or last")
    spread = _num(section, "max_spread_pct")
    activation = _num(section, "activation_pct")
    trailing = _num(section, "trailing_pct")
    min_move = _num(section, "min_move_pct")
    confirm = _int(section, "confirm_quotes")
    min_trail = _num(section, "min_trail_abs")
    return StopParams(
        activation_pct=base.activation_pct if activation is None else activation,
        trailing_pct=base.trailing_pct if trailing is None else trailing,
        min_move_pct=base.min_move_pct if min_move is None else min_move,
        confirm_quotes=base.confirm_quotes if confirm is None else confirm,
        max_spread_pct=base.max_spread_pct if spread is None else spread,
        min_trail_abs=base.min_trail_abs if min_trail is None else min_trail,
        price_source=str(source),
    )


def parse_config(text: str) -> Config:
    """Read the sections replay needs from TOML text; other sections are ignored."""
    raw = tomllib.loads(text)
    account = raw.get("account", {})
    ts = dict(raw.get("trailing_stop", {}))
    symbols_raw = ts.pop("symbols", {})
    stop_default = _stop_params(ts, StopParams())
    stop_symbols = {sym: _stop_params(sec, stop_default) for sym, sec in symbols_raw.items()}
    limits_raw = raw.get("limits", {})
    limits: dict[str, float] = {}
    for key in LIMIT_KEYS:
        value = _num(limits_raw, key)
        if value is not None:
            limits[key] = value
    max_age = _num(limits_raw, "max_data_age_s")
    groups = {name: [str(s) for s in syms] for name, syms in raw.get("groups", {}).items()}
    stress = raw.get("stress", {})
    pricing = raw.get("pricing", {})
    beta = raw.get("beta", {})
    orders = raw.get("orders", {})
    cooldown = raw.get("cooldown", {})
    guard = raw.get("stop_guard", {})
    loss = raw.get("loss", {})
    margin = raw.get("margin", {})
    api = raw.get("api", {})
    br = dict(raw.get("breaker", {}))
    kinds = br.pop("kinds", {})
    weights: dict[str, float] = {}
    trips: dict[str, bool] = {}
    for kind, sec in kinds.items():
        if kind not in FAILURE_KINDS or kind == "loss_limit":
            raise ValueError(f"breaker.kinds.{kind} is refused")
        w = _num(sec, "weight")
        if w is not None:
            weights[kind] = w
        if "trip" in sec:
            trips[kind] = bool(sec["trip"])
    breaker = BreakerConfig(
        failure_threshold=_num(br, "failure_threshold") or 5.0,
        failure_window_s=_num(br, "failure_window_s") or 60.0,
        open_timeout_s=_num(br, "open_timeout_s") or 300.0,
        half_open_max_tries=_int(br, "half_open_max_tries") or 3,
        backoff_multiplier=_num(br, "backoff_multiplier") or 1.0,
        max_open_timeout_s=_num(br, "max_open_timeout_s") or 3600.0,
        max_trips_per_day=_int(br, "max_trips_per_day"),
        weights=weights,
        trips=trips,
    )
    spot = stress.get("spot_shocks_pct")
    vol = stress.get("vol_shocks_pts")
    return Config(
        net_liquidation=_num(account, "net_liquidation"),
        stop_default=stop_default,
        stop_symbols=stop_symbols,
        limits=limits,
        max_data_age_s=60.0 if max_age is None else max_age,
        groups=groups,
        spot_shocks_pct=(
            [-15.0, -10.0, -5.0, 0.0, 5.0, 10.0, 15.0] if spot is None else [float(s) for s in spot]
        ),
        vol_shocks_pts=[-10.0, 0.0, 10.0] if vol is None else [float(v) for v in vol],
        rate=_num(pricing, "rate") or 0.0,
        dividend_yield={str(k): float(v) for k, v in pricing.get("dividend_yield", {}).items()},
        beta_index=beta.get("index"),
        beta_default=_num(beta, "default"),
        beta_values={str(k): float(v) for k, v in beta.get("values", {}).items()},
        max_leg_contracts=_num(orders, "max_leg_contracts"),
        max_leg_shares=_num(orders, "max_leg_shares"),
        max_order_notional=_num(orders, "max_order_notional"),
        max_order_premium=_num(orders, "max_order_premium"),
        price_collar_pct=_num(orders, "price_collar_pct"),
        max_orders_per_window=_int(orders, "max_orders_per_window"),
        order_window_s=_num(orders, "order_window_s") or 1.0,
        duplicate_window_s=_num(orders, "duplicate_window_s"),
        cooldown_after_trigger_s=_num(cooldown, "after_trigger_s"),
        stop_guard_max_triggers=_int(guard, "max_triggers"),
        stop_guard_window_s=_num(guard, "window_s"),
        max_daily_loss=_num(loss, "max_daily_loss"),
        max_drawdown_pct=_num(loss, "max_drawdown_pct"),
        max_pnl_age_s=_num(loss, "max_pnl_age_s") or 60.0,
        max_init_margin_pct=_num(margin, "max_init_margin_pct"),
        min_excess_liquidity=_num(margin, "min_excess_liquidity"),
        heartbeat_timeout_s=_num(api, "heartbeat_timeout_s"),
        breaker=breaker,
    )

"""What the configured gate is made of (``[limits]``, ``[orders]``, ``[beta]``, …).

Validated by the config loader, which names every bad key; these types only
hold the values. ``None`` always means "not configured".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from actors.book import PricingParams
from actors.messages import ReasonCode


@dataclass(frozen=True, slots=True)
class LimitParams:
    """Configured portfolio limits and the freshness bound on Greeks and prices."""

    values: Mapping[ReasonCode, float] = field(default_factory=dict)
    max_data_age_s: float = 60.0

    def get(self, code: ReasonCode) -> float | None:
        return self.values.get(code)


@dataclass(frozen=True, slots=True)
class StressParams:
    spot_shocks_pct: tuple[float, ...] = (-15.0, -10.0, -5.0, 0.0, 5.0, 10.0, 15.0)
    vol_shocks_pts: tuple[float, ...] = (-10.0, 0.0, 10.0)


@dataclass(frozen=True, slots=True)
class BetaParams:
    """``[beta]``: the benchmark and each symbol's beta to it (DESIGN §4.1)."""

    index: str | None = None
    default: float | None = None
    values: Mapping[str, float] = field(default_factory=dict)

    def beta(self, symbol: str) -> float | None:
        """The index's beta is always 1; an unknown symbol's is the default (or missing)."""
        if symbol == self.index:
            return 1.0
        return self.values.get(symbol, self.default)


@dataclass(frozen=True, slots=True)
class OrderParams:
    """``[orders]``: controls on the order itself (DESIGN §4.2)."""

    max_leg_contracts: float | None = None
    max_leg_shares: float | None = None
    max_order_notional: float | None = None
    max_order_premium: float | None = None
    price_collar_pct: float | None = None
    max_orders_per_window: int | None = None
    order_window_s: float = 1.0
    duplicate_window_s: float | None = None
    quote_wait_s: float = 1.0  # the daemon's wait for a quote of an unquoted contract


@dataclass(frozen=True, slots=True)
class LossParams:
    """``[loss]``: the daily-loss and drawdown latch (DESIGN §4.3)."""

    max_daily_loss: float | None = None
    max_drawdown_pct: float | None = None
    max_pnl_age_s: float = 60.0

    @property
    def enabled(self) -> bool:
        return self.max_daily_loss is not None or self.max_drawdown_pct is not None


@dataclass(frozen=True, slots=True)
class MarginParams:
    """``[margin]``: IB what-if limits (DESIGN §4.4)."""

    max_init_margin_pct: float | None = None
    min_excess_liquidity: float | None = None
    whatif_timeout_s: float = 2.0

    @property
    def enabled(self) -> bool:
        return self.max_init_margin_pct is not None or self.min_excess_liquidity is not None


@dataclass(frozen=True, slots=True)
class GateParams:
    limits: LimitParams = field(default_factory=LimitParams)
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    stress: StressParams = field(default_factory=StressParams)
    pricing: PricingParams = field(default_factory=PricingParams)
    beta: BetaParams = field(default_factory=BetaParams)
    orders: OrderParams = field(default_factory=OrderParams)
    cooldown_s: float | None = None  # [cooldown] after_trigger_s
    loss: LossParams = field(default_factory=LossParams)
    margin: MarginParams = field(default_factory=MarginParams)

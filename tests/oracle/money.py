"""Daily P&L, the estimated NLV, the high-water mark and the loss trip (DESIGN §4.3).

Facts copied from the contract:

- Daily P&L: `pnl` events' `daily`; null, non-finite or DBL_MAX is missing
  data (the P&L keeps aging, the last value stays the latest).
- Estimated NLV = latest NLV (`account` event, else `[account]
  net_liquidation`) + (daily P&L now - base); base = the daily P&L current when
  that NLV arrived, or, if none had arrived yet, the first daily P&L after it
  (until then the estimate is the NLV itself).  It is the NLV of every %
  limit and of max_init_margin_pct, whether or not `[loss]` is set.
- High-water mark: the highest estimate at any `pnl` or `account` event since
  the last operator reset, counting only estimates whose NLV came from an
  `account` line; without one drawdown is not evaluated; a reset restarts it at
  the estimate of that moment.
- A loss trip happens at a `pnl` or `account` event when daily P&L <=
  -max_daily_loss (the latest daily P&L whatever its age; none yet: no trip),
  or estimate <= HWM x (1 - max_drawdown_pct/100).
"""

from __future__ import annotations

from dataclasses import dataclass

from oracle.config import Config


@dataclass
class Money:
    """NLV, P&L and HWM bookkeeping."""

    cfg: Config
    nlv: float | None = None
    nlv_from_ib: bool = False
    base: float | None = None
    pnl: float | None = None
    pnl_time: float | None = None
    hwm: float | None = None

    def __post_init__(self) -> None:
        """Start from `[account] net_liquidation` (not from IB)."""
        self.nlv = self.cfg.net_liquidation

    def estimate(self) -> float | None:
        """The estimated NLV now, or None without any NLV."""
        if self.nlv is None:
            return None
        if self.base is None or self.pnl is None:
            return self.nlv
        return self.nlv + (self.pnl - self.base)

    def on_account(self, value: float) -> None:
        """An `account` line: a new NLV from IB, based on the P&L current now."""
        self.nlv = value
        self.nlv_from_ib = True
        self.base = self.pnl
        self._mark()

    def on_pnl(self, t: float, daily: float | None) -> None:
        """A `pnl` line; a missing `daily` leaves the latest value (and its age) alone."""
        if daily is not None:
            self.pnl = daily
            self.pnl_time = t
            if self.nlv is not None and self.base is None:
                self.base = daily
        self._mark()

    def _mark(self) -> None:
        """Raise the high-water mark with an estimate whose NLV came from IB."""
        if not self.nlv_from_ib:
            return
        est = self.estimate()
        if est is not None and (self.hwm is None or est > self.hwm):
            self.hwm = est

    def on_reset(self) -> None:
        """Operator reset: the HWM restarts at the estimate of that moment."""
        self.hwm = self.estimate() if self.nlv_from_ib else None

    def over_limit(self) -> str | None:
        """Which loss limit is breached now, if any (checked at pnl and account events)."""
        cfg = self.cfg
        daily = self.pnl
        if cfg.max_daily_loss is not None and daily is not None and daily <= -cfg.max_daily_loss:
            return "max_daily_loss"
        if cfg.max_drawdown_pct is not None and self.hwm is not None:
            est = self.estimate()
            if est is not None and est <= self.hwm * (1 - cfg.max_drawdown_pct / 100):
                return "max_drawdown_pct"
        return None

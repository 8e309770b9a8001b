"""Daily P&L, the estimated NLV and its high-water mark, and the loss trip (DESIGN §4.3).

IB refreshes the account's NLV only every few minutes, but its daily P&L
about once a second; the estimate carries the last NLV forward by the P&L
since it arrived:

    estimate = NLV + (daily now − base)

where ``base`` is the daily P&L current when that NLV arrived, or — if none
had arrived yet — the first daily P&L after it (until then the estimate is
the NLV itself). Every % limit uses the estimate.

The high-water mark counts only estimates whose NLV came from IB (never the
config's ``[account] net_liquidation``), at every ``pnl`` or ``account``
event since the last operator reset; a reset restarts it at that moment's
estimate. A loss trip is judged at those same events. Pure: no clock, no I/O.
"""

from __future__ import annotations

import math
from typing import Any

from actors.gate.params import LossParams
from actors.messages import LossBreach

DBL_MAX = 1.7976931348623157e308


def ib_number(x: float | None) -> float | None:
    """IB's unset values (None, NaN, ±∞, DBL_MAX) are missing data, never numbers."""
    if x is None or not math.isfinite(x) or abs(x) >= DBL_MAX:
        return None
    return x


class Money:
    def __init__(self, params: LossParams, config_nlv: float | None = None) -> None:
        self.params = params
        self.nlv: float | None = config_nlv
        self.nlv_t: float | None = None
        self.nlv_from_ib = False
        self.base: float | None = None
        self.daily: float | None = None
        self.unrealized: float | None = None
        self.realized: float | None = None
        self.pnl_t: float | None = None
        self.high_water: float | None = None

    # ------------------------------------------------------------ reading

    def estimate(self) -> float | None:
        if self.nlv is None:
            return None
        if self.base is None or self.daily is None:
            return self.nlv
        return self.nlv + (self.daily - self.base)

    def pnl_age(self, t: float) -> float | None:
        return None if self.pnl_t is None else t - self.pnl_t

    # ------------------------------------------------------------- events

    def account(self, t: float, nlv: float) -> LossBreach | None:
        """A new NLV from IB: re-base the estimate on the daily P&L current now."""
        self.nlv, self.nlv_t, self.nlv_from_ib = nlv, t, True
        self.base = self.daily
        return self._event(t)

    def pnl(
        self,
        t: float,
        daily: float | None,
        unrealized: float | None = None,
        realized: float | None = None,
    ) -> LossBreach | None:
        """IB's P&L; an unset daily is missing data (the last one keeps aging)."""
        daily = ib_number(daily)
        if daily is not None:
            if self.base is None and self.nlv is not None:
                self.base = daily  # the first daily P&L after the NLV
            self.daily, self.pnl_t = daily, t
            self.unrealized, self.realized = ib_number(unrealized), ib_number(realized)
        return self._event(t)

    def reset(self) -> None:
        """An operator reset: the high-water mark restarts at the estimate of now."""
        self.high_water = self.estimate() if self.nlv_from_ib else None

    def _event(self, t: float) -> LossBreach | None:
        estimate = self.estimate()
        hw = self.high_water
        if self.nlv_from_ib and estimate is not None and (hw is None or estimate > hw):
            self.high_water = hw = estimate
        p = self.params
        daily = self.daily
        if p.max_daily_loss is not None and daily is not None and daily <= -p.max_daily_loss:
            return self._breach(t, "max_daily_loss", estimate)
        dd = p.max_drawdown_pct
        floor = None if dd is None or hw is None else hw * (1 - dd / 100)
        if floor is not None and estimate is not None and estimate <= floor:
            return self._breach(t, "max_drawdown_pct", estimate)
        return None

    def _breach(self, t: float, rule: str, estimate: float | None) -> LossBreach:
        return LossBreach(t, rule, self.daily, estimate, self.high_water, self.nlv)

    # -------------------------------------------------------- persistence

    def snapshot(self) -> dict[str, Any]:
        return {
            "nlv": self.nlv,
            "nlv_t": self.nlv_t,
            "nlv_from_ib": self.nlv_from_ib,
            "base": self.base,
            "daily": self.daily,
            "pnl_t": self.pnl_t,
            "high_water": self.high_water,
        }

    def restore(self, snap: dict[str, Any]) -> None:
        """Resume the high-water mark and the last NLV (P&L ages: it is not trusted as fresh)."""
        hw = snap.get("high_water")
        self.high_water = float(hw) if isinstance(hw, int | float) else None
        if snap.get("nlv_from_ib") and isinstance(snap.get("nlv"), int | float):
            self.nlv = float(snap["nlv"])
            self.nlv_t = snap.get("nlv_t")
            self.nlv_from_ib = True
            base = snap.get("base")
            self.base = float(base) if isinstance(base, int | float) else None
            daily = snap.get("daily")
            self.daily = float(daily) if isinstance(daily, int | float) else None
            pnl_t = snap.get("pnl_t")
            self.pnl_t = float(pnl_t) if isinstance(pnl_t, int | float) else None

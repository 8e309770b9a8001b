"""A point-in-time view of the book for people: the API's state, the live view, reports.

Built on request (the metrics loop asks about once a second), never per quote,
so it may walk the whole book. Tables are polars frames: per position, and
grouped per underlying, per expiry and per correlated group.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from actors.book import Book
from actors.limits import GateParams, stress_losses
from actors.messages import LIMIT_CODES, ReasonCode

C = ReasonCode

_POSITION_SCHEMA: dict[str, Any] = {
    "id": pl.String,
    "symbol": pl.String,
    "sec_type": pl.String,
    "right": pl.String,
    "strike": pl.Float64,
    "expiry": pl.String,
    "multiplier": pl.Float64,
    "qty": pl.Float64,
    "price": pl.Float64,
    "delta": pl.Float64,
    "dollar_delta": pl.Float64,
    "gamma": pl.Float64,
    "vega": pl.Float64,
    "theta": pl.Float64,
    "notional": pl.Float64,
    "greeks_t": pl.Float64,
}


@dataclass(frozen=True, slots=True)
class PortfolioView:
    t: float | None
    delta: float
    dollar_delta: float
    gamma: float
    vega: float
    theta: float
    net_liquidation: float | None
    limits: dict[str, float] = field(default_factory=dict)
    usage: dict[str, float] = field(default_factory=dict)  # the largest usage of each limit
    utilization: dict[str, float] = field(default_factory=dict)  # usage / limit
    data_problem: str | None = None
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    rows: tuple[dict[str, Any], ...] = ()

    def positions(self) -> pl.DataFrame:
        return pl.DataFrame(list(self.rows), schema=_POSITION_SCHEMA, orient="row")

    def by_underlying(self) -> pl.DataFrame:
        return _sums(self.positions(), "symbol")

    def by_expiry(self) -> pl.DataFrame:
        return _sums(self.positions().filter(pl.col("sec_type") == "OPT"), "expiry")

    def by_group(self) -> pl.DataFrame:
        members = pl.DataFrame(
            [(g, s) for g, symbols in self.groups.items() for s in symbols],
            schema={"group": pl.String, "symbol": pl.String},
            orient="row",
        )
        joined = self.positions().join(members, on="symbol", how="inner")
        out = _sums(joined, "group")
        if self.net_liquidation:
            out = out.with_columns(
                (pl.col("notional") / self.net_liquidation * 100).alias("notional_pct")
            )
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "delta": self.delta,
            "dollar_delta": self.dollar_delta,
            "gamma": self.gamma,
            "vega": self.vega,
            "theta": self.theta,
            "net_liquidation": self.net_liquidation,
            "data_problem": self.data_problem,
            "limits": [
                {
                    "limit": k,
                    "value": self.limits[k],
                    "usage": self.usage.get(k),
                    "utilization": self.utilization.get(k),
                }
                for k in self.limits
            ],
        }


def _sums(df: pl.DataFrame, key: str) -> pl.DataFrame:
    cols = ["delta", "dollar_delta", "gamma", "vega", "theta", "notional"]
    return (
        df.group_by(key, maintain_order=True)
        .agg(pl.len().alias("positions"), *[pl.col(c).sum() for c in cols])
        .sort(key)
    )


def view_of(book: Book, params: GateParams, t: float | None = None) -> PortfolioView:
    lim = params.limits
    totals = book.totals
    usage: dict[str, float] = {
        C.MAX_PORTFOLIO_DELTA: abs(totals.delta.value),
        C.MAX_PORTFOLIO_DOLLAR_DELTA: abs(totals.dollar_delta.value),
        C.MAX_PORTFOLIO_GAMMA: abs(totals.gamma.value),
        C.MAX_PORTFOLIO_VEGA: abs(totals.vega.value),
        C.MAX_PORTFOLIO_THETA: abs(totals.theta.value),
        C.MAX_PER_SYMBOL_DELTA: max(
            (abs(s.value) for s in book.symbol_delta.values()), default=0.0
        ),
    }
    nlv = book.nlv
    if nlv:
        usage[C.MAX_SINGLE_POSITION_PCT] = max(
            (h.notional / nlv * 100 for h in book.holdings.values() if h.notional is not None),
            default=0.0,
        )
        usage[C.MAX_CORRELATED_PCT] = max(
            (abs(s.value) / nlv * 100 for s in book.group_notional.values()), default=0.0
        )
    problem = None if t is None else book.data_problem(t, lim.max_data_age_s)
    if lim.get(C.MAX_STRESS_LOSS) is not None and t is not None and problem is None:
        usage[C.MAX_STRESS_LOSS] = abs(stress_losses(book, [], t, params)[0])
    limits = {c.value: v for c in LIMIT_CODES if (v := lim.get(c)) is not None}
    used = {c.value: usage[c] for c in LIMIT_CODES if c in usage}
    utilization = {k: used[k] / v for k, v in limits.items() if k in used and v > 0}
    rows = tuple(
        {
            "id": h.id,
            "symbol": h.contract.symbol,
            "sec_type": h.contract.sec_type.value,
            "right": None if h.contract.right is None else h.contract.right.value,
            "strike": h.contract.strike,
            "expiry": h.contract.expiry,
            "multiplier": h.contract.multiplier,
            "qty": h.qty,
            "price": h.price(),
            "delta": h.delta,
            "dollar_delta": h.dollar_delta,
            "gamma": h.gamma,
            "vega": h.vega,
            "theta": h.theta,
            "notional": h.notional,
            "greeks_t": h.greeks_t,
        }
        for h in book.holdings.values()
    )
    return PortfolioView(
        t,
        totals.delta.value,
        totals.dollar_delta.value,
        totals.gamma.value,
        totals.vega.value,
        totals.theta.value,
        nlv,
        limits,
        used,
        utilization,
        problem,
        dict(params.groups),
        rows,
    )

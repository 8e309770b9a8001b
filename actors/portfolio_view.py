"""A point-in-time view of the book for people: the API's state, the live view, reports.

Built on request (the metrics loop asks about once a second), never per quote,
so it may walk the whole book. Tables are polars frames: per position, and
grouped per underlying, per expiry and per correlated group.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

from actors.book import Book
from actors.gate.limit import LimitContext, PortfolioLimit
from actors.gate.limits.beta_weighted_delta import BetaWeightedDelta
from actors.gate.params import GateParams
from actors.gate.stale import Stale
from actors.market_book import MarketBook

#: The columns of the per-position table and their polars types (by name, so
#: polars — ~35 MB — loads only when a table is asked for).
_POSITION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "String"),
    ("symbol", "String"),
    ("sec_type", "String"),
    ("right", "String"),
    ("strike", "Float64"),
    ("expiry", "String"),
    ("multiplier", "Float64"),
    ("qty", "Float64"),
    ("bid", "Float64"),
    ("ask", "Float64"),
    ("last", "Float64"),
    ("price", "Float64"),
    ("delta", "Float64"),
    ("dollar_delta", "Float64"),
    ("gamma", "Float64"),
    ("vega", "Float64"),
    ("theta", "Float64"),
    ("notional", "Float64"),
    ("greeks_t", "Float64"),
)


def _schema() -> dict[str, Any]:
    import polars as pl

    return {name: getattr(pl, kind) for name, kind in _POSITION_COLUMNS}


@dataclass(frozen=True, slots=True)
class PortfolioView:
    t: float | None
    delta: float
    dollar_delta: float
    gamma: float
    vega: float
    theta: float
    net_liquidation: float | None  # the estimate every % limit uses (DESIGN §4.3)
    limits: dict[str, float] = field(default_factory=dict)
    usage: dict[str, float] = field(default_factory=dict)  # the largest usage of each limit
    utilization: dict[str, float] = field(default_factory=dict)  # usage / limit
    data_problem: str | None = None
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    rows: tuple[dict[str, Any], ...] = ()
    beta_weighted_delta: float | None = None  # index shares; None: not configured or stale

    def positions(self) -> pl.DataFrame:
        import polars as pl

        return pl.DataFrame(list(self.rows), schema=_schema(), orient="row")

    def by_underlying(self) -> pl.DataFrame:
        return _sums(self.positions(), "symbol")

    def by_expiry(self) -> pl.DataFrame:
        import polars as pl

        return _sums(self.positions().filter(pl.col("sec_type") == "OPT"), "expiry")

    def by_group(self) -> pl.DataFrame:
        import polars as pl

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
            "beta_weighted_delta": self.beta_weighted_delta,
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
    import polars as pl

    cols = ["delta", "dollar_delta", "gamma", "vega", "theta", "notional"]
    return (
        df.group_by(key, maintain_order=True)
        .agg(pl.len().alias("positions"), *[pl.col(c).sum() for c in cols])
        .sort(key)
    )


def view_of(
    book: Book,
    params: GateParams,
    limits: tuple[PortfolioLimit, ...],
    market: MarketBook,
    t: float | None = None,
) -> PortfolioView:
    """The book now, with each configured limit's usage (None where data are missing)."""
    totals = book.totals
    nlv = book.nlv
    problem = None if t is None else book.data_problem(t, params.limits.max_data_age_s)
    ctx = LimitContext(book, market, params, 0.0 if t is None else t)
    limit_values: dict[str, float] = {}
    used: dict[str, float] = {}
    for lim in limits:
        key = lim.code.value
        limit_values[key] = lim.limit
        needs_now = lim.code is BetaWeightedDelta.code or lim.code.value == "max_stress_loss"
        if needs_now and (t is None or problem is not None):
            continue  # needs fresh data and event time: unknown now
        usage = lim.usage(ctx)
        if usage is not None:
            used[key] = usage
    utilization = {k: used[k] / v for k, v in limit_values.items() if k in used and v > 0}
    beta = None
    if params.beta.index is not None and t is not None and problem is None:
        beta = _beta_value(ctx)
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
            "bid": h.bid,
            "ask": h.ask,
            "last": h.last,
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
        limit_values,
        used,
        utilization,
        problem,
        dict(params.groups),
        rows,
        beta,
    )


def _beta_value(ctx: LimitContext) -> float | None:
    try:
        return BetaWeightedDelta(0.0).value(ctx)
    except Stale:
        return None

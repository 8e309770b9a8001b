"""The portfolio limits of the pre-trade gate (DESIGN §4, §4.1): data, measures, violations.

Facts copied from the contract and the semantics doc:

- The gate projects the portfolio after the order (positions + legs); a check
  never changes holdings.  usage = |measure|.
- A limit is violated when its projected usage exceeds the limit (strictly)
  and the order increases that usage (strictly).
- Risk-reducing: for every configured limit whose measure the order changes,
  projected usage <= current usage, and at least one strictly decreases.
- Measures: one per portfolio-level limit; `max_per_symbol_delta` one per
  underlying; `max_single_position_pct` one per instrument (legs on a held
  contract add to it); `max_correlated_pct` one per group.  Several violated
  measures of one limit each give a reason: within a limit in the order of the
  order's legs (groups: in the order of `[groups]`).
- Position Greeks = per-share Greek x signed qty x multiplier; a stock has
  delta = qty and no other Greeks.  Dollar delta = delta x price: an option's
  Greeks' und_price, a held stock's last else mid, a stock leg's own `price`.
- Notional: option |qty| x strike x multiplier, stock |qty| x price (a held
  stock after an order at the held price, a stock not held at the leg's price).
- Beta-weighted delta = sum of dollar delta x beta(symbol) / price(index); the
  index's beta is 1; price(index) is the newest of an open stock position on
  the index, an open option position's und_price on it, a market line of the
  index stock (last, else mid); no older than max_data_age_s.
- Stress: every option repriced by BSM at spot x (1 + s/100) and vol
  iv + v/100 (floored at 0.0001), same T, rate and the symbol's dividend yield;
  base = the model value at the current spot and iv; stocks linear; usage =
  the largest loss over the grid.
- Fail closed: the Greeks each limit uses on every open option position (delta
  for delta limits; delta + und_price for dollar delta and beta; gamma, vega,
  theta for theirs; iv + und_price for stress), no older than max_data_age_s
  (exactly that age is fresh); stock prices for dollar delta, single-position
  %, stress and beta (for correlated % when the symbol is in a group); NLV for
  % limits; beta for every symbol and a fresh index price for beta.  Missing
  or old data -> stale_data (value = largest age, null when something is
  missing; limit = max_data_age_s) and the limits are not evaluated.
- Greeks come from IB's modelGreeks; where there are none, the supervisor
  computes them (BSM).  Here (see AMBIGUITIES.md and replay.py): an option
  position that never received a `greeks` object gets BSM Greeks at each of
  its accepted quotes, from that quote's price and the underlying's latest
  price, stamped with that quote; IB Greeks with a needed field missing are
  missing data, not a reason for BSM.
- A leg uses its own Greeks when they carry every field the limits need, else
  the held contract's, else BSM (implied vol from the leg's price against the
  underlying's latest price: the newest stock-position price or option
  und_price seen on that symbol, also from positions closed since; market
  lines never count); impossible -> stale_data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from oracle import bsm
from oracle.book import Position, Stamp, Stamped
from oracle.config import GREEK_LIMIT_KEYS, LIMIT_KEYS, Config


@dataclass
class Leg:
    """One leg of a checked order, validated."""

    symbol: str
    sec_type: str
    contract: tuple[Any, ...]
    qty: float
    price: float
    right: str | None
    strike: float | None
    expiry: str | None
    multiplier: float
    greeks: dict[str, float | None] | None


@dataclass
class Item:
    """A position or a leg as the limits see it."""

    symbol: str
    sec_type: str
    contract: tuple[Any, ...]
    qty: float
    multiplier: float
    strike: float | None
    right: str | None
    expiry: str | None
    greeks: dict[str, float | None] | None
    price: float | None

    def g(self, name: str) -> float:
        """A Greek field known to be present (the data check ran first)."""
        assert self.greeks is not None
        value = self.greeks[name]
        assert value is not None
        return value


@dataclass
class Measure:
    """One measure of one limit: its usage before and after the order."""

    key: str
    before: float
    after: float

    @property
    def touched(self) -> bool:
        """The order changes the measure."""
        return self.after != self.before


@dataclass
class PortfolioVerdict:
    """What the limits say: stale (value, limit) or the violations and risk-reduction."""

    stale: tuple[float | None, float | None] | None = None
    violations: list[dict[str, Any]] = field(default_factory=list)
    risk_reducing: bool = False


def needed_fields(cfg: Config) -> set[str]:
    """The Greek fields every option (position or leg) must carry for the configured limits."""
    lim = cfg.limits
    need: set[str] = set()
    if any(k in lim for k in ("max_portfolio_delta", "max_per_symbol_delta")):
        need.add("delta")
    if any(k in lim for k in ("max_portfolio_dollar_delta", "max_beta_weighted_delta")):
        need.update({"delta", "und_price"})
    for greek in ("gamma", "vega", "theta"):
        if f"max_portfolio_{greek}" in lim:
            need.add(greek)
    if "max_stress_loss" in lim:
        need.update({"iv", "und_price"})
    return need


def _complete(greeks: dict[str, float | None] | None, need: set[str]) -> bool:
    """Greeks that carry every needed field."""
    return greeks is not None and all(greeks.get(f) is not None for f in need)


def bsm_greeks(
    spec: Leg | Position, option_price: float | None, s: float | None, t: float, cfg: Config
) -> dict[str, float | None] | None:
    """Greeks of an option from its price by implied vol at time t; None when impossible."""
    if s is None or option_price is None:
        return None
    if spec.strike is None or spec.expiry is None or spec.right is None:
        return None
    years = bsm.years_to_expiry(spec.expiry, t)
    q = cfg.dividend_yield.get(spec.symbol, 0.0)
    iv = bsm.implied_vol(spec.right, option_price, s, spec.strike, years, cfg.rate, q)
    if iv is None:
        return None
    out: dict[str, float | None] = dict(
        bsm.greeks(spec.right, s, spec.strike, years, cfg.rate, q, iv)
    )
    out["iv"] = iv
    out["und_price"] = s
    return out


def index_price(
    positions: list[Position], market_index: Stamped | None, index: str
) -> Stamped | None:
    """The newest price of the index: its stock positions, its options' und_price, market lines."""
    best = market_index
    for pos in positions:
        if pos.symbol != index:
            continue
        cand = pos.und_price() if pos.is_option else pos.stock_price()
        if cand is not None and (best is None or cand.stamp > best.stamp):
            best = cand
    return best


def beta_of(cfg: Config, symbol: str) -> float | None:
    """beta(symbol): 1 for the index, `[beta.values]`, else `default`, else missing."""
    if symbol == cfg.beta_index:
        return 1.0
    if symbol in cfg.beta_values:
        return cfg.beta_values[symbol]
    return cfg.beta_default


def evaluate_limits(
    cfg: Config,
    t: float,
    positions: list[Position],
    legs: list[Leg],
    nlv: float | None,
    market_index: Stamped | None,
    underlying: dict[str, Stamped],
) -> PortfolioVerdict:
    """Run the data check, then every configured limit over the projected portfolio.

    `underlying` holds each symbol's latest underlying price (for BSM legs).
    """
    lim = cfg.limits
    if not lim:
        return PortfolioVerdict()
    need = needed_fields(cfg)
    greeks_needed = any(k in lim for k in GREEK_LIMIT_KEYS)
    stock_price_needed = any(
        k in lim
        for k in (
            "max_portfolio_dollar_delta",
            "max_beta_weighted_delta",
            "max_single_position_pct",
            "max_stress_loss",
        )
    )
    grouped = {s for syms in cfg.groups.values() for s in syms}
    missing = False
    ages: list[float] = []

    items: list[Item] = []
    held_greeks: dict[tuple[Any, ...], dict[str, float | None] | None] = {}
    for pos in positions:
        price: float | None = None
        pos_greeks = pos.greeks
        if pos.is_option:
            if greeks_needed:
                if not _complete(pos_greeks, need) or pos.greeks_stamp is None:
                    missing = True
                else:
                    ages.append(t - pos.greeks_stamp[0])
            held_greeks.setdefault(pos.contract, pos_greeks)
        else:
            sp = pos.stock_price()
            price = None if sp is None else sp.value
            wanted = stock_price_needed or ("max_correlated_pct" in lim and pos.symbol in grouped)
            if wanted and price is None:
                missing = True
        items.append(
            Item(
                pos.symbol,
                pos.sec_type,
                pos.contract,
                pos.qty,
                pos.multiplier,
                pos.strike,
                pos.right,
                pos.expiry,
                pos_greeks,
                price,
            )
        )
    n_pos = len(items)
    for leg in legs:
        greeks: dict[str, float | None] | None = None
        if leg.sec_type == "OPT" and greeks_needed:
            if _complete(leg.greeks, need):
                greeks = leg.greeks
            else:
                if leg.contract in held_greeks:
                    greeks = held_greeks[leg.contract]
                else:
                    und = underlying.get(leg.symbol)
                    greeks = bsm_greeks(leg, leg.price, None if und is None else und.value, t, cfg)
                if not _complete(greeks, need):
                    missing = True
        items.append(
            Item(
                leg.symbol,
                leg.sec_type,
                leg.contract,
                leg.qty,
                leg.multiplier,
                leg.strike,
                leg.right,
                leg.expiry,
                greeks,
                leg.price if leg.sec_type == "STK" else None,
            )
        )
    pct_needed = "max_single_position_pct" in lim or "max_correlated_pct" in lim
    if pct_needed and nlv is None:
        missing = True
    idx_value = 0.0
    betas: dict[str, float] = {}
    if "max_beta_weighted_delta" in lim:
        for item in items:
            b = beta_of(cfg, item.symbol)
            if b is None:
                missing = True
            else:
                betas[item.symbol] = b
        idx = (
            None if cfg.beta_index is None else index_price(positions, market_index, cfg.beta_index)
        )
        if idx is None:
            missing = True
        else:
            ages.append(t - idx.stamp[0])
            idx_value = idx.value
    if missing:
        return PortfolioVerdict(stale=(None, cfg.max_data_age_s))
    if any(age > cfg.max_data_age_s for age in ages):
        return PortfolioVerdict(stale=(max(ages), cfg.max_data_age_s))

    pos_items, leg_items = items[:n_pos], items[n_pos:]
    measures: dict[str, list[Measure]] = {}

    def delta(it: Item) -> float:
        if it.sec_type == "STK":
            return it.qty
        return it.g("delta") * it.qty * it.multiplier

    def dollar(it: Item) -> float:
        if it.sec_type == "STK":
            assert it.price is not None
            return it.qty * it.price
        return delta(it) * it.g("und_price")

    def greek(name: str) -> Any:
        def fn(it: Item) -> float:
            if it.sec_type == "STK":
                return 0.0
            return it.g(name) * it.qty * it.multiplier

        return fn

    def summed(fn: Any, chosen: list[Item]) -> float:
        total = 0.0
        for it in chosen:
            total += fn(it)
        return total

    def portfolio_measure(key: str, fn: Any) -> None:
        before = summed(fn, pos_items)
        after = before
        for it in leg_items:
            after += fn(it)
        measures[key] = [Measure(key, abs(before), abs(after))]

    if "max_portfolio_delta" in lim:
        portfolio_measure("max_portfolio_delta", delta)
    if "max_portfolio_dollar_delta" in lim:
        portfolio_measure("max_portfolio_dollar_delta", dollar)
    for name in ("gamma", "vega", "theta"):
        if f"max_portfolio_{name}" in lim:
            portfolio_measure(f"max_portfolio_{name}", greek(name))
    if "max_per_symbol_delta" in lim:
        ms: list[Measure] = []
        for sym in _unique(leg.symbol for leg in legs):
            before = summed(delta, [it for it in pos_items if it.symbol == sym])
            after = before
            for it in leg_items:
                if it.symbol == sym:
                    after += delta(it)
            ms.append(Measure("max_per_symbol_delta", abs(before), abs(after)))
        measures["max_per_symbol_delta"] = ms
    if "max_beta_weighted_delta" in lim:

        def weighted(it: Item) -> float:
            return dollar(it) * betas[it.symbol] / idx_value

        portfolio_measure("max_beta_weighted_delta", weighted)
    if pct_needed:
        assert nlv is not None
        held_qty: dict[tuple[Any, ...], float] = {}
        held_price: dict[tuple[Any, ...], float] = {}
        specs: dict[tuple[Any, ...], Item] = {}
        for it in pos_items:
            held_qty[it.contract] = held_qty.get(it.contract, 0.0) + it.qty
            if it.price is not None and it.contract not in held_price:
                held_price[it.contract] = it.price
            specs.setdefault(it.contract, it)
        proj_qty = dict(held_qty)
        for it in leg_items:
            proj_qty[it.contract] = proj_qty.get(it.contract, 0.0) + it.qty
            if it.contract not in held_price and it.price is not None:
                held_price[it.contract] = it.price
            specs.setdefault(it.contract, it)

        def notional(contract: tuple[Any, ...], qty: float) -> float:
            spec = specs[contract]
            if spec.sec_type == "OPT":
                assert spec.strike is not None
                return abs(qty) * spec.strike * spec.multiplier
            if qty == 0:
                return 0.0
            return abs(qty) * held_price[contract]

        if "max_single_position_pct" in lim:
            ms = []
            for contract in _unique(leg.contract for leg in legs):
                before = notional(contract, held_qty.get(contract, 0.0)) / nlv * 100
                after = notional(contract, proj_qty[contract]) / nlv * 100
                ms.append(Measure("max_single_position_pct", abs(before), abs(after)))
            measures["max_single_position_pct"] = ms
        if "max_correlated_pct" in lim:
            ms = []
            for syms in cfg.groups.values():
                members = [c for c in specs if specs[c].symbol in syms]
                before_n = 0.0
                after_n = 0.0
                for c in members:
                    if c in held_qty:
                        before_n += notional(c, held_qty[c])
                    after_n += notional(c, proj_qty[c])
                ms.append(
                    Measure(
                        "max_correlated_pct", abs(before_n / nlv * 100), abs(after_n / nlv * 100)
                    )
                )
            measures["max_correlated_pct"] = ms
    if "max_stress_loss" in lim:
        before_s, after_s = stress(cfg, t, pos_items, leg_items)
        measures["max_stress_loss"] = [Measure("max_stress_loss", abs(before_s), abs(after_s))]

    verdict = PortfolioVerdict()
    for key in LIMIT_KEYS:
        for m in measures.get(key, []):
            if m.after > lim[key] and m.after > m.before:
                verdict.violations.append({"code": key, "value": m.after, "limit": lim[key]})
    touched = [m for ms in measures.values() for m in ms if m.touched]
    verdict.risk_reducing = (
        bool(touched)
        and all(m.after <= m.before for m in touched)
        and any(m.after < m.before for m in touched)
    )
    return verdict


def stress(
    cfg: Config, t: float, pos_items: list[Item], leg_items: list[Item]
) -> tuple[float, float]:
    """The worst loss over the grid before and after the order (full BSM repricing)."""

    def pnl(it: Item, s: float, v: float) -> float:
        if it.sec_type == "STK":
            assert it.price is not None
            return it.qty * it.price * s / 100
        assert it.expiry is not None and it.right is not None and it.strike is not None
        years = bsm.years_to_expiry(it.expiry, t)
        q = cfg.dividend_yield.get(it.symbol, 0.0)
        spot = it.g("und_price")
        iv = it.g("iv")
        base = bsm.price(it.right, spot, it.strike, years, cfg.rate, q, iv)
        shocked = bsm.price(
            it.right, spot * (1 + s / 100), it.strike, years, cfg.rate, q, max(iv + v / 100, 0.0001)
        )
        return it.qty * it.multiplier * (shocked - base)

    worst_before: float | None = None
    worst_after: float | None = None
    for s in cfg.spot_shocks_pct:
        for v in cfg.vol_shocks_pts:
            total = 0.0
            for it in pos_items:
                total += pnl(it, s, v)
            before_loss = -total
            for it in leg_items:
                total += pnl(it, s, v)
            after_loss = -total
            worst_before = before_loss if worst_before is None else max(worst_before, before_loss)
            worst_after = after_loss if worst_after is None else max(worst_after, after_loss)
    return (worst_before or 0.0, worst_after or 0.0)


def _unique(values: Any) -> list[Any]:
    """Distinct values in first-seen order."""
    seen: list[Any] = []
    for v in values:
        if v not in seen:
            seen.append(v)
    return seen


__all__ = ["Leg", "PortfolioVerdict", "Stamp", "evaluate_limits"]

"""The pre-trade gate's verdict (DESIGN §4, §4.2-§4.4 and the breaker's part of §5).

Facts copied from the contract:

- A malformed order (no legs, quantity 0, a missing option field, a
  non-finite number; the semantics doc adds: a leg without symbol or with an
  unknown sec_type, a price, strike or multiplier <= 0, expiry not
  YYYY-MM-DD) -> `invalid_order` alone; no other rule, no breaker, counts
  toward neither order_rate nor duplicate_order.
- Reasons, in this order: portfolio limit keys (table order), order controls
  (§4.2 table order), `cooldown`, margin keys, `stale_data`, the breaker's code.
- Order controls judge the order itself, for every order (risk-reducing
  included), in every breaker state, also when portfolio data are stale.
  max_leg_contracts / max_leg_shares: a leg's |qty| > limit, value = the
  largest such |qty|; max_order_notional: sum of legs' notional; max_order_premium:
  sum of option legs' |qty| x price x multiplier; price_collar_pct: a leg's price
  > ask + mid x pct/100 or < bid - mid x pct/100, value = the first such leg's
  price; order_rate: max_orders_per_window allowed orders already in
  (t - order_window_s, t], value = that count; duplicate_order: an allowed order
  with the same multiset of (contract, qty, price) in (t - duplicate_window_s, t],
  value null, limit duplicate_window_s.
- The collar's quote: the newest quote of the contract with finite, > 0,
  uncrossed bid and ask among accepted quotes of open positions on it and
  `market` lines; none or older than max_data_age_s -> that leg gives
  stale_data (an order control's reason: risk-reducing stays risk-reducing).
- cooldown: a non-risk-reducing order with a leg on a symbol that TRIGGERed at
  t0 with t - t0 < after_trigger_s; value = t - t0 of the newest such trigger.
- With a loss limit set, a non-risk-reducing order needs a daily P&L no older
  than max_pnl_age_s, else stale_data (limit max_pnl_age_s).
- Margin (§4.4): judged only for a non-risk-reducing order that nothing else
  denies, whatever the breaker's state, before the breaker.
  max_init_margin_pct: init after / estimated NLV x 100 > limit and init
  after > before; min_excess_liquidity: ewl after - maint after < limit and
  lower than before.  No whatif, or an unset value (null, missing,
  non-finite, DBL_MAX) among the fields the configured keys use ->
  stale_data with value and limit null.
- Data stale -> not known to be risk-reducing: cooldown and the breaker judge
  it as an entry.
- The breaker's code is listed whenever the breaker denies (OPEN, or
  HALF_OPEN without permits) a non-risk-reducing order, whatever else denies
  it; a half-open permit is taken only when every other rule allowed it.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from oracle.book import GREEK_FIELDS, Position, Stamp, Stamped
from oracle.breaker import Breaker
from oracle.config import Config
from oracle.events import is_number, unset_ib_value, valid_expiry
from oracle.portfolio import Leg, evaluate_limits

StaleSource = tuple[float | None, float | None]


def reason(code: str, value: float | None, limit: float | None) -> dict[str, Any]:
    """One reason object, keys in the contract's order."""
    return {"code": code, "value": value, "limit": limit}


def parse_order(raw_legs: object) -> list[Leg] | None:
    """The order's legs, or None when the order is malformed (invalid_order)."""
    if not isinstance(raw_legs, list) or not raw_legs:
        return None
    legs: list[Leg] = []
    for raw in raw_legs:
        if not isinstance(raw, dict):
            return None
        symbol = raw.get("symbol")
        sec_type = raw.get("sec_type")
        qty = raw.get("qty")
        price = raw.get("price")
        if not isinstance(symbol, str) or not symbol or sec_type not in ("STK", "OPT"):
            return None
        if not is_number(qty) or not math.isfinite(qty) or qty == 0:
            return None
        if not is_number(price) or not math.isfinite(price) or price <= 0:
            return None
        greeks_raw = raw.get("greeks")
        greeks: dict[str, float | None] | None = None
        if greeks_raw is not None:
            if not isinstance(greeks_raw, dict):
                return None
            greeks = {}
            for name in GREEK_FIELDS:
                value = greeks_raw.get(name)
                if value is None:
                    greeks[name] = None
                elif not is_number(value) or not math.isfinite(value):
                    return None
                else:
                    greeks[name] = float(value)
        if sec_type == "STK":
            legs.append(
                Leg(
                    symbol,
                    "STK",
                    ("STK", symbol),
                    float(qty),
                    float(price),
                    None,
                    None,
                    None,
                    1.0,
                    greeks,
                )
            )
            continue
        right = raw.get("right")
        strike = raw.get("strike")
        expiry = raw.get("expiry")
        mult = raw.get("multiplier")
        if right not in ("C", "P") or not valid_expiry(expiry):
            return None
        if not is_number(strike) or not math.isfinite(strike) or strike <= 0:
            return None
        if not is_number(mult) or not math.isfinite(mult) or mult <= 0:
            return None
        assert isinstance(expiry, str) and isinstance(right, str)
        contract = ("OPT", symbol, right, float(strike), expiry, float(mult))
        legs.append(
            Leg(
                symbol,
                "OPT",
                contract,
                float(qty),
                float(price),
                right,
                float(strike),
                expiry,
                float(mult),
                greeks,
            )
        )
    return legs


def merge_stale(sources: list[StaleSource]) -> StaleSource | None:
    """One stale_data reason from every freshness rule that failed (see AMBIGUITIES.md).

    value: null when something is missing, else the largest age; limit: the
    age limit of the rule that gave that value (of the first rule with
    something missing when the value is null).
    """
    if not sources:
        return None
    for value, limit in sources:
        if value is None:
            return (None, limit)
    best: StaleSource = sources[0]
    for src in sources[1:]:
        assert src[0] is not None and best[0] is not None
        if src[0] > best[0]:
            best = src
    return best


@dataclass
class Gate:
    """The gate's own memory: the allowed orders (for order_rate and duplicate_order)."""

    cfg: Config
    allowed: list[tuple[float, Counter[tuple[Any, ...]]]] = field(default_factory=list)

    def collar(
        self,
        t: float,
        legs: list[Leg],
        positions: list[Position],
        market_quotes: dict[tuple[Any, ...], tuple[Stamp, float, float]],
    ) -> tuple[dict[str, Any] | None, StaleSource | None]:
        """price_collar_pct: the first leg outside its collar, and any stale leg."""
        pct = self.cfg.price_collar_pct
        if pct is None:
            return None, None
        violation: dict[str, Any] | None = None
        stale_missing = False
        stale_ages: list[float] = []
        for leg in legs:
            best = market_quotes.get(leg.contract)
            for pos in positions:
                quote = pos.collar_quote
                if pos.contract != leg.contract or quote is None:
                    continue
                if best is None or quote[0] > best[0]:
                    best = quote
            if best is None:
                stale_missing = True
                continue
            age = t - best[0][0]
            if age > self.cfg.max_data_age_s:
                stale_ages.append(age)
                continue
            bid, ask = best[1], best[2]
            mid = (bid + ask) / 2
            outside = leg.price > ask + mid * pct / 100 or leg.price < bid - mid * pct / 100
            if outside and violation is None:
                violation = reason("price_collar_pct", leg.price, pct)
        stale: StaleSource | None = None
        if stale_missing:
            stale = (None, self.cfg.max_data_age_s)
        elif stale_ages:
            stale = (max(stale_ages), self.cfg.max_data_age_s)
        return violation, stale

    def controls(
        self,
        t: float,
        legs: list[Leg],
        positions: list[Position],
        market_quotes: dict[tuple[Any, ...], tuple[Stamp, float, float]],
    ) -> tuple[list[dict[str, Any]], StaleSource | None]:
        """The §4.2 order controls in table order, and the collar's stale_data."""
        cfg = self.cfg
        out: list[dict[str, Any]] = []
        if cfg.max_leg_contracts is not None:
            over = [abs(leg.qty) for leg in legs if leg.sec_type == "OPT"]
            over = [q for q in over if q > cfg.max_leg_contracts]
            if over:
                out.append(reason("max_leg_contracts", max(over), cfg.max_leg_contracts))
        if cfg.max_leg_shares is not None:
            over = [abs(leg.qty) for leg in legs if leg.sec_type == "STK"]
            over = [q for q in over if q > cfg.max_leg_shares]
            if over:
                out.append(reason("max_leg_shares", max(over), cfg.max_leg_shares))
        if cfg.max_order_notional is not None:
            total = 0.0
            for leg in legs:
                if leg.sec_type == "OPT":
                    assert leg.strike is not None
                    total += abs(leg.qty) * leg.strike * leg.multiplier
                else:
                    total += abs(leg.qty) * leg.price
            if total > cfg.max_order_notional:
                out.append(reason("max_order_notional", total, cfg.max_order_notional))
        if cfg.max_order_premium is not None:
            total = 0.0
            for leg in legs:
                if leg.sec_type == "OPT":
                    total += abs(leg.qty) * leg.price * leg.multiplier
            if total > cfg.max_order_premium:
                out.append(reason("max_order_premium", total, cfg.max_order_premium))
        collar_violation, collar_stale = self.collar(t, legs, positions, market_quotes)
        if collar_violation is not None:
            out.append(collar_violation)
        if cfg.max_orders_per_window is not None:
            count = sum(1 for (t0, _) in self.allowed if t0 > t - cfg.order_window_s and t0 <= t)
            if count >= cfg.max_orders_per_window:
                out.append(reason("order_rate", count, cfg.max_orders_per_window))
        if cfg.duplicate_window_s is not None:
            key = order_key(legs)
            if any(
                t0 > t - cfg.duplicate_window_s and t0 <= t and k == key for (t0, k) in self.allowed
            ):
                out.append(reason("duplicate_order", None, cfg.duplicate_window_s))
        return out, collar_stale

    def margin(self, whatif: object, nlv: float | None) -> tuple[list[dict[str, Any]], bool]:
        """Margin keys violated, and whether the what-if leaves something unanswered (stale)."""
        cfg = self.cfg
        if not cfg.margin_set:
            return [], False
        if not isinstance(whatif, dict):
            return [], True
        out: list[dict[str, Any]] = []
        stale = False
        if cfg.max_init_margin_pct is not None:
            before = unset_ib_value(whatif.get("init_margin_before"))
            after = unset_ib_value(whatif.get("init_margin_after"))
            if before is None or after is None or nlv is None:
                stale = True
            else:
                pct = after / nlv * 100
                if pct > cfg.max_init_margin_pct and after > before:
                    out.append(reason("max_init_margin_pct", pct, cfg.max_init_margin_pct))
        if cfg.min_excess_liquidity is not None:
            ewl_b = unset_ib_value(whatif.get("equity_with_loan_before"))
            ewl_a = unset_ib_value(whatif.get("equity_with_loan_after"))
            mm_b = unset_ib_value(whatif.get("maint_margin_before"))
            mm_a = unset_ib_value(whatif.get("maint_margin_after"))
            if ewl_b is None or ewl_a is None or mm_b is None or mm_a is None:
                stale = True
            else:
                excess_after = ewl_a - mm_a
                excess_before = ewl_b - mm_b
                if excess_after < cfg.min_excess_liquidity and excess_after < excess_before:
                    out.append(
                        reason("min_excess_liquidity", excess_after, cfg.min_excess_liquidity)
                    )
        return out, stale

    def check(
        self,
        t: float,
        obj: dict[str, Any],
        *,
        positions: list[Position],
        market_quotes: dict[tuple[Any, ...], tuple[Stamp, float, float]],
        market_index: Stamped | None,
        underlying: dict[str, Stamped],
        nlv: float | None,
        pnl_time: float | None,
        triggers: list[tuple[str, float]],
        breaker: Breaker,
    ) -> dict[str, Any]:
        """The verdict on one check line; records it when allowed and takes a permit."""
        cfg = self.cfg
        legs = parse_order(obj.get("legs"))
        line: dict[str, Any] = {"t": t, "type": "check", "id": obj["id"]}
        if legs is None:
            line["allowed"] = False
            line["reasons"] = [reason("invalid_order", None, None)]
            return line

        portfolio = evaluate_limits(cfg, t, positions, legs, nlv, market_index, underlying)
        risk_reducing = portfolio.stale is None and portfolio.risk_reducing
        reasons: list[dict[str, Any]] = list(portfolio.violations)
        control_reasons, collar_stale = self.controls(t, legs, positions, market_quotes)
        reasons.extend(control_reasons)

        stale_sources: list[StaleSource] = []
        if portfolio.stale is not None:
            stale_sources.append(portfolio.stale)
        if collar_stale is not None:
            stale_sources.append(collar_stale)

        if not risk_reducing:
            after = cfg.cooldown_after_trigger_s
            if after is not None:
                symbols = {leg.symbol for leg in legs}
                recent = [t - t0 for (sym, t0) in triggers if sym in symbols and t - t0 < after]
                if recent:
                    reasons.append(reason("cooldown", min(recent), after))
            if cfg.loss_limit_set:
                if pnl_time is None:
                    stale_sources.append((None, cfg.max_pnl_age_s))
                elif t - pnl_time > cfg.max_pnl_age_s:
                    stale_sources.append((t - pnl_time, cfg.max_pnl_age_s))
            if not reasons and not stale_sources:
                margin_reasons, margin_stale = self.margin(obj.get("whatif"), nlv)
                reasons.extend(margin_reasons)
                if margin_stale:
                    stale_sources.append((None, None))

        stale = merge_stale(stale_sources)
        if stale is not None:
            reasons.append(reason("stale_data", stale[0], stale[1]))
        if not risk_reducing:
            code = breaker.denial_code()
            if code is not None:
                reasons.append(reason(code, None, None))
            elif not reasons:
                breaker.take_permit()
        line["allowed"] = not reasons
        line["reasons"] = reasons
        if not reasons:
            self.allowed.append((t, order_key(legs)))
        return line


def order_key(legs: list[Leg]) -> Counter[tuple[Any, ...]]:
    """The multiset of (contract, qty, price) that duplicate_order compares."""
    return Counter((leg.contract, leg.qty, leg.price) for leg in legs)

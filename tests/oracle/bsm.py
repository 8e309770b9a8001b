"""Black-Scholes-Merton: prices, Greeks in the contract's units, implied vol, time to expiry.

Facts (DESIGN §2, §4 and the semantics doc):

- Greeks as IB's modelGreeks: delta and gamma per $1 of underlying, vega per
  1 volatility point (0.01, i.e. vega per unit sigma / 100), theta per calendar
  day (theta per year / 365).
- Continuous rate `[pricing] rate` and dividend yield `[pricing.dividend_yield]`.
- An option expires at 16:00 America/New_York on its expiry date;
  T = (expiry - t) / (365 x 86400) years, floored at 0.
- Stress repricing floors the volatility at 0.0001.

Written as plain closed forms with math.erfc so that it is obviously right;
`tests/oracle/test_bsm.py` checks it against 50-digit reference values.
"""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

from scipy.optimize import brentq

NEW_YORK = ZoneInfo("America/New_York")
SECONDS_PER_YEAR = 365.0 * 86400.0

#: The implied-vol search interval (the contract names none; see AMBIGUITIES.md).
IV_LOW = 1e-6
IV_HIGH = 10.0


def norm_cdf(x: float) -> float:
    """Standard normal CDF via erfc (accurate in both tails)."""
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def norm_pdf(x: float) -> float:
    """Standard normal density."""
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def expiry_epoch(expiry: str) -> float:
    """16:00 New York time on the expiry date, as epoch seconds (DST-aware)."""
    day = datetime.strptime(expiry, "%Y-%m-%d")
    close = datetime(day.year, day.month, day.day, 16, 0, 0, tzinfo=NEW_YORK)
    return close.timestamp()


def years_to_expiry(expiry: str, t: float) -> float:
    """T in years from event time t, floored at 0."""
    return max((expiry_epoch(expiry) - t) / SECONDS_PER_YEAR, 0.0)


def price(right: str, s: float, k: float, t: float, r: float, q: float, sigma: float) -> float:
    """The BSM value of one share's option; at T = 0 or sigma = 0 the discounted forward payoff."""
    is_call = right == "C"
    if t <= 0.0 or sigma <= 0.0:
        fwd_s = s * math.exp(-q * t)
        pv_k = k * math.exp(-r * t)
        return max(fwd_s - pv_k, 0.0) if is_call else max(pv_k - fwd_s, 0.0)
    sqrt_t = math.sqrt(t)
    d1 = (math.log(s / k) + (r - q + 0.5 * sigma * sigma) * t) / (sigma * sqrt_t)
    d2 = d1 - sigma * sqrt_t
    if is_call:
        return s * math.exp(-q * t) * norm_cdf(d1) - k * math.exp(-r * t) * norm_cdf(d2)
    return k * math.exp(-r * t) * norm_cdf(-d2) - s * math.exp(-q * t) * norm_cdf(-d1)


def greeks(
    right: str, s: float, k: float, t: float, r: float, q: float, sigma: float
) -> dict[str, float]:
    """delta, gamma, vega (per vol point), theta (per calendar day) of one share's option."""
    sqrt_t = math.sqrt(t)
    d1 = (math.log(s / k) + (r - q + 0.5 * sigma * sigma) * t) / (sigma * sqrt_t)
    d2 = d1 - sigma * sqrt_t
    disc_q = math.exp(-q * t)
    disc_r = math.exp(-r * t)
    pdf = norm_pdf(d1)
    gamma = disc_q * pdf / (s * sigma * sqrt_t)
    vega = s * disc_q * pdf * sqrt_t / 100.0
    decay = -s * disc_q * pdf * sigma / (2.0 * sqrt_t)
    if right == "C":
        delta = disc_q * norm_cdf(d1)
        theta = decay - r * k * disc_r * norm_cdf(d2) + q * s * disc_q * norm_cdf(d1)
    else:
        delta = disc_q * (norm_cdf(d1) - 1.0)
        theta = decay + r * k * disc_r * norm_cdf(-d2) - q * s * disc_q * norm_cdf(-d1)
    return {"delta": delta, "gamma": gamma, "vega": vega, "theta": theta / 365.0}


def implied_vol(
    right: str, target: float, s: float, k: float, t: float, r: float, q: float
) -> float | None:
    """The sigma whose BSM value is `target`, or None when no sigma in the search range fits."""
    if not (t > 0.0 and s > 0.0 and k > 0.0 and target > 0.0):
        return None
    if not all(math.isfinite(x) for x in (target, s, k, t, r, q)):
        return None

    def excess(sigma: float) -> float:
        return price(right, s, k, t, r, q, sigma) - target

    lo, hi = excess(IV_LOW), excess(IV_HIGH)
    if lo > 0.0 or hi < 0.0:
        return None
    if lo == 0.0:
        return IV_LOW
    if hi == 0.0:
        return IV_HIGH
    root: float = brentq(excess, IV_LOW, IV_HIGH, xtol=1e-15, rtol=1e-15, maxiter=500)
    return root

"""Black-Scholes-Merton values, Greeks, implied volatility and the stress grid.

The supervisor cannot rely on the broker for every number it limits on: IB's
model Greeks arrive late, go missing, or are absent for a leg that is only
proposed, and the stress limit needs values at spots and vols nobody quotes.
So the pre-trade gate and the portfolio price options themselves, with the
same model a trader would check them against (European BSM, continuous rate
``r`` and continuous dividend yield ``q``).

Everything here is a pure function of its arguments: no clock, no I/O, no
shared state beyond an ``lru_cache`` of expiry timestamps. That is what lets an
actor call it inline and lets ``replay`` reproduce a decision bit for bit.

Units are the ones the limits are written in, so no caller has to rescale:

* ``T`` in years, ``sigma`` / ``r`` / ``q`` as decimals (0.2 is 20 %);
* ``gamma`` per $1 move of the underlying;
* ``vega`` per volatility point (d price / d sigma / 100);
* ``theta`` per calendar day (per-year theta / 365).

Bad inputs raise :class:`PricingError` rather than returning NaN: a NaN that
reaches a limit comparison silently passes it (every comparison with NaN is
false), which is the one failure a risk gate must not have.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Final
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
from numpy.typing import NDArray

__all__ = [
    "DAYS_PER_YEAR",
    "IV_SIGMA_MAX",
    "IV_SIGMA_MIN",
    "SECONDS_PER_YEAR",
    "VOL_FLOOR",
    "BsmArrays",
    "BsmResult",
    "PricingError",
    "bsm",
    "bsm_greeks_array",
    "bsm_price_array",
    "implied_vol",
    "stress_pnl",
    "year_fraction",
]

#: Lowest volatility a stress scenario may shock an option to. A large
#: negative vol shock must not produce a negative or zero sigma (the model is
#: undefined there); flooring keeps the scenario meaningful (almost no time
#: value left) instead of failing the whole grid.
VOL_FLOOR: Final[float] = 1e-4

#: The bracket :func:`implied_vol` searches. Below 1e-6 an option's time value
#: is lost in the rounding of its price; above 1000 % no listed option trades.
IV_SIGMA_MIN: Final[float] = 1e-6
IV_SIGMA_MAX: Final[float] = 10.0

#: Calendar-day convention: theta per day and year fractions both count every
#: day, because an option decays over weekends too.
DAYS_PER_YEAR: Final[float] = 365.0
SECONDS_PER_YEAR: Final[float] = DAYS_PER_YEAR * 86400.0

_SQRT2: Final[float] = math.sqrt(2.0)
_INV_SQRT_2PI: Final[float] = 1.0 / math.sqrt(2.0 * math.pi)
_INF: Final[float] = math.inf

# implied_vol stops when the log of the model price is this close to the log of
# the target, i.e. the relative pricing error is ~1e-14: four orders of
# magnitude inside the 1e-10 repricing promise, and near the floor set by the
# rounding of the price formula itself.
_IV_LOG_TOL: Final[float] = 1e-14
_IV_MAX_ITER: Final[int] = 100

_EXPIRY_RE: Final = re.compile(r"(\d{4})-(\d{2})-(\d{2})", re.ASCII)
_EXPIRY_ZONE: Final[str] = "America/New_York"


def _ndtr() -> Any:
    """scipy's normal CDF, imported on first use: scipy costs ~40 MB of RSS, and a
    daemon whose limits never reprice an option (no stress limit, IB's Greeks)
    never needs it."""
    from scipy.special import ndtr

    return ndtr


class PricingError(ValueError):
    """An input the model cannot price; the message names the argument.

    A ``ValueError`` so that generic input-validation handlers catch it, yet a
    type of its own so a caller can tell "this option cannot be priced" (mark
    the data stale) from a bug elsewhere.
    """


@dataclass(frozen=True, slots=True)
class BsmResult:
    """Value and first-order risk of one option, in the module's units."""

    price: float
    delta: float
    gamma: float
    vega: float
    theta: float


@dataclass(frozen=True, slots=True)
class BsmArrays:
    """:class:`BsmResult` for many options at once, one array per field."""

    price: NDArray[np.float64]
    delta: NDArray[np.float64]
    gamma: NDArray[np.float64]
    vega: NDArray[np.float64]
    theta: NDArray[np.float64]


# ----------------------------------------------------------------- validation
#
# The comparisons are written so that NaN fails them (every comparison with NaN
# is false): one test rejects out-of-range and NaN alike, cheaply enough for the
# scalar fast path.


def _bad(name: str, value: object, need: str) -> PricingError:
    return PricingError(f"{name} must be {need}, got {value!r}")


def _check_scalars(
    is_call: bool, S: float, K: float, T: float, r: float, q: float, sigma: float
) -> None:
    if not isinstance(is_call, bool | np.bool_):
        raise _bad("is_call", is_call, "a bool")
    try:
        if not 0.0 < S < _INF:
            raise _bad("S", S, "a finite number > 0")
        if not 0.0 < K < _INF:
            raise _bad("K", K, "a finite number > 0")
        if not 0.0 <= T < _INF:
            raise _bad("T", T, "a finite number >= 0 (years)")
        if not -_INF < r < _INF:
            raise _bad("r", r, "a finite number")
        if not -_INF < q < _INF:
            raise _bad("q", q, "a finite number")
        if not 0.0 < sigma < _INF:
            raise _bad("sigma", sigma, "a finite number > 0")
    except TypeError as exc:  # a str or None compared with a float
        raise PricingError(f"pricing inputs must be real numbers: {exc}") from exc


def _float_array(name: str, value: npt.ArrayLike) -> NDArray[np.float64]:
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PricingError(f"{name} must be an array of real numbers: {exc}") from exc


def _require(name: str, arr: NDArray[np.float64], ok: NDArray[np.bool_], need: str) -> None:
    if not ok.all():
        idx = np.unravel_index(int(np.flatnonzero(~ok)[0]), arr.shape)
        where = f" at index {tuple(int(i) for i in idx)}" if arr.ndim else ""
        raise PricingError(f"{name} must be {need}, got {arr[idx]!r}{where}")


def _sign_array(is_call: npt.ArrayLike) -> NDArray[np.float64]:
    """+1 for a call, -1 for a put: one formula then prices both rights."""
    flags = np.asarray(is_call)
    # Truthiness would be a trap here: 'P' and 'C' are both truthy strings.
    if flags.dtype != np.bool_:
        raise PricingError(f"is_call must be an array of bool, got dtype {flags.dtype}")
    return np.where(flags, 1.0, -1.0)


def _checked_arrays(
    S: npt.ArrayLike,
    K: npt.ArrayLike,
    T: npt.ArrayLike,
    r: npt.ArrayLike,
    q: npt.ArrayLike,
    sigma: npt.ArrayLike,
) -> tuple[NDArray[np.float64], ...]:
    s, k, t, rr, qq, v = (
        _float_array(n, x)
        for n, x in (("S", S), ("K", K), ("T", T), ("r", r), ("q", q), ("sigma", sigma))
    )
    with np.errstate(invalid="ignore"):
        _require("S", s, (s > 0.0) & (s < _INF), "finite and > 0")
        _require("K", k, (k > 0.0) & (k < _INF), "finite and > 0")
        _require("T", t, (t >= 0.0) & (t < _INF), "finite and >= 0 (years)")
        _require("r", rr, np.isfinite(rr), "finite")
        _require("q", qq, np.isfinite(qq), "finite")
        _require("sigma", v, (v > 0.0) & (v < _INF), "finite and > 0")
    return s, k, t, rr, qq, v


# --------------------------------------------------------------- scalar path


def _ncdf(x: float) -> float:
    # erfc rather than 1 + erf: erfc keeps full relative precision in the far
    # left tail, where deep out-of-the-money values live.
    return 0.5 * math.erfc(-x / _SQRT2)


def _scalar_legs(S: float, K: float, T: float, r: float, q: float) -> tuple[float, float, float]:
    """exp(-qT), S exp(-qT), K exp(-rT): the discounted legs of the payoff."""
    try:
        qdf = math.exp(-q * T)
        sdf, kdf = S * qdf, K * math.exp(-r * T)
    except OverflowError as exc:
        raise _overflow() from exc
    if not (sdf < _INF and kdf < _INF):
        raise _overflow()
    return qdf, sdf, kdf


def _overflow() -> PricingError:
    # Only reachable with absurd finite inputs (say q = -1000 over a year); an
    # inf here would turn into NaN Greeks, so refuse like any other bad input.
    return PricingError("r, q or T out of range: a discount factor overflows")


def bsm(is_call: bool, S: float, K: float, T: float, r: float, q: float, sigma: float) -> BsmResult:
    """Price and Greeks of one European option.

    Pure ``math`` rather than numpy: one option at a time is the common case
    (a quote arrives, a leg is checked) and numpy's per-call overhead would
    dominate. The array functions below compute the same formulas.

    ``T == 0`` means expired: the value is intrinsic and gamma, vega and theta
    are 0 (no time is left to decay). Delta there is 1 / 0 for a call and
    -1 / 0 for a put, and half of that at ``S == K`` (the limit of delta as
    ``T -> 0`` at the money, and the choice that keeps put-call parity of
    delta exact). If ``sigma * sqrt(T)`` underflows to 0 the option is priced
    as the limit of zero variance: its discounted forward intrinsic value.
    """
    _check_scalars(is_call, S, K, T, r, q, sigma)
    w = 1.0 if is_call else -1.0
    if T == 0.0:
        if S == K:
            return BsmResult(0.0, 0.5 * w, 0.0, 0.0, 0.0)
        itm = (S > K) == (w > 0.0)
        return BsmResult(w * (S - K) if itm else 0.0, w if itm else 0.0, 0.0, 0.0, 0.0)

    sqrt_t = math.sqrt(T)
    vst = sigma * sqrt_t
    qdf, sdf, kdf = _scalar_legs(S, K, T, r, q)
    if vst > 0.0:
        d1 = (math.log(S / K) + (r - q) * T) / vst + 0.5 * vst
        pdf = _INV_SQRT_2PI * math.exp(-0.5 * d1 * d1)
    else:
        # Zero variance: N(d) becomes a step at the forward; compare the two
        # discounted legs directly so the step sits exactly where the payoff's
        # kink does.
        d1 = _INF if sdf > kdf else -_INF if sdf < kdf else 0.0
        pdf = 0.0
    n1 = _ncdf(w * d1)
    n2 = _ncdf(w * (d1 - vst))
    # Rounding in the difference can dip a hair below 0 for a far OTM option.
    price = max(w * (sdf * n1 - kdf * n2), 0.0)
    # Divide in two steps: pdf / S is 0 or finite, so no 0/0 even when S * vst
    # would underflow.
    gamma = qdf * pdf / S / vst if pdf != 0.0 else 0.0
    vega = sdf * pdf * sqrt_t / 100.0
    theta_year = -sdf * pdf * sigma / (2.0 * sqrt_t) + w * (q * sdf * n1 - r * kdf * n2)
    return BsmResult(price, w * qdf * n1, gamma, vega, theta_year / DAYS_PER_YEAR)


# ---------------------------------------------------------------- array path


def _d1_array(
    ln_fk: NDArray[np.float64],
    vst: NDArray[np.float64],
    sdf: NDArray[np.float64],
    kdf: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.bool_] | None]:
    """d1 from log forward moneyness, with the zero-variance step patched in.

    Returns the mask of zero-variance elements, or None when there are none:
    the common case then skips every ``np.where`` the patch would cost.
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        d1 = ln_fk / vst
        d1 += 0.5 * vst
    deg = vst == 0.0
    if not deg.any():
        return d1, None
    step = np.where(sdf > kdf, _INF, np.where(sdf < kdf, -_INF, 0.0))
    return np.where(deg, step, d1), deg


def _price_kernel(
    w: NDArray[np.float64],
    ln_fk: NDArray[np.float64],
    vst: NDArray[np.float64],
    sdf: NDArray[np.float64],
    kdf: NDArray[np.float64],
) -> NDArray[np.float64]:
    """BSM value from pre-computed pieces; every argument broadcasts.

    Split out so that :func:`stress_pnl` can feed it a spot axis and a vol axis
    and share the discount factors, which do not change across scenarios. The
    base value and the shocked values go through this same sequence of
    operations, so an unshocked scenario reproduces the base bit for bit.
    """
    d1, _ = _d1_array(ln_fk, vst, sdf, kdf)
    d2 = d1 - vst
    # From here on work in place on the full broadcast shape: at 1000 x 21 the
    # allocations would cost as much as the arithmetic.
    x1 = w * d1
    x2 = w * d2
    ndtr = _ndtr()
    ndtr(x1, out=x1)
    ndtr(x2, out=x2)
    x1 *= sdf
    x2 *= kdf
    x1 -= x2
    x1 *= w
    return np.maximum(x1, 0.0, out=x1)


def _array_legs(
    S: NDArray[np.float64],
    K: NDArray[np.float64],
    T: NDArray[np.float64],
    r: NDArray[np.float64],
    q: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Array twin of :func:`_scalar_legs`: exp(-qT), S exp(-qT), K exp(-rT)."""
    try:
        with np.errstate(over="raise"):
            qdf = np.exp(-q * T)
            return qdf, S * qdf, K * np.exp(-r * T)
    except FloatingPointError as exc:
        raise _overflow() from exc


def _log_forward_moneyness(
    S: NDArray[np.float64],
    K: NDArray[np.float64],
    T: NDArray[np.float64],
    r: NDArray[np.float64],
    q: NDArray[np.float64],
) -> NDArray[np.float64]:
    return np.log(S / K) + (r - q) * T


def bsm_price_array(
    is_call: npt.ArrayLike,
    S: npt.ArrayLike,
    K: npt.ArrayLike,
    T: npt.ArrayLike,
    r: npt.ArrayLike,
    q: npt.ArrayLike,
    sigma: npt.ArrayLike,
) -> NDArray[np.float64]:
    """Values of many options; inputs broadcast like any numpy expression.

    Cheaper than :func:`bsm_greeks_array` when only values are needed
    (re-marking a book), and validated as a whole: one bad element raises,
    naming the argument and the index, rather than poisoning a sum with NaN.
    ``is_call`` must have bool dtype.
    """
    w = _sign_array(is_call)
    s, k, t, r_, q_, sigma_ = _checked_arrays(S, K, T, r, q, sigma)
    _, sdf, kdf = _array_legs(s, k, t, r_, q_)
    price = _price_kernel(w, _log_forward_moneyness(s, k, t, r_, q_), sigma_ * np.sqrt(t), sdf, kdf)
    return np.asarray(price, dtype=np.float64)


def bsm_greeks_array(
    is_call: npt.ArrayLike,
    S: npt.ArrayLike,
    K: npt.ArrayLike,
    T: npt.ArrayLike,
    r: npt.ArrayLike,
    q: npt.ArrayLike,
    sigma: npt.ArrayLike,
) -> BsmArrays:
    """Values and Greeks of many options; the array twin of :func:`bsm`.

    Same units and the same conventions at ``T == 0`` and at zero variance as
    :func:`bsm`, so a caller may switch between the two freely.
    """
    w = _sign_array(is_call)
    s, k, t, r_, q_, sigma_ = _checked_arrays(S, K, T, r, q, sigma)
    sqrt_t = np.sqrt(t)
    vst = sigma_ * sqrt_t
    qdf, sdf, kdf = _array_legs(s, k, t, r_, q_)
    d1, deg = _d1_array(_log_forward_moneyness(s, k, t, r_, q_), vst, sdf, kdf)
    ndtr = _ndtr()
    n1 = ndtr(w * d1)
    n2 = ndtr(w * (d1 - vst))
    with np.errstate(over="ignore"):  # d1 = +-inf gives exp(-inf) = 0, as wanted
        pdf = _INV_SQRT_2PI * np.exp(-0.5 * d1 * d1)
    sqrt_t_div = sqrt_t
    if deg is not None:
        # Zero variance: no time value, so no curvature and no vega. Put a
        # harmless 1 in the denominators so the zeros stay zeros, not 0/0.
        pdf = np.where(deg, 0.0, pdf)
        vst = np.where(deg, 1.0, vst)
        sqrt_t_div = np.where(sqrt_t == 0.0, 1.0, sqrt_t)
    price = np.maximum(w * (sdf * n1 - kdf * n2), 0.0)
    delta = w * qdf * n1
    with np.errstate(over="ignore"):
        gamma = qdf * pdf / s / vst
    vega = sdf * pdf * sqrt_t / 100.0
    theta_year = -sdf * pdf * sigma_ / (2.0 * sqrt_t_div) + w * (q_ * sdf * n1 - r_ * kdf * n2)
    theta = np.where(t == 0.0, 0.0, theta_year / DAYS_PER_YEAR)
    # Broadcast every field to the common shape, so that a field constant in
    # some input (theta of an all-expired book) still lines up element-wise.
    shape = np.broadcast_shapes(w.shape, s.shape, k.shape, t.shape, r_.shape, q_.shape, vst.shape)
    fields = (np.asarray(x, dtype=np.float64) for x in (price, delta, gamma, vega, theta))
    return BsmArrays(
        *(x if x.shape == shape else np.array(np.broadcast_to(x, shape)) for x in fields)
    )


# ------------------------------------------------------------ implied vol


def _otm_log_price(
    w: float, ln_fk: float, sqrt_t: float, sdf: float, kdf: float, sigma: float
) -> tuple[float, float]:
    """log(value) of an out-of-the-money option and its derivative in sigma.

    The logarithm is what makes Newton converge in a handful of steps across
    the whole range: an OTM value falls like exp(-c / sigma^2) as sigma -> 0,
    hopeless for Newton on the value itself, while its log is smooth and
    concave, so a safeguarded Newton step never overshoots far.
    """
    vst = sigma * sqrt_t
    d1 = ln_fk / vst + 0.5 * vst
    value = w * (sdf * _ncdf(w * d1) - kdf * _ncdf(w * (d1 - vst)))
    if not value > 0.0:  # underflow, or rounding below 0: far below any target
        return -_INF, _INF
    vega = sdf * _INV_SQRT_2PI * math.exp(-0.5 * d1 * d1) * sqrt_t
    return math.log(value), vega / value


def implied_vol(
    price: float, is_call: bool, S: float, K: float, T: float, r: float, q: float
) -> float:
    """The sigma at which :func:`bsm` reproduces ``price``.

    Raises :class:`PricingError` when no sigma in [IV_SIGMA_MIN, IV_SIGMA_MAX]
    exists: a price at or below the discounted intrinsic value (no time value
    to explain), at or above the no-arbitrage bound (the discounted spot for a
    call, the discounted strike for a put), ``T <= 0``, or any non-finite
    input. A caller gets an error to handle, never a made-up volatility.

    The solver works on the out-of-the-money twin of the option (same strike,
    other right, by put-call parity): an in-the-money value is mostly
    intrinsic, and solving on the small time value keeps its full precision.
    It runs Newton on the log of that value, safeguarded by a bracket that
    shrinks every step and a geometric bisection whenever Newton would leave
    it, so it cannot diverge. The result reprices through :func:`bsm` to
    ~1e-14 relative (1e-10 guaranteed) for any price above ~1e-20 of spot;
    far-tail values smaller than that are beyond the precision of the BSM
    formula itself, in any implementation.
    """
    if not 0.0 < T < _INF:
        raise _bad("T", T, "finite and > 0 for an implied volatility")
    _check_scalars(is_call, S, K, T, r, q, 1.0)
    try:
        if not 0.0 < price < _INF:
            raise _bad("price", price, "a finite number > 0")
    except TypeError as exc:
        raise PricingError(f"price must be a real number: {exc}") from exc

    w = 1.0 if is_call else -1.0
    _, sdf, kdf = _scalar_legs(S, K, T, r, q)
    intrinsic = max(w * (sdf - kdf), 0.0)
    if price <= intrinsic:
        raise PricingError(
            f"price {price!r} is at or below the discounted intrinsic value {intrinsic!r}: "
            "no implied volatility"
        )
    upper = sdf if is_call else kdf
    if price >= upper:
        raise PricingError(
            f"price {price!r} is at or above the no-arbitrage bound {upper!r} "
            f"(discounted {'spot' if is_call else 'strike'}): no implied volatility"
        )

    ln_fk = math.log(S / K) + (r - q) * T
    w_otm = -1.0 if ln_fk > 0.0 else 1.0
    # price > w * (sdf - kdf) was checked above, so this difference is > 0.
    target = price if w_otm == w else price - w * (sdf - kdf)
    log_target = math.log(target)
    sqrt_t = math.sqrt(T)

    lo, hi = IV_SIGMA_MIN, IV_SIGMA_MAX
    if _otm_log_price(w_otm, ln_fk, sqrt_t, sdf, kdf, lo)[0] > log_target:
        raise PricingError(
            f"price {price!r} implies a volatility below {IV_SIGMA_MIN}: "
            "its time value is lost in rounding"
        )
    if _otm_log_price(w_otm, ln_fk, sqrt_t, sdf, kdf, hi)[0] < log_target:
        raise PricingError(f"price {price!r} implies a volatility above {IV_SIGMA_MAX}")

    # Start where vega peaks (sigma^2 T = 2 |ln F/K|): from there the value is
    # convex on one side and concave on the other, so Newton heads straight in.
    # At the money that point is 0; use the ATM approximation instead.
    if ln_fk != 0.0:
        sigma = math.sqrt(2.0 * abs(ln_fk) / T)
    else:
        sigma = target / (_INV_SQRT_2PI * sdf * sqrt_t)
    sigma = min(max(sigma, lo), hi)

    for _ in range(_IV_MAX_ITER):
        g, dg = _otm_log_price(w_otm, ln_fk, sqrt_t, sdf, kdf, sigma)
        g -= log_target
        if abs(g) <= _IV_LOG_TOL:
            return sigma
        if g > 0.0:
            hi = sigma
        else:
            lo = sigma
        step = sigma - g / dg if dg > 0.0 else math.nan
        if lo < step < hi:
            if abs(step - sigma) <= 1e-15 * sigma:
                return step
            sigma = step
        else:
            sigma = math.sqrt(lo * hi)
        if hi - lo <= 4e-16 * hi:
            return sigma
    raise PricingError(  # pragma: no cover - the bracket halves at worst every step
        f"implied volatility did not converge for price={price!r}, S={S!r}, K={K!r}, T={T!r}"
    )


# ------------------------------------------------------------ expiry → years


@lru_cache(maxsize=4096)
def _expiry_timestamp(expiry: str) -> float:
    """Unix time of 16:00 New York on ``expiry``.

    Cached because a book holds few distinct expiries but is re-marked on
    every quote, and the zone lookup and DST resolution are the slow part.
    """
    m = _EXPIRY_RE.fullmatch(expiry)
    if m is None:
        raise PricingError(f"expiry must be a date 'YYYY-MM-DD', got {expiry!r}")
    try:
        when = datetime(int(m[1]), int(m[2]), int(m[3]), 16, 0, tzinfo=ZoneInfo(_EXPIRY_ZONE))
    except ValueError as exc:
        raise PricingError(f"expiry {expiry!r} is not a valid date: {exc}") from exc
    return when.timestamp()


def year_fraction(expiry: str, t: float) -> float:
    """Years from event time ``t`` (Unix seconds) to the option's expiry.

    US equity options stop trading at 16:00 New York time on the expiry date;
    counting to that instant, DST included, is what makes a same-day option's
    time value decay correctly through its last session. Never negative: past
    expiry the option is treated as expired (``T == 0``).
    """
    if not isinstance(expiry, str):
        raise _bad("expiry", expiry, "a str 'YYYY-MM-DD'")
    try:
        if not -_INF < t < _INF:
            raise _bad("t", t, "a finite Unix time in seconds")
    except TypeError as exc:
        raise PricingError(f"t must be a real number: {exc}") from exc
    return max(0.0, (_expiry_timestamp(expiry) - t) / SECONDS_PER_YEAR)


# ---------------------------------------------------------------- stress grid


def _shocks(name: str, shocks: Sequence[float]) -> NDArray[np.float64]:
    arr = _float_array(name, shocks)
    if arr.ndim != 1:
        raise PricingError(f"{name} must be a flat sequence of numbers, got shape {arr.shape}")
    _require(name, arr, np.isfinite(arr), "finite")
    return arr


def stress_pnl(
    is_call: npt.ArrayLike,
    S: npt.ArrayLike,
    K: npt.ArrayLike,
    T: npt.ArrayLike,
    r: npt.ArrayLike,
    q: npt.ArrayLike,
    sigma: npt.ArrayLike,
    qty_mult: npt.ArrayLike,
    spot_shocks_pct: Sequence[float],
    vol_shocks_pts: Sequence[float],
) -> NDArray[np.float64]:
    """P&L of a book of options under every (spot shock, vol shock) pair.

    Returns one figure per scenario, spot-major (``for s in spot: for v in
    vol``): the sum over options of ``(V(S*(1+s/100), max(sigma+v/100,
    VOL_FLOOR)) - V(S, sigma)) * qty_mult``. ``qty_mult`` is the signed
    quantity times the contract multiplier, so the result is in dollars.

    The pre-trade gate calls this for every proposed order, so it is one
    vectorised evaluation over an (options x spot x vol) grid: spot-only
    quantities (log-moneyness, discounted spot) are computed per spot shock,
    vol-only ones per vol shock, and the discount factors once per option.
    Differences are taken before summing, so the unshocked scenario is exactly
    0.0 (for ``sigma >= VOL_FLOOR``), not a rounding residue.

    Option inputs broadcast to one length ``n``; ``n == 0`` gives zeros. Spot
    shocks below -100 % are rejected (a negative spot has no meaning); -100 %
    itself prices the options at a spot of 0.
    """
    spot = _shocks("spot_shocks_pct", spot_shocks_pct)
    _require("spot_shocks_pct", spot, spot >= -100.0, ">= -100 (percent)")
    vol = _shocks("vol_shocks_pts", vol_shocks_pts)
    w = _sign_array(is_call)
    arrays = (*_checked_arrays(S, K, T, r, q, sigma), _float_array("qty_mult", qty_mult))
    _require("qty_mult", arrays[-1], np.isfinite(arrays[-1]), "finite")
    try:
        w, s, k, t, r_, q_, sigma_, qty = np.broadcast_arrays(w, *arrays)
    except ValueError as exc:
        raise PricingError(f"option arrays must share one length: {exc}") from exc
    if s.ndim != 1:
        raise PricingError(f"option arrays must be 1-D, got shape {s.shape}")
    n = s.shape[0]
    n_scen = spot.size * vol.size
    if n == 0 or n_scen == 0:
        return np.zeros(n_scen, dtype=np.float64)

    qdf, _, kdf = _array_legs(s, k, t, r_, q_)
    sqrt_t = np.sqrt(t)
    # Options run along the last axis, so every broadcast operation below has
    # a long contiguous inner loop; with the scenario axes last it would loop
    # over rows of 3 and run several times slower.
    # Row 0 is the unshocked spot, so the base value's log and discounted spot
    # come out of the very same array operations as the shocked ones.
    mult = np.concatenate(([1.0], 1.0 + spot / 100.0))
    spot_grid = mult[:, None] * s  # (1 + n_spot, n)
    with np.errstate(divide="ignore"):  # a -100 % shock: log(0) = -inf, value is the limit
        ln_fk = np.log(spot_grid / k) + (r_ - q_) * t
    with np.errstate(over="raise"):
        try:
            sdf = spot_grid * qdf
        except FloatingPointError as exc:
            raise _overflow() from exc

    base = _price_kernel(w, ln_fk[0], sigma_ * sqrt_t, sdf[0], kdf)
    vst = np.maximum(sigma_ + vol[:, None] / 100.0, VOL_FLOOR) * sqrt_t  # (n_vol, n)
    shocked = _price_kernel(w, ln_fk[1:, None, :], vst[None, :, :], sdf[1:, None, :], kdf)
    diff = shocked.reshape(n_scen, n)  # (n_spot, n_vol, n): spot-major scenarios
    diff -= base
    pnl = diff @ qty
    return np.asarray(pnl + 0.0, dtype=np.float64)  # + 0.0 turns a -0.0 into 0.0

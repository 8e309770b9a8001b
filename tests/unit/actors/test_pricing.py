"""Tests of actors.pricing: closed-form oracles, vollib, properties, edge cases.

Three independent references, because each catches what the others cannot:
the mpmath oracle table pins exact values (and our units), vollib's
Let's-Be-Rational code checks thousands of random cases, and hypothesis
checks the model's structural properties wherever it likes to look.
"""

from __future__ import annotations

import math
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

try:
    import actors.pricing  # noqa: F401
except ModuleNotFoundError:  # the package is not installed: run from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from vollib.black_scholes_merton import black_scholes_merton as vl_price
from vollib.black_scholes_merton.greeks import analytical as vl_greeks
from vollib.black_scholes_merton.implied_volatility import (
    implied_volatility as vl_iv,
)

from actors.pricing import (
    VOL_FLOOR,
    BsmResult,
    PricingError,
    bsm,
    bsm_greeks_array,
    bsm_price_array,
    implied_vol,
    stress_pnl,
    year_fraction,
)

FIELDS = ("price", "delta", "gamma", "vega", "theta")

# --------------------------------------------------------------------- oracle
# Computed at 50 significant digits with mpmath from the closed form. vega is
# per 1.00 of sigma and theta per year here; the module's units are per vol
# point and per day, hence the / 100 and / 365 in ORACLE below.
ORACLE_CSV = """\
name,flag,S,K,T,r,q,sigma,price,delta,gamma,vega_per_1,theta_per_year
atm_call_6m,c,100.0,100.0,0.5,0.05,0.0,0.2,6.888728577680618,0.5977344689084383,0.027358658565220982,27.358658565220985,-8.115967628702357
atm_put_6m,p,100.0,100.0,0.5,0.05,0.0,0.2,4.419719780513884,-0.40226553109156177,0.027358658565220982,27.358658565220985,-3.239418068560694
itm_call_div,c,100.0,60.0,0.5,0.05,0.02,0.25,40.491994471938575,0.9889647491366125,0.00020511470157551548,0.25639337696939435,-1.0063928680552574
otm_call_3m,c,100.0,150.0,0.25,0.05,0.0,0.2,0.00011838419451409932,5.230320579358593e-05,2.1501886517764966e-05,0.010750943258882484,-0.004555974122795218
itm_put_1y_div,p,100.0,140.0,1.0,0.05,0.03,0.3,38.66562005438358,-0.7930896168304898,0.008569339107793133,25.708017323379394,-0.33674236212674996
otm_put_3m_div,p,100.0,70.0,0.25,0.05,0.01,0.3,0.029540097078003535,-0.005861416383702966,0.0011099637546444182,0.8324728159833136,-0.4745610192012761
call_1d_k101,c,100.0,101.0,0.0027397260273972603,0.05,0.0,0.3,0.2555275858914776,0.2685862786169449,0.2100121488243333,1.7261272506109588,-95.83562198474014
put_1d_atm,p,100.0,100.0,0.0027397260273972603,0.05,0.0,0.3,0.6195734487904692,-0.49338779821275924,0.25402448857597965,2.0878725088436685,-111.8131021956875
"""


def _parse_oracle() -> list[tuple[str, bool, tuple[float, ...], dict[str, float]]]:
    rows: list[tuple[str, bool, tuple[float, ...], dict[str, float]]] = []
    for line in ORACLE_CSV.splitlines()[1:]:
        name, flag, *nums = line.split(",")
        S, K, T, r, q, sigma, price, delta, gamma, vega1, theta_y = map(float, nums)
        expected = {
            "price": price,
            "delta": delta,
            "gamma": gamma,
            "vega": vega1 / 100.0,
            "theta": theta_y / 365.0,
        }
        rows.append((name, flag == "c", (S, K, T, r, q, sigma), expected))
    return rows


ORACLE = _parse_oracle()
ORACLE_IDS = [row[0] for row in ORACLE]


def _close(got: float, want: float, rel: float = 1e-9, abs_: float = 1e-12) -> bool:
    return math.isfinite(got) and abs(got - want) <= max(rel * abs(want), abs_)


@pytest.mark.parametrize(("name", "is_call", "args", "expected"), ORACLE, ids=ORACLE_IDS)
def test_bsm_matches_oracle(
    name: str, is_call: bool, args: tuple[float, ...], expected: dict[str, float]
) -> None:
    res = bsm(is_call, *args)
    assert isinstance(res, BsmResult)
    for field in FIELDS:
        got = getattr(res, field)
        assert _close(got, expected[field]), f"{name}.{field}: {got!r} != {expected[field]!r}"


def test_array_greeks_match_oracle() -> None:
    is_call = np.array([row[1] for row in ORACLE])
    cols = np.array([row[2] for row in ORACLE]).T
    res = bsm_greeks_array(is_call, *cols)
    prices = bsm_price_array(is_call, *cols)
    for field in FIELDS:
        got = getattr(res, field)
        assert got.shape == (len(ORACLE),) and got.dtype == np.float64
        for i, (name, _, _, expected) in enumerate(ORACLE):
            assert _close(float(got[i]), expected[field]), f"{name}.{field}"
    np.testing.assert_array_equal(prices, res.price)


@pytest.mark.parametrize(("name", "is_call", "args", "expected"), ORACLE, ids=ORACLE_IDS)
def test_vollib_units_are_ours(
    name: str, is_call: bool, args: tuple[float, ...], expected: dict[str, float]
) -> None:
    """vollib's vega is per 1 % of vol and its theta per day: the same as ours."""
    S, K, T, r, q, sigma = args
    flag = "c" if is_call else "p"
    assert _close(vl_greeks.vega(flag, S, K, T, r, sigma, q), expected["vega"], rel=1e-12)
    assert _close(vl_greeks.theta(flag, S, K, T, r, sigma, q), expected["theta"], rel=1e-12)


# --------------------------------------------------------------------- vollib

N_RANDOM = 3000


def _random_book(seed: int, n: int) -> tuple[NDArray[np.bool_], tuple[NDArray[np.float64], ...]]:
    rng = np.random.default_rng(seed)
    is_call = rng.random(n) < 0.5
    S = rng.uniform(20.0, 500.0, n)
    K = S * np.exp(rng.uniform(-0.4, 0.4, n))
    T = np.exp(rng.uniform(math.log(1 / 365), math.log(3.0), n))
    r = rng.uniform(-0.01, 0.08, n)
    q = rng.uniform(0.0, 0.06, n)
    sigma = np.exp(rng.uniform(math.log(0.05), math.log(1.5), n))
    return is_call, (S, K, T, r, q, sigma)


@pytest.fixture(scope="module")
def vollib_cases() -> list[tuple[bool, tuple[float, ...], dict[str, float]]]:
    """Random cases with vollib's values, restricted to well-conditioned ones.

    "Well-conditioned" excludes prices below 1e-10 of spot: there the BSM
    difference of two nearly equal tail probabilities loses digits in any
    implementation, and no quote that small exists.
    """
    is_call, cols = _random_book(20240607, N_RANDOM)
    cases: list[tuple[bool, tuple[float, ...], dict[str, float]]] = []
    for i in range(N_RANDOM):
        S, K, T, r, q, sigma = (float(c[i]) for c in cols)
        flag = "c" if is_call[i] else "p"
        ref = {
            "price": vl_price(flag, S, K, T, r, sigma, q),
            "delta": vl_greeks.delta(flag, S, K, T, r, sigma, q),
            "gamma": vl_greeks.gamma(flag, S, K, T, r, sigma, q),
            "vega": vl_greeks.vega(flag, S, K, T, r, sigma, q),
            "theta": vl_greeks.theta(flag, S, K, T, r, sigma, q),
        }
        if ref["price"] >= 1e-10 * S:
            cases.append((bool(is_call[i]), (S, K, T, r, q, sigma), ref))
    assert len(cases) > 0.8 * N_RANDOM
    return cases


def _scale(field: str, S: float) -> float:
    """Absolute tolerance for a value near 0, in the field's own scale."""
    return {"delta": 1e-12, "gamma": 1e-12 / S}.get(field, 1e-12 * S)


def test_bsm_matches_vollib(
    vollib_cases: list[tuple[bool, tuple[float, ...], dict[str, float]]],
) -> None:
    for is_call, args, ref in vollib_cases:
        res = bsm(is_call, *args)
        for field in FIELDS:
            got = getattr(res, field)
            assert _close(got, ref[field], abs_=_scale(field, args[0])), (field, args, got, ref)


def test_array_greeks_match_vollib(
    vollib_cases: list[tuple[bool, tuple[float, ...], dict[str, float]]],
) -> None:
    is_call = np.array([c[0] for c in vollib_cases])
    cols = np.array([c[1] for c in vollib_cases]).T
    res = bsm_greeks_array(is_call, *cols)
    for field in FIELDS:
        want = np.array([c[2][field] for c in vollib_cases])
        atol = np.array([_scale(field, c[1][0]) for c in vollib_cases])
        got = getattr(res, field)
        assert np.all(np.abs(got - want) <= np.maximum(1e-9 * np.abs(want), atol)), field


def test_implied_vol_matches_lets_be_rational(
    vollib_cases: list[tuple[bool, tuple[float, ...], dict[str, float]]],
) -> None:
    checked = 0
    for is_call, (S, K, T, r, q, sigma), ref in vollib_cases:
        price = ref["price"]
        # Skip options whose value is almost all intrinsic: their vol is not
        # determined by a double-precision price (vega * sigma << price).
        if ref["vega"] * 100.0 * sigma < 1e-3 * price:
            continue
        iv = implied_vol(price, is_call, S, K, T, r, q)
        lbr = vl_iv(price, S, K, T, r, q, "c" if is_call else "p")
        assert abs(iv - lbr) <= 1e-8 * lbr, (is_call, S, K, T, r, q, sigma, iv, lbr)
        assert abs(iv - sigma) <= 1e-8 * sigma
        assert abs(bsm(is_call, S, K, T, r, q, iv).price - price) <= 1e-10 * price
        checked += 1
    assert checked > 0.7 * len(vollib_cases)


# ----------------------------------------------------------------- properties

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

spots = st.floats(1.0, 1000.0)
strikes = st.floats(1.0, 1000.0)
years = st.floats(1.0 / 365.0, 5.0)
rates = st.floats(-0.02, 0.10)
yields = st.floats(0.0, 0.10)
vols = st.floats(0.01, 2.0)


@PROPS
@given(S=spots, K=strikes, T=years, r=rates, q=yields, sigma=vols)
def test_put_call_parity(S: float, K: float, T: float, r: float, q: float, sigma: float) -> None:
    call = bsm(True, S, K, T, r, q, sigma)
    put = bsm(False, S, K, T, r, q, sigma)
    forward_leg = S * math.exp(-q * T) - K * math.exp(-r * T)
    assert call.price - put.price == pytest.approx(forward_leg, rel=1e-12, abs=1e-11 * max(S, K))
    assert call.delta - put.delta == pytest.approx(math.exp(-q * T), rel=1e-12, abs=1e-15)
    assert call.gamma == pytest.approx(put.gamma, rel=1e-12, abs=1e-300)
    assert call.vega == pytest.approx(put.vega, rel=1e-12, abs=1e-300)


@PROPS
@given(S=spots, bump=st.floats(1e-6, 1.0), K=strikes, T=years, r=rates, q=yields, sigma=vols)
def test_call_monotone_in_spot(
    S: float, bump: float, K: float, T: float, r: float, q: float, sigma: float
) -> None:
    S2 = S * (1.0 + bump)
    lo = bsm(True, S, K, T, r, q, sigma).price
    hi = bsm(True, S2, K, T, r, q, sigma).price
    assert hi >= lo - 1e-12 * S2


@PROPS
@given(S=spots, K=strikes, T=years, r=rates, q=yields, sigma=vols, bump=st.floats(1e-6, 1.0))
def test_call_monotone_in_vol(
    S: float, K: float, T: float, r: float, q: float, sigma: float, bump: float
) -> None:
    lo = bsm(True, S, K, T, r, q, sigma).price
    hi = bsm(True, S, K, T, r, q, sigma + bump).price
    assert hi >= lo - 1e-12 * S


@PROPS
@given(
    is_call=st.booleans(),
    S=spots,
    moneyness=st.floats(-1.0, 1.0),
    T=years,
    r=rates,
    q=yields,
    sigma=st.floats(0.01, 3.0),
)
def test_implied_vol_recovers_sigma(
    is_call: bool, S: float, moneyness: float, T: float, r: float, q: float, sigma: float
) -> None:
    K = S * math.exp(moneyness)
    res = bsm(is_call, S, K, T, r, q, sigma)
    # Only where the price pins sigma down: a tradable price and a vega that
    # is not lost beside the intrinsic value.
    assume(res.price >= 1e-8 * S)
    assume(res.vega * 100.0 * sigma >= 1e-4 * res.price)
    iv = implied_vol(res.price, is_call, S, K, T, r, q)
    assert abs(iv - sigma) <= 1e-8 * sigma
    assert abs(bsm(is_call, S, K, T, r, q, iv).price - res.price) <= 1e-10 * res.price


option = st.tuples(
    st.booleans(),  # is_call
    st.floats(5.0, 500.0),  # S
    st.floats(0.5, 2.0),  # K / S
    st.floats(0.0, 2.0),  # T (0 included: expired options)
    st.floats(-0.01, 0.08),  # r
    st.floats(0.0, 0.05),  # q
    st.floats(VOL_FLOOR, 1.5),  # sigma
    st.floats(-5000.0, 5000.0),  # qty * multiplier
)
spot_shocks = st.lists(st.floats(-60.0, 60.0), min_size=1, max_size=7)
vol_shocks = st.lists(st.floats(-40.0, 40.0), min_size=1, max_size=4)


F64 = NDArray[np.float64]
Book = tuple[NDArray[np.bool_], F64, F64, F64, F64, F64, F64, F64]


def _columns(opts: list[tuple[float, ...]]) -> Book:
    """stress_pnl's eight option arguments from hypothesis' option tuples."""
    flag, S, k_over_s, T, r, q, sigma, qty = (
        np.array([o[i] for o in opts], dtype=np.float64) for i in range(8)
    )
    return flag.astype(bool), S, S * k_over_s, T, r, q, sigma, qty


def _slow_stress(
    opts: list[tuple[float, ...]], spot: list[float], vol: list[float]
) -> tuple[list[float], list[float]]:
    """The definition, one option and one scenario at a time; also a scale."""
    out, scale = [], []
    for s in spot:
        for v in vol:
            total = size = 0.0
            for is_call, S, k_over_s, T, r, q, sigma, qty in opts:
                K = S * k_over_s
                base = bsm(bool(is_call), S, K, T, r, q, sigma).price
                shocked_sigma = max(sigma + v / 100.0, VOL_FLOOR)
                shocked = bsm(bool(is_call), S * (1 + s / 100), K, T, r, q, shocked_sigma).price
                total += (shocked - base) * qty
                size += (abs(shocked) + abs(base) + S + K) * abs(qty)
            out.append(total)
            scale.append(size)
    return out, scale


@PROPS
@given(opts=st.lists(option, min_size=1, max_size=12), spot=spot_shocks, vol=vol_shocks)
def test_stress_matches_slow_loop(
    opts: list[tuple[float, ...]], spot: list[float], vol: list[float]
) -> None:
    got = stress_pnl(*_columns(opts), spot, vol)
    want, scale = _slow_stress(opts, spot, vol)
    assert got.shape == (len(spot) * len(vol),)
    for g, w, sc in zip(got, want, scale, strict=True):
        assert abs(g - w) <= 1e-12 * sc, (g, w)


@PROPS
@given(
    opts=st.lists(option, min_size=1, max_size=12),
    spot=spot_shocks,
    vol=vol_shocks,
    at_spot=st.integers(0, 7),
    at_vol=st.integers(0, 4),
)
def test_stress_unshocked_scenario_is_exactly_zero(
    opts: list[tuple[float, ...]], spot: list[float], vol: list[float], at_spot: int, at_vol: int
) -> None:
    spot.insert(min(at_spot, len(spot)), 0.0)
    vol.insert(min(at_vol, len(vol)), 0.0)
    got = stress_pnl(*_columns(opts), spot, vol)
    zero = spot.index(0.0) * len(vol) + vol.index(0.0)
    assert got[zero] == 0.0


def test_stress_order_is_spot_major() -> None:
    args = (np.array([True]), [100.0], [100.0], [0.5], [0.03], [0.0], [0.2], [100.0])
    spot, vol = [-10.0, 0.0, 10.0], [-5.0, 5.0]
    got = stress_pnl(*args, spot, vol)
    base = bsm(True, 100.0, 100.0, 0.5, 0.03, 0.0, 0.2).price
    i = 0
    for s in spot:
        for v in vol:
            value = bsm(True, 100.0 * (1 + s / 100), 100.0, 0.5, 0.03, 0.0, 0.2 + v / 100).price
            assert got[i] == pytest.approx((value - base) * 100.0, rel=1e-12)
            i += 1


def test_stress_vol_floor_and_full_crash() -> None:
    args = (np.array([True, False]), [100.0, 100.0], [100.0, 100.0], [0.5, 0.5])
    rest = ([0.03, 0.03], [0.0, 0.0], [0.2, 0.2], [1.0, 1.0])
    # A -50 pt shock on 20 % vol is floored at VOL_FLOOR, not rejected.
    got = stress_pnl(*args, *rest, [0.0], [-50.0])
    want = sum(
        bsm(c, 100.0, 100.0, 0.5, 0.03, 0.0, VOL_FLOOR).price
        - bsm(c, 100.0, 100.0, 0.5, 0.03, 0.0, 0.2).price
        for c in (True, False)
    )
    assert got[0] == pytest.approx(want, rel=1e-12)
    # A -100 % spot shock: the call is worthless, the put worth the discounted strike.
    crash = stress_pnl(*args, *rest, [-100.0], [0.0])
    call = bsm(True, 100.0, 100.0, 0.5, 0.03, 0.0, 0.2).price
    put = bsm(False, 100.0, 100.0, 0.5, 0.03, 0.0, 0.2).price
    assert crash[0] == pytest.approx(-call + (100.0 * math.exp(-0.03 * 0.5) - put), rel=1e-12)


def test_stress_empty_book_and_broadcast_scalars() -> None:
    empty = np.array([], dtype=np.float64)
    e = empty
    out = stress_pnl(np.array([], dtype=bool), e, e, e, e, e, e, e, [-5.0, 0.0, 5.0], [-1.0, 1.0])
    np.testing.assert_array_equal(out, np.zeros(6))
    # r, q shared by the whole book may be given as scalars.
    one = stress_pnl(
        np.array([True, False]),
        [90.0, 110.0],
        100.0,
        0.25,
        0.04,
        0.0,
        0.3,
        [1.0, -2.0],
        [5.0],
        [0.0],
    )
    assert one.shape == (1,) and math.isfinite(one[0])


def test_array_matches_scalar_on_random_book() -> None:
    is_call, cols = _random_book(7, 500)
    res = bsm_greeks_array(is_call, *cols)
    for i in range(500):
        one = bsm(bool(is_call[i]), *(float(c[i]) for c in cols))
        for field in FIELDS:
            want = getattr(one, field)
            got = float(getattr(res, field)[i])
            assert _close(got, want, abs_=1e-300 + _scale(field, float(cols[0][i])) * 1e-3)


def test_array_broadcasting() -> None:
    strikes = np.array([[90.0], [100.0], [110.0]])
    res = bsm_greeks_array(np.array([True, False]), 100.0, strikes, 0.5, 0.03, 0.01, 0.25)
    assert res.theta.shape == res.price.shape == (3, 2)
    assert res.price[1, 0] == pytest.approx(bsm(True, 100.0, 100.0, 0.5, 0.03, 0.01, 0.25).price)
    scalar = bsm_greeks_array(True, 100.0, 100.0, 0.5, 0.03, 0.01, 0.25)
    assert scalar.delta.shape == ()


# -------------------------------------------------------------- edge cases


@pytest.mark.parametrize(
    ("arg", "bad"),
    [
        ("sigma", 0.0),
        ("sigma", -0.2),
        ("sigma", math.nan),
        ("sigma", math.inf),
        ("T", -1e-9),
        ("T", math.nan),
        ("T", math.inf),
        ("S", 0.0),
        ("S", -100.0),
        ("S", math.nan),
        ("K", 0.0),
        ("K", math.nan),
        ("r", math.nan),
        ("r", -math.inf),
        ("q", math.nan),
    ],
)
def test_bad_inputs_raise_naming_the_argument(arg: str, bad: float) -> None:
    good = {"S": 100.0, "K": 100.0, "T": 0.5, "r": 0.03, "q": 0.0, "sigma": 0.2}
    kwargs = {**good, arg: bad}
    with pytest.raises(PricingError, match=rf"^{arg} must be"):
        bsm(True, **kwargs)
    arrays = {k: np.full(3, v) for k, v in good.items()}
    arrays[arg] = np.array([good[arg], bad, good[arg]])
    with pytest.raises(PricingError, match=rf"^{arg} must be.*index \(1,\)"):
        bsm_price_array(np.ones(3, dtype=bool), **arrays)
    with pytest.raises(PricingError, match=rf"^{arg} must be"):
        bsm_greeks_array(np.ones(3, dtype=bool), **arrays)
    with pytest.raises(PricingError, match=rf"^{arg} must be"):
        stress_pnl(
            np.ones(3, dtype=bool),
            **arrays,
            qty_mult=np.ones(3),
            spot_shocks_pct=[0.0],
            vol_shocks_pts=[0.0],
        )
    if arg != "sigma":
        iv_kwargs = {k: v for k, v in kwargs.items() if k != "sigma"}
        with pytest.raises(PricingError, match=rf"^{arg} must be"):
            implied_vol(5.0, True, **iv_kwargs)


def test_overflowing_discount_factors_raise() -> None:
    """Finite but absurd carry (q = -1000/y) must not leak OverflowError or NaN."""
    with pytest.raises(PricingError, match="overflow"):
        bsm(True, 100.0, 100.0, 1.0, 0.05, -1000.0, 0.2)
    with pytest.raises(PricingError, match="overflow"):
        implied_vol(5.0, True, 100.0, 100.0, 1.0, -1000.0, 0.0)
    with pytest.raises(PricingError, match="overflow"):
        bsm_greeks_array(np.array([True]), 100.0, 100.0, 1.0, 0.05, -1000.0, 0.2)
    with pytest.raises(PricingError, match="overflow"):
        bsm_price_array(np.array([True]), 1e308, 100.0, 1.0, 0.05, -1.0, 0.2)
    with pytest.raises(PricingError, match="overflow"):
        stress_pnl(
            np.array([True]), [1e307], [1.0], [1.0], [0.0], [-2.0], [0.2], [1.0], [200.0], [0.0]
        )


def test_pricing_error_is_a_value_error() -> None:
    assert issubclass(PricingError, ValueError)


def test_is_call_must_be_bool() -> None:
    with pytest.raises(PricingError, match="is_call"):
        bsm("c", 100.0, 100.0, 0.5, 0.03, 0.0, 0.2)  # type: ignore[arg-type]
    with pytest.raises(PricingError, match="is_call"):
        bsm_price_array(np.array(["C", "P"]), 100.0, 100.0, 0.5, 0.03, 0.0, 0.2)
    with pytest.raises(PricingError, match="is_call"):
        bsm_greeks_array(np.array([1, 0]), 100.0, 100.0, 0.5, 0.03, 0.0, 0.2)


def test_non_numeric_inputs_raise_pricing_error() -> None:
    with pytest.raises(PricingError):
        bsm(True, "100", 100.0, 0.5, 0.03, 0.0, 0.2)  # type: ignore[arg-type]
    with pytest.raises(PricingError, match="S"):
        bsm_price_array(np.array([True]), ["abc"], 100.0, 0.5, 0.03, 0.0, 0.2)


@pytest.mark.parametrize(
    ("price", "is_call", "T", "match"),
    [
        (5.0, True, 0.0, "T must be"),
        (5.0, True, -0.1, "T must be"),
        (math.nan, True, 0.5, "price must be"),
        (math.inf, True, 0.5, "price must be"),
        (0.0, True, 0.5, "price must be"),
        (-1.0, False, 0.5, "price must be"),
        (1.0, True, 0.5, "intrinsic"),  # S=120, K=100: intrinsic ~ 21.5
        (120.0, True, 0.5, "no-arbitrage bound"),  # a call worth the spot
        (98.6, False, 0.5, "no-arbitrage bound"),  # a put worth the discounted strike
    ],
)
def test_implied_vol_without_solution_raises(
    price: float, is_call: bool, T: float, match: str
) -> None:
    with pytest.raises(PricingError, match=match):
        implied_vol(price, is_call, 120.0, 100.0, T, 0.03, 0.0)


def test_implied_vol_rejects_prices_outside_the_vol_bracket() -> None:
    # At the money forward a vol of IV_SIGMA_MIN is worth ~0.4 * S * 1e-6; a
    # smaller price implies a vol below the bracket.
    with pytest.raises(PricingError, match="below"):
        implied_vol(1e-6, True, 100.0, 100.0, 1.0, 0.0, 0.0)
    assert implied_vol(1e-4, True, 100.0, 100.0, 1.0, 0.0, 0.0) == pytest.approx(
        1e-4 / (100.0 * 0.3989422804014327), rel=1e-6
    )
    # Just below the bound: a vol far above IV_SIGMA_MAX.
    with pytest.raises(PricingError, match="above"):
        implied_vol(120.0 * (1 - 1e-12), True, 120.0, 100.0, 1.0, 0.03, 0.0)


@pytest.mark.parametrize("is_call", [True, False])
def test_expired_option_conventions(is_call: bool) -> None:
    w = 1.0 if is_call else -1.0
    for S, K in ((120.0, 100.0), (80.0, 100.0), (100.0, 100.0)):
        res = bsm(is_call, S, K, 0.0, 0.05, 0.02, 0.3)
        assert res.price == max(w * (S - K), 0.0)
        assert res.gamma == res.vega == res.theta == 0.0
        itm = w * (S - K) > 0
        assert res.delta == (0.5 * w if S == K else w if itm else 0.0)
        arr = bsm_greeks_array(np.array([is_call]), S, K, 0.0, 0.05, 0.02, 0.3)
        assert BsmResult(*(float(getattr(arr, f)[0]) for f in FIELDS)) == res


TINY_T = [5e-324, 1e-300, 1e-100, 1e-16, 1e-12, 1e-8, 1e-5]
EXTREME_K = [1e-6, 1.0, 50.0, 99.999999, 100.0, 100.000001, 200.0, 1e6, 1e12]
EXTREME_SIGMA = [1e-8, 0.2, 5.0]


@pytest.mark.parametrize("is_call", [True, False])
def test_tiny_time_and_deep_moneyness_stay_finite(is_call: bool) -> None:
    S, r, q = 100.0, 0.05, 0.02
    grid = [(T, K, s) for T in [*TINY_T, 1.0, 30.0] for K in EXTREME_K for s in EXTREME_SIGMA]
    for T, K, sigma in grid:
        res = bsm(is_call, S, K, T, r, q, sigma)
        for field in FIELDS:
            assert math.isfinite(getattr(res, field)), (T, K, sigma, field, res)
        assert res.price >= 0.0 and res.gamma >= 0.0 and res.vega >= 0.0
        assert (0.0 <= res.delta <= 1.0) if is_call else (-1.0 <= res.delta <= 0.0)
    Ts, Ks, sigmas = (np.array(c) for c in zip(*grid, strict=True))
    arr = bsm_greeks_array(np.full(len(grid), is_call), S, Ks, Ts, r, q, sigmas)
    for field in FIELDS:
        assert np.all(np.isfinite(getattr(arr, field))), field
    flat = stress_pnl(
        np.full(len(grid), is_call),
        S,
        Ks,
        Ts,
        r,
        q,
        sigmas,
        np.ones(len(grid)),
        [-100.0, -20.0, 0.0, 20.0],
        [-50.0, 0.0, 50.0],
    )
    assert np.all(np.isfinite(flat))


def test_tiny_time_approaches_intrinsic() -> None:
    for K in (90.0, 100.0, 110.0):
        call = bsm(True, 100.0, K, 1e-12, 0.05, 0.0, 0.3)
        assert call.price == pytest.approx(max(100.0 - K, 0.0), abs=1e-4)
        assert call.delta == pytest.approx(1.0 if K < 100 else 0.5 if K == 100 else 0.0, abs=1e-3)


def test_stress_rejects_bad_shocks_and_shapes() -> None:
    book = (np.array([True]), [100.0], [100.0], [0.5], [0.03], [0.0], [0.2], [1.0])
    with pytest.raises(PricingError, match="spot_shocks_pct"):
        stress_pnl(*book, [-100.5], [0.0])
    with pytest.raises(PricingError, match="spot_shocks_pct"):
        stress_pnl(*book, [math.nan], [0.0])
    with pytest.raises(PricingError, match="vol_shocks_pts"):
        stress_pnl(*book, [0.0], [math.inf])
    with pytest.raises(PricingError, match="qty_mult"):
        stress_pnl(*book[:-1], [math.nan], [0.0], [0.0])
    with pytest.raises(PricingError, match="length"):
        stress_pnl(np.array([True, False]), [100.0, 90.0, 80.0], *book[2:], [0.0], [0.0])


# -------------------------------------------------------------- year_fraction

YEAR = 365 * 86400


def test_year_fraction_winter_expiry_is_21_utc() -> None:
    close = datetime(2026, 12, 18, 21, 0, tzinfo=UTC).timestamp()  # 16:00 EST
    assert year_fraction("2026-12-18", close - YEAR) == 1.0
    assert year_fraction("2026-12-18", close - 86400) == pytest.approx(1 / 365, rel=1e-15)
    assert year_fraction("2026-12-18", close) == 0.0


def test_year_fraction_summer_expiry_is_20_utc() -> None:
    close = datetime(2026, 7, 17, 20, 0, tzinfo=UTC).timestamp()  # 16:00 EDT
    assert year_fraction("2026-07-17", close - YEAR / 2) == 0.5
    assert year_fraction("2026-07-17", close - 3600) == pytest.approx(1 / (365 * 24), rel=1e-15)


def test_year_fraction_is_zero_after_expiry() -> None:
    close = datetime(2026, 12, 18, 21, 0, tzinfo=UTC).timestamp()
    assert year_fraction("2026-12-18", close + 1.0) == 0.0
    assert year_fraction("2020-01-17", close) == 0.0


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "2026-13-01",
        "2026-02-30",
        "2026-00-10",
        "0000-01-01",
        "20261218",
        "2026-1-5",
        "2026/12/18",
        " 2026-12-18",
        "2026-12-18 ",
        "2026-12-18T16:00",
        "abcd-ef-gh",
        "２０２６-12-18",  # fullwidth digits are digits to str.isdigit, not to us
    ],
)
def test_year_fraction_bad_strings(bad: str) -> None:
    with pytest.raises(PricingError, match="expiry"):
        year_fraction(bad, 0.0)


def test_year_fraction_bad_types_and_time() -> None:
    with pytest.raises(PricingError, match="expiry"):
        year_fraction(20261218, 0.0)  # type: ignore[arg-type]
    with pytest.raises(PricingError, match="expiry"):
        year_fraction(None, 0.0)  # type: ignore[arg-type]
    with pytest.raises(PricingError, match=r"^t must be"):
        year_fraction("2026-12-18", math.nan)

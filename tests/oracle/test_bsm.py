"""The oracle's BSM against closed-form values evaluated at 50 significant digits.

The reference rows are copied here (the tests never read outside the repo):
name, right, S, K, T, r, q, sigma, price, delta, gamma, vega per 1.0 of sigma,
theta per year.  The project's units are vega per vol point (/100) and theta
per calendar day (/365).
"""

from __future__ import annotations

import math

import pytest

from oracle import bsm

ROWS = [
    ("atm_call_6m", "C", 100.0, 100.0, 0.5, 0.05, 0.0, 0.2, 6.888728577680618,
     0.5977344689084383, 0.027358658565220982, 27.358658565220985, -8.115967628702357),
    ("atm_put_6m", "P", 100.0, 100.0, 0.5, 0.05, 0.0, 0.2, 4.419719780513884,
     -0.40226553109156177, 0.027358658565220982, 27.358658565220985, -3.239418068560694),
    ("itm_call_div", "C", 100.0, 60.0, 0.5, 0.05, 0.02, 0.25, 40.491994471938575,
     0.9889647491366125, 0.00020511470157551548, 0.25639337696939435, -1.0063928680552574),
    ("otm_call_3m", "C", 100.0, 150.0, 0.25, 0.05, 0.0, 0.2, 0.00011838419451409932,
     5.230320579358593e-05, 2.1501886517764966e-05, 0.010750943258882484, -0.004555974122795218),
    ("itm_put_1y_div", "P", 100.0, 140.0, 1.0, 0.05, 0.03, 0.3, 38.66562005438358,
     -0.7930896168304898, 0.008569339107793133, 25.708017323379394, -0.33674236212674996),
    ("otm_put_3m_div", "P", 100.0, 70.0, 0.25, 0.05, 0.01, 0.3, 0.029540097078003535,
     -0.005861416383702966, 0.0011099637546444182, 0.8324728159833136, -0.4745610192012761),
    ("call_1d_k101", "C", 100.0, 101.0, 0.0027397260273972603, 0.05, 0.0, 0.3,
     0.2555275858914776, 0.2685862786169449, 0.2100121488243333, 1.7261272506109588,
     -95.83562198474014),
    ("put_1d_atm", "P", 100.0, 100.0, 0.0027397260273972603, 0.05, 0.0, 0.3,
     0.6195734487904692, -0.49338779821275924, 0.25402448857597965, 2.0878725088436685,
     -111.8131021956875),
]  # fmt: skip


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_bsm_matches_reference(row: tuple[object, ...]) -> None:
    """Price and Greeks (in the project's units) to 1e-9 relative."""
    _, right, s, k, t, r, q, sigma, price, delta, gamma, vega1, theta_y = row
    assert isinstance(right, str)
    args = (s, k, t, r, q, sigma)
    floats = [float(a) for a in args]  # type: ignore[arg-type]
    assert math.isclose(bsm.price(right, *floats), float(price), rel_tol=1e-9)  # type: ignore[arg-type]
    g = bsm.greeks(right, *floats)
    assert math.isclose(g["delta"], float(delta), rel_tol=1e-9)  # type: ignore[arg-type]
    assert math.isclose(g["gamma"], float(gamma), rel_tol=1e-9)  # type: ignore[arg-type]
    assert math.isclose(g["vega"], float(vega1) / 100, rel_tol=1e-9)  # type: ignore[arg-type]
    assert math.isclose(g["theta"], float(theta_y) / 365, rel_tol=1e-9)  # type: ignore[arg-type]


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_implied_vol_recovers_sigma(row: tuple[object, ...]) -> None:
    """Implied vol from the reference price gives back sigma (where the price is informative)."""
    _, right, s, k, t, r, q, sigma, price, *_ = row
    assert isinstance(right, str)
    iv = bsm.implied_vol(right, float(price), float(s), float(k), float(t), float(r), float(q))  # type: ignore[arg-type]
    assert iv is not None
    assert math.isclose(iv, float(sigma), rel_tol=1e-6)  # type: ignore[arg-type]


def test_expiry_is_4pm_new_york() -> None:
    """16:00 America/New_York: 21:00 UTC in winter, 20:00 UTC in summer."""
    assert bsm.expiry_epoch("2026-01-16") == 1768597200.0
    assert bsm.expiry_epoch("2026-06-19") == 1781899200.0

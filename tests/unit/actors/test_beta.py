"""Beta-weighted delta (DESIGN §4.1).

Facts from the contract:

* Measure: Σ over positions and legs of (dollar delta) × β(symbol) ÷ price(index),
  in index shares; dollar delta of an option from its Greeks' underlying price,
  of a stock position from its last else mid, of a stock leg from its price.
* β: ``[beta.values]``, else ``default``; unset → that symbol's data are
  missing. The index's β is always 1. Negative β allowed.
* price(index): the newest of an open stock position on the index (its price as
  of the accepted quote that set it), an open option on it (``und_price`` as of
  its last quote with Greeks), a ``market`` line of the index stock (last, else
  mid). The order's legs never set it. No older than ``max_data_age_s``
  (exactly that age is fresh).
* A missing β for any symbol of the projected portfolio, or a missing or older
  index price → ``stale_data``.
* IB's unset values (DBL_MAX) are missing data, never numbers (project rule).
"""

from __future__ import annotations

from gate_harness import PureGate, R, codes, oleg, opt, sleg, stk, triples

from actors.gate.params import BetaParams, GateParams, LimitParams
from actors.messages import Greeks

DBL_MAX = 1.7976931348623157e308
T = 1_000.0


def beta_gate(
    limit: float,
    values: dict[str, float] | None = None,
    default: float | None = None,
    max_age: float = 60.0,
) -> PureGate:
    params = GateParams(
        limits=LimitParams({R.MAX_BETA_WEIGHTED_DELTA: limit}, max_data_age_s=max_age),
        beta=BetaParams("SPY", default, values or {}),
    )
    return PureGate(params)


def index_line(
    g: PureGate, t: float, last: float | None, bid: float = 0.0, ask: float = 0.0
) -> None:
    g.market_quote(t, stk("SPY"), bid or None, ask or None, last)


def test_stock_position_and_stock_leg_in_index_shares() -> None:
    g = beta_gate(90.0, {"AAPL": 1.5})
    g.position("A", stk("AAPL"), 100)
    g.quote(T, "A", 199.0, 201.0, 200.0)  # last 200
    index_line(g, T, 500.0)
    # held: 100 × 200 × 1.5 / 500 = 60; the leg: 50 × 200 × 1.5 / 500 = 30 → 90
    assert g.check(T, sleg("AAPL", 50, 200.0)).allowed
    a = g.check(T, sleg("AAPL", 51, 200.0))
    assert triples(a) == [("max_beta_weighted_delta", 90.6, 90.0)]


def test_option_dollar_delta_uses_its_greeks_underlying_price() -> None:
    g = beta_gate(39.0, {"AAPL": 2.0})
    g.position("O", opt("AAPL", 200.0), 2)
    g.quote(T, "O", 9.0, 10.0, None, Greeks(0.5, 0.01, 0.2, -0.05, 0.3, 250.0))
    index_line(g, T, 500.0)
    # 0.5 × 2 × 100 × 250 × 2 / 500 = 100 in index shares; a hedge of −60 AAPL at 250
    # takes it to (25 000 − 15 000) × 2 / 500 = 40 > 39 but lower: allowed (toward compliance)
    a = g.check(T, sleg("AAPL", -60, 250.0))
    assert a.allowed and a.risk_reducing
    a = g.check(T, sleg("AAPL", 1, 250.0))
    assert triples(a) == [("max_beta_weighted_delta", 101.0, 39.0)]


def test_default_beta_index_beta_one_and_negative_beta() -> None:
    g = beta_gate(1_000.0, {"GLD": -1.0}, default=0.5)
    index_line(g, T, 400.0)
    g.position("S", stk("SPY"), 10)
    g.quote(T, "S", 399.0, 401.0, 400.0)  # the index itself: β 1 → 10 index shares
    g.position("M", stk("MSFT"), 100)
    g.quote(T, "M", 399.0, 401.0, 400.0)  # default β 0.5 → 50
    g.position("G", stk("GLD"), 40)
    g.quote(T, "G", 199.0, 201.0, 200.0)  # β −1 → −20
    assert g.check(T, sleg("MSFT", 1, 400.0)).allowed
    # 10 + 50 − 20 = 40; selling the GLD hedge raises it to 60
    a = g.check(T, sleg("GLD", -40, 200.0))
    assert not a.risk_reducing and a.allowed
    g2 = beta_gate(50.0, {"GLD": -1.0}, default=0.5)
    for pid, sym, qty, px in (("S", "SPY", 10, 400.0), ("M", "MSFT", 100, 400.0)):
        g2.position(pid, stk(sym), qty)
        g2.quote(T, pid, px, px, px)
    g2.position("G", stk("GLD"), 40)
    g2.quote(T, "G", 200.0, 200.0, 200.0)
    index_line(g2, T, 400.0)
    assert triples(g2.check(T, sleg("GLD", -40, 200.0))) == [
        ("max_beta_weighted_delta", 60.0, 50.0)
    ]


def test_missing_beta_of_any_symbol_in_the_portfolio_is_stale() -> None:
    g = beta_gate(1e9, {"AAPL": 1.0})
    index_line(g, T, 500.0)
    assert g.check(T, sleg("AAPL", 1, 100.0)).allowed
    assert codes(g.check(T, sleg("IBM", 1, 100.0))) == ["stale_data"]  # the leg's symbol
    g.position("I", stk("IBM"), 1)
    g.quote(T, "I", 100.0, 100.0, 100.0)
    a = g.check(T, sleg("AAPL", 1, 100.0))  # a held symbol without β: also stale
    assert triples(a) == [("stale_data", None, 60.0)]


def test_index_price_is_the_newest_of_its_three_sources() -> None:
    g = beta_gate(1e9, {"AAPL": 1.0})
    g.position("A", stk("AAPL"), 100)
    g.quote(T, "A", 100.0, 100.0, 100.0)  # 10 000 dollar delta
    index_line(g, T, 500.0)
    assert g.assess(T, sleg("AAPL", 0.5, 100.0)).limit_reasons == ()
    g2 = beta_gate(20.0, {"AAPL": 1.0})
    g2.position("A", stk("AAPL"), 100)
    g2.quote(T, "A", 100.0, 100.0, 100.0)
    index_line(g2, T, 1000.0)  # 10 index shares
    assert g2.check(T + 1, sleg("AAPL", 100, 100.0)).allowed  # 20
    g2.position("IDX", stk("SPY"), 1)
    g2.quote(T + 2, "IDX", 499.0, 501.0, 500.0)  # newer: a stock position on the index
    # (10 000 + 500 + 10 000) / 500 = 41 > 20
    assert codes(g2.check(T + 3, sleg("AAPL", 100, 100.0))) == ["max_beta_weighted_delta"]
    g2.position("IO", opt("SPY", 500.0), 1)
    g2.quote(T + 4, "IO", 1.0, 1.0, None, Greeks(0.0, 0.0, 0.0, 0.0, 0.2, 2000.0))
    # newest: the option's und_price 2000 → (10 000 + 1 000 + 0 + 10 000) / 2000 = 10.5
    assert g2.check(T + 5, sleg("AAPL", 100, 100.0)).allowed
    index_line(g2, T + 6, None, 249.0, 251.0)  # newest: a market line's mid, 250
    assert codes(g2.check(T + 7, sleg("AAPL", 1, 100.0))) == ["max_beta_weighted_delta"]


def test_the_orders_legs_never_set_the_index_price() -> None:
    g = beta_gate(1e9, {"AAPL": 1.0})
    leg = oleg("SPY", 1, 500.0, 2.0, greeks=Greeks(0.5, 0.0, 0.0, 0.0, 0.2, 500.0))
    assert codes(g.check(T, leg, sleg("SPY", 1, 500.0))) == ["stale_data"]


def test_index_price_exactly_max_age_is_fresh_older_is_stale() -> None:
    g = beta_gate(1e9, {"AAPL": 1.0}, max_age=30.0)
    index_line(g, T, 500.0)
    assert g.check(T + 30.0, sleg("AAPL", 1, 100.0)).allowed
    assert triples(g.check(T + 30.25, sleg("AAPL", 1, 100.0))) == [("stale_data", 30.25, 30.0)]


def test_an_option_market_line_on_the_index_is_not_an_index_price() -> None:
    g = beta_gate(1e9, {"AAPL": 1.0})
    g.market_quote(T, opt("SPY", 500.0), 5.0, 5.2, 5.1)
    assert codes(g.check(T, sleg("AAPL", 1, 100.0))) == ["stale_data"]


def test_an_unset_dbl_max_index_price_is_missing_not_a_number() -> None:
    """IB's DBL_MAX is an unset value: as an index price it must fail closed.

    Treated as a number it makes every beta-weighted delta ≈ 0 and waves any
    order through the limit.
    """
    g = beta_gate(10.0, {"AAPL": 1.0})
    index_line(g, T, DBL_MAX)
    a = g.check(T, sleg("AAPL", 100, 190.0))  # 19 000 $ of dollar delta
    assert not a.allowed
    assert codes(a) == ["stale_data"]

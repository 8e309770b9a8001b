"""Order controls, cooldown and the order of reasons, at their boundaries (DESIGN §4, §4.2).

Facts from the contract this file checks:

* ``max_leg_contracts`` / ``max_leg_shares``: an option / stock leg's |qty| > limit;
  value = the largest such |qty|; each leg alone (two legs on one contract are
  not summed).
* ``max_order_notional``: Σ legs' notional (§2: option |qty| × strike × mult,
  stock |qty| × its own price) > limit; value = that sum.
* ``max_order_premium``: Σ option legs' |qty| × price × mult > limit.
* ``price_collar_pct``: a leg's price > ask + mid × pct/100 or < bid − mid × pct/100;
  value = the first such leg's price. The quote: the newest with finite, > 0,
  uncrossed bid/ask among accepted quotes of open positions on the contract and
  ``market`` lines; none, or older than ``max_data_age_s`` (exactly that age is
  fresh) → ``stale_data`` — an order control's reason: limits still evaluated,
  a risk-reducing order stays risk-reducing (no breaker code, no cooldown).
* ``order_rate``: ``max_orders_per_window`` allowed orders already have t in
  (t − window, t]; value = that count, limit = max_orders_per_window.
* ``duplicate_order``: an allowed order with the same multiset of
  (contract, qty, price) has t in (t − window, t]; value null, limit = window.
  Numbers compare by value; Greeks and what-if do not count.
* Only allowed orders count toward rate and duplicates; a malformed order is
  ``invalid_order`` alone and counts toward neither.
* Controls apply to every order, risk-reducing included, in every breaker state.
* ``cooldown``: not risk-reducing, a leg on a symbol that TRIGGERed at t₀ with
  t − t₀ < after_trigger_s; value = t − t₀ of the newest, limit = after_trigger_s.
* Reasons: limits (table order), controls (§4.2 table order), cooldown,
  margin, stale_data, breaker code.
"""

from __future__ import annotations

import math

from gate_harness import EXP, PureGate, R, codes, oleg, opt, sleg, stk, triples

from actors.gate.params import GateParams, LimitParams, LossParams, OrderParams
from actors.messages import BreakerState, Greeks, Leg, Right, SecType

T = 1_000.0


def orders(**kw: object) -> GateParams:
    return GateParams(orders=OrderParams(**kw))  # type: ignore[arg-type]


# ------------------------------------------------------------------ leg caps


def test_max_leg_contracts_exactly_at_cap_passes_one_over_fails() -> None:
    g = PureGate(orders(max_leg_contracts=10.0))
    assert g.check(T, oleg("AAPL", 10, 100.0, 1.0)).allowed
    assert g.check(T, oleg("AAPL", -10, 100.0, 1.0)).allowed
    a = g.check(T + 1, oleg("AAPL", 11, 100.0, 1.0))
    assert triples(a) == [("max_leg_contracts", 11.0, 10.0)]


def test_max_leg_contracts_value_is_largest_and_legs_are_not_summed() -> None:
    g = PureGate(orders(max_leg_contracts=10.0))
    a = g.check(T, oleg("AAPL", 11, 100.0, 1.0), oleg("AAPL", -13, 110.0, 1.0))
    assert triples(a) == [("max_leg_contracts", 13.0, 10.0)]
    # two legs on one contract, 6 + 6 > 10 together, each alone under the cap
    both = g.check(T + 1, oleg("AAPL", 6, 100.0, 1.0), oleg("AAPL", 6, 100.0, 1.0))
    assert both.allowed
    # a stock leg is not judged by the contracts cap
    assert g.check(T + 2, sleg("AAPL", 1000, 10.0)).allowed


def test_max_leg_shares_boundary_and_options_not_judged() -> None:
    g = PureGate(orders(max_leg_shares=500.0))
    assert g.check(T, sleg("AAPL", -500, 10.0)).allowed
    a = g.check(T + 1, sleg("AAPL", 501, 10.0), sleg("MSFT", -700, 10.0))
    assert triples(a) == [("max_leg_shares", 700.0, 500.0)]
    assert g.check(T + 2, oleg("AAPL", 900, 100.0, 1.0)).allowed


# --------------------------------------------------------------- order value


def test_max_order_notional_sums_option_strike_and_stock_price() -> None:
    # option: 1 × 100 × 100 = 10 000; stock: |−50| × 100 = 5 000 → 15 000
    legs = (oleg("AAPL", 1, 100.0, 2.5), sleg("AAPL", -50, 100.0))
    assert PureGate(orders(max_order_notional=15_000.0)).check(T, *legs).allowed
    a = PureGate(orders(max_order_notional=14_999.5)).check(T, *legs)
    assert triples(a) == [("max_order_notional", 15_000.0, 14_999.5)]


def test_max_order_premium_counts_only_option_legs() -> None:
    # 2 × 3.5 × 100 + |−1| × 1.25 × 100 = 825; the stock leg's 100 000 is not premium
    legs = (oleg("AAPL", 2, 100.0, 3.5), oleg("AAPL", -1, 110.0, 1.25), sleg("AAPL", 1000, 100.0))
    assert PureGate(orders(max_order_premium=825.0)).check(T, *legs).allowed
    a = PureGate(orders(max_order_premium=824.0)).check(T, *legs)
    assert triples(a) == [("max_order_premium", 825.0, 824.0)]


def test_order_value_without_a_price_never_passes() -> None:
    """A value control that cannot value a leg fails closed (never waved through)."""
    assert not PureGate(orders(max_order_notional=1e9)).check(T, sleg("AAPL", 10)).allowed
    assert not PureGate(orders(max_order_premium=1e9)).check(T, oleg("AAPL", 1, 100.0)).allowed


# --------------------------------------------------------------------- collar


def collar_gate(pct: float = 1.0, max_age: float = 60.0) -> PureGate:
    return PureGate(
        GateParams(
            limits=LimitParams(max_data_age_s=max_age), orders=OrderParams(price_collar_pct=pct)
        )
    )


def test_collar_price_exactly_at_the_band_passes_one_tick_beyond_fails() -> None:
    g = collar_gate(1.0)
    g.market_quote(T, stk("AAPL"), 99.0, 101.0)  # mid 100, band 1
    high = 101.0 + 100.0 * 1.0 / 100
    low = 99.0 - 100.0 * 1.0 / 100
    assert g.check(T, sleg("AAPL", 1, high)).allowed
    assert g.check(T, sleg("AAPL", -1, low)).allowed
    above = math.nextafter(high, math.inf)
    below = math.nextafter(low, -math.inf)
    assert triples(g.check(T, sleg("AAPL", 1, above))) == [("price_collar_pct", above, 1.0)]
    assert triples(g.check(T, sleg("AAPL", -1, below))) == [("price_collar_pct", below, 1.0)]


def test_collar_band_is_measured_from_the_far_side_of_the_spread() -> None:
    """A wide spread widens the collar: price ≤ ask + band passes even far above mid."""
    g = collar_gate(2.0)
    g.market_quote(T, opt("AAPL", 100.0), 1.0, 3.0)  # mid 2, band 0.04
    assert g.check(T, oleg("AAPL", 1, 100.0, 3.04)).allowed
    assert g.check(T, oleg("AAPL", 1, 100.0, 0.96)).allowed
    assert codes(g.check(T, oleg("AAPL", 1, 100.0, 3.05))) == ["price_collar_pct"]


def test_collar_value_is_the_first_offending_legs_price() -> None:
    g = collar_gate(1.0)
    g.market_quote(T, stk("AAPL"), 99.0, 101.0)
    g.market_quote(T, stk("MSFT"), 99.0, 101.0)
    a = g.check(T, sleg("AAPL", 1, 100.0), sleg("MSFT", 1, 150.0), sleg("AAPL", 1, 200.0))
    assert triples(a) == [("price_collar_pct", 150.0, 1.0)]


def test_collar_quote_exactly_max_age_is_fresh_older_is_stale() -> None:
    g = collar_gate(1.0, max_age=30.0)
    g.market_quote(T, stk("AAPL"), 99.0, 101.0)
    assert g.check(T + 30.0, sleg("AAPL", 1, 100.0)).allowed
    a = g.check(T + 30.5, sleg("AAPL", 1, 100.0))
    assert triples(a) == [("stale_data", 30.5, 30.0)]


def test_collar_without_any_quote_is_stale_with_null_value() -> None:
    a = collar_gate(1.0, max_age=30.0).check(T, sleg("AAPL", 1, 100.0))
    assert triples(a) == [("stale_data", None, 30.0)]


def test_collar_uses_the_newest_usable_quote_of_positions_and_market_lines() -> None:
    g = collar_gate(1.0)
    g.position("P", stk("AAPL"), 10)
    g.market_quote(T, stk("AAPL"), 99.0, 101.0)
    g.quote(T + 1, "P", 109.0, 111.0, 110.0)  # newer: the position's accepted quote
    assert g.check(T + 2, sleg("AAPL", 1, 111.5)).allowed
    assert g.check(T + 2, sleg("AAPL", 1, 108.0)).allowed  # inside 107.9 .. 112.1
    assert codes(g.check(T + 2, sleg("AAPL", 1, 100.0))) == ["price_collar_pct"]
    # a crossed or one-sided market line is not usable: the position's quote stays newest
    g.market_quote(T + 3, stk("AAPL"), 101.0, 99.0)
    g.market_quote(T + 3, stk("AAPL"), None, 99.0)
    assert codes(g.check(T + 4, sleg("AAPL", 1, 100.0))) == ["price_collar_pct"]
    # a closed position's quotes stop counting: back to the older market line
    g.close("P")
    assert g.check(T + 5, sleg("AAPL", 1, 100.0)).allowed


def test_collar_judges_each_contract_by_its_own_quote() -> None:
    g = collar_gate(1.0)
    g.market_quote(T, opt("AAPL", 100.0), 4.0, 4.2)
    # another strike has no quote: that leg is stale even though AAPL 100 C is quoted
    a = g.check(T, oleg("AAPL", 1, 100.0, 4.1), oleg("AAPL", -1, 110.0, 2.0))
    assert codes(a) == ["stale_data"]
    # same contract with the multiplier written as an int compares by value
    leg = Leg("AAPL", SecType.OPT, 1, 4.1, Right.CALL, 100, EXP, 100)
    assert g.check(T, leg).allowed


def _risk_reducing_book(g: PureGate) -> None:
    g.position("S", stk("AAPL"), 500)


def test_collar_stale_keeps_a_risk_reducing_order_risk_reducing() -> None:
    params = GateParams(
        limits=LimitParams({R.MAX_PORTFOLIO_DELTA: 1000.0}),
        orders=OrderParams(price_collar_pct=1.0),
        cooldown_s=60.0,
    )
    g = PureGate(params)
    _risk_reducing_book(g)
    g.trigger(T - 1, "AAPL")
    g.open_breaker(T - 1)
    a = g.check(T, sleg("AAPL", -100, 100.0))  # no quote for the collar
    assert a.risk_reducing
    assert triples(a) == [("stale_data", None, 60.0)]  # no cooldown, no breaker_open
    # an entry in the same state hears cooldown and the breaker too
    e = g.check(T, sleg("AAPL", 100, 100.0))
    assert codes(e) == ["cooldown", "stale_data", "breaker_open"]


def test_controls_apply_to_risk_reducing_orders_in_every_breaker_state() -> None:
    params = GateParams(
        limits=LimitParams({R.MAX_PORTFOLIO_DELTA: 1000.0}),
        orders=OrderParams(max_leg_shares=50.0),
    )
    for state in (BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN):
        g = PureGate(params)
        _risk_reducing_book(g)
        if state is BreakerState.OPEN:
            g.open_breaker(T - 1)
        elif state is BreakerState.HALF_OPEN:
            g.half_open(T)
        assert g.cb.state is state
        a = g.check(T, sleg("AAPL", -100, 100.0))
        assert a.risk_reducing and triples(a) == [("max_leg_shares", 100.0, 50.0)], state


# --------------------------------------------------------------- order rate


def test_order_rate_value_is_the_count_and_frees_exactly_window_after() -> None:
    g = PureGate(orders(max_orders_per_window=2, order_window_s=1.0))
    assert g.check(10.0, sleg("AAPL", 1, 1.0)).allowed
    assert g.check(10.5, sleg("AAPL", 2, 1.0)).allowed
    a = g.check(10.75, sleg("AAPL", 3, 1.0))
    assert triples(a) == [("order_rate", 2.0, 2.0)]
    # exactly order_window_s after the first: it no longer counts (t in (t − w, t])
    assert g.check(11.0, sleg("AAPL", 4, 1.0)).allowed
    # (10.25, 11.25] holds 10.5 and 11.0; at 11.5 the 10.5 one is exactly a window old
    assert codes(g.check(11.25, sleg("AAPL", 5, 1.0))) == ["order_rate"]
    assert g.check(11.5, sleg("AAPL", 6, 1.0)).allowed


def test_order_rate_counts_orders_at_the_same_instant() -> None:
    g = PureGate(orders(max_orders_per_window=1, order_window_s=0.25))
    assert g.check(10.0, sleg("AAPL", 1, 1.0)).allowed
    assert triples(g.check(10.0, sleg("AAPL", 2, 1.0))) == [("order_rate", 1.0, 1.0)]
    assert codes(g.check(10.125, sleg("AAPL", 2, 1.0))) == ["order_rate"]
    assert g.check(10.25, sleg("AAPL", 2, 1.0)).allowed


def test_denied_orders_do_not_count_toward_the_rate() -> None:
    params = GateParams(orders=OrderParams(max_orders_per_window=1, max_leg_shares=10.0))
    g = PureGate(params)
    assert codes(g.check(10.0, sleg("AAPL", 11, 1.0))) == ["max_leg_shares"]
    g.open_breaker(10.0)
    assert codes(g.check(10.1, sleg("AAPL", 5, 1.0))) == ["breaker_open"]
    g.cb.reset(10.2)
    assert g.check(10.3, sleg("AAPL", 5, 1.0)).allowed  # the two denied ones never counted
    assert codes(g.check(10.4, sleg("AAPL", 5, 1.0))) == ["order_rate"]


def test_invalid_order_is_alone_and_counts_toward_neither_rate_nor_duplicates() -> None:
    params = GateParams(
        orders=OrderParams(max_orders_per_window=1, duplicate_window_s=60.0, max_leg_shares=1.0)
    )
    g = PureGate(params)
    g.open_breaker(9.0)
    for bad in ((), (sleg("AAPL", 0, 1.0),), (sleg("AAPL", math.nan, 1.0),)):
        assert triples(g.check(10.0, *bad)) == [("invalid_order", None, None)]
    g.cb.reset(10.0)
    assert g.check(10.0, sleg("AAPL", 1, 1.0)).allowed


# --------------------------------------------------------------- duplicates


def test_duplicate_same_legs_in_any_order_numbers_by_value() -> None:
    g = PureGate(orders(duplicate_window_s=5.0))
    first = (oleg("AAPL", 1, 100.0, 2.0), sleg("AAPL", -100, 50.0))
    assert g.check(10.0, *first).allowed
    # the same legs reversed, ints for floats, with Greeks: a duplicate
    same = (
        Leg("AAPL", SecType.STK, -100, 50),
        Leg("AAPL", SecType.OPT, 1, 2, first[0].right, 100, first[0].expiry, 100, Greeks(0.5)),
    )
    assert triples(g.check(12.0, *same)) == [("duplicate_order", None, 5.0)]
    # a different price or quantity is another order
    assert g.check(12.0, oleg("AAPL", 1, 100.0, 2.01), sleg("AAPL", -100, 50.0)).allowed
    assert g.check(12.0, oleg("AAPL", 2, 100.0, 2.0), sleg("AAPL", -100, 50.0)).allowed


def test_duplicate_window_boundary() -> None:
    g = PureGate(orders(duplicate_window_s=5.0))
    leg = sleg("AAPL", 1, 50.0)
    assert g.check(10.0, leg).allowed
    assert codes(g.check(14.75, leg)) == ["duplicate_order"]
    assert g.check(15.0, leg).allowed  # exactly duplicate_window_s after: out of (t − w, t]
    assert codes(g.check(15.0, leg)) == ["duplicate_order"]


def test_a_denied_duplicate_does_not_extend_the_window() -> None:
    g = PureGate(orders(duplicate_window_s=5.0))
    leg = sleg("AAPL", 1, 50.0)
    assert g.check(10.0, leg).allowed
    assert codes(g.check(14.0, leg)) == ["duplicate_order"]
    assert g.check(15.0, leg).allowed


def test_rate_and_duplicate_listed_in_table_order() -> None:
    g = PureGate(orders(max_orders_per_window=1, duplicate_window_s=5.0))
    leg = sleg("AAPL", 1, 50.0)
    assert g.check(10.0, leg).allowed
    assert triples(g.check(10.5, leg)) == [
        ("order_rate", 1.0, 1.0),
        ("duplicate_order", None, 5.0),
    ]


# ------------------------------------------------------------------ cooldown


def cooldown_gate(after: float = 30.0) -> PureGate:
    g = PureGate(GateParams(limits=LimitParams({R.MAX_PORTFOLIO_DELTA: 1000.0}), cooldown_s=after))
    _risk_reducing_book(g)
    return g


def test_cooldown_exactly_after_trigger_s_is_over() -> None:
    g = cooldown_gate(30.0)
    g.trigger(100.0, "AAPL")
    assert triples(g.check(129.5, sleg("AAPL", 1, 1.0))) == [("cooldown", 29.5, 30.0)]
    assert g.check(130.0, sleg("AAPL", 1, 1.0)).allowed


def test_cooldown_value_is_the_newest_trigger_and_only_its_symbol() -> None:
    g = cooldown_gate(30.0)
    g.trigger(100.0, "AAPL")
    g.trigger(110.0, "AAPL")
    g.trigger(105.0, "MSFT")
    assert triples(g.check(120.0, sleg("AAPL", 1, 1.0))) == [("cooldown", 10.0, 30.0)]
    assert triples(g.check(120.0, sleg("MSFT", 1, 1.0))) == [("cooldown", 15.0, 30.0)]
    # an order with legs on both symbols: the newest trigger among them
    a = g.check(120.0, sleg("MSFT", 1, 1.0), sleg("AAPL", 1, 1.0))
    assert triples(a) == [("cooldown", 10.0, 30.0)]
    assert g.check(120.0, sleg("IBM", 1, 1.0)).allowed


def test_cooldown_spares_risk_reducing_orders_but_not_stale_ones() -> None:
    params = GateParams(
        limits=LimitParams({R.MAX_PORTFOLIO_DELTA: 1000.0}),
        cooldown_s=30.0,
        loss=LossParams(max_daily_loss=1e6, max_pnl_age_s=10.0),
    )
    g = PureGate(params)
    _risk_reducing_book(g)
    g.pnl(100.0, 0.0)
    g.trigger(100.0, "AAPL")
    assert g.check(101.0, sleg("AAPL", -100, 1.0)).allowed
    # option position without Greeks under a Greek limit: not known to be risk-reducing
    g.position("O", opt("AAPL", 100.0), 1)
    a = g.check(101.0, sleg("AAPL", -100, 1.0))
    assert not a.risk_reducing
    assert triples(a) == [("cooldown", 1.0, 30.0), ("stale_data", None, 60.0)]


# --------------------------------------------------------- order of reasons


def test_every_stateless_control_listed_in_table_order() -> None:
    params = orders(
        max_leg_contracts=5.0,
        max_leg_shares=50.0,
        max_order_notional=1000.0,
        max_order_premium=100.0,
        price_collar_pct=1.0,
    )
    g = PureGate(params)
    g.market_quote(T, opt("AAPL", 100.0), 1.0, 1.1)
    g.market_quote(T, stk("AAPL"), 99.0, 101.0)
    # option: 6 contracts, notional 60 000, premium 6 × 5 × 100 = 3000, price 5 > 1.1 + 0.0105
    # stock: 60 shares at 100 (inside its collar): notional 6000
    a = g.check(T, sleg("AAPL", 60, 100.0), oleg("AAPL", 6, 100.0, 5.0))
    assert triples(a) == [
        ("max_leg_contracts", 6.0, 5.0),
        ("max_leg_shares", 60.0, 50.0),
        ("max_order_notional", 66_000.0, 1000.0),
        ("max_order_premium", 3000.0, 100.0),
        ("price_collar_pct", 5.0, 1.0),
    ]


def test_limits_controls_cooldown_stale_breaker_in_contract_order() -> None:
    params = GateParams(
        limits=LimitParams({R.MAX_PORTFOLIO_DELTA: 150.0, R.MAX_PER_SYMBOL_DELTA: 150.0}),
        orders=OrderParams(
            price_collar_pct=1.0,
            max_orders_per_window=1,
            order_window_s=100.0,
            duplicate_window_s=100.0,
        ),
        cooldown_s=100.0,
        loss=LossParams(max_daily_loss=1e6, max_pnl_age_s=10.0),
    )
    g = PureGate(params)
    g.pnl(0.0, 0.0)
    g.market_quote(0.0, stk("AAPL"), 100.0, 100.0)
    leg = sleg("AAPL", 100, 100.0)
    assert g.check(1.0, leg).allowed  # counts for the rate and the duplicates
    g.position("P", stk("AAPL"), 100)
    g.trigger(4.0, "AAPL")
    g.market_quote(5.0, stk("AAPL"), 90.0, 90.25)  # 100 > 90.25 + 0.90125
    g.open_breaker(6.0)
    a = g.check(20.0, leg)
    assert triples(a) == [
        ("max_portfolio_delta", 200.0, 150.0),
        ("max_per_symbol_delta", 200.0, 150.0),
        ("price_collar_pct", 100.0, 1.0),
        ("order_rate", 1.0, 1.0),
        ("duplicate_order", None, 100.0),
        ("cooldown", 16.0, 100.0),
        ("stale_data", 20.0, 10.0),
        ("breaker_open", None, None),
    ]


def test_half_open_busy_is_listed_last_whatever_else_denies() -> None:
    params = GateParams(
        limits=LimitParams({R.MAX_PORTFOLIO_DELTA: 150.0}),
        orders=OrderParams(max_leg_shares=100.0),
    )
    g = PureGate(params)
    g.half_open(T)
    g.cb.permits_used = g.cb.params.half_open_max_tries
    a = g.check(T, sleg("AAPL", 200, 1.0))
    assert codes(a) == ["max_portfolio_delta", "max_leg_shares", "breaker_half_open_busy"]

"""Margin rules on IB's what-if (DESIGN §4.4), at their boundaries.

Facts from the contract:

* ``max_init_margin_pct``: init margin after ÷ estimated NLV × 100 > limit and
  init after > before; value = that percentage.
* ``min_excess_liquidity``: EWL after − maint after < limit and lower than
  before; value = that amount.
* Judged only for an order that is not risk-reducing and that no portfolio
  limit, order control, cooldown or stale_data denies — whatever the breaker's
  state — and before the breaker is asked, so a margin denial takes no
  half-open permit.
* No answer, an error, or an unset value (null, missing, non-finite, DBL_MAX)
  among the fields the configured keys use → ``stale_data`` (value and limit
  null for margin).
* Reasons: margin keys, then stale_data, then the breaker's code.
"""

from __future__ import annotations

import math

import pytest
from gate_harness import PureGate, R, codes, sleg, stk, triples

from actors.gate.params import GateParams, LimitParams, MarginParams, OrderParams
from actors.messages import BreakerState, WhatIf

DBL_MAX = 1.7976931348623157e308
NLV = 128_000.0
T = 100.0


def margin_gate(pct: float | None = 50.0, excess: float | None = None, **kw: object) -> PureGate:
    params = GateParams(
        margin=MarginParams(max_init_margin_pct=pct, min_excess_liquidity=excess),
        **kw,  # type: ignore[arg-type]
    )
    return PureGate(params, config_nlv=NLV)


def init(before: float | None, after: float | None) -> WhatIf:
    return WhatIf(init_margin_before=before, init_margin_after=after)


def excess(
    ewl_b: float | None, mm_b: float | None, ewl_a: float | None, mm_a: float | None
) -> WhatIf:
    return WhatIf(
        maint_margin_before=mm_b,
        maint_margin_after=mm_a,
        equity_with_loan_before=ewl_b,
        equity_with_loan_after=ewl_a,
    )


ORDER = sleg("AAPL", 10, 100.0)


# --------------------------------------------------------- init margin pct


def test_init_margin_exactly_at_the_limit_passes_above_fails() -> None:
    g = margin_gate(50.0)
    assert g.check(T, ORDER, whatif=init(10_000.0, 64_000.0)).allowed  # exactly 50 %
    a = g.check(T, ORDER, whatif=init(10_000.0, 64_000.5))
    assert triples(a) == [("max_init_margin_pct", 64_000.5 / NLV * 100, 50.0)]


def test_init_margin_over_the_limit_but_not_growing_moves_toward_compliance() -> None:
    g = margin_gate(50.0)
    assert g.check(T, ORDER, whatif=init(90_000.0, 90_000.0)).allowed  # unchanged
    assert g.check(T, ORDER, whatif=init(90_000.0, 80_000.0)).allowed  # reduced
    assert codes(g.check(T, ORDER, whatif=init(90_000.0, 90_000.5))) == ["max_init_margin_pct"]


def test_init_margin_pct_uses_the_estimated_nlv() -> None:
    g = PureGate(GateParams(margin=MarginParams(max_init_margin_pct=50.0)))
    g.account(1.0, NLV)
    g.pnl(2.0, 0.0)
    assert g.check(T, ORDER, whatif=init(0.0, 64_000.0)).allowed
    g.pnl(3.0, -28_000.0)  # estimate 100 000: 64 % now
    assert triples(g.check(T, ORDER, whatif=init(0.0, 64_000.0))) == [
        ("max_init_margin_pct", 64.0, 50.0)
    ]


def test_init_margin_without_an_nlv_is_stale() -> None:
    g = PureGate(GateParams(margin=MarginParams(max_init_margin_pct=50.0)))
    a = g.check(T, ORDER, whatif=init(0.0, 1.0))
    assert codes(a) == ["stale_data"] and not a.allowed


# -------------------------------------------------------- excess liquidity


def test_excess_exactly_at_the_floor_passes_below_and_lower_fails() -> None:
    g = margin_gate(None, 10_000.0)
    assert g.check(T, ORDER, whatif=excess(50_000.0, 20_000.0, 40_000.0, 30_000.0)).allowed
    a = g.check(T, ORDER, whatif=excess(50_000.0, 20_000.0, 40_000.0, 30_000.5))
    assert triples(a) == [("min_excess_liquidity", 9_999.5, 10_000.0)]


def test_excess_under_the_floor_but_not_lower_moves_toward_compliance() -> None:
    g = margin_gate(None, 10_000.0)
    # before: 8000; after: 9000 (better) or 8000 (the same): allowed
    assert g.check(T, ORDER, whatif=excess(28_000.0, 20_000.0, 29_000.0, 20_000.0)).allowed
    assert g.check(T, ORDER, whatif=excess(28_000.0, 20_000.0, 30_000.0, 22_000.0)).allowed
    a = g.check(T, ORDER, whatif=excess(28_000.0, 20_000.0, 27_999.5, 20_000.0))
    assert triples(a) == [("min_excess_liquidity", 7_999.5, 10_000.0)]


# --------------------------------------------------- unset and no answer


@pytest.mark.parametrize("unset", [None, math.nan, math.inf, -math.inf, DBL_MAX, -DBL_MAX])
@pytest.mark.parametrize("field", ["before", "after"])
def test_unset_init_margin_is_stale(unset: float | None, field: str) -> None:
    w = init(unset, 64_000.0) if field == "before" else init(10_000.0, unset)
    a = margin_gate(50.0).check(T, ORDER, whatif=w)
    assert triples(a) == [("stale_data", None, None)]


@pytest.mark.parametrize("index", range(4))
@pytest.mark.parametrize("unset", [None, math.nan, DBL_MAX])
def test_unset_excess_fields_are_stale(index: int, unset: float | None) -> None:
    values: list[float | None] = [50_000.0, 20_000.0, 40_000.0, 20_000.0]
    values[index] = unset
    a = margin_gate(None, 10_000.0).check(T, ORDER, whatif=excess(*values))
    assert triples(a) == [("stale_data", None, None)]


def test_only_the_fields_the_configured_keys_use_matter() -> None:
    # max_init_margin_pct alone: maintenance and equity fields may be unset
    assert margin_gate(50.0).check(T, ORDER, whatif=init(1.0, 2.0)).allowed
    # min_excess_liquidity alone: init margin fields may be unset
    w = excess(50_000.0, 20_000.0, 40_000.0, 20_000.0)
    assert margin_gate(None, 10_000.0).check(T, ORDER, whatif=w).allowed


def test_no_answer_or_an_error_is_stale() -> None:
    g = margin_gate(50.0)
    assert triples(g.check(T, ORDER, whatif=None)) == [("stale_data", None, None)]
    err = WhatIf(1.0, 2.0, 1.0, 1.0, 1.0, 1.0, error="timeout")
    assert triples(g.check(T, ORDER, whatif=err)) == [("stale_data", None, None)]


def test_margin_reason_before_its_stale_data() -> None:
    g = margin_gate(50.0, 10_000.0)
    w = WhatIf(10_000.0, 70_000.0, None, None, None, None)
    assert triples(g.check(T, ORDER, whatif=w)) == [
        ("max_init_margin_pct", 70_000.0 / NLV * 100, 50.0),
        ("stale_data", None, None),
    ]


def test_answer_carries_the_judged_whatif() -> None:
    w = init(10_000.0, 20_000.0)
    assert margin_gate(50.0).check(T, ORDER, whatif=w).whatif == w


# ---------------------------------------- when margin is (not) judged


def test_not_judged_when_a_limit_or_control_already_denies() -> None:
    g = margin_gate(
        50.0,
        limits=LimitParams({R.MAX_PORTFOLIO_DELTA: 5.0}),
        orders=OrderParams(max_leg_shares=5.0),
    )
    a = g.check(T, ORDER, whatif=None)  # no what-if, but the order is denied anyway
    assert codes(a) == ["max_portfolio_delta", "max_leg_shares"]
    assert a.whatif is None


def test_not_judged_for_a_risk_reducing_order() -> None:
    g = margin_gate(50.0, limits=LimitParams({R.MAX_PORTFOLIO_DELTA: 1000.0}))
    g.position("S", stk("AAPL"), 500)
    a = g.check(T, sleg("AAPL", -100, 100.0), whatif=None)
    assert a.allowed and a.risk_reducing


def test_judged_whatever_the_breaker_state_and_listed_before_its_code() -> None:
    g = margin_gate(50.0)
    g.open_breaker(T - 1)
    a = g.check(T, ORDER, whatif=init(0.0, 100_000.0))
    assert codes(a) == ["max_init_margin_pct", "breaker_open"]
    assert codes(g.check(T, ORDER, whatif=None)) == ["stale_data", "breaker_open"]


def test_a_margin_denial_takes_no_half_open_permit() -> None:
    g = margin_gate(50.0)
    g.half_open(T)
    tries = g.cb.params.half_open_max_tries
    for i in range(5):
        a = g.check(T + i, ORDER, whatif=init(0.0, 100_000.0))
        assert codes(a) == ["max_init_margin_pct"]
        a = g.check(T + i, ORDER, whatif=None)
        assert codes(a) == ["stale_data"]
    assert g.cb.permits_used == 0 and g.cb.state is BreakerState.HALF_OPEN
    for _ in range(tries):
        assert g.check(T + 10, ORDER, whatif=init(0.0, 1.0)).allowed
    assert codes(g.check(T + 10, ORDER, whatif=init(0.0, 1.0))) == ["breaker_half_open_busy"]

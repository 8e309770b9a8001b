"""Daily P&L, the estimated NLV, its high-water mark and the loss trip (DESIGN §4.3).

Facts from the contract:

* Estimated NLV = latest NLV (``account`` event, else ``[account]
  net_liquidation``) + (daily P&L now − base); base = the daily P&L current
  when that NLV arrived, or, if none had arrived yet, the first daily P&L after
  it (until then the estimate is the NLV itself). The next NLV re-bases it.
* High-water mark = the highest estimate at any ``pnl`` or ``account`` event
  since the last operator reset, counting only estimates whose NLV came from
  IB; without one the drawdown rule is not evaluated. A reset restarts it at
  the estimate of that moment.
* A loss trip happens at a ``pnl`` or ``account`` event when daily P&L ≤
  −max_daily_loss or estimate ≤ HWM × (1 − max_drawdown_pct/100). It uses the
  latest daily P&L whatever its age (none yet: no daily-loss trip). A daily
  that is null, non-finite or DBL_MAX is missing data (the P&L keeps aging).
* Fail closed: with a loss limit set, an order that is not risk-reducing needs
  a daily P&L no older than ``max_pnl_age_s`` (exactly that age is fresh), else
  ``stale_data`` (value = the age, limit = max_pnl_age_s; null when none yet).
* Every % limit and ``max_init_margin_pct`` use the estimate.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pykka
import pytest
from gate_harness import PureGate, R, codes, opt, sleg, stk, triples

from actors.gate.params import GateParams, LimitParams, LossParams
from actors.messages import (
    AccountUpdate,
    CheckAnswer,
    CheckRequest,
    Greeks,
    LossBreach,
    Mark,
    PnlUpdate,
    PositionUpdate,
    ResetHighWater,
)
from actors.money import Money
from actors.portfolio_actor import MoneyView, PortfolioActor
from actors.probe import Probe
from actors.runtime import InlineDispatcher

DBL_MAX = 1.7976931348623157e308


def money(
    daily: float | None = None, dd: float | None = None, config_nlv: float | None = None
) -> Money:
    return Money(LossParams(max_daily_loss=daily, max_drawdown_pct=dd), config_nlv)


# ------------------------------------------------------------ the estimate


def test_nlv_before_any_pnl_is_the_estimate_until_the_first_pnl_sets_the_base() -> None:
    m = money()
    assert m.estimate() is None
    m.account(1.0, 100_000.0)
    assert m.estimate() == 100_000.0
    m.pnl(2.0, 500.0)  # the first daily after the NLV is the base
    assert m.estimate() == 100_000.0
    m.pnl(3.0, 1500.0)
    assert m.estimate() == 101_000.0
    m.pnl(4.0, -250.0)
    assert m.estimate() == 99_250.0


def test_pnl_before_any_nlv_then_nlv_bases_on_the_current_daily() -> None:
    m = money()
    m.pnl(1.0, -300.0)
    assert m.estimate() is None
    m.account(2.0, 100_000.0)
    assert m.estimate() == 100_000.0
    m.pnl(3.0, 200.0)
    assert m.estimate() == 100_500.0


def test_a_new_nlv_re_bases_the_estimate() -> None:
    m = money()
    m.account(1.0, 100_000.0)
    m.pnl(2.0, 0.0)
    m.pnl(3.0, 1000.0)
    assert m.estimate() == 101_000.0
    m.account(4.0, 100_400.0)  # IB's NLV lags: the estimate is now IB's, based on daily 1000
    assert m.estimate() == 100_400.0
    m.pnl(5.0, 1500.0)
    assert m.estimate() == 100_900.0
    # a new session: IB's daily restarts at 0; until the next NLV the estimate follows it
    m.pnl(6.0, 0.0)
    assert m.estimate() == 99_400.0
    m.account(7.0, 101_000.0)
    m.pnl(8.0, 100.0)
    assert m.estimate() == 101_100.0


def test_config_nlv_is_the_nlv_until_ib_sends_one() -> None:
    m = money(config_nlv=50_000.0)
    assert m.estimate() == 50_000.0
    m.pnl(1.0, 100.0)
    assert m.estimate() == 50_000.0
    m.pnl(2.0, 600.0)
    assert m.estimate() == 50_500.0
    m.account(3.0, 80_000.0)
    assert m.estimate() == 80_000.0
    m.pnl(4.0, 1600.0)
    assert m.estimate() == 81_000.0


@pytest.mark.parametrize("unset", [None, math.nan, math.inf, -math.inf, DBL_MAX, -DBL_MAX])
def test_unset_daily_is_missing_data_and_keeps_aging(unset: float | None) -> None:
    m = money()
    m.account(1.0, 100_000.0)
    m.pnl(2.0, 0.0)
    m.pnl(3.0, 700.0)
    m.pnl(10.0, unset)
    assert m.daily == 700.0 and m.estimate() == 100_700.0
    assert m.pnl_age(12.0) == 9.0  # still the age of the t = 3 daily


def test_unset_first_daily_does_not_set_the_base() -> None:
    m = money()
    m.account(1.0, 100_000.0)
    m.pnl(2.0, math.nan)
    m.pnl(3.0, 400.0)  # the first real daily after the NLV
    assert m.estimate() == 100_000.0


def test_an_unset_dbl_max_nlv_is_missing_data() -> None:
    """IB's DBL_MAX is an unset value, never a number: it must not become the NLV,
    the estimate or the high-water mark (after which every real NLV would look
    like a 100 % drawdown and latch the breaker)."""
    m = money(dd=10.0)
    m.account(1.0, 100_000.0)
    m.pnl(2.0, 0.0)
    assert m.account(3.0, DBL_MAX) is None
    assert m.estimate() == 100_000.0 and m.high_water == 100_000.0
    assert m.account(4.0, 100_000.0) is None


# --------------------------------------------------------- high-water mark


def test_high_water_counts_only_estimates_from_an_ib_nlv() -> None:
    m = money(config_nlv=200_000.0)
    m.pnl(1.0, 0.0)
    m.pnl(2.0, 5000.0)
    assert m.high_water is None  # config NLV never counts
    m.account(3.0, 100_000.0)
    assert m.high_water == 100_000.0
    m.pnl(4.0, 6000.0)
    assert m.high_water == 101_000.0
    m.pnl(5.0, 3000.0)
    assert m.high_water == 101_000.0  # the highest, not the latest


def test_reset_restarts_the_high_water_at_the_estimate_of_that_moment() -> None:
    m = money(dd=10.0)
    m.account(1.0, 100_000.0)
    m.pnl(2.0, 0.0)
    m.pnl(3.0, 20_000.0)
    assert m.high_water == 120_000.0
    m.pnl(4.0, 5_000.0)
    m.reset()
    assert m.high_water == 105_000.0
    # without an IB NLV a reset leaves no high-water mark
    c = money(dd=10.0, config_nlv=100_000.0)
    c.pnl(1.0, 0.0)
    c.reset()
    assert c.high_water is None


# ---------------------------------------------------------------- loss trip


def test_daily_loss_exactly_at_the_limit_trips() -> None:
    m = money(daily=1000.0)
    assert m.pnl(1.0, -999.5) is None
    b = m.pnl(2.0, -1000.0)
    assert isinstance(b, LossBreach) and b.rule == "max_daily_loss" and b.daily == -1000.0


def test_no_daily_loss_trip_without_any_pnl_and_latest_pnl_whatever_its_age() -> None:
    m = money(daily=1000.0)
    assert m.account(1.0, 100_000.0) is None
    assert m.pnl(2.0, None) is None
    m.pnl(3.0, -1500.0)
    # hours later, an account event or an unset pnl still judges the latest daily
    assert m.account(9_000.0, 100_000.0) is not None
    assert m.pnl(9_001.0, None) is not None


def test_drawdown_exactly_at_the_floor_trips() -> None:
    m = money(dd=25.0)  # 1 − 0.25 is exact: floor = 75 000
    m.account(1.0, 100_000.0)
    m.pnl(2.0, 0.0)
    assert m.pnl(3.0, -24_999.5) is None
    b = m.pnl(4.0, -25_000.0)
    assert isinstance(b, LossBreach) and b.rule == "max_drawdown_pct"
    assert (b.estimate, b.high_water) == (75_000.0, 100_000.0)


def test_drawdown_at_an_account_event() -> None:
    m = money(dd=50.0)
    m.account(1.0, 100_000.0)
    assert m.account(2.0, 50_000.5) is None
    assert m.account(3.0, 50_000.0) is not None


def test_no_drawdown_rule_without_an_ib_nlv() -> None:
    m = money(dd=10.0, config_nlv=100_000.0)
    m.pnl(1.0, 0.0)
    assert m.pnl(2.0, -90_000.0) is None


def test_drawdown_after_reset_is_measured_from_the_new_mark() -> None:
    m = money(dd=50.0)
    m.account(1.0, 100_000.0)
    m.pnl(2.0, 0.0)
    m.pnl(3.0, -40_000.0)
    m.reset()  # HWM 60 000: floor 30 000
    assert m.pnl(4.0, -69_999.0) is None
    assert m.pnl(5.0, -70_000.0) is not None


# ------------------------------------------------------ the gate's P&L rule


def loss_gate(max_pnl_age_s: float = 30.0) -> PureGate:
    g = PureGate(
        GateParams(
            limits=LimitParams({R.MAX_PORTFOLIO_DELTA: 1000.0}),
            loss=LossParams(max_daily_loss=1e6, max_pnl_age_s=max_pnl_age_s),
        )
    )
    g.position("S", stk("AAPL"), 500)
    return g


def test_pnl_exactly_max_pnl_age_is_fresh() -> None:
    g = loss_gate(30.0)
    g.pnl(100.0, -10.0)
    assert g.check(130.0, sleg("AAPL", 1, 1.0)).allowed
    assert triples(g.check(130.5, sleg("AAPL", 1, 1.0))) == [("stale_data", 30.5, 30.0)]


def test_no_pnl_yet_is_stale_with_null_value() -> None:
    assert triples(loss_gate(30.0).check(1.0, sleg("AAPL", 1, 1.0))) == [("stale_data", None, 30.0)]


def test_stale_value_is_the_oldest_age_with_its_own_limit() -> None:
    g = PureGate(
        GateParams(
            limits=LimitParams({R.MAX_PORTFOLIO_DELTA: 1e6}, max_data_age_s=60.0),
            loss=LossParams(max_daily_loss=1e6, max_pnl_age_s=30.0),
        )
    )
    g.position("O", opt("AAPL", 100.0), 1)
    g.quote(0.0, "O", 1.0, 1.1, None, Greeks(0.5, 0.01, 0.1, -0.01, 0.3, 100.0))
    g.pnl(10.0, 0.0)
    # Greeks 70 s old (limit 60), P&L 60 s old (limit 30): the largest age, 70, and 60
    assert triples(g.check(70.0, sleg("AAPL", 1, 1.0))) == [("stale_data", 70.0, 60.0)]
    g.quote(45.0, "O", 1.0, 1.1, None, Greeks(0.5, 0.01, 0.1, -0.01, 0.3, 100.0))
    # Greeks 61 s old (limit 60), P&L 96 s old (limit 30): 96 and the P&L's limit
    assert triples(g.check(106.0, sleg("AAPL", 1, 1.0))) == [("stale_data", 96.0, 30.0)]


def test_a_risk_reducing_order_needs_no_fresh_pnl() -> None:
    g = loss_gate(30.0)
    a = g.check(1.0, sleg("AAPL", -1, 1.0))
    assert a.allowed and a.risk_reducing


def test_stale_pnl_is_listed_with_the_violated_limit() -> None:
    g = loss_gate(30.0)
    a = g.check(1.0, sleg("AAPL", 600, 1.0))
    assert triples(a) == [("max_portfolio_delta", 1100.0, 1000.0), ("stale_data", None, 30.0)]


def test_no_loss_limit_no_pnl_rule() -> None:
    g = PureGate(GateParams(loss=LossParams(max_pnl_age_s=1.0)))
    assert g.check(100.0, sleg("AAPL", 1, 1.0)).allowed


def test_percent_limits_use_the_estimate() -> None:
    g = PureGate(GateParams(limits=LimitParams({R.MAX_SINGLE_POSITION_PCT: 10.0})))
    g.account(1.0, 100_000.0)
    g.pnl(2.0, 0.0)
    order = sleg("AAPL", 100, 80.0)  # 8000 notional: 8 % of 100 000
    assert g.check(3.0, order).allowed
    g.pnl(4.0, -50_000.0)  # estimate 50 000: 16 %
    assert triples(g.check(5.0, order)) == [("max_single_position_pct", 16.0, 10.0)]


# ---------------------------------------------------- the portfolio actor


@pytest.fixture
def inline() -> Iterator[InlineDispatcher]:
    d = InlineDispatcher()
    yield d
    pykka.ActorRegistry.stop_all()


def start(
    d: InlineDispatcher, params: GateParams, nlv: float | None = None
) -> tuple[Any, list[Any], list[Any]]:
    to_breaker: list[Any] = []
    to_sink: list[Any] = []
    breaker = Probe.start(dispatcher=d, into=to_breaker)
    sink = Probe.start(dispatcher=d, into=to_sink)
    ref = PortfolioActor.start(
        params, dispatcher=d, breaker=breaker, subscriber=sink, net_liquidation=nlv
    )
    return ref, to_breaker, to_sink


def test_portfolio_tells_the_breaker_each_loss_breach(inline: InlineDispatcher) -> None:
    ref, to_breaker, to_sink = start(inline, GateParams(loss=LossParams(max_daily_loss=1000.0)))
    ref.tell(AccountUpdate(1.0, 100_000.0))
    ref.tell(PnlUpdate(2.0, -999.0))
    ref.tell(PnlUpdate(3.0, -1000.0))
    ref.tell(PnlUpdate(4.0, None))  # missing data, but the latest daily still breaches
    breaches = [m for m in to_breaker if isinstance(m, LossBreach)]
    assert [(b.t, b.rule) for b in breaches] == [(3.0, "max_daily_loss"), (4.0, "max_daily_loss")]
    views = [m for m in to_sink if isinstance(m, MoneyView)]
    assert [(v.t, v.daily, v.estimate, v.high_water) for v in views] == [
        (1.0, None, 100_000.0, 100_000.0),
        (2.0, -999.0, 100_000.0, 100_000.0),
        (3.0, -1000.0, 99_999.0, 100_000.0),
        (4.0, -1000.0, 99_999.0, 100_000.0),
    ]


def test_portfolio_reset_restarts_the_high_water(inline: InlineDispatcher) -> None:
    ref, _, to_sink = start(inline, GateParams(loss=LossParams(max_drawdown_pct=10.0)))
    ref.tell(AccountUpdate(1.0, 100_000.0))
    ref.tell(PnlUpdate(2.0, 0.0))
    ref.tell(PnlUpdate(3.0, -5_000.0))
    ref.tell(ResetHighWater(4.0))
    views = [m for m in to_sink if isinstance(m, MoneyView)]
    assert views[-1].high_water == 95_000.0 and views[-1].high_water_moved


def test_portfolio_percent_limits_follow_pnl_between_nlvs(inline: InlineDispatcher) -> None:
    from actors.breaker_actor import BreakerActor
    from actors.circuit_breaker import BreakerParams
    from actors.scheduler import VirtualScheduler

    params = GateParams(limits=LimitParams({R.MAX_SINGLE_POSITION_PCT: 10.0}))
    breaker = BreakerActor.start(
        BreakerParams(), dispatcher=inline, scheduler=VirtualScheduler(), gate=params
    )
    ref = PortfolioActor.start(params, dispatcher=inline, breaker=breaker, net_liquidation=1e6)
    ref.tell(PositionUpdate(0.0, "S", stk("AAPL"), 10, 80.0))
    ref.tell(Mark(0.0, "S", 79.5, 80.5, 80.0, None))

    def ask(t: float) -> CheckAnswer:
        f: pykka.Future[CheckAnswer] = pykka.ThreadingFuture()
        ref.tell(CheckRequest(t, "c", (sleg("AAPL", 100, 80.0),), f))
        return f.get(timeout=5)

    ref.tell(PnlUpdate(1.0, 0.0))  # config NLV 1e6: base 0
    assert ask(2.0).allowed  # (10 + 100) × 80 = 8800: under 1 %
    ref.tell(AccountUpdate(3.0, 100_000.0))
    ref.tell(PnlUpdate(4.0, -20_000.0))  # estimate 80 000: 8800 / 80 000 = 11 %
    assert codes(ask(5.0)) == ["max_single_position_pct"]

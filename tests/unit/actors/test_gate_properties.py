"""Invariants of the pre-trade gate (hypothesis): fail closed, denials leave no trace,
the collar holds, and margin denials never take a half-open permit.

(a) Replacing any input number by NaN, ±∞ or IB's unset DBL_MAX never turns a
    denial into an allowance (BRIEF: unset values are missing data, never
    numbers; DESIGN §4 fail closed).
(b) A denied order never changes ``order_rate`` / ``duplicate_order`` state
    (DESIGN §4.2).
(c) The collar never allows a price outside [bid − mid × pct/100,
    ask + mid × pct/100] of a usable quote, and never allows without one.
(f) No ordering of concurrent checks lets a margin-denied order take a
    half-open permit (DESIGN §4.4: margin is judged before the breaker is asked).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from typing import Any

import pykka
import pytest
from gate_harness import PureGate, codes, sleg, stk
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from actors.breaker_actor import BreakerActor, BreakerView
from actors.circuit_breaker import BreakerParams, CircuitBreaker
from actors.gate.admission import Admission
from actors.gate.assessment import Admit, Assessment
from actors.gate.order import order_key
from actors.gate.params import GateParams, MarginParams, OrderParams
from actors.messages import (
    BreakerState,
    CheckAnswer,
    Failure,
    FailureKind,
    GetBreakerState,
    Reason,
    ReasonCode,
    WhatIf,
)
from actors.runtime import InlineDispatcher, PoolDispatcher
from actors.scheduler import VirtualScheduler
from supervisor.commands.replay import Replay
from supervisor.config import parse

DBL_MAX = 1.7976931348623157e308
BAD = [math.nan, math.inf, -math.inf, DBL_MAX]

# ----------------------------------------------- (a) fail closed on bad numbers

EXP = "2027-01-15"
CONTRACTS: dict[str, dict[str, Any]] = {
    "AS": {"symbol": "AAPL", "sec_type": "STK"},
    "MS": {"symbol": "MSFT", "sec_type": "STK"},
    "AC": {
        "symbol": "AAPL",
        "sec_type": "OPT",
        "right": "C",
        "strike": 200.0,
        "expiry": EXP,
        "multiplier": 100.0,
    },
    "MP": {
        "symbol": "MSFT",
        "sec_type": "OPT",
        "right": "P",
        "strike": 400.0,
        "expiry": EXP,
        "multiplier": 100.0,
    },
    "AP": {
        "symbol": "AAPL",
        "sec_type": "OPT",
        "right": "P",
        "strike": 180.0,
        "expiry": EXP,
        "multiplier": 100.0,
    },
}
# Quotes with last == mid, so "last, else mid" gives one price whichever is missing.
QUOTES: dict[str, tuple[float, float]] = {
    "AS": (199.5, 200.5),
    "MS": (399.5, 400.5),
    "AC": (9.5, 10.5),
    "MP": (19.5, 20.5),
    "AP": (4.5, 5.5),
}
GREEKS: dict[str, dict[str, float]] = {
    "AC": {"delta": 0.5, "gamma": 0.01, "vega": 0.25, "theta": -0.05, "iv": 0.3, "und_price": 200},
    "MP": {
        "delta": -0.5,
        "gamma": 0.005,
        "vega": 0.5,
        "theta": -0.04,
        "iv": 0.25,
        "und_price": 400,
    },
    "AP": {"delta": -0.3, "gamma": 0.01, "vega": 0.2, "theta": -0.03, "iv": 0.35, "und_price": 200},
}
LIMITS: dict[str, list[float]] = {
    "max_portfolio_delta": [100.0, 1_000.0, 10_000.0],
    "max_portfolio_dollar_delta": [2e4, 2e5, 2e6],
    "max_portfolio_gamma": [1.0, 10.0],
    "max_portfolio_vega": [50.0, 500.0],
    "max_portfolio_theta": [10.0, 100.0],
    "max_per_symbol_delta": [100.0, 1_000.0],
    "max_beta_weighted_delta": [50.0, 500.0],
    "max_single_position_pct": [5.0, 50.0],
    "max_correlated_pct": [10.0, 100.0],
    "max_stress_loss": [1_000.0, 50_000.0],
}
ORDERS: dict[str, list[float]] = {
    "max_leg_contracts": [3.0, 10.0],
    "max_leg_shares": [100.0, 1_000.0],
    "max_order_notional": [5e4, 5e5],
    "max_order_premium": [1_000.0, 1e4],
    "price_collar_pct": [1.0, 10.0],
}


def _chance(draw: st.DrawFn, in_ten: int) -> bool:
    """True about ``in_ten`` times in ten (hypothesis's floats favour 0.0 too much)."""
    return draw(st.integers(0, 9)) < in_ten


def _pick(draw: st.DrawFn, table: dict[str, list[float]], in_ten: int) -> dict[str, float]:
    return {
        key: draw(st.sampled_from(values)) for key, values in table.items() if _chance(draw, in_ten)
    }


@st.composite
def gate_scenarios(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    cfg: dict[str, Any] = {
        "limits": _pick(draw, LIMITS, 1),
        "orders": _pick(draw, ORDERS, 1),
        "groups": {"tech": ["AAPL", "MSFT"]},
        "beta": {"index": "SPY", "default": 1.0, "values": {"AAPL": 1.25}},
    }
    if draw(st.booleans()):
        cfg["loss"] = {"max_daily_loss": 1_000.0}
    margin = {}
    if draw(st.booleans()):
        margin["max_init_margin_pct"] = 50.0
    if draw(st.booleans()):
        margin["min_excess_liquidity"] = 1_000.0
    if margin:
        cfg["margin"] = margin
    lines: list[dict[str, Any]] = []
    held = draw(st.lists(st.sampled_from(["AS", "MS", "AC", "MP"]), unique=True, max_size=4))
    for name in held:
        stock = CONTRACTS[name]["sec_type"] == "STK"
        qty = draw(st.sampled_from([-300, -50, 50, 100, 300] if stock else [-5, -1, 1, 2, 5]))
        lines.append(
            {"t": 0, "type": "position", "id": name, "qty": qty, "entry_price": 1.0}
            | CONTRACTS[name]
        )
    for name in held:
        bid, ask = QUOTES[name]
        q: dict[str, Any] = {"t": 1, "type": "quote", "id": name, "bid": bid, "ask": ask}
        q["last"] = (bid + ask) / 2
        if name in GREEKS:
            q["greeks"] = dict(GREEKS[name])
        lines.append(q)
    if _chance(draw, 8):
        nlv = draw(st.sampled_from([100_000.0, 1_000_000.0]))
        lines.append({"t": 1, "type": "account", "net_liquidation": nlv})
    if _chance(draw, 8):
        lines.append({"t": 1, "type": "pnl", "daily": draw(st.sampled_from([0.0, -500.0]))})
    if _chance(draw, 8):
        spy = {"t": 1, "type": "market", "symbol": "SPY", "sec_type": "STK"}
        lines.append(spy | {"bid": 499.5, "ask": 500.5, "last": 500.0})
    for name in CONTRACTS:
        if name not in held and draw(st.booleans()):
            bid, ask = QUOTES[name]
            m = {"t": 1, "type": "market", "bid": bid, "ask": ask, "last": (bid + ask) / 2}
            lines.append(m | CONTRACTS[name])
    legs = []
    for name in draw(st.lists(st.sampled_from(list(CONTRACTS)), min_size=1, max_size=2)):
        stock = CONTRACTS[name]["sec_type"] == "STK"
        bid, ask = QUOTES[name]
        qty = draw(st.sampled_from([-500, -100, 50, 200, 2_000] if stock else [-20, -2, 1, 4]))
        mid = (bid + ask) / 2
        price = draw(st.sampled_from([mid, mid, mid, bid * 0.75, ask * 1.5]))
        leg: dict[str, Any] = CONTRACTS[name] | {"qty": qty, "price": price}
        if name in GREEKS and (name not in held or draw(st.booleans())):
            leg["greeks"] = dict(GREEKS[name])
        legs.append(leg)
    check: dict[str, Any] = {"t": 2, "type": "check", "id": "c", "legs": legs}
    if _chance(draw, 8):
        check["whatif"] = {
            "init_margin_before": 10_000.0,
            "init_margin_after": draw(st.sampled_from([20_000.0, 80_000.0])),
            "maint_margin_before": 8_000.0,
            "maint_margin_after": draw(st.sampled_from([15_000.0, 99_500.0])),
            "equity_with_loan_before": 100_000.0,
            "equity_with_loan_after": 100_000.0,
        }
    lines.append(check)
    return cfg, lines


def numeric_paths(lines: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Every number of every input line except the event times and position lines."""
    out: list[tuple[Any, ...]] = []

    def walk(path: tuple[Any, ...], node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if len(path) == 1 and k == "t":
                    continue
                walk((*path, k), v)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk((*path, i), v)
        elif isinstance(node, int | float) and not isinstance(node, bool):
            out.append(path)

    for i, line in enumerate(lines):
        if line["type"] != "position":
            walk((i,), line)
    return out


def substituted(lines: list[dict[str, Any]], path: tuple[Any, ...], value: float) -> list[Any]:
    copy = json.loads(json.dumps(lines))
    node = copy
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return copy


def verdict(cfg: dict[str, Any], lines: list[dict[str, Any]]) -> dict[str, Any]:
    r = Replay(parse(cfg))
    out: list[dict[str, Any]] = []
    try:
        for line in lines:
            try:
                out += r.event(json.dumps(line))
            except ValueError:  # a bad line: reported and skipped, as replay does
                continue
    finally:
        r.close()
    checks = [o for o in out if o["type"] == "check"]
    assert len(checks) == 1
    return checks[0]


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    # each example replays every substitution (~100 replays): report, do not shrink
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
)
@given(scenario=gate_scenarios())
def test_a_bad_number_never_turns_a_denial_into_an_allowance(
    scenario: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    """Every number of a denied scenario, in turn, replaced by each unset value."""
    cfg, lines = scenario
    before = verdict(cfg, lines)
    if before["allowed"]:
        return
    flips = []
    for path in numeric_paths(lines):
        for bad in BAD:
            after = verdict(cfg, substituted(lines, path, bad))
            if after["allowed"]:
                flips.append((lines[path[0]]["type"], path[1:], bad))
    assert flips == [], (flips, before["reasons"], json.dumps(cfg), json.dumps(lines))


# Minimal reproductions of what the property above finds, one per input.

NLV_CFG = {"limits": {"max_single_position_pct": 10.0}}
BUY = {"t": 2, "type": "check", "id": "c", "legs": [CONTRACTS["AS"] | {"qty": 100, "price": 190.0}]}


def test_dbl_max_net_liquidation_is_missing_not_a_huge_nlv() -> None:
    good = verdict(NLV_CFG, [{"t": 1, "type": "account", "net_liquidation": 100_000.0}, BUY])
    assert [r["code"] for r in good["reasons"]] == ["max_single_position_pct"]
    bad = verdict(NLV_CFG, [{"t": 1, "type": "account", "net_liquidation": DBL_MAX}, BUY])
    assert not bad["allowed"], bad


def test_dbl_max_index_price_in_a_market_line_is_missing() -> None:
    cfg = {"limits": {"max_beta_weighted_delta": 10.0}, "beta": {"index": "SPY", "default": 1.0}}
    spy = {"t": 1, "type": "market", "symbol": "SPY", "sec_type": "STK", "bid": 500.0}
    good = verdict(cfg, [spy | {"ask": 500.0, "last": 500.0}, BUY])
    assert [r["code"] for r in good["reasons"]] == ["max_beta_weighted_delta"]
    bad = verdict(cfg, [spy | {"ask": 500.0, "last": DBL_MAX}, BUY])
    assert not bad["allowed"], bad


@pytest.mark.parametrize("source", ["market", "quote"])
def test_dbl_max_ask_is_not_a_collar_quote(source: str) -> None:
    cfg = {"orders": {"price_collar_pct": 1.0}}
    if source == "market":
        head = [{"t": 1, "type": "market", "bid": 100.0, "last": 100.0} | CONTRACTS["AS"]]
    else:
        head = [
            {"t": 0, "type": "position", "id": "P", "qty": 10, "entry_price": 100.0}
            | CONTRACTS["AS"],
            {"t": 1, "type": "quote", "id": "P", "bid": 100.0, "last": 100.0},
        ]
    order = {
        "t": 2,
        "type": "check",
        "id": "c",
        "legs": [CONTRACTS["AS"] | {"qty": 1, "price": 150.0}],
    }
    head[-1]["ask"] = 100.25
    assert not verdict(cfg, [*head, order])["allowed"]
    head[-1]["ask"] = DBL_MAX
    bad = verdict(cfg, [*head, order])
    assert not bad["allowed"], bad


# ------------------------------------- (b) a denial leaves rate and duplicates alone

orders_seq = st.lists(
    st.tuples(
        st.sampled_from([0.0, 0.125, 0.25, 0.5, 1.0]),  # time step
        st.sampled_from([1, 2, 3, 500]),  # qty (500 > max_leg_shares: denied)
        st.sampled_from([10.0, 11.0]),  # price
        st.sampled_from(["ok", "invalid", "limit", "stale", "breaker"]),
    ),
    max_size=30,
)


def _assessment(t: float, qty: int, price: float, how: str) -> tuple[Assessment, bool]:
    legs = (sleg("AAPL", qty, price),)
    if how == "invalid":
        return Assessment(t, "c", legs, invalid="bad"), False
    limit = (Reason(ReasonCode.MAX_PORTFOLIO_DELTA, 2.0, 1.0),) if how == "limit" else ()
    controls = (Reason(ReasonCode.MAX_LEG_SHARES, qty, 100.0),) if qty > 100 else ()
    from actors.gate.stale import StaleItem

    stale = (StaleItem("old", 61.0, 60.0),) if how == "stale" else ()
    return (
        Assessment(t, "c", legs, None, limit, controls, None, stale, False, order_key(legs)),
        how == "breaker",
    )


def _window_state(adm: Admission, t: float) -> tuple[Any, ...]:
    rate, dup = adm.controls
    return (
        sorted(x for x in rate.allowed if x > t - rate.window_s),  # type: ignore[attr-defined]
        sorted(
            (x, repr(k))
            for x, k in dup.allowed  # type: ignore[attr-defined]
            if x > t - dup.window_s  # type: ignore[attr-defined]
        ),
    )


@settings(max_examples=300, deadline=None)
@given(orders_seq)
def test_a_denied_order_changes_neither_rate_nor_duplicate_state(seq: list[Any]) -> None:
    params = GateParams(
        orders=OrderParams(max_orders_per_window=2, order_window_s=0.5, duplicate_window_s=0.75)
    )
    adm = Admission(params)
    cb = CircuitBreaker(BreakerParams())
    t = 100.0
    for dt, qty, price, how in seq:
        t += dt
        a, open_it = _assessment(t, qty, price, how)
        if open_it:
            cb.force_open(t)
        before = _window_state(adm, t)
        answer, _ = adm.decide(a, None, cb)
        if not answer.allowed:
            assert _window_state(adm, t) == before
        if open_it:
            cb.reset(t)


@settings(max_examples=150, deadline=None)
@given(orders_seq, st.integers(0, 30))
def test_inserting_a_denied_check_changes_no_later_answer(seq: list[Any], at: int) -> None:
    params = GateParams(
        orders=OrderParams(
            max_orders_per_window=2,
            order_window_s=0.5,
            duplicate_window_s=0.75,
            max_leg_shares=100.0,
        )
    )

    def run(extra: int | None) -> list[tuple[bool, list[str]]]:
        g = PureGate(params)
        t, out = 100.0, []
        for i, (dt, qty, price, _) in enumerate(seq):
            t += dt
            if i == extra:
                assert not g.check(t, sleg("AAPL", 500, price)).allowed  # leg cap
                assert not g.check(t).allowed  # no legs: invalid_order
            a = g.check(t, sleg("AAPL", qty, price))
            out.append((a.allowed, codes(a)))
        return out

    assert run(at) == run(None)


# ------------------------------------------------------------------ (c) collar

side = st.one_of(
    st.none(),
    st.sampled_from([math.nan, math.inf, -1.0, 0.0]),
    st.floats(0.01, 1_000.0, allow_nan=False, allow_infinity=False),
)


@settings(max_examples=500, deadline=None)
@given(
    bid=side,
    ask=side,
    pct=st.floats(0.0, 50.0, allow_nan=False),
    price=st.floats(0.01, 2_000.0, allow_nan=False, allow_infinity=False),
    age=st.sampled_from([0.0, 30.0, 60.0, 60.5]),
)
def test_the_collar_never_allows_a_price_outside_the_band(
    bid: float | None, ask: float | None, pct: float, price: float, age: float
) -> None:
    g = PureGate(GateParams(orders=OrderParams(price_collar_pct=pct)))
    g.market_quote(0.0, stk("AAPL"), bid, ask, None)
    a = g.check(age, sleg("AAPL", 1, price))
    usable = (
        bid is not None
        and ask is not None
        and math.isfinite(bid)
        and math.isfinite(ask)
        and 0 < bid <= ask
        and age <= 60.0
    )
    if not usable:
        assert not a.allowed
        return
    assert bid is not None and ask is not None
    mid = (bid + ask) / 2
    inside = bid - mid * pct / 100 <= price <= ask + mid * pct / 100
    assert a.allowed == inside


# ------------------------------------ (f) margin denials and half-open permits

margin_params = GateParams(margin=MarginParams(max_init_margin_pct=50.0))
GOOD = WhatIf(0.0, 10_000.0)  # 10 % of 100 000
OVER = WhatIf(0.0, 90_000.0)  # 90 %
UNSET = WhatIf(0.0, None)


def _admit(kind: str, i: int) -> tuple[Assessment, WhatIf | None]:
    legs = (sleg("AAPL", 1 + i, 1.0),)
    key = order_key(legs)
    if kind == "reducing":
        return Assessment(1.0, f"{kind}{i}", legs, risk_reducing=True, key=key), None
    whatif = {"clean": GOOD, "over": OVER, "unset": UNSET, "none": None}[kind]
    a = Assessment(1.0, f"{kind}{i}", legs, key=key, nlv=100_000.0, margin_needed=True)
    return a, whatif


@pytest.fixture
def inline() -> Iterator[InlineDispatcher]:
    d = InlineDispatcher()
    yield d
    pykka.ActorRegistry.stop_all()


def _half_open_breaker(d: Any, tries: int) -> Any:
    sched = VirtualScheduler()
    ref = BreakerActor.start(
        BreakerParams(half_open_max_tries=tries, open_timeout_s=1.0),
        dispatcher=d,
        scheduler=sched,
        gate=margin_params,
    )
    ref.tell(Failure(0.0, FailureKind.MARGIN))
    assert ref.ask(GetBreakerState(), timeout=5).state is BreakerState.OPEN
    sched.advance_to(1.0)
    assert ref.ask(GetBreakerState(), timeout=5).state is BreakerState.HALF_OPEN
    return ref


def _check_permits(answers: list[CheckAnswer], ref: Any, tries: int, clean: int) -> None:
    margin_denied = [a for a in answers if a.id.startswith(("over", "unset", "none"))]
    for a in margin_denied:
        assert not a.allowed
        assert codes(a)[0] in ("max_init_margin_pct", "stale_data")
    granted = [a for a in answers if a.id.startswith("clean") and a.allowed]
    assert len(granted) == min(tries, clean)
    view: BreakerView = ref.ask(GetBreakerState(), timeout=5)
    assert view.snapshot["permits_used"] == len(granted)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    tries=st.integers(1, 3),
    kinds=st.lists(st.sampled_from(["clean", "over", "unset", "none", "reducing"]), max_size=12),
    order=st.randoms(use_true_random=False),
)
def test_no_ordering_lets_a_margin_denial_take_a_permit(
    inline: InlineDispatcher, tries: int, kinds: list[str], order: Any
) -> None:
    ref = _half_open_breaker(inline, tries)
    messages = [_admit(k, i) for i, k in enumerate(kinds)]
    order.shuffle(messages)
    futures = []
    for a, w in messages:
        f: pykka.Future[CheckAnswer] = pykka.ThreadingFuture()
        ref.tell(Admit(a, w, f))
        futures.append(f)
    answers = [f.get(timeout=5) for f in futures]
    _check_permits(answers, ref, tries, kinds.count("clean"))
    ref.stop()


def test_concurrent_checks_from_many_threads_never_give_margin_denials_a_permit() -> None:
    d = PoolDispatcher(threads=2, name="test-margin-permits")
    try:
        tries = 3
        ref = _half_open_breaker(d, tries)
        kinds = ["over", "unset", "none", "clean", "reducing"] * 8
        answers: list[CheckAnswer] = []
        lock = threading.Lock()
        barrier = threading.Barrier(len(kinds))

        def one(i: int, kind: str) -> None:
            a, w = _admit(kind, i)
            barrier.wait(timeout=5)
            f: pykka.Future[CheckAnswer] = pykka.ThreadingFuture()
            ref.tell(Admit(a, w, f))
            answer = f.get(timeout=5)
            with lock:
                answers.append(answer)

        threads = [threading.Thread(target=one, args=(i, k)) for i, k in enumerate(kinds)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=10)
        assert len(answers) == len(kinds)
        _check_permits(answers, ref, tries, kinds.count("clean"))
    finally:
        pykka.ActorRegistry.stop_all()
        d.shutdown()

"""One trailing stop on a strategy's net price (DESIGN §3.1), pure logic.

Facts from the contract:

* u = gcd of the legs' |qty| × multiplier (1 for a stock); net price =
  Σ (qty_i × mult_i / u) × ref_i; E = Σ (qty_i × mult_i / u) × entry_i.
* ref_i: ``exit`` = bid for a long leg, ask for a short one; ``mid``; ``last``.
  A leg quote is judged by §3's rules (crossed, ``max_spread_pct``) except that
  a reference price of 0 is a price; missing, not finite or < 0 → ignored, and
  an ignored leg quote changes nothing (neither counts nor breaks a run).
* E > 0 (debit): a long on the net price. E < 0 (credit): a short on −net with
  E replaced by −E. E = 0: no stop.
* Start: the first accepted leg quote after which there are ≥ 2 legs and every
  leg has had an accepted quote since it joined; that quote gives the first net
  price. A leg joining later or a change of a leg's qty / entry restarts from
  scratch (extreme = E, not active, no breaches), quotes accepted before still
  counting.
* Distances use magnitudes: long candidate = extreme − max(|extreme| ×
  trailing_pct/100, min_trail_abs); UPDATE when candidate > stop and candidate ≥
  stop + |stop| × min_move_pct/100; short mirrored. §3 steps 1–5 otherwise: the
  activating quote is not tested for a breach; at most one event per quote.
* A leg closed alone before the TRIGGER ends the stop; after it, nothing changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.messages import PriceSource, QuoteFault, StopAction
from actors.strategy_stop import NetTrailingStop, StrategyState, StrategyStop
from actors.trailing_stop import Decision, StopParams

A, U, TR = StopAction.ACTIVATE, StopAction.UPDATE, StopAction.TRIGGER

# Parameters with binary-exact percentages so hand-written expectations are exact.
P = StopParams(activation_pct=25.0, trailing_pct=50.0, min_move_pct=0.0)


def strategy(params: StopParams = P) -> StrategyStop:
    return StrategyStop("S", "X", params)


def events(results: list[Decision | QuoteFault | None]) -> list[tuple[StopAction, float, float]]:
    return [(d.action, d.stop, d.ref_price) for d in results if isinstance(d, Decision)]


def feed(s: StrategyStop, *quotes: tuple[str, float | None, float | None]) -> list[object]:
    out: list[object] = []
    for leg, bid, ask in quotes:
        out.append(s.quote(leg, bid, ask, None)[0])
    return out


# ----------------------------------------------------------- net price and E


def test_one_by_two_ratio_spread_u_weights_and_debit() -> None:
    s = strategy()
    s.join("L", 1, 100.0, 5.0)  # long 1 call at 5
    s.join("H", -2, 100.0, 2.0)  # short 2 calls at 2
    feed(s, ("L", 5.0, 5.5))
    assert s.state is StrategyState.WAITING  # H not quoted yet
    feed(s, ("H", 1.5, 2.0))
    assert s.state is StrategyState.LIVE
    assert s.weights == {"L": 1.0, "H": -2.0}  # u = gcd(100, 200) = 100
    assert (s.credit, s.entry) == (False, 1.0)  # E = 5 − 2 × 2 = 1 (debit)
    # exit side: bid of the long leg, ask of the short legs: 5 − 2 × 2 = 1
    assert s.last_price == 1.0
    feed(s, ("L", 6.0, 6.5))
    assert s.last_price == 2.0


def test_iron_condor_is_a_credit_stopped_on_its_cost_to_close() -> None:
    s = strategy()
    for leg, qty, entry in (("SP", -10, 2.0), ("LP", 10, 1.0), ("SC", -10, 2.5), ("LC", 10, 1.0)):
        s.join(leg, qty, 100.0, entry)
    feed(s, ("SP", 1.75, 2.0), ("LP", 1.0, 1.25), ("SC", 2.0, 2.5))
    assert s.state is StrategyState.WAITING
    feed(s, ("LC", 1.0, 1.25))
    # u = 1000, weights ±1; E = −2 + 1 − 2.5 + 1 = −2.5: a credit, stopped as a short on 2.5
    assert s.weights == {"SP": -1.0, "LP": 1.0, "SC": -1.0, "LC": 1.0}
    assert (s.credit, s.entry) == (True, 2.5)
    # cost to close: shorts at ask, longs at bid: 2 + 2.5 − 1 − 1 = 2.5
    assert s.last_price == 2.5
    assert s.stop is not None and not s.stop.long


def test_u_is_the_gcd_with_stock_legs_and_other_multipliers() -> None:
    s = strategy()
    s.join("STK", 300, 1.0, 100.0)  # 300 shares: 300
    s.join("C", -2, 100.0, 4.0)  # 2 calls: 200 → u = 100
    feed(s, ("STK", 100.0, 100.5), ("C", 3.5, 4.0))
    assert s.weights == {"STK": 3.0, "C": -2.0}
    assert s.entry == 3 * 100.0 - 2 * 4.0
    m = strategy()
    m.join("MINI", 3, 10.0, 1.0)  # mini options: 30
    m.join("STD", -2, 100.0, 0.5)  # 200 → u = 10
    feed(m, ("MINI", 1.0, 1.1), ("STD", 0.4, 0.5))
    assert m.weights == {"MINI": 3.0, "STD": -20.0}
    assert (m.credit, m.entry) == (True, 7.0)  # E = 3 × 1 − 20 × 0.5 = −7: a credit


def test_u_from_the_gcd_matches_an_independent_computation() -> None:
    legs = [("A", 6, 100.0, 3.0), ("B", -9, 100.0, 1.0), ("C", 3, 100.0, 0.5)]
    s = strategy()
    for leg in legs:
        s.join(*leg)
    feed(s, *((name, 1.0, 1.0) for name, *_ in legs))
    u = math.gcd(*(abs(q) * int(m) for _, q, m, _ in legs))  # 300
    assert s.weights == {name: q * m / u for name, q, m, _ in legs}
    assert s.weights == {"A": 2.0, "B": -3.0, "C": 1.0}


# ------------------------------------------------------------ direction


def test_debit_triggers_when_the_net_price_falls_even_to_zero_or_below() -> None:
    s = strategy()
    s.join("L", 1, 100.0, 5.0)
    s.join("H", -1, 100.0, 3.0)  # E = 2
    res = feed(
        s,
        ("L", 5.0, 5.5),
        ("H", 2.5, 3.0),  # start: net 2
        ("L", 5.5, 6.0),  # net 2.5 = 2 × 1.25: ACTIVATE, stop 1.25
        ("L", 3.0, 3.5),  # net 0: breach
    )
    assert events(res) == [(A, 1.25, 2.5), (TR, 1.25, 0.0)]
    s2 = strategy()
    s2.join("L", 1, 100.0, 5.0)
    s2.join("H", -1, 100.0, 3.0)
    res = feed(s2, ("L", 5.0, 5.5), ("H", 2.5, 3.0), ("L", 5.5, 6.0), ("H", 6.0, 6.5))
    assert events(res)[-1] == (TR, 1.25, -1.0)  # net 5.5 − 6.5 = −1 ≤ stop


def test_credit_stop_lines_are_in_cost_to_close_units() -> None:
    s = strategy()
    s.join("S", -1, 100.0, 4.0)
    s.join("L", 1, 100.0, 2.0)  # E = −2: credit, short on −net with E' = 2
    res = feed(
        s,
        ("S", 3.5, 4.0),
        ("L", 2.0, 2.5),  # cost to close: 4 − 2 = 2
        ("S", 3.0, 3.5),  # 1.5 = 2 × (1 − 0.25): ACTIVATE, stop 1.5 + 0.75 = 2.25
        ("S", 3.75, 4.25),  # 2.25 ≥ stop: TRIGGER
    )
    assert events(res) == [(A, 2.25, 1.5), (TR, 2.25, 2.25)]


def test_credit_cost_to_close_may_reach_zero_and_below() -> None:
    s = strategy(StopParams(activation_pct=50.0, trailing_pct=50.0, min_move_pct=0.0))
    s.join("S", -1, 100.0, 4.0)
    s.join("L", 1, 100.0, 2.0)  # E' = 2
    res = feed(
        s,
        ("S", 3.5, 4.0),
        ("L", 2.0, 2.5),  # 2
        ("S", 2.5, 3.0),  # 1 ≤ 2 × 0.5: ACTIVATE, stop 1 + 0.5 = 1.5
        ("S", 1.5, 2.0),  # 0: trough 0, candidate 0 + max(0, 0) = 0 < 1.5: UPDATE to 0
        ("L", 2.5, 3.0),  # −0.5: trough −0.5, candidate −0.5 + 0.25 = −0.25: UPDATE
        ("L", 1.5, 2.0),  # 0.5 ≥ −0.25: TRIGGER
    )
    assert events(res) == [
        (A, 1.5, 1.0),
        (U, 0.0, 0.0),
        (U, -0.25, -0.5),
        (TR, -0.25, 0.5),
    ]


# ---------------------------------------------------------- ignored quotes


def live_debit(params: StopParams = P) -> StrategyStop:
    s = strategy(params)
    s.join("L", 1, 100.0, 5.0)
    s.join("H", -1, 100.0, 3.0)
    feed(s, ("L", 5.0, 5.5), ("H", 2.5, 3.0))
    assert s.state is StrategyState.LIVE
    return s


@pytest.mark.parametrize(
    ("bid", "ask", "fault"),
    [
        (-0.05, 0.1, QuoteFault.NON_POSITIVE),  # negative exit price of a long leg
        (None, 0.1, QuoteFault.MISSING_PRICE),
        (math.nan, 0.1, QuoteFault.NON_FINITE),
        (0.2, 0.1, QuoteFault.CROSSED),
    ],
)
def test_an_ignored_leg_quote_changes_nothing(
    bid: float | None, ask: float | None, fault: QuoteFault
) -> None:
    s = live_debit()
    before = s.snapshot()
    result, _ = s.quote("L", bid, ask, None)
    assert result is fault
    assert s.snapshot() == before


def test_a_zero_exit_price_is_a_price() -> None:
    s = live_debit()
    result, _ = s.quote("L", 0.0, 0.05, None)  # the long leg is worth nothing on its bid
    assert isinstance(result, Decision) or result is None
    assert s.last_price == 0.0 - 3.0


def test_wide_spread_ignored_only_when_max_spread_pct_is_set() -> None:
    wide = ("L", 4.0, 6.0)  # spread 2 / mid 5 = 40 %
    s = live_debit(StopParams(activation_pct=25.0, trailing_pct=50.0, max_spread_pct=20.0))
    assert s.quote(*wide, None)[0] is QuoteFault.WIDE_SPREAD
    s2 = live_debit()
    assert not isinstance(s2.quote(*wide, None)[0], QuoteFault)
    assert s2.last_price == 1.0


def test_an_ignored_quote_neither_counts_nor_breaks_a_run() -> None:
    s = live_debit(
        StopParams(activation_pct=25.0, trailing_pct=50.0, min_move_pct=0.0, confirm_quotes=2)
    )
    res = feed(
        s,
        ("L", 5.5, 6.0),  # 2.5: ACTIVATE, stop 1.25
        ("L", 4.0, 4.5),  # 1.0: breach 1
        ("H", 4.0, 3.0),  # crossed: ignored
        ("H", 3.0, 3.0),  # 1.0: breach 2 (from the other leg): TRIGGER
    )
    assert events(res) == [(A, 1.25, 2.5), (TR, 1.25, 1.0)]
    s2 = live_debit(
        StopParams(activation_pct=25.0, trailing_pct=50.0, min_move_pct=0.0, confirm_quotes=2)
    )
    res = feed(
        s2,
        ("L", 5.5, 6.0),
        ("L", 4.0, 4.5),  # breach 1
        ("L", 4.5, 5.0),  # 1.5: not a breach, the run resets
        ("H", 3.0, 3.0),  # 1.5: no
        ("L", 4.0, 4.5),  # 1.0: breach 1 again
    )
    assert events(res) == [(A, 1.25, 2.5)]


def test_the_activating_quote_is_not_tested_for_a_breach() -> None:
    # activation_pct 0: the first net price activates whatever it is (extreme starts at E)
    s2 = strategy(StopParams(activation_pct=0.0, trailing_pct=50.0, min_move_pct=0.0))
    s2.join("L", 1, 100.0, 5.0)
    s2.join("H", -1, 100.0, 3.0)
    res = feed(s2, ("L", 5.0, 5.5), ("H", 4.5, 4.5))  # start at net 0.5 ≤ stop 1: activation only
    assert events(res) == [(A, 1.0, 0.5)]
    res = feed(s2, ("H", 4.5, 4.5))
    assert events(res) == [(TR, 1.0, 0.5)]


# --------------------------------------------------- start and restart


def test_no_start_with_one_leg_or_an_unquoted_leg() -> None:
    s = strategy()
    s.join("L", 1, 100.0, 5.0)
    feed(s, ("L", 5.0, 5.5), ("L", 9.0, 9.5))
    assert s.state is StrategyState.WAITING and s.stop is None
    s.join("H", -1, 100.0, 3.0)
    assert s.state is StrategyState.WAITING
    # the first H quote starts it, with L's latest quote (accepted before H joined)
    res = feed(s, ("H", 2.5, 3.0))
    assert s.state is StrategyState.LIVE and s.last_price == 9.0 - 3.0
    assert events(res) == [(A, 3.0, 6.0)]  # 6 ≥ 2 × 1.25; stop 6 × 0.5


def test_a_leg_joining_later_restarts_from_scratch() -> None:
    s = live_debit()
    feed(s, ("L", 5.5, 6.0))  # ACTIVATE at 2.5
    assert s.stop is not None and s.stop.active
    note = s.join("W", 1, 100.0, 0.5)  # a third leg: E = 2.5
    assert note is not None and note.what == "restarted"
    assert s.state is StrategyState.WAITING and s.stop is None
    feed(s, ("L", 5.5, 6.0))  # W not quoted since it joined: still waiting
    assert s.state is StrategyState.WAITING
    feed(s, ("W", 0.5, 0.75))
    assert s.state is StrategyState.LIVE and s.entry == 2.5
    assert s.stop is not None and s.stop.extreme == max(2.5, s.last_price or 0.0)


def test_a_quantity_or_entry_change_restarts_and_old_quotes_still_count() -> None:
    s = live_debit()
    feed(s, ("L", 5.5, 6.0))
    assert s.change("H", -1, 3.0) is None  # nothing changed: nothing happens
    assert s.stop is not None and s.stop.active
    note = s.change("H", -1, 2.0)  # E becomes 3
    assert note is not None and note.what == "restarted" and s.state is StrategyState.WAITING
    res = feed(s, ("L", 5.5, 6.0))  # the next accepted leg quote starts it again
    assert s.state is StrategyState.LIVE and s.entry == 3.0
    stop = s.stop
    assert stop is not None and stop.extreme == 3.0 and not stop.active and stop.breaches == 0
    assert events(res) == []  # 2.5 < 3 × 1.25
    s.change("L", 2, 5.0)  # u = gcd(200, 100) = 100: weights 2, −1; E = 10 − 2 = 8
    feed(s, ("H", 2.5, 3.0))
    assert s.weights == {"L": 2.0, "H": -1.0} and s.entry == 8.0


def test_a_leg_closed_alone_ends_the_stop_but_not_after_the_trigger() -> None:
    s = live_debit()
    note = s.leave("H")
    assert note is not None and note.what == "ended" and s.state is StrategyState.ENDED
    assert s.quote("L", 9.0, 9.5, None) == (None, None)
    t = live_debit()
    feed(t, ("L", 5.5, 6.0), ("L", 3.0, 3.5))
    assert t.state is StrategyState.TRIGGERED
    assert t.leave("H") is None and t.state is StrategyState.TRIGGERED
    assert t.quote("L", 9.0, 9.5, None) == (None, None)


def test_e_zero_has_no_stop() -> None:
    s = strategy()
    s.join("L", 1, 100.0, 3.0)
    s.join("H", -1, 100.0, 3.0)
    res = feed(s, ("L", 3.0, 3.5), ("H", 2.5, 3.0), ("L", 9.0, 9.5), ("L", 0.0, 0.5))
    assert s.state is StrategyState.NO_STOP and events(res) == []


def test_snapshot_restore_resumes_identically() -> None:
    s = live_debit()
    feed(s, ("L", 5.5, 6.0), ("L", 6.5, 7.0))
    twin = StrategyStop.restore(s.snapshot(), P)
    tail = [("L", 5.0, 5.5), ("H", 3.5, 4.0), ("L", 4.0, 4.5), ("L", 3.0, 3.5)]
    assert events(feed(twin, *tail)) == events(feed(s, *tail))
    assert twin.snapshot() == s.snapshot()


# ------------------------------------------------- an independent model


@dataclass
class RefStop:
    """DESIGN §3 steps 1–5 with §3.1's magnitude arithmetic, written from the text."""

    p: StopParams
    long: bool
    entry: float
    extreme: float = math.nan
    active: bool = False
    stop: float | None = None
    run: int = 0
    done: bool = False

    def __post_init__(self) -> None:
        self.extreme = self.entry

    def _candidate(self) -> float:
        d = max(abs(self.extreme) * self.p.trailing_pct / 100, self.p.min_trail_abs)
        return self.extreme - d if self.long else self.extreme + d

    def price(self, x: float) -> tuple[StopAction, float, float, float] | None:
        if self.done:
            return None
        p = self.p
        self.extreme = max(self.extreme, x) if self.long else min(self.extreme, x)
        if not self.active:
            if self.long:
                armed = self.extreme >= self.entry * (1 + p.activation_pct / 100)
            else:
                armed = self.extreme <= self.entry * (1 - p.activation_pct / 100)
            if armed:
                self.active, self.stop = True, self._candidate()
                return (A, self.stop, x, self.extreme)
            return None
        assert self.stop is not None
        event = None
        c = self._candidate()
        if self.long:
            moved = c > self.stop and c >= self.stop + abs(self.stop) * p.min_move_pct / 100
        else:
            moved = c < self.stop and c <= self.stop - abs(self.stop) * p.min_move_pct / 100
        if moved:
            self.stop = c
            event = (U, c, x, self.extreme)
        if not (x <= self.stop if self.long else x >= self.stop):
            self.run = 0
            return event
        self.run += 1
        if event is None and self.run >= p.confirm_quotes:
            self.done = True
            return (TR, self.stop, x, self.extreme)
        return event


def as_tuple(d: Decision | QuoteFault | None) -> tuple[StopAction, float, float, float] | None:
    return (d.action, d.stop, d.ref_price, d.extreme) if isinstance(d, Decision) else None


stop_params = st.builds(
    StopParams,
    activation_pct=st.sampled_from([0.0, 1.0, 2.0, 10.0, 25.0]),
    trailing_pct=st.sampled_from([0.5, 1.5, 10.0, 50.0]),
    min_move_pct=st.sampled_from([0.0, 0.5, 5.0]),
    confirm_quotes=st.integers(1, 3),
    min_trail_abs=st.sampled_from([0.0, 0.05, 1.0]),
)
prices = st.floats(-5.0, 10.0, allow_nan=False).map(lambda x: round(x, 2))


@settings(max_examples=300, deadline=None)
@given(p=stop_params, long=st.booleans(), entry=st.floats(0.05, 8.0), path=st.lists(prices))
def test_net_trailing_stop_follows_the_text_of_design(
    p: StopParams, long: bool, entry: float, path: list[float]
) -> None:
    ref = RefStop(p, long, entry)
    stop = NetTrailingStop(p, long=long, entry=entry)
    for x in path:
        assert as_tuple(stop.on_price(x)) == ref.price(x)


# ------------------------------------- (e) strategy == net stop on its path

QTYS = st.integers(-4, 4).filter(lambda q: q != 0)
MULTS = st.sampled_from([1.0, 10.0, 100.0])
side = st.one_of(
    st.none(),
    st.just(math.nan),
    st.floats(-0.5, 9.0, allow_nan=False).map(lambda x: round(x, 2)),
)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[StopParams, list[tuple[int, float, float]], list]:
    n = draw(st.integers(2, 4))
    legs = [
        (draw(QTYS), draw(MULTS), draw(st.floats(0.05, 9.0).map(lambda x: round(x, 2))))
        for _ in range(n)
    ]
    source = draw(st.sampled_from(list(PriceSource)))
    spread = draw(st.sampled_from([None, 50.0]))
    params = draw(stop_params)
    params = StopParams(
        params.activation_pct,
        params.trailing_pct,
        params.min_move_pct,
        params.confirm_quotes,
        spread,
        params.min_trail_abs,
        source,
    )
    quotes = draw(
        st.lists(st.tuples(st.integers(0, n - 1), side, side, side), min_size=1, max_size=40)
    )
    return params, legs, quotes


def _leg_ref(p: StopParams, long: bool, bid, ask, last) -> float | None:  # type: ignore[no-untyped-def]
    """§3's validity with §3.1's exception (0 is a price), written from the text."""

    def usable(x: float | None) -> bool:
        return x is not None and math.isfinite(x)

    if usable(bid) and usable(ask) and bid > ask:
        return None
    if p.price_source is PriceSource.EXIT:
        ref = bid if long else ask
    elif p.price_source is PriceSource.MID:
        ref = None if bid is None or ask is None else (bid + ask) / 2
    else:
        ref = last
    if not usable(ref) or ref < 0:
        return None
    if p.max_spread_pct is not None:
        if not (usable(bid) and bid > 0 and usable(ask) and ask > 0):
            return None
        if (ask - bid) / ((bid + ask) / 2) * 100 > p.max_spread_pct:
            return None
    return ref


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_strategy_decisions_equal_a_net_stop_fed_the_net_price_path(scenario) -> None:  # type: ignore[no-untyped-def]
    params, legs, quotes = scenario
    s = StrategyStop("S", "X", params)
    for i, (qty, mult, entry) in enumerate(legs):
        s.join(f"l{i}", qty, mult, entry)
    u = Fraction(0)
    for qty, mult, _ in legs:
        u = Fraction(math.gcd(int(u), abs(qty) * int(mult)))
    w = [qty * mult / float(u) for qty, mult, _ in legs]
    e = math.fsum(wi * entry for wi, (_, _, entry) in zip(w, legs, strict=True))
    refs: list[float | None] = [None] * len(legs)
    net_stop: NetTrailingStop | None = None
    for i, bid, ask, last in quotes:
        got, _ = s.quote(f"l{i}", bid, ask, last)
        ref = _leg_ref(params, legs[i][0] > 0, bid, ask, last)
        if ref is None:
            assert isinstance(got, QuoteFault)
            continue
        refs[i] = ref
        if e == 0 or any(r is None for r in refs):
            assert got is None
            continue
        if net_stop is None:
            net_stop = NetTrailingStop(params, long=e > 0, entry=abs(e))
        net = math.fsum(wi * r for wi, r in zip(w, refs, strict=True) if r is not None)
        expected = net_stop.on_price(net if e > 0 else -net)
        assert as_tuple(got) == as_tuple(expected)

"""This round's rules through ``replay`` (``Replay(config).event(line)``), line by line.

Facts from the contract (DESIGN §3.1, §4.2, §4.3, §4.5, §5, §6):

* Output lines: stop ``{t, type, id, action, stop, ref_price, extreme}``,
  breaker ``{t, type, from, to, cause}``, check ``{t, type, id, allowed,
  reasons}``; a timer transition is written at the exact time it fell due,
  before the next event's output; replay ends at the last event.
* Kill (``admin`` ``kill``, any mode, acts as halt; no mode = halt; an unknown
  mode is a bad line): OPEN from any state, one line also from HALF_OPEN,
  sticky, timer dropped; already OPEN: sticky, no line.
* Heartbeat: a timer like the breaker's; an event at exactly the deadline sees
  it fired; in one gap both timers fire in time order; at one instant the kill
  comes first and the breaker's timer is dropped; every heartbeat and check
  (valid or not) re-arms it; it fires once.
* Loss trip at ``pnl``/``account`` events latches OPEN; from CLOSED/HALF_OPEN
  one line, already OPEN no line; after a reset the next event still over the
  limit trips again; a ``pnl`` whose daily is null/NaN/DBL_MAX is missing data,
  not a bad line; ``failure`` lines may not name ``stop_guard``/``loss_limit``.
* Stop guard: the stop line, then the breaker line it causes.
* Strategies: stop lines carry the strategy id in its units; a bad strategy
  line changes nothing.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from supervisor.commands.replay import Replay
from supervisor.config import ConfigError, parse
from supervisor.json_codec import BadInput

DBL_MAX = 1.7976931348623157e308
EXP = "2027-01-15"


class Run:
    """One replay; ``feed`` returns each line's output (or the bad line's message)."""

    def __init__(self, cfg: dict[str, Any] | None = None) -> None:
        self.replay = Replay(parse(cfg or {}))

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.replay.close()

    def line(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        return list(self.replay.event(json.dumps(obj)))

    def lines(self, *objs: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for o in objs:
            out += self.line(o)
        return out

    def bad(self, obj: dict[str, Any]) -> str:
        with pytest.raises(BadInput) as exc:
            self.line(obj)
        return str(exc.value)


def breakers(out: list[dict[str, Any]]) -> list[tuple[float, str, str, str]]:
    return [
        (o["t"], o["from"], o["to"], o["cause"]["reason"]) for o in out if o["type"] == "breaker"
    ]


def checks(out: list[dict[str, Any]]) -> list[list[str]]:
    return [[r["code"] for r in o["reasons"]] for o in out if o["type"] == "check"]


def stops(out: list[dict[str, Any]]) -> list[tuple[float, str, str]]:
    return [(o["t"], o["id"], o["action"]) for o in out if o["type"] == "stop"]


def fail(t: float, kind: str = "margin") -> dict[str, Any]:
    return {"t": t, "type": "failure", "kind": kind}


def kill(t: float, **kw: Any) -> dict[str, Any]:
    return {"t": t, "type": "admin", "action": "kill", **kw}


def hb(t: float) -> dict[str, Any]:
    return {"t": t, "type": "heartbeat"}


def pnl(t: float, daily: float | None) -> dict[str, Any]:
    return {"t": t, "type": "pnl", "daily": daily}


def check(t: float, qty: float = 1, price: float = 100.0, symbol: str = "AAPL") -> dict[str, Any]:
    leg = {"symbol": symbol, "sec_type": "STK", "qty": qty, "price": price}
    return {"t": t, "type": "check", "id": f"c{t}", "legs": [leg]}


BREAKER = {"breaker": {"open_timeout_s": 100.0, "half_open_max_tries": 1}}


# --------------------------------------------------------------------- kill


@pytest.mark.parametrize("mode", [None, "halt", "cancel", "flatten"])
def test_kill_from_closed_one_sticky_line(mode: str | None) -> None:
    with Run(BREAKER) as r:
        extra = {} if mode is None else {"mode": mode}
        out = r.lines(kill(10.0, **extra), {"t": 11.0, "type": "success"}, check(500.0))
        assert breakers(out) == [(10.0, "closed", "open", "kill")]
        assert checks(out) == [["breaker_open"]]


def test_kill_from_half_open_is_one_line_and_from_open_none() -> None:
    with Run(BREAKER) as r:
        out = r.lines(fail(0.0), kill(150.0), check(1000.0))
        assert breakers(out) == [
            (0.0, "closed", "open", "trip_kind"),
            (100.0, "open", "half_open", "open_timeout"),
            (150.0, "half_open", "open", "kill"),
        ]
    with Run(BREAKER) as r:
        out = r.lines(fail(0.0), kill(50.0), check(1000.0), {"t": 1001.0, "type": "success"})
        assert breakers(out) == [(0.0, "closed", "open", "trip_kind")]  # timer dropped
        assert checks(out) == [["breaker_open"]]
        out = r.lines({"t": 1002.0, "type": "admin", "action": "reset"}, check(1003.0))
        assert breakers(out) == [(1002.0, "open", "closed", "operator_reset")]
        assert checks(out) == [[]]


def test_kill_at_the_due_instant_sees_half_open_first() -> None:
    with Run(BREAKER) as r:
        out = r.lines(fail(0.0), kill(100.0))
        assert breakers(out) == [
            (0.0, "closed", "open", "trip_kind"),
            (100.0, "open", "half_open", "open_timeout"),
            (100.0, "half_open", "open", "kill"),
        ]


def test_an_unknown_kill_mode_is_a_bad_line_that_changes_nothing() -> None:
    with Run(BREAKER) as r:
        assert "mode" in r.bad(kill(1.0, mode="explode"))
        assert r.lines(check(2.0)) and checks(r.lines(check(3.0))) == [[]]


# ---------------------------------------------------------------- heartbeat

HB = {"api": {"heartbeat_timeout_s": 100.0}, **BREAKER}


def test_heartbeat_deadline_exactly_and_an_event_then_sees_it() -> None:
    with Run(HB) as r:
        assert r.lines(hb(0.0)) == []
        out = r.line(check(100.0))  # exactly at the deadline: the kill came first
        assert breakers(out) == [(100.0, "closed", "open", "heartbeat_lost")]
        assert checks(out) == [["breaker_open"]]


def test_heartbeat_just_before_the_deadline_re_arms() -> None:
    with Run(HB) as r:
        out = r.lines(hb(0.0), hb(99.5), check(199.0), {"t": 299.0, "type": "success"})
        assert breakers(out) == [(299.0, "closed", "open", "heartbeat_lost")]
        assert checks(out) == [[]]


def test_invalid_checks_re_arm_the_heartbeat_too() -> None:
    with Run(HB) as r:
        bad = {"t": 50.0, "type": "check", "id": "x", "legs": []}
        out = r.lines(hb(0.0), bad, {"t": 149.0, "type": "success"})
        assert checks(out) == [["invalid_order"]]
        assert breakers(out) == []
        assert breakers(r.line({"t": 150.0, "type": "success"})) == [
            (150.0, "closed", "open", "heartbeat_lost")
        ]


def test_heartbeat_fires_once_then_waits_for_the_next_heartbeat() -> None:
    with Run(HB) as r:
        out = r.lines(hb(0.0), {"t": 1_000.0, "type": "admin", "action": "reset"})
        assert breakers(out) == [
            (100.0, "closed", "open", "heartbeat_lost"),
            (1_000.0, "open", "closed", "operator_reset"),
        ]
        assert r.lines({"t": 5_000.0, "type": "success"}) == []
        out = r.lines(hb(5_001.0), {"t": 5_101.0, "type": "success"})
        assert breakers(out) == [(5_101.0, "closed", "open", "heartbeat_lost")]


def test_heartbeat_and_open_timer_at_one_instant_kill_first_timer_dropped() -> None:
    with Run(HB) as r:
        out = r.lines(hb(0.0), fail(0.0), {"t": 5_000.0, "type": "success"}, check(5_001.0))
        # the kill of an already OPEN breaker writes no line; no open → half_open ever
        assert breakers(out) == [(0.0, "closed", "open", "trip_kind")]
        assert checks(out) == [["breaker_open"]]


def test_heartbeat_and_open_timer_in_one_gap_fire_in_time_order() -> None:
    with Run(HB) as r:
        out = r.lines(fail(0.0), hb(10.0), {"t": 500.0, "type": "success"})
        assert breakers(out) == [
            (0.0, "closed", "open", "trip_kind"),
            (100.0, "open", "half_open", "open_timeout"),
            (110.0, "half_open", "open", "heartbeat_lost"),
        ]
    with Run(HB) as r:
        out = r.lines(hb(0.0), fail(10.0), {"t": 500.0, "type": "success"})
        assert breakers(out) == [(10.0, "closed", "open", "trip_kind")]


def test_without_heartbeat_timeout_there_is_no_dead_man() -> None:
    with Run(BREAKER) as r:
        assert r.lines(hb(0.0), {"t": 1e6, "type": "success"}) == []


# --------------------------------------------------------------- loss latch

LOSS = {"loss": {"max_daily_loss": 1_000.0}, **BREAKER}


def test_loss_trip_latches_from_closed() -> None:
    with Run(LOSS) as r:
        out = r.lines(pnl(1.0, -999.5), pnl(2.0, -1_000.0), pnl(3.0, -5_000.0))
        assert breakers(out) == [(2.0, "closed", "open", "trip_kind")]
        trip = next(o for o in out if o["type"] == "breaker")
        assert trip["cause"]["latched"] and trip["cause"]["failure"]["kind"] == "loss_limit"
        assert r.lines({"t": 1e6, "type": "success"}) == []  # no timer


def test_loss_trip_from_half_open_and_when_already_open() -> None:
    with Run(LOSS) as r:
        out = r.lines(fail(0.0), pnl(150.0, -2_000.0))
        assert breakers(out)[-1] == (150.0, "half_open", "open", "trip_kind")
    with Run(LOSS) as r:
        out = r.lines(fail(0.0), pnl(50.0, -2_000.0), {"t": 10_000.0, "type": "success"})
        assert breakers(out) == [(0.0, "closed", "open", "trip_kind")]  # latched: no half_open


def test_loss_trips_again_after_a_reset() -> None:
    with Run(LOSS) as r:
        reset = {"type": "admin", "action": "reset"}
        out = r.lines(pnl(1.0, -1_000.0), reset | {"t": 2.0}, pnl(3.0, -1_000.0))
        assert breakers(out) == [
            (1.0, "closed", "open", "trip_kind"),
            (2.0, "open", "closed", "operator_reset"),
            (3.0, "closed", "open", "trip_kind"),
        ]
        out = r.lines(reset | {"t": 4.0}, pnl(5.0, -999.0))
        assert breakers(out) == [(4.0, "open", "closed", "operator_reset")]


@pytest.mark.parametrize("daily", [None, math.nan, math.inf, DBL_MAX])
def test_unset_daily_is_missing_data_not_a_bad_line(daily: float | None) -> None:
    with Run({"loss": {"max_daily_loss": 1_000.0, "max_pnl_age_s": 10.0}}) as r:
        out = r.lines(pnl(0.0, 0.0), pnl(5.0, daily), check(10.0), check(10.5))
        # the P&L kept aging from t = 0: exactly 10 s is fresh, 10.5 s is not
        assert checks(out) == [[], ["stale_data"]]
        stale = [o for o in out if o["type"] == "check"][1]["reasons"][0]
        assert (stale["value"], stale["limit"]) == (10.5, 10.0)


def test_drawdown_exactly_at_the_floor_in_replay() -> None:
    with Run({"loss": {"max_drawdown_pct": 25.0}}) as r:
        acct = {"t": 1.0, "type": "account", "net_liquidation": 100_000.0}
        out = r.lines(acct, pnl(2.0, 0.0), pnl(3.0, -24_999.0), pnl(4.0, -25_000.0))
        assert breakers(out) == [(4.0, "closed", "open", "trip_kind")]


def test_config_nlv_never_makes_a_high_water_mark() -> None:
    cfg = {"loss": {"max_drawdown_pct": 25.0}, "account": {"net_liquidation": 100_000.0}}
    with Run(cfg) as r:
        assert breakers(r.lines(pnl(1.0, 0.0), pnl(2.0, 10_000.0), pnl(3.0, -90_000.0))) == []


def test_supervisor_kinds_are_bad_failure_lines_and_not_configurable() -> None:
    with Run() as r:
        for kind in ("loss_limit", "stop_guard"):
            assert "supervisor" in r.bad(fail(1.0, kind))
        assert r.lines(check(2.0)) and checks(r.lines(check(3.0))) == [[]]
    with pytest.raises(ConfigError):
        parse({"breaker": {"kinds": {"loss_limit": {"trip": False}}}})


# ----------------------------------------------------------------- stops

TS = {"trailing_stop": {"activation_pct": 25.0, "trailing_pct": 50.0, "min_move_pct": 0.0}}


def stock(t: float, id: str, qty: float, entry: float, symbol: str | None = None) -> dict[str, Any]:
    return {
        "t": t,
        "type": "position",
        "id": id,
        "symbol": symbol or id,
        "sec_type": "STK",
        "qty": qty,
        "entry_price": entry,
    }


def option(t: float, id: str, qty: float, strike: float, entry: float, **kw: Any) -> dict[str, Any]:
    return {
        "t": t,
        "type": "position",
        "id": id,
        "symbol": "X",
        "sec_type": "OPT",
        "qty": qty,
        "entry_price": entry,
        "right": "C",
        "strike": strike,
        "expiry": EXP,
        "multiplier": 100,
        **kw,
    }


def quote(t: float, id: str, bid: float | None, ask: float | None) -> dict[str, Any]:
    return {"t": t, "type": "quote", "id": id, "bid": bid, "ask": ask, "last": None}


def test_stop_guard_writes_the_stop_line_then_the_breaker_line() -> None:
    cfg = {**TS, "stop_guard": {"max_triggers": 2, "window_s": 60.0}}
    with Run(cfg) as r:
        r.lines(stock(0.0, "A", 10, 100.0), stock(0.0, "B", 10, 100.0))
        r.lines(quote(1.0, "A", 125.0, 125.5), quote(1.0, "B", 125.0, 125.5))
        assert stops(r.line(quote(2.0, "A", 60.0, 60.5))) == [(2.0, "A", "TRIGGER")]
        out = r.line(quote(3.0, "B", 60.0, 60.5))
        assert [o["type"] for o in out] == ["stop", "breaker"]
        assert breakers(out) == [(3.0, "closed", "open", "trip_kind")]
        assert out[1]["cause"]["failure"]["kind"] == "stop_guard"


def test_ratio_spread_stop_lines_in_net_price_units() -> None:
    with Run(TS) as r:
        r.lines(option(0.0, "L", 1, 100.0, 5.0, strategy="S"))
        r.lines(option(0.0, "H", -2, 110.0, 2.0, strategy="S"))  # E = 5 − 4 = 1
        assert r.lines(quote(1.0, "L", 5.0, 5.5), quote(2.0, "H", 1.5, 2.0)) == []  # net 1
        out = r.line(quote(3.0, "L", 5.25, 5.5))  # net 1.25: ACTIVATE, stop 0.625
        assert out == [
            {
                "t": 3.0,
                "type": "stop",
                "id": "S",
                "action": "ACTIVATE",
                "stop": 0.625,
                "ref_price": 1.25,
                "extreme": 1.25,
            }
        ]
        out = r.line(quote(4.0, "H", 2.5, 2.75))  # net 5.25 − 5.5 = −0.25: TRIGGER
        assert [(o["action"], o["ref_price"]) for o in out] == [("TRIGGER", -0.25)]


def test_strategy_trigger_starts_the_cooldown_on_its_symbol() -> None:
    cfg = {**TS, "cooldown": {"after_trigger_s": 30.0}}
    with Run(cfg) as r:
        r.lines(option(0.0, "L", 1, 100.0, 5.0, strategy="S"))
        r.lines(option(0.0, "H", -1, 110.0, 3.0, strategy="S"))
        r.lines(quote(1.0, "L", 5.0, 5.5), quote(2.0, "H", 2.5, 3.0), quote(3.0, "L", 5.5, 6.0))
        assert stops(r.line(quote(4.0, "H", 5.0, 5.5))) == [(4.0, "S", "TRIGGER")]
        out = r.lines(
            check(33.5, symbol="X"), check(34.0, symbol="X"), check(20.0 + 15, symbol="Y")
        )
        assert checks(out) == [["cooldown"], [], []]


def test_a_bad_strategy_line_changes_nothing() -> None:
    with Run(TS) as r:
        r.lines(option(0.0, "L", 1, 100.0, 5.0, strategy="S"))
        r.lines(option(0.0, "H", -1, 110.0, 3.0, strategy="S"))
        assert "symbol" in r.bad(option(1.0, "W", 1, 120.0, 1.0, strategy="S", symbol="Y"))
        assert "namespace" in r.bad(stock(1.0, "S", 10, 100.0, "X"))
        r.lines(quote(2.0, "L", 5.0, 5.5), quote(3.0, "H", 2.5, 3.0))
        assert stops(r.line(quote(4.0, "L", 5.5, 6.0))) == [(4.0, "S", "ACTIVATE")]


def test_a_leg_moved_to_another_symbol_keeping_its_strategy_is_a_bad_line() -> None:
    """A position line without ``strategy`` keeps the leg's strategy; with another
    ``symbol`` it would give the strategy a second symbol (DESIGN §3.1: a bad line)."""
    with Run(TS) as r:
        r.lines(option(0.0, "L", 1, 100.0, 5.0, strategy="S"))
        r.lines(option(0.0, "H", -1, 110.0, 3.0, strategy="S"))
        assert "symbol" in r.bad(option(1.0, "L", 1, 100.0, 5.0, symbol="Y"))


def test_a_leg_closed_alone_gives_the_other_a_fresh_stop_and_spends_the_id() -> None:
    with Run(TS) as r:
        r.lines(option(0.0, "L", 1, 100.0, 5.0, strategy="S"))
        r.lines(option(0.0, "H", -1, 110.0, 3.0, strategy="S"))
        r.lines(quote(1.0, "L", 5.0, 5.5), quote(2.0, "H", 2.5, 3.0), quote(3.0, "L", 5.5, 6.0))
        assert r.lines({"t": 4.0, "type": "close", "id": "H"}) == []  # journaled, no line
        out = r.lines(quote(5.0, "L", 6.0, 6.5), quote(6.0, "L", 6.25, 6.5))
        assert stops(out) == [(6.0, "L", "ACTIVATE")]  # its own stop, from entry 5
        assert "spent" in r.bad(option(7.0, "N", 1, 120.0, 1.0, strategy="S"))


def test_e_zero_strategy_in_replay_has_no_stop_and_no_leg_stops() -> None:
    with Run(TS) as r:
        r.lines(option(0.0, "L", 1, 100.0, 3.0, strategy="Z"))
        r.lines(option(0.0, "H", -1, 110.0, 3.0, strategy="Z"))
        out = r.lines(
            quote(1.0, "L", 3.0, 3.5),
            quote(2.0, "H", 3.0, 3.5),
            quote(3.0, "L", 9.0, 9.5),
            quote(4.0, "L", 0.5, 1.0),
            quote(5.0, "H", 0.5, 1.0),
        )
        assert out == []


def test_market_lines_never_move_a_position_or_its_stop() -> None:
    with Run(TS) as r:
        r.line(stock(0.0, "A", 10, 100.0))
        mkt = {"t": 1.0, "type": "market", "symbol": "A", "sec_type": "STK"}
        assert r.line(mkt | {"bid": 200.0, "ask": 200.5, "last": 200.0}) == []
        assert r.line(quote(2.0, "A", 124.0, 124.5)) == []  # 124 < 125: not active


def test_a_dbl_max_quote_is_missing_data_not_a_peak() -> None:
    """IB's DBL_MAX is an unset value (BRIEF: missing data, never a number; DESIGN §3:
    a quote whose reference price is missing is ignored). As a price it would be a
    peak of 1.8e308, so the next real quote TRIGGERs an exit of a flat position."""
    with Run(TS) as r:
        r.line(stock(0.0, "A", 10, 100.0))
        out = r.lines(quote(1.0, "A", DBL_MAX, DBL_MAX), quote(2.0, "A", 100.0, 100.5))
        assert stops(out) == []


def test_a_dbl_max_leg_quote_is_missing_data_for_the_strategy() -> None:
    with Run(TS) as r:
        r.lines(option(0.0, "L", 1, 100.0, 5.0, strategy="S"))
        r.lines(option(0.0, "H", -1, 110.0, 3.0, strategy="S"))
        r.lines(quote(1.0, "L", 5.0, 5.5), quote(2.0, "H", 2.5, 3.0))
        out = r.lines(quote(3.0, "L", DBL_MAX, DBL_MAX), quote(4.0, "L", 5.0, 5.5))
        assert stops(out) == []


# ------------------------------------------------------- reasons in order


def test_every_kind_of_reason_in_contract_order() -> None:
    cfg = {
        **BREAKER,
        "limits": {"max_portfolio_delta": 150.0},
        "orders": {
            "price_collar_pct": 1.0,
            "max_orders_per_window": 1,
            "order_window_s": 100.0,
            "duplicate_window_s": 100.0,
        },
        "cooldown": {"after_trigger_s": 100.0},
        "loss": {"max_daily_loss": 1e6, "max_pnl_age_s": 10.0},
        "trailing_stop": {"activation_pct": 2.0, "trailing_pct": 1.5},
    }
    with Run(cfg) as r:
        mkt = {"type": "market", "symbol": "AAPL", "sec_type": "STK"}
        r.lines(pnl(0.0, 0.0), mkt | {"t": 0.0, "bid": 100.0, "ask": 100.0, "last": 100.0})
        assert checks(r.line(check(1.0, 100, 100.0))) == [[]]
        r.lines(stock(2.0, "P", 100, 100.0, "AAPL"), quote(3.0, "P", 103.0, 103.0))
        assert stops(r.line(quote(4.0, "P", 101.0, 101.0))) == [(4.0, "P", "TRIGGER")]
        r.lines(mkt | {"t": 5.0, "bid": 90.0, "ask": 90.25, "last": 90.0}, fail(6.0))
        out = r.line(check(20.0, 100, 100.0))
        assert out[0]["reasons"] == [
            {"code": "max_portfolio_delta", "value": 200.0, "limit": 150.0},
            {"code": "price_collar_pct", "value": 100.0, "limit": 1.0},
            {"code": "order_rate", "value": 1.0, "limit": 1.0},
            {"code": "duplicate_order", "value": None, "limit": 100.0},
            {"code": "cooldown", "value": 16.0, "limit": 100.0},
            {"code": "stale_data", "value": 20.0, "limit": 10.0},
            {"code": "breaker_open", "value": None, "limit": None},
        ]


def test_margin_reasons_from_the_check_lines_whatif() -> None:
    cfg = {"account": {"net_liquidation": 100_000.0}, "margin": {"max_init_margin_pct": 50.0}}
    with Run(cfg) as r:
        c = check(1.0)
        out = r.lines(
            c | {"whatif": {"init_margin_before": 0.0, "init_margin_after": 50_000.0}},
            c | {"t": 2.0, "whatif": {"init_margin_before": 0.0, "init_margin_after": 50_001.0}},
            c | {"t": 3.0},
            c | {"t": 4.0, "whatif": {"init_margin_before": 0.0, "init_margin_after": None}},
            c | {"t": 5.0, "whatif": {"init_margin_before": 0.0, "init_margin_after": DBL_MAX}},
        )
        assert checks(out) == [[], ["max_init_margin_pct"], ["stale_data"]] + [["stale_data"]] * 2
        stale = [o for o in out if o["type"] == "check"][2]["reasons"][0]
        assert (stale["value"], stale["limit"]) == (None, None)


@pytest.mark.parametrize("market_last", [True, False])
def test_collar_quotes_stamped_alike_the_later_line_wins(market_last: bool) -> None:
    """A held position's quote and a ``market`` line at one event time: the later line is newer."""
    cfg = {"orders": {"price_collar_pct": 1.0}}
    with Run(cfg) as r:
        mkt = {"type": "market", "symbol": "AAPL", "sec_type": "STK", "t": 3.0}
        r.line(stock(2.0, "P", 100, 100.0, "AAPL"))
        held, market = quote(3.0, "P", 103.0, 103.0), mkt | {"bid": 90.0, "ask": 90.0}
        r.lines(*((held, market) if market_last else (market, held)))
        out = r.line(check(4.0, 100, 103.0))
        assert checks(out) == ([["price_collar_pct"]] if market_last else [[]])

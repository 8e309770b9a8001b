"""The adapter as the core's BrokerPort: what-ifs, quotes of contracts no position holds, P&L.

Through the real ib_async client against the simulator's what-if model, its
market-data line limit and its P&L stream, with every fault the simulator can
produce: an answer that never comes, an error, unset numbers.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from ib_rig import EXPIRY, PUT_ID, STOCK_ID, rig, until

from actors.messages import Contract, FailureKind, Leg, MarketQuote, Right, SecType, WhatIf
from supervisor.simulator import SimulatorThread, WhatIfFault

AAPL_LEG = Leg("AAPL", SecType.STK, 100.0, 100.0)
MSFT = Contract("MSFT", SecType.STK)


def put_leg(strike: float, qty: float, price: float = 3.0) -> Leg:
    return Leg("SPY", SecType.OPT, qty, price, Right.PUT, strike, EXPIRY, 100.0)


def test_the_adapter_is_the_daemons_broker(sim: SimulatorThread, tmp_path: Path) -> None:
    with rig(sim, tmp_path) as r:
        d, adapter = r.d, r.a
        assert d.broker is adapter
        assert d.ib_status is not None and d.ib_status() == "connected"
        adapter.stop()
        assert d.broker is None and d.ib_status is None


def test_what_if_of_a_stock_order(sim: SimulatorThread, tmp_path: Path) -> None:
    with rig(sim, tmp_path) as r:
        w = r.a.whatif([AAPL_LEG], 3.0)
        assert w.error == ""
        assert w.init_margin_before is not None and w.init_margin_after is not None
        assert w.init_margin_after - w.init_margin_before == pytest.approx(0.5 * 100 * 100)
        assert w.maint_margin_before is not None and w.maint_margin_after is not None
        assert w.maint_margin_after - w.maint_margin_before == pytest.approx(0.25 * 100 * 100)
        assert w.equity_with_loan_before is not None and w.equity_with_loan_after is not None
        [asked] = sim.call(lambda: list(sim.sim.what_ifs))
        assert (asked.symbol, asked.action, asked.qty, asked.order_type) == (
            "AAPL",
            "BUY",
            100.0,
            "LMT",
        )
        assert sim.call(lambda: sim.sim.orders) == []  # a what-if is never an order


def test_what_if_of_several_legs_is_one_combo(sim: SimulatorThread, tmp_path: Path) -> None:
    with rig(sim, tmp_path) as r:
        w = r.a.whatif([put_leg(480.0, 2), put_leg(470.0, -2, 2.0)], 3.0)
        assert w.error == "" and w.init_margin_after is not None
        [asked] = sim.call(lambda: list(sim.sim.what_ifs))
        assert asked.sec_type == "BAG" and (asked.action, asked.qty) == ("BUY", 2.0)
        legs = sorted((x.con_id, x.ratio, x.action) for x in asked.legs)
        assert (PUT_ID, 1, "BUY") in legs  # the held put: its own conId
        assert [a for _, _, a in legs].count("SELL") == 1
        assert asked.lmt_price == pytest.approx(1.0)  # 1 × 3.0 − 1 × 2.0 per unit


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (WhatIfFault(drop=True), "within"),
        (WhatIfFault(garble="unset"), "within"),  # ib_async never resolves it
        (WhatIfFault(error_code=201, error_msg="Order rejected - reason: no"), "IB error 201"),
    ],
)
def test_a_what_if_without_an_answer_says_why(
    sim: SimulatorThread, tmp_path: Path, fault: WhatIfFault, error: str
) -> None:
    sim.call(sim.sim.set_what_if_fault, fault)
    with rig(sim, tmp_path) as r:
        t0 = time.monotonic()
        w = r.a.whatif([AAPL_LEG], 0.5)
        assert time.monotonic() - t0 < 1.5  # bounded by its timeout
        assert error in w.error
        assert (w.init_margin_before, w.init_margin_after, w.maint_margin_after) == (None,) * 3
        time.sleep(0.3)
        assert r.failures(201) == []  # a what-if's error is not an order rejection


def test_unset_what_if_numbers_are_missing_never_numbers(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    sim.call(sim.sim.set_what_if_fault, WhatIfFault(garble="partial"))
    with rig(sim, tmp_path) as r:
        w = r.a.whatif([AAPL_LEG], 2.0)
        assert w == WhatIf()  # answered, every number it carries unset


def test_what_if_without_a_connection(sim: SimulatorThread, tmp_path: Path) -> None:
    sim.call(sim.sim.client_id_in_use, 11)
    with rig(sim, tmp_path, start=False) as r:
        r.start(wait=False)
        assert r.a.whatif([AAPL_LEG], 0.5).error == "IB is not connected"
        assert not r.a.ensure_quote(MSFT, 0.2)


def test_ensure_quote_of_a_contract_no_position_holds(sim: SimulatorThread, tmp_path: Path) -> None:
    sim.call(sim.sim.set_underlying, "MSFT", 410.0, 0.25, push=False)
    with rig(sim, tmp_path) as r:
        got: list[MarketQuote] = []
        market_quote = r.d.market_quote

        def record(q: MarketQuote) -> None:
            got.append(q)
            market_quote(q)

        r.d.market_quote = record  # type: ignore[method-assign]
        assert r.a.ensure_quote(MSFT, 2.0)
        assert got and all(q.contract == MSFT for q in got)
        bid = got[-1].bid
        assert bid is not None and abs(bid - 410.0) < 1.0
        held = Contract("AAPL", SecType.STK)
        until(lambda: r.price(str(STOCK_ID)) is not None, what="AAPL quoted")
        n = len(got)
        assert r.a.ensure_quote(held, 0.5)  # a held position's quotes count: no new line
        assert all(q.contract == MSFT for q in got[n:])
        lines = sim.call(sim.sim.market_data_lines, 11)
        assert r.a.ensure_quote(MSFT, 0.5)  # already streaming: no second line
        assert sim.call(sim.sim.market_data_lines, 11) == lines


def test_ensure_quote_past_the_line_limit_is_false_at_once(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    sim.call(sim.sim.set_underlying, "MSFT", 410.0, 0.25, push=False)
    with rig(sim, tmp_path) as r:
        until(lambda: sim.call(sim.sim.market_data_lines, 11) == 2, what="two lines held")
        sim.sim.max_tickers = 2
        t0 = time.monotonic()
        assert not r.a.ensure_quote(MSFT, 3.0)
        assert time.monotonic() - t0 < 2.0  # IB's refusal (101) ends the wait
        until(lambda: r.failures(101), what="the refusal counted")
        assert r.failures(101)[0]["kind"] == FailureKind.DATA_FEED.value


def test_daily_pnl_reaches_the_daemon_and_unset_is_missing(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    g = sim.sim
    sim.call(g.set_pnl_unset, 60.0)  # IB's first P&L messages carry DBL_MAX
    with rig(sim, tmp_path) as r:
        time.sleep(1.5)  # at least one P&L message
        assert r.d.state().money.daily_pnl is None
        sim.call(g.set_pnl_unset, 0.0)
        sim.call(g.set_underlying, "AAPL", 103.0, 0.25)
        want = sim.call(lambda: g.pnl().daily)
        assert want != 0.0
        money = until(
            lambda: (m := r.d.state().money).daily_pnl is not None and m, what="daily P&L"
        )
        assert money.daily_pnl == pytest.approx(want, abs=0.5)  # the options decay meanwhile

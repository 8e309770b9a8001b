"""Kill support through the simulator: a global cancel confirmed from IB's open orders, an
order that will not cancel, a cancel waiting for the connection, flatten orders (one leg, and
one BAG combo for a strategy's legs)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from ib_async import IB, LimitOrder, Stock
from ib_rig import CLIENT_ID, EXPIRY, PUT_ID, STOCK_ID, Rig, exit_orders, rig, until

from actors.messages import Contract, KillMode, Right, SecType
from supervisor.core.ports import ClosingOrder, OrderLeg
from supervisor.ib.adapter import exit_order_ref
from supervisor.simulator import SimPosition, SimulatorThread

AAPL = Contract("AAPL", SecType.STK)
PUT = Contract("SPY", SecType.OPT, Right.PUT, 480.0, EXPIRY, 100.0)
CALL = Contract("SPY", SecType.OPT, Right.CALL, 520.0, EXPIRY, 100.0)
CALL_ID = 2002


def place_other_clients_orders(port: int, n: int) -> None:
    """Another API client (the trader) leaves ``n`` working orders at the gateway."""

    async def go() -> None:
        ib = IB()
        await ib.connectAsync("127.0.0.1", port, clientId=99, timeout=5)
        try:
            for i in range(n):
                ib.placeOrder(Stock("AAPL", "SMART", "USD"), LimitOrder("BUY", 10, 90.0 - i))
            await asyncio.sleep(0.3)
        finally:
            ib.disconnect()

    asyncio.run(go())


def kill_steps(r: Rig, kill_id: str) -> list[dict[str, Any]]:
    rows = [x.payload for x in r.store.journal(kind="kill", limit=10_000)]
    return [p for p in rows if p["kill_id"] == kill_id]


def step_names(r: Rig, kill_id: str) -> list[str]:
    return [p["step"] for p in kill_steps(r, kill_id)]


def test_cancel_all_is_confirmed_from_ibs_open_orders(sim: SimulatorThread, tmp_path: Path) -> None:
    g = sim.sim
    place_other_clients_orders(sim.port, 3)
    assert len(sim.call(g.open_orders)) == 3
    with rig(sim, tmp_path) as r:
        result = r.a.cancel_all("k1", 5.0)
        assert result.confirmed and result.left == 0
        assert sim.call(g.open_orders) == []
        assert step_names(r, "k1") == ["global_cancel_sent", "confirmed"]
        assert any(cid == CLIENT_ID and f[0] == "58" for cid, f in sim.call(lambda: g.requests))


def test_an_order_that_will_not_cancel_is_an_error(
    sim: SimulatorThread, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    g = sim.sim
    place_other_clients_orders(sim.port, 1)
    tws = sim.call(lambda: g.add_tws_order(STOCK_ID, "SELL", 50, 120.0))  # placed from TWS
    sim.call(g.refuse_cancel, tws.perm_id)
    kill = {"kill_attempts": 2, "kill_first_wait_s": 0.05}
    with caplog.at_level(logging.ERROR), rig(sim, tmp_path, adapter=kill) as r:
        result = r.a.cancel_all("k2", 5.0)
        assert not result.confirmed and result.left == 1 and "still open" in result.detail
        assert step_names(r, "k2") == [
            "global_cancel_sent",
            "still_open",
            "global_cancel_sent",
            "still_open",
            "error",
        ]
        error = kill_steps(r, "k2")[-1]
        assert error["client_id"] == 0 and error["con_ids"] == [STOCK_ID]
        assert any("will not cancel" in rec.getMessage() for rec in caplog.records)
        assert [o.perm_id for o in sim.call(g.open_orders)] == [tws.perm_id]


def test_a_cancel_without_a_connection_is_carried_out_when_ib_is_back(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    g = sim.sim
    place_other_clients_orders(sim.port, 1)
    sim.call(g.client_id_in_use, CLIENT_ID)
    with rig(sim, tmp_path, start=False) as r:
        r.start(wait=False)
        result = r.a.cancel_all("k3", 0.3)
        assert not result.confirmed and "not connected" in result.detail
        assert step_names(r, "k3") == ["waiting_for_connection"]
        assert len(sim.call(g.open_orders)) == 1
        sim.call(g.client_id_in_use, CLIENT_ID, False)
        until(lambda: "confirmed" in step_names(r, "k3"), what="cancel confirmed", timeout=8.0)
        assert sim.call(g.open_orders) == []


def test_flatten_one_position_is_one_order_never_two(sim: SimulatorThread, tmp_path: Path) -> None:
    with rig(sim, tmp_path) as r:
        until(lambda: str(STOCK_ID) in r.d.position_ids(), what="AAPL held")
        key = f"kill:k4:{STOCK_ID}"
        order = ClosingOrder(
            key, (OrderLeg(str(STOCK_ID), AAPL, 1, "SELL"),), 100.0, "SELL", 98.995, "flatten"
        )
        r.a.place_closing(order)
        o = until(lambda: exit_orders(sim), what="the flatten order")[0]
        assert (o.order_ref, o.action, o.qty, o.lmt_price) == (
            exit_order_ref(key),
            "SELL",
            100.0,
            98.99,  # on the tick grid, toward a fill
        )
        r.a.place_closing(order)
        r.stop()
        r.start()
        r.a.place_closing(order)
        until(lambda: r.exit_statuses().count("already_claimed") == 2, what="claims refused")
        assert len(exit_orders(sim)) == 1
        placed = next(p for p in r.exit_rows() if p["status"] == "placed")
        assert placed["reason"] == "flatten" and placed["key"] == key


def test_flatten_a_strategy_is_one_bag_order(sim: SimulatorThread, tmp_path: Path) -> None:
    g = sim.sim
    sim.call(
        g.add_position,
        SimPosition(
            CALL_ID, "SPY", "OPT", 2, 400.0, right="C", strike=520.0, expiry=EXPIRY, multiplier=100
        ),
    )
    with rig(sim, tmp_path) as r:
        until(lambda: {str(PUT_ID), str(CALL_ID)} <= set(r.d.position_ids()), what="both legs")
        key = "kill:k5:spread"
        legs = (OrderLeg(str(PUT_ID), PUT, 1, "BUY"), OrderLeg(str(CALL_ID), CALL, 1, "SELL"))
        r.a.place_closing(ClosingOrder(key, legs, 2.0, "BUY", -1.234, "flatten"))
        o = until(lambda: exit_orders(sim), what="the combo order")[0]
        assert (o.sec_type, o.symbol, o.action, o.qty, o.lmt_price, o.order_ref) == (
            "BAG",
            "SPY",
            "BUY",
            2.0,
            -1.23,
            exit_order_ref(key),
        )
        assert [(x.con_id, x.ratio, x.action) for x in o.legs] == [
            (PUT_ID, 1, "BUY"),
            (CALL_ID, 1, "SELL"),
        ]
        placed = until(
            lambda: next((p for p in r.exit_rows() if p["status"] == "placed"), None),
            what="placed journaled",
        )
        assert placed["legs"] == [
            {"position_id": str(PUT_ID), "ratio": 1, "action": "BUY"},
            {"position_id": str(CALL_ID), "ratio": 1, "action": "SELL"},
        ]
        time.sleep(0.2)
        assert len(exit_orders(sim)) == 1


def test_a_kill_through_the_daemon_cancels_then_flattens(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    """The core's kill switch drives the adapter: cancel confirmed, then one order per position."""
    g = sim.sim
    place_other_clients_orders(sim.port, 2)
    with rig(sim, tmp_path) as r:
        until(lambda: len(r.d.position_ids()) == 2, what="two positions")
        r.quotes_flow("AAPL", str(STOCK_ID), 100.0)
        r.option_quotes_flow("SPY", str(PUT_ID), 500.0)
        status = r.d.kill(KillMode.FLATTEN, "test")
        kill_id = status.kill_id
        orders = until(lambda: len(exit_orders(sim)) == 2 and exit_orders(sim), what="flatten")
        assert sim.call(lambda: [o for o in g.open_orders() if o.client_id == 99]) == []
        by_con = {o.con_id: o for o in orders}
        assert (by_con[STOCK_ID].action, by_con[STOCK_ID].qty) == ("SELL", 100.0)
        assert (by_con[PUT_ID].action, by_con[PUT_ID].qty) == ("BUY", 2.0)
        assert by_con[STOCK_ID].order_ref == exit_order_ref(f"kill:{kill_id}:{STOCK_ID}")
        rows = [x.payload.get("step") for x in r.store.journal(kind="kill", limit=1000)]
        assert rows.index("cancel_requested") < rows.index("global_cancel_sent")
        assert rows.index("confirmed") < rows.index("cancel_confirmed")
        # a restart resumes the same flatten: never a second order per position
        r.stop()
        r.start()
        time.sleep(0.5)
        assert len(exit_orders(sim)) == 2

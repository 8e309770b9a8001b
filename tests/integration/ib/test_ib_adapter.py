"""The IB adapter through the real ib_async client against the gateway simulator.

The behaviours the adapter had before it was split by concern, kept: connect,
positions, Greeks, a stop's one exit order across a restart, error codes,
reconnects, a hung socket, position reconciliation, and ``run_daemon``.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from ib_rig import (
    CLIENT_ID,
    EXPIRY,
    PUT_ID,
    STOCK_ID,
    make_config,
    move,
    rig,
    snapshots,
    until,
)

from actors.messages import (
    BreakerState,
    ReasonCode,
    Right,
    SecType,
    StopAction,
    StopEvent,
)
from actors.pricing import bsm, year_fraction
from supervisor.commands.run import EXIT_CONFIG, RunningDaemon, run_daemon
from supervisor.config import ApiConfig, Config, IbConfig, Listen, MetricsConfig, StoreConfig
from supervisor.ib.adapter import IbAdapter, exit_order_ref
from supervisor.simulator import SimPosition, SimulatorThread

# ------------------------------------------------------------------ tests


def test_connect_positions_and_account(sim: SimulatorThread, tmp_path: Path) -> None:
    with rig(sim, tmp_path) as r:
        snaps = until(lambda: len(snapshots(r.d)) == 2 and snapshots(r.d), what="two positions")
        stock, put = snaps[str(STOCK_ID)], snaps[str(PUT_ID)]
        assert stock.contract.symbol == "AAPL" and stock.contract.sec_type is SecType.STK
        assert (stock.qty, stock.entry_price) == (100.0, 100.0)
        c = put.contract
        assert (c.symbol, c.sec_type, c.right, c.strike, c.expiry, c.multiplier) == (
            "SPY",
            SecType.OPT,
            Right.PUT,
            480.0,
            EXPIRY,
            100.0,
        )
        assert put.qty == -2.0 and put.entry_price == 3.5  # avgCost 350 per contract / 100
        until(lambda: r.d.portfolio_view().net_liquidation == 1_000_000.0, what="NLV")
        assert r.a.status() == "connected"
        assert r.metric("ib_connection_state", state="connected") == 1.0


def test_greeks_stop_trigger_and_one_exit_order_across_restart(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    g = sim.sim
    with rig(sim, tmp_path) as r:
        # Model Greeks over the wire reach the portfolio and agree with BSM.
        def greeks_in() -> bool:
            rows = {x["id"]: x for x in r.d.portfolio_view().rows}
            return rows.get(str(PUT_ID), {}).get("greeks_t") is not None

        until(greeks_in, what="option Greeks in the portfolio")
        bs = bsm(False, 500.0, 480.0, year_fraction(EXPIRY, time.time()), 0.0, 0.0, 0.2)
        view = r.d.portfolio_view()
        assert view.delta == pytest.approx(100.0 + (-2) * 100 * bs.delta, rel=1e-4)
        assert view.gamma == pytest.approx((-2) * 100 * bs.gamma, rel=1e-3)
        assert view.delta != 0.0

        # A price path: up 3 % arms the stop, back to 101 crosses it.
        move(sim, "AAPL", 103.0)
        until(lambda: snapshots(r.d)[str(STOCK_ID)].active, what="stop ACTIVATE")
        move(sim, "AAPL", 101.0)
        snap = until(lambda: (s := snapshots(r.d)[str(STOCK_ID)]).triggered and s, what="TRIGGER")
        tid = snap.trigger_id
        assert tid is not None

        def exits() -> list[Any]:
            return sim.call(lambda: [o for o in g.orders if o.order_ref.startswith("rs-exit:")])

        orders = until(exits, what="an exit order at the simulator")
        time.sleep(0.3)
        assert len(exits()) == 1
        o = orders[0]
        trigger = next(
            x.payload for x in r.store.journal(kind="stop") if x.payload["action"] == "TRIGGER"
        )
        assert (o.action, o.qty, o.order_type, o.tif, o.con_id) == (
            "SELL",
            100.0,
            "LMT",
            "DAY",
            STOCK_ID,
        )
        assert o.lmt_price == trigger["ref_price"] == 100.98  # the bid that crossed the stop
        assert o.order_ref == exit_order_ref(tid)
        recorded = r.store.exit_for(tid)
        assert recorded is not None and recorded["order_id"] == o.order_id
        assert r.store.pending_exits() == []
        placed = [x.payload for x in r.store.journal(kind="exit_order")]
        assert [p["status"] for p in placed] == ["placed"]
        until(lambda: r.metric("circuit_breaker_state", state="closed") == 1.0)

        # Restart on the same store: the stop comes back triggered and no
        # second order goes out, even when the same trigger is replayed.
        r.stop()
        r.start()
        until(lambda: snapshots(r.d).get(str(STOCK_ID)), what="restored position")
        assert snapshots(r.d)[str(STOCK_ID)].triggered
        move(sim, "AAPL", 99.0)
        event = StopEvent(
            snap.opened_t,
            str(STOCK_ID),
            StopAction.TRIGGER,
            101.4,
            100.98,
            103.0,
            100.0,
            snap.contract,
            tid,
        )
        r.a.on_trigger(event)
        until(
            lambda: any(
                x.payload["status"] == "already_claimed" for x in r.store.journal(kind="exit_order")
            ),
            what="claim refused",
        )
        time.sleep(0.3)
        assert len(exits()) == 1


def test_rejections_open_the_breaker_and_cancel_on_open(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    g = sim.sim
    with rig(sim, tmp_path, cancel_on_open=True) as r:
        for i in range(5):
            sim.call(g.inject_error, 201, None, 5000 + i)
        until(lambda: r.d.breaker_view().state is BreakerState.OPEN, what="breaker OPEN")
        until(lambda: len(r.failures(201)) == 5, what="five failures journaled")
        assert {p["kind"] for p in r.failures(201)} == {"order_rejected"}
        answer = r.d.check(
            {"id": "c1", "legs": [{"symbol": "AAPL", "sec_type": "STK", "qty": 10, "price": 100.0}]}
        )
        assert not answer.allowed
        assert ReasonCode.BREAKER_OPEN in [x.code for x in answer.reasons]
        # cancel_on_open: the transition to OPEN sent a global cancel.
        until(
            lambda: sim.call(
                lambda: any(cid == CLIENT_ID and f[0] == "58" for cid, f in g.requests)
            ),
            what="reqGlobalCancel",
        )


def test_socket_drop_reconnects_and_restores_data(sim: SimulatorThread, tmp_path: Path) -> None:
    with rig(sim, tmp_path) as r:
        r.quotes_flow("AAPL", str(STOCK_ID), 100.5)
        assert sim.call(sim.sim.drop_connections) == 1
        until(lambda: r.a.connects == 2 and r.a.status() == "connected", what="reconnect")
        lost = [p for p in r.failures() if p["detail"] == "socket lost"]
        assert len(lost) == 1 and lost[0]["kind"] == "connectivity"
        assert r.metric("ib_disconnects_total") == 1.0
        assert set(r.d.position_ids()) == {str(STOCK_ID), str(PUT_ID)}
        r.quotes_flow("AAPL", str(STOCK_ID), 99.5)  # subscriptions restored


def test_connectivity_and_data_feed_codes(sim: SimulatorThread, tmp_path: Path) -> None:
    g = sim.sim
    with rig(sim, tmp_path) as r:
        r.quotes_flow("AAPL", str(STOCK_ID), 100.5)
        sim.call(g.inject_error, 1100)
        until(lambda: r.failures(1100), what="1100 failure")
        assert r.failures(1100)[0]["kind"] == "connectivity"
        sim.call(g.inject_error, 1102)  # restored, data kept: not a failure
        r.quotes_flow("AAPL", str(STOCK_ID), 100.7)
        assert r.failures(1102) == []
        # 1101: TWS dropped every subscription; quotes flow again only because
        # the adapter subscribes again.
        sim.call(g.inject_error, 1101)
        r.quotes_flow("AAPL", str(STOCK_ID), 100.9)
        r.option_quotes_flow("SPY", str(PUT_ID), 505.0)
        assert r.failures(1101) == []
        sim.call(g.inject_error, 2103)
        until(lambda: r.failures(2103), what="2103 failure")
        assert r.failures(2103)[0]["kind"] == "data_feed"
        sim.call(g.inject_error, 2104)
        r.quotes_flow("AAPL", str(STOCK_ID), 101.1)
        assert r.failures(2104) == []
        assert r.a.connects == 1


def test_client_id_in_use_retries_then_connects(sim: SimulatorThread, tmp_path: Path) -> None:
    g = sim.sim
    sim.call(g.client_id_in_use, CLIENT_ID)
    with rig(sim, tmp_path, start=False) as r:
        t0 = time.monotonic()
        r.start(wait=False)
        until(lambda: len(r.failures(326)) >= 2, timeout=5.0, what="two refused attempts")
        assert time.monotonic() - t0 < 3.0  # aborted on 326, not after the connect timeout
        refused = r.failures(326)[0]
        assert refused["kind"] == "connectivity" and "in use" in refused["detail"]
        assert r.a.status() != "connected"
        sim.call(g.client_id_in_use, CLIENT_ID, False)
        assert r.a.wait_status("connected", 5.0)
        assert len(r.d.position_ids()) == 2


def test_hung_socket_is_detected_and_recovered(sim: SimulatorThread, tmp_path: Path) -> None:
    with rig(sim, tmp_path, probe_interval_s=0.3) as r:
        r.quotes_flow("AAPL", str(STOCK_ID), 100.5)
        t0 = time.monotonic()
        sim.call(sim.sim.hang, 2.5)
        hung = until(
            lambda: [p for p in r.failures() if "hung" in (p["detail"] or "")],
            timeout=3.0,
            what="hung socket detected",
        )
        assert time.monotonic() - t0 < 2.5  # found while the gateway was still hung
        assert hung[0]["kind"] == "connectivity"
        until(
            lambda: r.a.connects == 2 and r.a.status() == "connected",
            timeout=6.0,
            what="reconnect after the hang",
        )
        assert r.metric("ib_disconnects_total") == 1.0
        r.quotes_flow("AAPL", str(STOCK_ID), 99.5)


def test_positions_come_and_go_and_are_reconciled(sim: SimulatorThread, tmp_path: Path) -> None:
    g = sim.sim
    with rig(sim, tmp_path) as r:
        until(lambda: len(r.d.position_ids()) == 2, what="two positions")
        sim.call(g.remove_position, PUT_ID)
        until(lambda: str(PUT_ID) not in snapshots(r.d), what="put actor stopped")
        sim.call(g.add_position, SimPosition(3001, "MSFT", "STK", -40, 410.0))
        msft = until(lambda: snapshots(r.d).get("3001"), what="new MSFT actor")
        assert msft.qty == -40.0 and msft.entry_price == 410.0
        r.quotes_flow("MSFT", "3001", 409.0)
        # While the adapter is away the broker closes AAPL: the next connect
        # reconciles, closing the daemon's AAPL and keeping MSFT.
        r.a.stop()
        sim.call(g.remove_position, STOCK_ID)
        r.adapter = IbAdapter(r.d, rng=random.Random(1), stop_timeout_s=3.0)
        r.adapter.start()
        assert r.a.wait_status("connected", 5.0)
        until(lambda: set(r.d.position_ids()) == {"3001"}, what="AAPL closed by reconcile")
        r.quotes_flow("MSFT", "3001", 408.0)


# ------------------------------------------------------------------ run_daemon


def test_run_daemon_serves_and_stops_cleanly(sim: SimulatorThread, tmp_path: Path) -> None:
    base = make_config(sim.port)
    config = Config(
        ib=base.ib,
        api=ApiConfig(Listen("127.0.0.1", 0)),
        metrics=MetricsConfig(Listen("127.0.0.1", 0)),
        store=StoreConfig(str(tmp_path / "run.sqlite")),
    )
    stop = threading.Event()
    started: list[RunningDaemon] = []
    codes: list[int] = []
    runner = threading.Thread(
        target=lambda: codes.append(
            run_daemon(config, install_signals=False, ready=started.append, stop_event=stop)
        ),
        daemon=True,
    )
    runner.start()
    try:
        running = until(lambda: started and started[0], what="run_daemon ready")
        assert running.adapter.wait_status("connected", 5.0)
        health = httpx.get(running.api_url + "/healthz", timeout=5.0).json()
        assert health["ib"] == "connected" and health["breaker"] == "closed"
        assert running.metrics_url is not None
        text = httpx.get(running.metrics_url, timeout=5.0).text
        assert 'risk_supervisor_ib_connection_state{state="connected"} 1.0' in text
        until(lambda: len(running.daemon.position_ids()) == 2, what="positions")
    finally:
        stop.set()
        runner.join(20.0)
    assert not runner.is_alive() and codes == [0]


def test_run_daemon_refuses_what_it_cannot_honour(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = StoreConfig(str(tmp_path / "ok.sqlite"))
    # a non-loopback bind with no token at all (no token file either)
    exposed = Config(api=ApiConfig(Listen("0.0.0.0", 0), token_file=""), store=store)
    assert run_daemon(exposed, install_signals=False) == EXIT_CONFIG
    assert "api.listen" in capsys.readouterr().err
    no_store = Config(store=StoreConfig(str(tmp_path / "missing" / "dir" / "s.sqlite")))
    assert run_daemon(no_store, install_signals=False) == EXIT_CONFIG
    assert "store.path" in capsys.readouterr().err
    contradiction = Config(ib=IbConfig(readonly=True, exit_orders=True), store=store)
    assert run_daemon(contradiction, install_signals=False) == EXIT_CONFIG
    assert "ib.exit_orders" in capsys.readouterr().err

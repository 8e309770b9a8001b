"""ExitOrders against a fake broker and a real SQLite store: every crash point, never two orders.

The broker (:class:`FakeBroker`) is the part that survives a crash: its
positions, orders and fills. A "process" is an :class:`ExitOrders` on a
:class:`Store` opened on the same file; a crash is :class:`Crash` raised from
a collaborator at the chosen point (before or after the broker got the order,
after the record...), after which the test opens a new Store and a new
ExitOrders on the same file and broker, as a restart would.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.messages import Contract, Right, SecType, StopSnapshot
from supervisor.core.ports import ClosingOrder, OrderLeg
from supervisor.ib.exit_orders import (
    EXIT_REF_PREFIX,
    BrokerFill,
    BrokerOrder,
    ClosingUpdate,
    ExitOrders,
    OrderNotSent,
    OrderTicket,
    OrderUnplaceable,
    OrderUpdate,
    exit_limit_price,
    exit_order_ref,
    stop_exit,
)
from supervisor.store.sqlite_store import Store

CLIENT = 7
AAPL = Contract("AAPL", SecType.STK)
PUT = Contract("SPY", SecType.OPT, Right.PUT, 480.0, "2027-01-15", 100.0)
CALL = Contract("SPY", SecType.OPT, Right.CALL, 520.0, "2027-01-15", 100.0)


class Crash(BaseException):
    """The process dies here (nothing catches it, like a kill -9)."""


# ------------------------------------------------------------------ fakes


@dataclass
class Placed:
    order_id: int
    client_id: int
    ticket: OrderTicket
    echoed_ref: str
    status: str = "Submitted"


@dataclass
class FakeBroker:
    """What IB remembers across our crashes: positions, orders, fills."""

    positions: dict[str, float] = field(default_factory=dict)
    orders: list[Placed] = field(default_factory=list)
    fills: list[BrokerFill] = field(default_factory=list)
    foreign: list[BrokerOrder] = field(default_factory=list)
    next_id: int = 100
    echo_ref: bool = True  # False: the gateway echoes an empty orderRef

    def by_ref(self, ref: str) -> list[Placed]:
        return [o for o in self.orders if o.ticket.order_ref == ref]

    def fill(self, order_id: int, t: float, price: float = 100.0) -> Placed:
        o = next(x for x in self.orders if x.order_id == order_id)
        o.status = "Filled"
        tk = o.ticket
        for leg in tk.legs:
            self.fills.append(
                BrokerFill(
                    f"x{order_id}{leg.position_id}",
                    order_id,
                    o.client_id,
                    o.echoed_ref,
                    int(leg.position_id),
                    t,
                    "SLD" if leg.action == "SELL" else "BOT",
                    tk.qty * leg.ratio,
                    price,
                )
            )
            self.positions.pop(leg.position_id, None)
        return o


class FakePort:
    """One process's view of the broker; ``crash`` makes ``place`` die before/after sending."""

    def __init__(self, broker: FakeBroker, *, ready: bool = True) -> None:
        self.broker = broker
        self.is_ready = ready
        self.crash: str | None = None  # "before" / "after" the broker has the order
        self.not_sent = False
        self.placed: list[OrderTicket] = []

    @property
    def client_id(self) -> int:
        return CLIENT

    def ready(self) -> bool:
        return self.is_ready

    def held(self, position_id: str) -> float | None:
        return self.broker.positions.get(position_id)

    def place(self, ticket: OrderTicket) -> int:
        if self.crash == "before":
            raise Crash("before place")
        if self.not_sent:
            raise OrderNotSent("socket closed")
        b = self.broker
        order_id = b.next_id
        b.next_id += 1
        b.orders.append(Placed(order_id, CLIENT, ticket, ticket.order_ref if b.echo_ref else ""))
        self.placed.append(ticket)
        if self.crash == "after":
            raise Crash("after place")
        return order_id

    def open_orders(self) -> list[BrokerOrder]:
        out = [
            BrokerOrder(
                o.order_id,
                o.client_id,
                o.echoed_ref,
                tuple(int(leg.position_id) for leg in o.ticket.legs),
                o.status,
            )
            for o in self.broker.orders
            if o.status not in ("Filled", "Cancelled")
        ]
        return out + list(self.broker.foreign)

    def fills(self) -> list[BrokerFill]:
        return list(self.broker.fills)


class Rows:
    """The journal: rows in order; ``crash_on`` dies writing a row of that status."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, dict[str, Any], str | None]] = []
        self.crash_on: str | None = None

    def __call__(self, kind: str, payload: Mapping[str, Any], position_id: str | None) -> None:
        if self.crash_on is not None and payload.get("status") == self.crash_on:
            raise Crash(f"journaling {self.crash_on}")
        self.rows.append((kind, dict(payload), position_id))

    def statuses(self, key: str | None = None) -> list[str]:
        return [p["status"] for _, p, _ in self.rows if key is None or p.get("trigger_id") == key]


@dataclass
class Process:
    """One incarnation of the daemon's closing-order side."""

    exits: ExitOrders
    port: FakePort
    rows: Rows
    store: Store
    successes: list[str]
    updates: list[ClosingUpdate]


class World:
    """A broker and a store file; processes come and go."""

    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "state.sqlite"
        self.broker = FakeBroker(positions={"1001": 100.0, "2001": -2.0, "2002": 2.0})
        self.t = 1_000.0
        self.stores: list[Store] = []
        self.processes: list[Process] = []

    def clock(self) -> float:
        self.t += 0.001
        return self.t

    def start(self, *, ready: bool = True) -> Process:
        store = Store(self.path)
        self.stores.append(store)
        port = FakePort(self.broker, ready=ready)
        rows = Rows()
        successes: list[str] = []
        updates: list[ClosingUpdate] = []
        exits = ExitOrders(
            port, store, rows, self.clock, success=successes.append, on_update=updates.append
        )
        p = Process(exits, port, rows, store, successes, updates)
        self.processes.append(p)
        return p

    def close(self) -> None:
        for s in self.stores:
            s.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    try:
        yield w
    finally:
        w.close()


def aapl_exit(key: str = "1001@1.0", price: float = 100.98) -> ClosingOrder:
    return stop_exit(key, "1001", AAPL, 100.0, price)


# ------------------------------------------------------------------ happy path


def test_claim_place_record_and_final_state(world: World) -> None:
    p = world.start()
    order = aapl_exit()
    p.exits.submit(order)
    assert len(world.broker.orders) == 1
    placed = world.broker.orders[0]
    tk = placed.ticket
    assert (tk.action, tk.qty, tk.limit_price, tk.order_ref) == (
        "SELL",
        100.0,
        100.98,
        EXIT_REF_PREFIX + "1001@1.0",
    )
    row = p.store.exit_for("1001@1.0")
    assert row is not None and row["order_id"] == placed.order_id
    assert p.store.pending_exits() == []
    assert p.rows.statuses() == ["placed"]
    kind, payload, pid = p.rows.rows[0]
    assert (kind, pid, payload["order_id"], payload["reason"]) == (
        "exit_order",
        "1001",
        placed.order_id,
        "stop",
    )
    # IB accepts, then fills: two successes for the breaker, one final row.
    for status in ("PreSubmitted", "Submitted", "Submitted", "Filled", "Filled"):
        p.exits.on_status(OrderUpdate(placed.order_id, CLIENT, tk.order_ref, status, filled=100))
    assert len(p.successes) == 2
    assert p.rows.statuses() == ["placed", "filled"]
    assert [u.status for u in p.updates] == ["placed", "filled"]


def test_second_submit_of_a_key_sends_nothing(world: World) -> None:
    p = world.start()
    p.exits.submit(aapl_exit())
    p.exits.submit(aapl_exit())
    q = world.start()  # another process on the same file
    q.exits.submit(aapl_exit())
    assert len(world.broker.orders) == 1
    assert p.rows.statuses() == ["placed", "already_claimed"]
    assert q.rows.statuses() == ["already_claimed"]


def test_closes_what_ib_holds_and_never_a_flipped_or_gone_position(world: World) -> None:
    p = world.start()
    world.broker.positions["1001"] = 60.0  # partly sold since the trigger
    p.exits.submit(aapl_exit("a"))
    assert world.broker.orders[-1].ticket.qty == 60.0
    p.exits.submit(aapl_exit("a2"))  # a second order while the first works: refused
    assert p.rows.statuses()[-1] == "refused" and p.store.exit_for("a2") is None
    world.broker.orders[-1].status = "Cancelled"
    world.broker.positions["1001"] = -10.0  # now short: selling would add risk
    p.exits.submit(aapl_exit("b"))
    world.broker.positions.pop("1001")
    p.exits.submit(aapl_exit("c"))
    assert len(world.broker.orders) == 1
    assert p.rows.statuses() == ["placed", "refused", "not_needed", "not_needed"]
    b = p.store.exit_for("b")
    assert b is not None and b["order_id"] == 0  # settled: nothing left to reconcile
    assert p.store.pending_exits() == []


def test_invalid_orders_are_refused_before_any_claim(world: World) -> None:
    p = world.start()
    p.exits.submit(aapl_exit("nan", float("nan")))
    p.exits.submit(replace(aapl_exit("neg"), qty=-1.0))
    p.exits.submit(replace(aapl_exit("none"), legs=()))
    assert world.broker.orders == []
    assert p.rows.statuses() == ["failed", "failed", "failed"]
    assert p.store.exit_for("nan") is None  # unclaimed: a restart may still place it


def test_limit_price_rounds_toward_a_fill() -> None:
    assert exit_limit_price(100.98, "SELL") == 100.98
    assert exit_limit_price(1.025, "SELL") == 1.02 and exit_limit_price(1.025, "BUY") == 1.03
    assert exit_limit_price(-1.234, "SELL") == -1.24 and exit_limit_price(-1.234, "BUY") == -1.23
    long_ref = exit_order_ref("x" * 80)
    assert len(long_ref) == 40 and long_ref == exit_order_ref("x" * 80) != exit_order_ref("y" * 80)


# ------------------------------------------------------------------ crash points


def test_crash_after_claim_before_place_is_reported_never_resent(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    p = world.start()
    p.port.crash = "before"
    with pytest.raises(Crash):
        p.exits.submit(aapl_exit())
    assert world.broker.orders == []
    q = world.start()
    with caplog.at_level(logging.ERROR, logger="supervisor.ib.exit_orders"):
        q.exits.on_ready()
        q.exits.on_ready()  # a reconnect: reported once
    q.exits.submit(aapl_exit())  # the stop's TRIGGER replayed
    assert world.broker.orders == []
    assert q.rows.statuses() == ["unplaced", "already_claimed"]
    assert sum("an operator must decide" in r.getMessage() for r in caplog.records) == 1


def test_crash_after_claim_position_gone_is_settled(world: World) -> None:
    p = world.start()
    p.port.crash = "before"
    with pytest.raises(Crash):
        p.exits.submit(aapl_exit())
    world.broker.positions.pop("1001")  # closed by hand while we were down
    q = world.start()
    q.exits.on_ready()
    assert q.rows.statuses() == ["not_needed"]
    assert q.store.pending_exits() == []


def test_crash_after_place_before_record_is_reconciled(world: World) -> None:
    p = world.start()
    p.port.crash = "after"
    with pytest.raises(Crash):
        p.exits.submit(aapl_exit())
    assert len(world.broker.orders) == 1
    assert len(p.store.pending_exits()) == 1
    q = world.start()
    q.exits.on_ready()
    order_id = world.broker.orders[0].order_id
    row = q.store.exit_for("1001@1.0")
    assert row is not None and row["order_id"] == order_id
    assert q.rows.statuses() == ["reconciled"]
    assert len(world.broker.orders) == 1
    # and its fill, echoed with an empty orderRef, is still ours
    q.exits.on_status(OrderUpdate(order_id, CLIENT, "", "Filled", filled=100))
    assert q.rows.statuses() == ["reconciled", "filled"]


def test_crash_after_place_filled_while_down_is_reconciled_from_fills(world: World) -> None:
    p = world.start()
    p.port.crash = "after"
    with pytest.raises(Crash):
        p.exits.submit(aapl_exit())
    world.broker.fill(world.broker.orders[0].order_id, t=5.0)
    q = world.start()
    q.exits.on_ready()
    assert q.rows.statuses() == ["reconciled_filled"]
    row = q.store.exit_for("1001@1.0")
    assert row is not None and row["order_id"] == world.broker.orders[0].order_id


def test_crash_after_record_before_fill_matches_by_order_id(world: World) -> None:
    world.broker.echo_ref = False  # the gateway echoes an empty orderRef
    p = world.start()
    p.rows.crash_on = "placed"
    with pytest.raises(Crash):
        p.exits.submit(aapl_exit())
    order_id = world.broker.orders[0].order_id
    q = world.start()
    q.exits.follow(["1001@1.0"])  # the restored triggered stops' keys
    q.exits.on_ready()
    assert q.rows.statuses() == []  # recorded: nothing to settle
    assert q.exits.owns(order_id, CLIENT, "")
    q.exits.on_status(OrderUpdate(order_id, CLIENT, "", "Submitted"))
    q.exits.on_status(OrderUpdate(order_id, CLIENT, "", "Filled", filled=100))
    assert q.rows.statuses() == ["filled"]
    assert len(q.successes) == 2
    assert len(world.broker.orders) == 1


def test_empty_order_ref_echo_in_the_same_process(world: World) -> None:
    world.broker.echo_ref = False
    p = world.start()
    p.exits.submit(aapl_exit())
    order_id = world.broker.orders[0].order_id
    assert p.exits.owns(order_id, CLIENT, "")
    assert not p.exits.owns(order_id, CLIENT + 1, "")  # another client's id is not ours
    p.exits.on_status(OrderUpdate(order_id, CLIENT, "", "Filled", filled=100))
    assert p.rows.statuses() == ["placed", "filled"]
    assert len(p.successes) == 1


# ------------------------------------------------------------------ reconnects


def test_submitted_while_disconnected_is_placed_once_when_ready(world: World) -> None:
    p = world.start(ready=False)
    p.exits.submit(aapl_exit())
    assert world.broker.orders == [] and p.exits.waiting == ["1001@1.0"]
    p.exits.on_ready()  # still not ready (a set-up in progress): nothing, and no alarm
    p.port.is_ready = True
    p.exits.on_ready()
    p.exits.on_ready()
    assert len(world.broker.orders) == 1
    assert p.rows.statuses() == ["waiting_for_connection", "placed"]


def test_socket_lost_at_send_is_sent_after_the_reconnect(world: World) -> None:
    p = world.start()
    p.port.not_sent = True
    p.exits.submit(aapl_exit())
    assert world.broker.orders == []
    p.port.not_sent = False
    p.exits.on_ready()
    assert len(world.broker.orders) == 1
    assert p.rows.statuses() == ["waiting_for_connection", "placed"]


def test_claim_made_by_this_process_is_never_pre_restart(world: World) -> None:
    """A trigger during a reconnect's set-up is placed, not reported for an operator."""
    p = world.start(ready=False)
    p.exits.submit(aapl_exit())
    p.port.is_ready = True
    p.exits.on_ready()
    assert "unplaced" not in p.rows.statuses()
    assert len(world.broker.orders) == 1


def test_order_placed_then_lost_in_transit_is_reported(world: World) -> None:
    p = world.start()
    p.exits.submit(aapl_exit())
    world.broker.orders.clear()  # never reached IB (or cancelled while we were away)
    p.exits.on_ready()
    p.exits.on_ready()
    assert p.rows.statuses() == ["placed", "unknown"]


# ------------------------------------------------------------------ the store down


def test_claim_with_the_store_down_waits_and_is_retried(world: World) -> None:
    p = world.start()
    p.store._conn.execute("PRAGMA query_only = ON")  # the file refuses writes (SQLITE_READONLY)
    p.exits.submit(aapl_exit())
    p.exits.tick()
    assert world.broker.orders == []
    assert p.store.exit_for("1001@1.0") is None
    p.store._conn.execute("PRAGMA query_only = OFF")
    p.exits.tick()
    p.exits.tick()
    assert len(world.broker.orders) == 1
    row = p.store.exit_for("1001@1.0")
    assert row is not None and row["order_id"] == world.broker.orders[0].order_id


def test_record_with_the_store_down_is_retried(world: World) -> None:
    p = world.start()

    class RecordDown:
        def __init__(self, store: Store) -> None:
            self.store = store
            self.down = True

        def claim_exit(self, trigger_id: str, position_id: str, t: float) -> bool:
            return self.store.claim_exit(trigger_id, position_id, t)

        def record_exit_order(self, trigger_id: str, order_id: int, detail: Any) -> None:
            if self.down:
                from supervisor.store.sqlite_store import StoreUnavailable

                raise StoreUnavailable("record_exit_order", "disk full", "SQLITE_FULL")
            self.store.record_exit_order(trigger_id, order_id, detail)

        def exit_for(self, trigger_id: str) -> dict[str, Any] | None:
            return self.store.exit_for(trigger_id)

        def pending_exits(self) -> list[dict[str, Any]]:
            return self.store.pending_exits()

    claims = RecordDown(p.store)
    exits = ExitOrders(p.port, claims, p.rows, world.clock)
    exits.submit(aapl_exit())
    assert len(world.broker.orders) == 1
    assert len(p.store.pending_exits()) == 1
    claims.down = False
    exits.tick()
    assert p.store.pending_exits() == []
    exits.on_ready()  # the recorded order is not "settled" again
    assert len(world.broker.orders) == 1


# ------------------------------------------------------------------ rejections


def test_a_rejection_is_one_final_row_whichever_comes_first(world: World) -> None:
    p = world.start()
    p.exits.submit(aapl_exit("a"))
    p.exits.submit(stop_exit("b", "2001", PUT, -2.0, 3.5))
    a, b = (o.order_id for o in world.broker.orders)
    # ib_async: the order marked Cancelled (with the error in its log), then the error event
    p.exits.on_status(OrderUpdate(a, CLIENT, exit_order_ref("a"), "Cancelled", 0, 100, 0, 201, "x"))
    assert p.exits.on_error(a, 201, "Order rejected - reason: x")
    # the other way round
    assert p.exits.on_error(b, 201, "Order rejected - reason: y")
    p.exits.on_status(OrderUpdate(b, CLIENT, exit_order_ref("b"), "Cancelled", 0, 2, 0, 201, "y"))
    assert p.rows.statuses("a") == ["placed", "rejected"]
    assert p.rows.statuses("b") == ["placed", "rejected"]
    assert not p.exits.on_error(99999, 201, "not ours")
    # a plain cancel (ours, or IB's at the day's end) is "cancelled"
    p.exits.submit(stop_exit("c", "2002", CALL, 2.0, 1.5))
    c = world.broker.orders[-1].order_id
    p.exits.on_status(OrderUpdate(c, CLIENT, exit_order_ref("c"), "Cancelled", 0, 2, 0, 202, ""))
    assert p.rows.statuses("c") == ["placed", "cancelled"]


# ------------------------------------------------------------------ IB's own evidence


def test_a_working_exit_at_ib_forbids_a_second_one(world: World) -> None:
    """The store was lost: IB still shows the old incarnation's exit on the position."""
    world.broker.foreign.append(
        BrokerOrder(55, CLIENT, "rs-exit:1001@0.5", (1001,), "Submitted", "SELL", 100.0)
    )
    p = world.start()
    p.exits.submit(aapl_exit("1001@9.0"))
    assert world.broker.orders == []
    assert p.rows.statuses() == ["refused"]
    assert p.store.exit_for("1001@9.0") is None
    assert p.exits.report_refusals(["1001", "2001"]).keys() == {"1001"}
    assert p.rows.statuses() == ["refused", "not_rearmed"]
    # once IB shows it done, the position may be exited again
    world.broker.foreign.clear()
    p.exits.submit(aapl_exit("1001@9.0"))
    assert len(world.broker.orders) == 1


def test_claimed_before_ib_was_known_is_still_refused_by_its_evidence(world: World) -> None:
    p = world.start(ready=False)
    p.exits.submit(aapl_exit("1001@9.0"))  # claimed while the session is being set up
    world.broker.foreign.append(
        BrokerOrder(55, 3, "rs-exit:1001@0.5", (1001,), "Submitted", "SELL", 100.0)
    )
    p.port.is_ready = True
    p.exits.on_ready()
    assert world.broker.orders == []
    assert p.rows.statuses() == ["waiting_for_connection", "refused"]
    assert p.store.pending_exits() == []  # settled: never sent later either


def test_our_own_working_exit_is_not_reported_as_a_lost_store(world: World) -> None:
    p = world.start()
    p.exits.submit(aapl_exit("1001@1.0"))
    q = world.start()  # a normal restart: the store knows the working exit's key
    assert q.exits.report_refusals(["1001"]) == {}
    q.exits.submit(aapl_exit("kill:k9:1001"))  # but no second closing order while it works
    assert q.rows.statuses() == ["refused"]
    assert len(world.broker.orders) == 1


def test_a_foreign_exit_fill_as_latest_execution_forbids_a_second_exit(world: World) -> None:
    world.broker.fills.append(
        BrokerFill("e1", 55, CLIENT, "rs-exit:1001@0.5", 1001, 10.0, "SLD", 40.0, 99.0)
    )
    p = world.start()
    p.exits.submit(aapl_exit("1001@9.0"))
    assert world.broker.orders == [] and p.rows.statuses() == ["refused"]
    p.exits.submit(aapl_exit("1001@9.0"))  # reported once per reason
    assert p.rows.statuses() == ["refused"]
    # the trader bought again after that exit: a new position, which may be exited
    world.broker.fills.append(BrokerFill("e2", 77, 3, "", 1001, 20.0, "BOT", 100.0, 101.0))
    p.exits.submit(aapl_exit("1001@9.0"))
    assert len(world.broker.orders) == 1


def test_our_own_exit_fill_does_not_forbid_a_flatten(world: World) -> None:
    p = world.start()
    p.exits.submit(aapl_exit("1001@1.0"))
    first = world.broker.orders[0]
    world.broker.fills.append(
        BrokerFill("e1", first.order_id, CLIENT, first.echoed_ref, 1001, 10.0, "SLD", 40.0, 99.0)
    )
    first.status = "Cancelled"  # partly filled, then cancelled by a kill
    world.broker.positions["1001"] = 60.0
    q = world.start()  # after a restart too
    q.exits.submit(aapl_exit("kill:k1:1001", 99.0))
    assert len(world.broker.orders) == 2
    assert world.broker.orders[1].ticket.qty == 60.0


# ------------------------------------------------------------------ triggers without claims


def test_triggered_stops_without_a_claim_are_listed(world: World) -> None:
    snap = StopSnapshot(
        "1001", AAPL, 100.0, 100.0, 1.0, True, 103.0, 101.45, 1, True, 0, "1001@1.0"
    )
    other = replace(snap, id="2001", trigger_id="2001@1.0")
    untriggered = replace(snap, id="2002", triggered=False, trigger_id=None)
    p = world.start()
    p.exits.submit(aapl_exit("2001@1.0"))  # claimed: not listed
    assert [s.id for s in p.exits.unclaimed([snap, other, untriggered])] == ["1001"]


# ------------------------------------------------------------------ combos


def test_a_combo_is_one_bag_ticket_closing_every_leg(world: World) -> None:
    world.broker.positions.update({"2001": -4.0, "2002": 2.0})
    legs = (OrderLeg("2001", PUT, 2, "BUY"), OrderLeg("2002", CALL, 1, "SELL"))
    p = world.start()
    p.exits.submit(ClosingOrder("strat@1.0", legs, 2.0, "SELL", -1.237, "stop"))
    tk = world.broker.orders[0].ticket
    assert tk.combo and tk.qty == 2.0 and tk.action == "SELL"
    assert tk.limit_price == -1.24  # a credit, rounded toward a fill
    assert tk.leg_actions == ("SELL", "BUY")  # selling the combo reverses each leg
    assert replace(tk, action="BUY").leg_actions == ("BUY", "SELL")
    row = p.rows.rows[0][1]
    assert row["sec_type"] == "BAG" and [x["position_id"] for x in row["legs"]] == ["2001", "2002"]
    assert p.rows.rows[0][2] is None  # a combo's row names no single position


def test_a_combo_never_goes_out_with_a_leg_missing_or_short(world: World) -> None:
    world.broker.positions.update({"2001": -4.0, "2002": 2.0})
    legs = (OrderLeg("2001", PUT, 2, "BUY"), OrderLeg("2002", CALL, 1, "SELL"))
    p = world.start()
    world.broker.positions["2001"] = -2.0  # one unit left on that leg
    p.exits.submit(ClosingOrder("s1", legs, 2.0, "BUY", 1.0, "flatten"))
    assert world.broker.orders[-1].ticket.qty == 1.0
    world.broker.orders[-1].status = "Cancelled"
    world.broker.positions.pop("2002")
    p.exits.submit(ClosingOrder("s2", legs, 1.0, "BUY", 1.0, "flatten"))
    assert len(world.broker.orders) == 1
    assert p.rows.statuses("s2") == ["failed"]


def test_an_order_ib_cannot_express_is_settled_failed(world: World) -> None:
    class NoConId(FakePort):
        def place(self, ticket: OrderTicket) -> int:
            raise OrderUnplaceable("leg x has no IB conId")

    p = world.start()
    exits = ExitOrders(NoConId(world.broker), p.store, p.rows, world.clock)
    exits.submit(aapl_exit())
    assert p.rows.statuses() == ["failed"]
    assert p.store.pending_exits() == []


# ------------------------------------------------------------------ the invariant


KEYS = ("1001@1.0", "1001@2.0", "2001@1.0", "kill:k:2001")
ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("submit"), st.sampled_from(KEYS)),
        st.tuples(st.just("ready"), st.booleans()),
        st.tuples(st.just("on_ready"), st.none()),
        st.tuples(st.just("crash_next"), st.sampled_from(("before", "after"))),
        st.tuples(st.just("not_sent"), st.booleans()),
        st.tuples(st.just("restart"), st.none()),
        st.tuples(st.just("fill"), st.none()),
    ),
    max_size=30,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(actions=ACTIONS)
def test_never_two_orders_for_one_key(
    tmp_path_factory: pytest.TempPathFactory, actions: Any
) -> None:
    world = World(tmp_path_factory.mktemp("exits"))
    try:
        p = world.start()
        for what, arg in actions:
            try:
                if what == "submit":
                    pid = arg.split("@")[0].split(":")[-1]
                    contract = AAPL if pid == "1001" else PUT
                    qty = world.broker.positions.get(pid, 1.0)
                    p.exits.submit(stop_exit(arg, pid, contract, qty, 1.0))
                elif what == "ready":
                    p.port.is_ready = arg
                elif what == "on_ready":
                    p.exits.on_ready()
                elif what == "crash_next":
                    p.port.crash = arg
                elif what == "not_sent":
                    p.port.not_sent = arg
                elif what == "restart":
                    p = world.start(ready=p.port.is_ready)
                elif what == "fill" and world.broker.orders:
                    o = world.broker.orders[-1]
                    if o.status == "Submitted":
                        world.broker.fill(o.order_id, world.t)
            except Crash:
                p = world.start(ready=p.port.is_ready)
        for key in KEYS:
            assert len(world.broker.by_ref(exit_order_ref(key))) <= 1, key
    finally:
        world.close()

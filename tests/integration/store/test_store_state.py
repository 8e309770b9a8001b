"""Saved state round trips on a real SQLite file: stops, breaker, money, kills, strategies.

Each state the daemon restores comes back exactly after a reopen, and each one
written with a journal row through ``record`` is atomic with it: an injected
failure at any statement of the transaction (an SQLite trigger that aborts)
leaves neither the row nor any of the states.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_helpers import QQQ_CALL, SPY, SPY_PUT, snap

from actors.messages import Contract, KillMode, Right, SecType, StopAction, StopSnapshot
from supervisor.store.sqlite_store import (
    ExitClaim,
    KillRecord,
    Store,
    StoreUnavailable,
    StrategyChange,
)

# ------------------------------------------------------------------ stops


def test_stop_states_round_trip_every_field(store: Store, db: Path) -> None:
    snaps = [
        snap("long-stk"),
        snap(
            "short-put",
            contract=SPY_PUT,
            qty=-3.0,
            entry_price=5.25,
            active=False,
            extreme=5.25,
            stop=None,
            breaches=2,
            ignored_quotes=7,
        ),
        snap(
            "trig-call",
            contract=QQQ_CALL,
            qty=2.0,
            entry_price=12.5,
            extreme=15.0,
            stop=13.5,
            breaches=3,
            triggered=True,
            trigger_id="trig-call:1700000123.5",
        ),
        snap("inf", extreme=math.inf, stop=-math.inf),
    ]
    store.save_stop(snaps[0])
    store.save_stops(snaps[1:])
    assert store.load_stops() == sorted(snaps, key=lambda s: s.id)
    loaded = {s.id: s for s in store.load_stops()}
    assert loaded["short-put"].contract.right is Right.PUT
    assert loaded["short-put"].contract.sec_type is SecType.OPT
    assert loaded["long-stk"].contract.right is None
    assert loaded["long-stk"].contract.strike is None

    # upsert by id, delete, unknown delete is a no-op
    moved = dataclasses.replace(snaps[0], extreme=120.0, stop=114.0, breaches=1)
    store.save_stop(moved)
    store.delete_stop("inf")
    store.delete_stop("never-existed")
    store.close()
    with Store(db) as again:
        assert {s.id: s for s in again.load_stops()} == {
            "long-stk": moved,
            "short-put": snaps[1],
            "trig-call": snaps[2],
        }


def test_nan_in_a_stop_state_comes_back_as_nan_or_none(store: Store) -> None:
    store.save_stop(snap(extreme=math.nan, qty=math.nan, stop=math.nan))
    (got,) = store.load_stops()
    assert math.isnan(got.extreme) and math.isnan(got.qty)
    assert got.stop is None  # SQLite stores NaN as NULL: documented


def test_undecodable_stop_row_raises_store_unavailable(store: Store, db: Path) -> None:
    store.save_stop(snap())
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE stops SET sec_type = 'FUT'")
    with pytest.raises(StoreUnavailable, match="cannot be decoded"):
        store.load_stops()


# ---------------------------------------------------------------- breaker


def test_breaker_state_round_trips_exactly(store: Store, db: Path) -> None:
    assert store.load_breaker() is None
    state = {
        "state": "open",
        "trips": 2,
        "opened_at": 1_700_000_000.25,
        "due": math.inf,
        "forced": False,
        "window": [{"t": 1.0, "weight": 1.5, "kind": "margin", "code": None, "detail": "x"}],
    }
    store.save_breaker(state)
    store.save_breaker({**state, "trips": 3})
    store.close()
    with Store(db) as again:
        assert again.load_breaker() == {**state, "trips": 3}


def test_breaker_state_is_saved_with_a_row_of_any_kind(store: Store, db: Path) -> None:
    """The core journals each failure or permit change with the breaker's state."""
    for i, kind in enumerate(("failure", "success", "check", "breaker_state", "admin")):
        state = {"state": "half_open", "permits": i, "due": math.inf}
        seq = store.record(t=float(i), kind=kind, payload={"i": i}, breaker=state)
        assert store.load_breaker() == state
        row = store.last_journal()
        assert row is not None and (row.seq, row.kind) == (seq, kind)
    store.close()
    with Store(db) as again:
        assert again.load_breaker() == {"state": "half_open", "permits": 4, "due": math.inf}


# ------------------------------------------------------------------- stop extra


LEGS = {
    "legs": [{"id": "c1", "qty": 1, "multiplier": 100.0}, {"id": "c2", "qty": -1}],
    "u": 100.0,
    "entry": -1.25,
    "weights": [1.0, -1.0],
}


def test_a_strategy_stop_keeps_its_extra_through_every_write(store: Store, db: Path) -> None:
    strat = snap("iron-1", extreme=1.25, stop=1.6)
    store.save_stop(strat, extra=LEGS)
    assert store.load_stop_extras() == {"iron-1": LEGS}
    # a later save without extra (save_stops after an outage) keeps the legs
    store.save_stops([dataclasses.replace(strat, breaches=1), snap("p2")])
    assert store.load_stop_extras() == {"iron-1": LEGS}
    # record with a new extra replaces them, in the transaction of the row
    moved = {**LEGS, "u": 50.0}
    store.record(
        t=1.0,
        kind="stop",
        position_id="iron-1",
        payload={"action": "UPDATE"},
        stop=dataclasses.replace(strat, stop=1.5),
        stop_extra=moved,
    )
    store.close()
    with Store(db) as again:
        assert again.load_stop_extras() == {"iron-1": moved}
        assert {s.id: s.stop for s in again.load_stops()} == {"iron-1": 1.5, "p2": 104.5}
        again.delete_stop("iron-1")
        assert again.load_stop_extras() == {}


def test_an_extra_attribute_of_the_snapshot_is_saved(store: Store) -> None:
    """Ready for a StopSnapshot that carries its extra itself (duck-typed)."""

    @dataclasses.dataclass(frozen=True)
    class WithExtra(StopSnapshot):
        extra: dict[str, Any] | None = None

    with_extra = WithExtra(
        **{f.name: getattr(snap("s1"), f.name) for f in dataclasses.fields(StopSnapshot)},
        extra=LEGS,
    )
    store.save_stop(with_extra)
    assert store.load_stop_extras() == {"s1": LEGS}


# ------------------------------------------------------------------------ money

MONEY = {
    "hwm": 1_012_345.5,
    "hwm_from_ib": True,
    "base_pnl": -1250.0,
    "nlv": 1_000_000.0,
    "nlv_t": 1_700_000_000.0,
    "pnl": math.nan,
    "pnl_t": -math.inf,
    "latched": {"t": 1_700_000_100.0, "cause": "max_daily_loss", "value": -5100.0},
}


def _same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN (saved state must come back exactly)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_money_state_round_trips_exactly(store: Store, db: Path) -> None:
    assert store.load_money() is None
    store.save_money(MONEY)
    assert _same(store.load_money(), MONEY)
    seq = store.record(t=5.0, kind="money", payload={"hwm": 1.0}, money={**MONEY, "hwm": 2.0})
    store.close()
    with Store(db) as again:
        assert _same(again.load_money(), {**MONEY, "hwm": 2.0})
        row = again.last_journal(kind="money")
        assert row is not None and row.seq == seq


# ------------------------------------------------------------------------ kills


def test_kills_are_upserted_by_id_and_survive_a_restart(store: Store, db: Path) -> None:
    assert store.load_kills() == [] and store.last_kill() is None
    k1 = KillRecord("k1", 100.0, KillMode.FLATTEN, "kill", "alice", {"step": "halted"})
    k2 = KillRecord("k2", 50.0, "halt", "heartbeat_lost", None, {"step": "halted"})
    store.record(t=100.0, kind="kill", payload={"id": "k1", "step": "halted"}, kill=k1)
    store.record(t=50.0, kind="kill", payload={"id": "k2"}, kill=k2)
    done = dataclasses.replace(k1, state={"step": "flattened", "orders": [1, 2], "px": math.inf})
    store.record(t=101.0, kind="kill", payload={"id": "k1", "step": "flattened"}, kill=done)
    store.close()
    with Store(db) as again:
        kills = again.load_kills()
        assert [k.id for k in kills] == ["k2", "k1"]  # by t
        assert kills[1] == done and kills[1].mode == "flatten"
        assert again.last_kill() == done
        assert [r.payload.get("step") for r in again.journal(kind="kill")] == [
            "halted",
            None,
            "flattened",
        ]


def test_a_kill_needs_an_id_and_a_mode() -> None:
    with pytest.raises(ValueError, match="id"):
        KillRecord("", 1.0, "halt", "kill")
    with pytest.raises(ValueError, match="mode"):
        KillRecord("k", 1.0, "", "kill")


# ------------------------------------------------------------------- strategies


def test_strategies_round_trip_and_are_deleted(store: Store, db: Path) -> None:
    spec = {"symbol": "SPY", "legs": ["c1", "c2"], "ratio": [1, -1]}
    store.save_strategy("s1", spec)
    store.record(
        t=1.0, kind="strategy", payload={"id": "s2"}, strategy=StrategyChange("s2", {"legs": []})
    )
    store.save_strategy("s1", {**spec, "legs": ["c1"]})
    assert store.load_strategies() == {"s1": {**spec, "legs": ["c1"]}, "s2": {"legs": []}}
    store.record(t=2.0, kind="strategy", payload={"id": "s2"}, strategy=StrategyChange("s2", None))
    store.delete_strategy("never")
    store.close()
    with Store(db) as again:
        assert again.load_strategies() == {"s1": {**spec, "legs": ["c1"]}}
        again.delete_strategy("s1")
        assert again.load_strategies() == {}
    with pytest.raises(ValueError, match="id"), Store(db) as s:
        s.save_strategy("", spec)


def test_undecodable_saved_state_raises_store_unavailable(store: Store, db: Path) -> None:
    store.save_money({"hwm": 1.0})
    store.save_strategy("s1", {"legs": []})
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE money SET state = '[1, 2]'")
        raw.execute("UPDATE strategies SET spec = 'not json'")
    with pytest.raises(StoreUnavailable, match="money state"):
        store.load_money()
    with pytest.raises(StoreUnavailable, match="strategy 's1'"):
        store.load_strategies()


# ------------------------------------------------------------------ atomicity

#: Every table ``record`` writes in one transaction, in the order it writes them.
RECORD_TABLES = ("journal", "stops", "breaker", "money", "kills", "strategies", "exits", "triggers")


def _everything(store: Store) -> dict[str, Any]:
    return {
        "journal": store.journal(),
        "stops": store.load_stops(),
        "breaker": store.load_breaker(),
        "money": store.load_money(),
        "kills": store.load_kills(),
        "strategies": store.load_strategies(),
        "exit": store.exit_for("p1:105"),
        "triggers": store.triggers_since(-math.inf),
    }


def _record_all(store: Store) -> int | None:
    return store.record(
        t=105.0,
        kind="stop",
        position_id="p1",
        payload={"action": StopAction.TRIGGER, "trigger_id": "p1:105"},
        stop=snap(triggered=True, trigger_id="p1:105"),
        breaker={"state": "open"},
        money={"hwm": 1.0},
        kill=KillRecord("k1", 105.0, "halt", "kill"),
        strategy=StrategyChange("s1", {"legs": []}),
        claim=ExitClaim("p1:105", "p1"),
    )


@pytest.mark.parametrize("table", RECORD_TABLES)
def test_a_failure_at_any_statement_of_record_leaves_neither_row_nor_state(
    store: Store, db: Path, table: str
) -> None:
    before = _everything(store)
    with sqlite3.connect(db) as raw:
        raw.execute(
            f"CREATE TRIGGER fail_{table} BEFORE INSERT ON {table} "
            "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
        )
    with pytest.raises(StoreUnavailable, match="injected failure") as exc:
        _record_all(store)
    assert exc.value.operation == "record"
    assert _everything(store) == before
    with sqlite3.connect(db) as raw:
        raw.execute(f"DROP TRIGGER fail_{table}")
    seq = _record_all(store)  # the same decision goes through once the fault is gone
    got = _everything(store)
    assert [r.seq for r in got["journal"]] == [seq]
    assert got["stops"][0].triggered and got["breaker"] == {"state": "open"}
    assert got["money"] == {"hwm": 1.0} and got["kills"][0].id == "k1"
    assert got["strategies"] == {"s1": {"legs": []}}
    assert got["exit"]["journal_seq"] == seq and got["exit"]["reason"] == "stop"
    assert [tuple(r) for r in got["triggers"]] == [(105.0, "p1", "SPY")]


def test_a_bad_argument_writes_nothing(store: Store) -> None:
    for bad in (
        lambda: store.record(t=1.0, kind="stop", payload={}, claim=("", "p1")),
        lambda: store.record(t=1.0, kind="stop", payload={}, claim=("k", "")),
        lambda: store.record(t=1.0, kind="strategy", payload={}, strategy=StrategyChange("", {})),
        lambda: store.record(t=1.0, kind="nonsense", payload={}, money={"hwm": 1.0}),
    ):
        with pytest.raises(ValueError):
            bad()
    assert store.journal() == [] and store.load_money() is None


# --------------------------------------------------------------------- property

_json_floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | _json_floats | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(state=st.dictionaries(st.text(max_size=8), _json, max_size=6))
def test_any_saved_state_comes_back_exactly(
    tmp_path_factory: pytest.TempPathFactory, state: dict[str, Any]
) -> None:
    path = tmp_path_factory.mktemp("state") / "s.sqlite"
    with Store(path, synchronous="NORMAL") as s:
        s.save_money(state)
        s.save_breaker(state)
        s.save_strategy("s", state)
        s.record(
            t=1.0, kind="kill", payload={}, kill=KillRecord("k", 1.0, "halt", "kill", None, state)
        )
    with Store(path, read_only=True) as s:
        kill = s.last_kill()
        assert kill is not None
        for got in (s.load_money(), s.load_breaker(), s.load_strategies()["s"], kill.state):
            assert _same(got, state)


# ---------------------------------------------------------------- property

_ids = st.sampled_from(["a", "b", "c", "d"])
_floats = st.floats(allow_nan=False, width=64)
_contracts = st.one_of(
    st.just(SPY),
    st.builds(
        Contract,
        symbol=st.sampled_from(["SPY", "QQQ"]),
        sec_type=st.just(SecType.OPT),
        right=st.sampled_from([Right.CALL, Right.PUT]),
        strike=st.one_of(st.none(), _floats),
        expiry=st.one_of(st.none(), st.just("2025-06-20")),
        multiplier=_floats,
    ),
)
_snaps = st.builds(
    StopSnapshot,
    id=_ids,
    contract=_contracts,
    qty=_floats,
    entry_price=_floats,
    opened_t=_floats,
    active=st.booleans(),
    extreme=_floats,
    stop=st.one_of(st.none(), _floats),
    breaches=st.integers(0, 2**62),
    triggered=st.booleans(),
    ignored_quotes=st.integers(0, 1000),
    trigger_id=st.one_of(st.none(), st.text(max_size=20)),
)
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("save"), _snaps),
        st.tuples(st.just("save_many"), st.lists(_snaps, max_size=4)),
        st.tuples(st.just("delete"), _ids),
        st.tuples(st.just("reopen"), st.none()),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=_ops)
def test_any_save_delete_sequence_matches_a_dict_model(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, Any]]
) -> None:
    path = tmp_path_factory.mktemp("prop") / "s.sqlite"
    model: dict[str, StopSnapshot] = {}
    s = Store(path, synchronous="NORMAL")
    try:
        for op, arg in ops:
            if op == "save":
                s.save_stop(arg)
                model[arg.id] = arg
            elif op == "save_many":
                s.save_stops(arg)
                model.update({x.id: x for x in arg})
            elif op == "delete":
                s.delete_stop(arg)
                model.pop(arg, None)
            else:
                s.close()
                s = Store(path, synchronous="NORMAL")
        assert s.load_stops() == [model[k] for k in sorted(model)]
    finally:
        s.close()

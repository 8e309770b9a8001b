"""The journal on a real SQLite file: filters, order, encoding, kinds, the TRIGGER index."""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from store_helpers import QQQ_CALL, SPY_PUT, fill, snap

from actors.messages import StopAction, StopEvent
from supervisor.store.journal_kind import JournalKind
from supervisor.store.sqlite_store import JournalRow, Store, StoreUnavailable, TriggerRow

# ---------------------------------------------------------------- journal


def test_journal_filters_and_order(store: Store) -> None:
    before = time.time()
    seqs = fill(store)
    after = time.time()
    assert seqs == list(range(seqs[0], seqs[0] + 6))

    def ts(rows: list[JournalRow]) -> list[float]:
        return [r.t for r in rows]

    everything = store.journal()
    assert [r.seq for r in everything] == seqs
    assert all(before <= r.wall_t <= after for r in everything)
    assert everything[0].payload == {"action": "ACTIVATE", "stop": 95.0}
    assert ts(store.journal(since_seq=seqs[3])) == [104.0, 105.0]  # exclusive
    assert ts(store.journal(since_t=102.0, until_t=104.0)) == [102.0, 103.0]  # [since, until)
    assert ts(store.journal(kind="stop")) == [100.0, 102.0, 103.0, 105.0]
    assert ts(store.journal(position_id="p1")) == [100.0, 103.0, 105.0]
    assert ts(store.journal(kind="stop", position_id="p1", since_t=101.0)) == [103.0, 105.0]
    assert ts(store.journal(limit=2)) == [100.0, 101.0]
    assert ts(store.journal(limit=2, newest=True)) == [104.0, 105.0]
    assert store.journal(kind="nothing") == []
    with pytest.raises(ValueError):
        store.journal(limit=0)

    last = store.last_journal()
    assert last is not None and last.seq == seqs[-1]
    last_p2 = store.last_journal(position_id="p2")
    assert last_p2 is not None and last_p2.payload["action"] == "UPDATE"
    last_breaker = store.last_journal(kind="breaker")
    assert last_breaker is not None and last_breaker.t == 104.0
    assert store.last_journal(kind="stop", position_id="p3") is None


def test_payload_encoding_is_strict_json_and_never_refuses(store: Store, db: Path) -> None:
    event = StopEvent(
        t=1.0, id="p1", action=StopAction.TRIGGER, stop=97.0, ref_price=96.5,
        extreme=100.0, qty=10.0, contract=SPY_PUT, trigger_id="p1:1",
    )  # fmt: skip
    payload: dict[Any, Any] = {
        "event": event,
        "bid": math.nan,
        "ask": math.inf,
        "nested": [(1, -math.inf), {"x": math.nan}],
        "codes": frozenset({"b", "a"}),
        "odd": object,
        3: "int key",
    }
    seq = store.append(t=math.nan, kind="stop", position_id="p1", payload=payload)
    (row,) = store.journal(since_seq=seq - 1)
    assert math.isnan(row.t)
    p = row.payload
    assert p["event"]["action"] == "TRIGGER" and p["event"]["contract"]["right"] == "P"
    assert p["bid"] is None and p["ask"] is None
    assert p["nested"] == [[1, None], {"x": None}]
    assert p["codes"] == ["a", "b"]
    assert p["odd"] == str(object) and p["3"] == "int key"
    with sqlite3.connect(db) as raw:
        (text,) = raw.execute("SELECT payload FROM journal WHERE seq = ?", (seq,)).fetchone()
        json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict token {c}"))
        assert raw.execute("SELECT json_valid(payload) FROM journal").fetchone() == (1,)


def test_append_many_is_one_ordered_transaction(store: Store) -> None:
    first = store.append(t=1.0, kind="restart", payload={})
    rows = [JournalRow.entry(t=float(i), kind="check", payload={"i": i}) for i in range(50)]
    seqs = store.append_many(rows)
    assert seqs == list(range(first + 1, first + 51))
    got = store.journal(since_seq=first)
    assert [r.payload["i"] for r in got] == list(range(50))
    assert len({r.wall_t for r in got}) == 1  # written together
    assert store.append_many([]) == []


def test_concurrent_appends_from_threads_get_unique_gap_free_seqs(store: Store) -> None:
    def work(k: int) -> list[int]:
        return [store.append(t=float(i), kind="check", payload={"k": k}) for i in range(40)]

    results: list[list[int]] = []
    threads = [threading.Thread(target=lambda k=k: results.append(work(k))) for k in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    every = sorted(s for r in results for s in r)
    assert every == list(range(1, 241))
    assert all(r == sorted(r) for r in results)


# ------------------------------------------------------------------------ kinds


def test_unknown_kinds_are_refused_and_nothing_is_written(store: Store) -> None:
    good = JournalRow.entry(t=1.0, kind="check", payload={})
    for call in (
        lambda: store.append(t=1.0, kind="stops", payload={}),
        lambda: store.record(t=1.0, kind="Stop", payload={}, breaker={"state": "open"}),
        lambda: store.append_many([good, JournalRow.entry(t=2.0, kind="x", payload={})]),
    ):
        with pytest.raises(ValueError, match="unknown journal kind"):
            call()
    assert store.journal() == [] and store.load_breaker() is None
    # every kind of the closed set is accepted, as a str or as the enum
    for kind in JournalKind:
        store.append(t=1.0, kind=kind, payload={})
        store.append(t=1.0, kind=kind.value, payload={})
    assert [r.kind for r in store.journal(limit=100)] == [
        k.value for k in JournalKind for _ in "ab"
    ]
    # reading by an unknown kind is a question, not a write: no rows
    assert store.journal(kind="nothing") == []


# --------------------------------------------------------------------- triggers


def _trigger(store: Store, t: float, pid: str, **kw: Any) -> int:
    payload = {"action": "TRIGGER", "trigger_id": f"{pid}:{t}", **kw.pop("payload", {})}
    return store.record(t=t, kind="stop", position_id=pid, payload=payload, **kw)


def test_triggers_since_lists_every_trigger_with_its_symbol(store: Store, db: Path) -> None:
    store.append(t=1.0, kind="position", position_id="q1", payload={"symbol": "QQQ"})
    store.save_stop(snap("old", contract=SPY_PUT))
    _trigger(store, 10.0, "p1", stop=snap("p1", contract=QQQ_CALL))  # symbol from the snapshot
    _trigger(store, 11.0, "q1")  # from its position row
    _trigger(store, 11.0, "old")  # from its saved stop
    _trigger(store, 12.0, "iron", payload={"symbol": "IWM"})  # a strategy naming its symbol
    _trigger(store, 13.0, "ghost")  # nothing names it
    store.record(  # the enum, as a StopEvent's action would be
        t=14.0,
        kind="stop",
        position_id="p9",
        payload={"action": StopAction.TRIGGER},
        stop=snap("p9"),
    )
    for action in ("ACTIVATE", "UPDATE"):
        store.append(t=15.0, kind="stop", position_id="p1", payload={"action": action})
    store.append(t=15.0, kind="check", payload={"action": "TRIGGER"})  # not a stop row
    store.append_many(
        [JournalRow.entry(t=16.0, kind="stop", position_id="q1", payload={"action": "TRIGGER"})]
    )
    want = [
        TriggerRow(10.0, "p1", "QQQ"),
        TriggerRow(11.0, "q1", "QQQ"),
        TriggerRow(11.0, "old", "SPY"),
        TriggerRow(12.0, "iron", "IWM"),
        TriggerRow(13.0, "ghost", None),
        TriggerRow(14.0, "p9", "SPY"),
        TriggerRow(16.0, "q1", "QQQ"),
    ]
    assert store.triggers_since(0.0) == want
    assert store.triggers_since(11.0) == want[1:]  # inclusive
    assert store.triggers_since(16.5) == []
    store.close()
    with Store(db) as again:
        assert again.triggers_since(12.0) == want[3:]


def test_a_failed_trigger_row_leaves_no_index_entry(store: Store, db: Path) -> None:
    with sqlite3.connect(db) as raw:
        raw.execute(
            "CREATE TRIGGER no_stops BEFORE INSERT ON stops BEGIN SELECT RAISE(ABORT, 'x'); END"
        )
    with pytest.raises(StoreUnavailable, match="x"):
        _trigger(store, 1.0, "p1", stop=snap())
    assert store.triggers_since(0.0) == []


def test_triggers_since_reads_the_index_not_the_journal(store: Store, db: Path) -> None:
    rows = [
        JournalRow.entry(
            t=float(i), kind="stop", position_id=f"p{i % 50}", payload={"action": "UPDATE"}
        )
        for i in range(3000)
    ]
    store.append_many(rows)
    for i in range(0, 3000, 100):
        _trigger(store, float(i) + 0.5, f"p{i % 50}", payload={"symbol": "SPY"})
    with sqlite3.connect(db) as raw:
        plan = " ".join(
            str(r[-1])
            for r in raw.execute(
                "EXPLAIN QUERY PLAN SELECT t, position_id, symbol FROM triggers "
                "WHERE t >= ? ORDER BY t, seq",
                (2500.0,),
            )
        )
    assert "USING INDEX triggers_t" in plan and "journal" not in plan, plan
    assert [r.t for r in store.triggers_since(2500.0)] == [2500.5, 2600.5, 2700.5, 2800.5, 2900.5]

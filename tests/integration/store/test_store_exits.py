"""Exit claims on a real SQLite file: once per trigger, once per position and kill, ever."""

from __future__ import annotations

import dataclasses
import math
import threading
from pathlib import Path

import pytest
from store_helpers import snap

from supervisor.store.sqlite_store import (
    ExitClaim,
    ExitReason,
    KillRecord,
    Store,
    flatten_key,
)

# ---------------------------------------------------------- exit claims


def test_claim_exit_is_true_exactly_once_even_across_reopen(db: Path) -> None:
    with Store(db) as s:
        assert s.exit_for("trig-1") is None
        assert s.claim_exit("trig-1", "p1", 10.0) is True
        assert s.claim_exit("trig-1", "p1", 11.0) is False
        assert s.claim_exit("trig-2", "p1", 12.0) is True
        claim = s.exit_for("trig-1")
        assert claim is not None
        assert claim["position_id"] == "p1" and claim["claimed_t"] == 10.0
        assert claim["order_id"] is None and claim["detail"] is None
        assert [c["trigger_id"] for c in s.pending_exits()] == ["trig-1", "trig-2"]
        s.record_exit_order("trig-1", 4242, {"qty": -10, "lmt": math.nan})
    with Store(db) as s:
        assert s.claim_exit("trig-1", "p1", 13.0) is False
        assert s.claim_exit("trig-2", "p1", 13.0) is False
        rec = s.exit_for("trig-1")
        assert rec is not None
        assert rec["order_id"] == 4242 and rec["detail"] == {"qty": -10, "lmt": None}
        assert rec["claimed_t"] == 10.0  # recording keeps the claim
        assert [c["trigger_id"] for c in s.pending_exits()] == ["trig-2"]
        # an order recorded without a claim is kept and blocks any later claim
        s.record_exit_order("orphan", 7, {})
        assert s.claim_exit("orphan", "p9", 1.0) is False


def test_claim_exit_once_across_two_stores_and_many_threads(db: Path) -> None:
    a = Store(db, busy_timeout_ms=10_000)
    b = Store(db, busy_timeout_ms=10_000, synchronous="NORMAL")
    try:
        assert a.claim_exit("t0", "p1", 1.0) is True
        assert b.claim_exit("t0", "p1", 1.0) is False
        wins: list[tuple[str, bool]] = []
        barrier = threading.Barrier(8)

        def race(s: Store, name: str) -> None:
            barrier.wait()
            for i in range(20):
                wins.append((f"t{i + 1}", s.claim_exit(f"t{i + 1}", name, float(i))))

        threads = [
            threading.Thread(target=race, args=(s, f"th{n}")) for n, s in enumerate([a, b] * 4)
        ]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert len(wins) == 160
        for i in range(20):
            assert sum(won for tid, won in wins if tid == f"t{i + 1}") == 1
    finally:
        a.close()
        b.close()


def test_a_trigger_and_its_claim_are_one_decision(store: Store, db: Path) -> None:
    trig = snap(triggered=True, trigger_id="p1:105")
    seq = store.record(
        t=105.0,
        kind="stop",
        position_id="p1",
        payload={"action": "TRIGGER", "trigger_id": "p1:105"},
        stop=trig,
        claim=("p1:105", "p1"),
    )
    assert seq is not None
    claim = store.exit_for("p1:105")
    assert claim is not None
    assert (claim["journal_seq"], claim["reason"], claim["claimed_t"]) == (seq, "stop", 105.0)
    assert store.claim_exit("p1:105", "p1", 106.0) is False  # the adapter's path sees it
    # the same decision again (a retried backlog row, a restart): nothing is written
    again = store.record(
        t=107.0,
        kind="stop",
        position_id="p1",
        payload={"action": "TRIGGER", "trigger_id": "p1:105"},
        stop=dataclasses.replace(trig, breaches=9),
        breaker={"state": "open"},
        claim=ExitClaim("p1:105", "p1"),
    )
    assert again is None
    assert [r.seq for r in store.journal()] == [seq]
    assert store.load_stops() == [trig] and store.load_breaker() is None
    assert len(store.triggers_since(0.0)) == 1
    # a key the adapter claimed first also blocks the decision's claim
    assert store.claim_exit("p2:1", "p2", 1.0) is True
    assert store.record(t=1.0, kind="stop", payload={}, claim=("p2:1", "p2")) is None
    store.close()
    with Store(db) as reopened:
        assert reopened.record(t=1.0, kind="stop", payload={}, claim=("p1:105", "p1")) is None
        assert [c["trigger_id"] for c in reopened.pending_exits()] == ["p1:105", "p2:1"]


def test_flatten_claims_once_per_position_and_kill(store: Store, db: Path) -> None:
    assert flatten_key("k1", "p1") == "kill:k1:p1"
    with pytest.raises(ValueError):
        flatten_key("", "p1")
    kill = KillRecord("k1", 10.0, "flatten", "kill", "ops", {"step": "flattening"})
    sent = {}
    for pid in ("p1", "p2", "iron-1"):
        sent[pid] = store.record(
            t=10.0,
            kind="kill",
            payload={"kill": "k1", "step": "flatten_order", "position": pid},
            kill=kill,
            claim=(flatten_key("k1", pid), pid),
        )
    assert all(s is not None for s in sent.values())
    assert store.claim_exit(flatten_key("k1", "p1"), "p1", 11.0) is False
    assert store.claim_exit(flatten_key("k2", "p1"), "p1", 11.0) is True  # another kill
    store.record_exit_order(flatten_key("k1", "p1"), 77, {"lmt": 99.0})
    store.close()
    with Store(db) as s:  # a restart resuming kill k1 sends nothing twice
        for pid in ("p1", "p2", "iron-1"):
            assert (
                s.record(
                    t=12.0, kind="kill", payload={}, kill=kill, claim=(flatten_key("k1", pid), pid)
                )
                is None
            )
        rec = s.exit_for("kill:k1:p1")
        assert rec is not None and rec["reason"] == "flatten" and rec["order_id"] == 77
        assert rec["journal_seq"] == sent["p1"]
        pending = s.pending_exits(reason=ExitReason.FLATTEN)
        assert sorted(c["trigger_id"] for c in pending) == [
            "kill:k1:iron-1",
            "kill:k1:p2",
            "kill:k2:p1",
        ]
        assert s.pending_exits(reason="stop") == []
        assert len(s.journal(kind="kill")) == 3


def test_a_trigger_id_that_merely_starts_with_kill_is_a_stop(store: Store) -> None:
    """A position called "kill" triggers as "kill:<t>": one colon, a stop's key."""
    assert store.claim_exit("kill:1700000000.5", "kill", 1.0) is True
    rec = store.exit_for("kill:1700000000.5")
    assert rec is not None and rec["reason"] == "stop"


def test_claims_commit_with_full_sync_on_a_normal_store(db: Path) -> None:
    with Store(db, synchronous="NORMAL") as s:
        seen: list[int] = []
        s._conn.set_trace_callback(
            lambda sql: seen.append(2) if sql == "PRAGMA synchronous = FULL" else None
        )
        s.record(t=1.0, kind="stop", payload={}, claim=("t1", "p1"))
        s.record(t=1.0, kind="kill", payload={}, kill=KillRecord("k", 1.0, "halt", "kill"))
        s.claim_exit("t2", "p1", 1.0)
        s.record_exit_order("t2", 5, {})
        s.append(t=1.0, kind="check", payload={})  # an ordinary row keeps NORMAL
        s._conn.set_trace_callback(None)
        assert len(seen) == 4
        assert s._conn.execute("PRAGMA synchronous").fetchone() == (1,)  # back to NORMAL

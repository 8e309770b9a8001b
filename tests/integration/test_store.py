"""The store against real SQLite files: round trips, idempotent exits, kill -9, faults.

Read-only as root: root ignores file modes, so ``chmod 0o444`` alone proves
nothing here. Three techniques stand in, each reaching SQLite's real
SQLITE_READONLY path rather than a mock:

* ``Store(path, read_only=True)`` opens through a ``mode=ro`` URI, which is
  exactly how SQLite treats a file it may not write;
* ``PRAGMA query_only=ON`` on a live store's own connection makes the daemon's
  store go read-only mid-run and come back, which a file mode cannot do to an
  already open descriptor anyway;
* a child process with ``CAP_DAC_OVERRIDE`` dropped from its capability
  bounding set (``setpriv``), for which ``chmod 0o444`` binds as for any user:
  the genuine operating-system refusal, run where ``setpriv`` is available.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.messages import (
    Contract,
    Right,
    SecType,
    StopAction,
    StopEvent,
    StopSnapshot,
)
from supervisor.commands.journal_table import (
    COLUMNS,
    journal_frame,
    run_journal_command,
    summarize,
    write,
)
from supervisor.store.sqlite_store import JournalRow, Store, StoreUnavailable

REPO = Path(__file__).resolve().parents[2]

SPY = Contract("SPY", SecType.STK)
SPY_PUT = Contract("SPY", SecType.OPT, Right.PUT, 450.0, "2025-06-20", 100.0)
QQQ_CALL = Contract("QQQ", SecType.OPT, Right.CALL, 380.5, "2025-01-17", 100.0)


def snap(id_: str = "p1", **kw: Any) -> StopSnapshot:
    base: dict[str, Any] = {
        "id": id_,
        "contract": SPY,
        "qty": 10.0,
        "entry_price": 100.0,
        "opened_t": 1_700_000_000.0,
        "active": True,
        "extreme": 110.0,
        "stop": 104.5,
        "breaches": 0,
        "triggered": False,
        "ignored_quotes": 0,
        "trigger_id": None,
    }
    base.update(kw)
    return StopSnapshot(**base)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "store.sqlite"


@pytest.fixture
def store(db: Path) -> Any:
    s = Store(db)
    yield s
    s.close()


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


# ---------------------------------------------------------------- journal


def _fill(store: Store) -> list[int]:
    rows: list[tuple[float, str, str | None, dict[str, Any]]] = [
        (100.0, "stop", "p1", {"action": "ACTIVATE", "stop": 95.0}),
        (101.0, "check", None, {"allowed": True}),
        (102.0, "stop", "p2", {"action": "UPDATE", "stop": 96.0}),
        (103.0, "stop", "p1", {"action": "UPDATE", "stop": 97.0}),
        (104.0, "breaker", None, {"from_state": "closed", "to_state": "open"}),
        (105.0, "stop", "p1", {"action": "TRIGGER", "stop": 97.0}),
    ]
    return [store.append(t=t, kind=k, payload=p, position_id=pid) for t, k, pid, p in rows]


def test_journal_filters_and_order(store: Store) -> None:
    before = time.time()
    seqs = _fill(store)
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


# ------------------------------------------------------------ durability

_CHILD = r"""
import sys
from actors.messages import Contract, SecType, StopSnapshot
from supervisor.store.sqlite_store import Store

def snap_for(i):
    pid = f"p{i % 3}"
    return StopSnapshot(pid, Contract("SPY", SecType.STK), 1.0 + i, 100.0, 0.0, True,
                        100.0 + i, 95.0 + i, i, False, 0)

s = Store(sys.argv[1])
last = s.last_journal(kind="stop")
i = 0 if last is None else last.payload["i"] + 1
print("ready", flush=True)
while True:
    sn = snap_for(i)
    seq = s.append(t=float(i), kind="stop", position_id=sn.id, payload={"i": i})
    if i % 7 == 0:
        s.save_stops([sn])
    else:
        s.save_stop(sn)
    print(seq, flush=True)
    i += 1
"""


def test_sigkill_at_random_points_leaves_a_consistent_gap_free_store(db: Path) -> None:
    rng = random.Random(20240601)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    printed_all: list[int] = []
    for _run in range(5):
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(db)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=REPO,
        )
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n", child.stderr.read() if child.stderr else b""
        time.sleep(rng.uniform(0.02, 0.25))
        child.send_signal(signal.SIGKILL)
        out, _err = child.communicate(timeout=10)
        assert child.returncode == -signal.SIGKILL
        lines = out.decode().split("\n")[:-1]  # drop a partial last line
        printed = [int(x) for x in lines]
        assert printed, "the child made no progress before the kill"
        printed_all += printed

        with sqlite3.connect(db) as raw:
            assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        with Store(db) as s:
            rows = s.journal(limit=1_000_000)
            seqs = [r.seq for r in rows]
            assert seqs == list(range(1, len(seqs) + 1)), "journal seqs have a gap"
            assert set(printed_all) <= set(seqs), "a seq the child saw committed is missing"
            assert seqs[-1] - printed_all[-1] in (0, 1)  # at most the one in flight
            assert [r.payload["i"] for r in rows] == list(range(len(rows)))

            stops = {sn.id: sn for sn in s.load_stops()}
            last_i_by_pos: dict[str, list[int]] = {}
            for r in rows:
                assert r.position_id is not None
                last_i_by_pos.setdefault(r.position_id, []).append(r.payload["i"])
            for pid, idx in last_i_by_pos.items():
                saved = stops[pid].breaches  # the child's i for that state
                if idx[-1] == rows[-1].payload["i"] and seqs[-1] > printed_all[-1]:
                    # killed between journaling this step and saving its stop
                    assert saved in idx[-2:], (pid, saved, idx[-2:])
                else:
                    assert saved == idx[-1], (pid, saved, idx[-1])
                assert stops[pid] == dataclasses.replace(
                    stops[pid], qty=1.0 + saved, extreme=100.0 + saved, stop=95.0 + saved
                )


# ----------------------------------------------------------------- faults


def test_read_only_store_refuses_writes_without_crashing(store: Store, db: Path) -> None:
    store.save_stop(snap())
    store.append(t=1.0, kind="restart", payload={})
    with Store(db, read_only=True) as ro:
        assert ro.load_stops() == [snap()]
        assert ro.journal()[0].kind == "restart"
        for write_call in (
            lambda: ro.save_stop(snap("p2")),
            lambda: ro.save_stops([snap("p2")]),
            lambda: ro.delete_stop("p1"),
            lambda: ro.append(t=2.0, kind="check", payload={}),
            lambda: ro.append_many([JournalRow.entry(t=2.0, kind="check", payload={})]),
            lambda: ro.save_breaker({"state": "open"}),
            lambda: ro.claim_exit("t1", "p1", 2.0),
            lambda: ro.record_exit_order("t1", 1, {}),
        ):
            with pytest.raises(StoreUnavailable) as exc:
                write_call()
            assert exc.value.sqlite_error == "SQLITE_READONLY"
        assert ro.healthy() is False
        assert isinstance(ro.last_error, StoreUnavailable)
    # nothing leaked through, and the writable store was never disturbed
    assert store.load_stops() == [snap()]
    assert store.claim_exit("t1", "p1", 2.0) is True
    assert store.healthy() is True


def test_read_only_open_never_creates_a_database(tmp_path: Path) -> None:
    missing = tmp_path / "typo.sqlite"
    with pytest.raises(StoreUnavailable, match="open"):
        Store(missing, read_only=True)
    assert not missing.exists()


def test_store_going_read_only_while_running_recovers(store: Store) -> None:
    store.save_stop(snap())
    with store._lock:  # test hook: make the live connection read-only
        store._conn.execute("PRAGMA query_only = ON")
    with pytest.raises(StoreUnavailable, match="save_stop") as exc:
        store.save_stop(snap(stop=1.0))
    assert exc.value.sqlite_error == "SQLITE_READONLY"
    with pytest.raises(StoreUnavailable):
        store.save_stops([snap("p2"), snap("p3")])
    with pytest.raises(StoreUnavailable):
        store.claim_exit("t1", "p1", 1.0)
    assert store.healthy() is False
    assert store.load_stops() == [snap()]  # reads still work: restore stays possible
    with store._lock:
        store._conn.execute("PRAGMA query_only = OFF")
    assert store.healthy() is True
    assert store.claim_exit("t1", "p1", 1.0) is True  # the failed claim did not count
    store.save_stops([snap("p2"), snap("p3")])
    assert [s.id for s in store.load_stops()] == ["p1", "p2", "p3"]


_RO_CHILD = r"""
import json, sys
from actors.messages import Contract, SecType, StopSnapshot
from supervisor.store.sqlite_store import Store, StoreUnavailable
path = sys.argv[1]
try:
    open(path, "r+b").close()
    print(json.dumps({"skip": "file mode does not bind this process"}))
    sys.exit(0)
except PermissionError:
    pass
s = Store(path)
out = {"stops": len(s.load_stops()), "healthy": s.healthy(), "errors": []}
sn = StopSnapshot("p9", Contract("SPY", SecType.STK), 1.0, 1.0, 0.0, True, 1.0, None, 0, False, 0)
for name, call in [("save_stop", lambda: s.save_stop(sn)),
                   ("append", lambda: s.append(t=1.0, kind="check", payload={})),
                   ("claim_exit", lambda: s.claim_exit("t", "p9", 1.0))]:
    try:
        call()
        out["errors"].append(None)
    except StoreUnavailable as e:
        out["errors"].append(e.sqlite_error)
s.close()
print(json.dumps(out))
"""


def test_file_mode_read_only_under_the_operating_system(store: Store, db: Path) -> None:
    store.save_stop(snap())
    store.close()
    cmd = [sys.executable, "-c", _RO_CHILD, str(db)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("root without setpriv: cannot make file modes bind")
        cmd = [setpriv, "--bounding-set=-dac_override,-dac_read_search", *cmd]
    db.chmod(0o444)
    try:
        proc = subprocess.run(
            cmd, capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=30
        )
    finally:
        db.chmod(0o644)
    if proc.returncode != 0 and b"setpriv" in proc.stderr:
        pytest.skip(f"setpriv refused: {proc.stderr.decode().strip()}")
    assert proc.returncode == 0, proc.stderr.decode()
    result = json.loads(proc.stdout)
    if "skip" in result:
        pytest.skip(result["skip"])
    assert result == {
        "stops": 1,
        "healthy": False,
        "errors": ["SQLITE_READONLY", "SQLITE_READONLY", "SQLITE_READONLY"],
    }


def test_locked_database_fails_within_the_busy_timeout_then_recovers(db: Path) -> None:
    store = Store(db, busy_timeout_ms=150)
    store.save_stop(snap())
    blocker = sqlite3.connect(db, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        for call in (
            lambda: store.append(t=1.0, kind="check", payload={}),
            lambda: store.save_stop(snap(stop=1.0)),
            lambda: store.append_many([JournalRow.entry(t=1.0, kind="x", payload={})] * 3),
            lambda: store.claim_exit("t1", "p1", 1.0),
        ):
            start = time.monotonic()
            with pytest.raises(StoreUnavailable) as exc:
                call()
            elapsed = time.monotonic() - start
            assert exc.value.sqlite_error == "SQLITE_BUSY"
            assert 0.1 <= elapsed < 2.0, elapsed
        assert store.healthy() is False
        assert store.load_stops() == [snap()]  # WAL: readers are not blocked
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert store.healthy() is True
    assert store.journal() == []  # the failed batch left nothing behind
    assert store.claim_exit("t1", "p1", 1.0) is True
    store.append(t=1.0, kind="check", payload={})
    store.close()


def test_full_database_raises_and_keeps_running(store: Store) -> None:
    with store._lock:  # test hook: cap the file at its current size
        (pages,) = store._conn.execute("PRAGMA page_count").fetchone()
        store._conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(StoreUnavailable) as exc:
        store.append_many([JournalRow.entry(t=1.0, kind="check", payload={"pad": "x" * 4000})] * 20)
    assert exc.value.sqlite_error == "SQLITE_FULL"
    assert store.journal() == []
    with store._lock:
        store._conn.execute("PRAGMA max_page_count = 1073741823")
    assert store.append(t=1.0, kind="check", payload={}) == 1


def test_closed_store_raises_and_is_unhealthy(store: Store) -> None:
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreUnavailable):
        store.append(t=1.0, kind="check", payload={})
    with pytest.raises(StoreUnavailable):
        store.load_stops()
    assert store.healthy() is False


def test_a_file_that_is_not_a_database_is_refused_at_open(db: Path) -> None:
    db.write_bytes(b"this is not an SQLite file, just some bytes" * 100)
    with pytest.raises(StoreUnavailable, match="open") as exc:
        Store(db)
    assert exc.value.sqlite_error == "SQLITE_NOTADB"


def test_newer_schema_is_refused(db: Path) -> None:
    Store(db).close()
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(StoreUnavailable, match="newer"):
        Store(db)


def test_settings_are_wal_and_full(store: Store) -> None:
    with store._lock:
        assert store._conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert store._conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
        assert store._conn.execute("PRAGMA busy_timeout").fetchone() == (200,)


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


# ---------------------------------------------------------------- journal.py


def test_journal_frame_columns_types_and_flattening(store: Store) -> None:
    empty = journal_frame(store)
    assert empty.columns == list(COLUMNS) and empty.height == 0
    _fill(store)
    store.append(
        t=106.0,
        kind="check",
        payload={
            "allowed": False,
            "reasons": [
                {"code": "max_portfolio_delta", "value": 600.0, "limit": 500.0},
                {"code": "breaker_open", "value": None, "limit": None},
            ],
        },
    )
    store.append(t=107.0, kind="check", payload={"allowed": False, "reasons": ["stale_data"]})
    store.append(t=math.nan, kind="admin", payload={"action": "reset", "stop": "oops"})
    store.append(t=108.0, kind="breaker", payload={"from": "open", "to": "half_open"})
    df = journal_frame(store, limit=100)
    assert df.columns == list(COLUMNS)
    assert df.schema == empty.schema
    assert dict(df.schema) == {
        "seq": pl.Int64, "t": pl.Float64, "wall_t": pl.Float64,
        "time": pl.Datetime("us", "UTC"), "kind": pl.String, "position_id": pl.String,
        "payload": pl.String, "action": pl.String, "stop": pl.Float64,
        "ref_price": pl.Float64, "to_state": pl.String, "from_state": pl.String,
        "allowed": pl.Boolean, "reasons": pl.String,
    }  # fmt: skip
    assert df["time"][0].timestamp() == 100.0
    assert df["time"][-2] is None  # NaN t
    assert df["stop"][-2] is None  # a non-number is not forced into the column
    assert df.row(-1, named=True)["from_state"] == "open"  # the wire format's spelling
    assert df.row(-1, named=True)["to_state"] == "half_open"
    assert df["action"].to_list()[:6] == [
        "ACTIVATE", None, "UPDATE", "UPDATE", None, "TRIGGER",
    ]  # fmt: skip
    assert df.row(4, named=True)["to_state"] == "open"
    assert df["reasons"].to_list()[6:8] == ["max_portfolio_delta,breaker_open", "stale_data"]
    assert json.loads(df["payload"][0]) == {"action": "ACTIVATE", "stop": 95.0}
    assert journal_frame(store, kind="stop", position_id="p1").height == 3


def test_summarize_counts(store: Store) -> None:
    _fill(store)
    store.append(t=106.0, kind="check", payload={"allowed": False, "reasons": ["stale_data"]})
    store.append(
        t=107.0,
        kind="check",
        payload={"allowed": False, "reasons": [{"code": "stale_data"}, {"code": "breaker_open"}]},
    )
    store.append(t=108.0, kind="stop", position_id="p2", payload={"action": "TRIGGER"})
    out = summarize(journal_frame(store))
    got = {(g, k): c for g, k, c in out.iter_rows()}
    assert got == {
        ("kind", "stop"): 5,
        ("kind", "check"): 3,
        ("kind", "breaker"): 1,
        ("check", "denied"): 2,
        ("check", "allowed"): 1,
        ("reason", "stale_data"): 2,
        ("reason", "breaker_open"): 1,
        ("trigger", "p1"): 1,
        ("trigger", "p2"): 1,
    }
    assert out["group"].to_list()[:3] == ["kind"] * 3
    assert out["count"].to_list()[:3] == [5, 3, 1]
    with Store(store.path, read_only=True) as ro:
        assert summarize(journal_frame(ro, kind="none")).height == 0


def test_write_csv_and_parquet_round_trip(store: Store, tmp_path: Path) -> None:
    _fill(store)
    store.append(t=106.0, kind="check", payload={"allowed": True, "reasons": []})
    df = journal_frame(store)
    write(df, str(tmp_path / "j.parquet"))
    assert pl.read_parquet(tmp_path / "j.parquet").equals(df)
    write(df, str(tmp_path / "j.CSV"))
    assert pl.read_csv(tmp_path / "j.CSV", schema=df.schema).equals(df)
    with pytest.raises(ValueError, match=r"\.csv or \.parquet"):
        write(df, str(tmp_path / "j.xlsx"))
    assert not (tmp_path / "j.xlsx").exists()


def test_run_journal_command(
    store: Store, db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fill(store)
    args: dict[str, Any] = {
        "since": None, "until": None, "kind": None, "position": None,
        "limit": 100, "out": None, "summary": False,
    }  # fmt: skip
    assert run_journal_command(str(db), **{**args, "since": "yesterday"}) == 2
    assert "yesterday" in capsys.readouterr().err
    assert run_journal_command(str(db), **{**args, "until": "nan"}) == 2
    assert run_journal_command(str(db), **{**args, "limit": 0}) == 2
    assert run_journal_command(str(db), **{**args, "out": str(tmp_path / "x.json")}) == 2
    capsys.readouterr()

    assert run_journal_command(str(db), **{**args, "kind": "breaker"}) == 0
    printed = capsys.readouterr().out
    assert "open" in printed and "ACTIVATE" not in printed

    out = tmp_path / "since.parquet"
    assert (
        run_journal_command(
            str(db), **{**args, "since": "1970-01-01T00:01:42Z", "until": "104", "out": str(out)}
        )
        == 0
    )
    assert pl.read_parquet(out)["t"].to_list() == [102.0, 103.0]

    # without --since: the newest rows
    out = tmp_path / "tail.csv"
    assert run_journal_command(str(db), **{**args, "limit": 2, "out": str(out)}) == 0
    assert pl.read_csv(out)["t"].to_list() == [104.0, 105.0]

    out = tmp_path / "summary.csv"
    assert run_journal_command(str(db), **{**args, "summary": True, "out": str(out)}) == 0
    assert pl.read_csv(out).filter(pl.col("group") == "trigger")["key"].to_list() == ["p1"]

    assert run_journal_command(str(tmp_path / "missing.sqlite"), **args) == 1
    assert "cannot read" in capsys.readouterr().err

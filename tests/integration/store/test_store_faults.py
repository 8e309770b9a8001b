"""Faults on a real SQLite file: read-only, locked, full, closed, not a database, too new.

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

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from store_helpers import REPO, snap

from supervisor.store.sqlite_store import JournalRow, Store, StoreUnavailable

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
            lambda: store.append_many([JournalRow.entry(t=1.0, kind="check", payload={})] * 3),
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


def test_settings_are_wal_and_full(store: Store) -> None:
    with store._lock:
        assert store._conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert store._conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
        assert store._conn.execute("PRAGMA busy_timeout").fetchone() == (200,)

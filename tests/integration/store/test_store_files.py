"""The store's files under a running daemon: deleted, renamed, replaced, truncated.

SQLite keeps the descriptors it opened, so without the store's own checks a
deleted store goes unnoticed (``healthy()`` says ok, writes land in an
unlinked inode, a restart finds an empty store), and a truncated ``-shm``
kills the process with SIGBUS. The SIGBUS cases run in a child process, so a
signal shows up as the child's death rather than the test runner's.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from store_helpers import run_child, snap

from supervisor.store.sqlite_store import Store, StoreReplaced, StoreUnavailable

SIDES = ("", "-wal", "-shm")


def _writes(store: Store) -> dict[str, Callable[[], object]]:
    return {
        "append": lambda: store.append(t=2.0, kind="check", payload={}),
        "record": lambda: store.record(t=2.0, kind="stop", payload={}, stop=snap()),
        "save_stop": lambda: store.save_stop(snap()),
        "save_breaker": lambda: store.save_breaker({"state": "open"}),
        "claim_exit": lambda: store.claim_exit("t1", "p1", 2.0),
    }


def _assert_refused(store: Store, why: str) -> None:
    assert store.healthy() is False
    assert isinstance(store.last_error, StoreReplaced)
    for name, call in _writes(store).items():
        with pytest.raises(StoreReplaced, match=why) as exc:
            call()
        assert exc.value.operation == name
        assert "database file replaced or missing" in str(exc.value)


def test_deleting_the_store_under_a_running_daemon_is_noticed(store: Store, db: Path) -> None:
    store.record(t=1.0, kind="stop", payload={"action": "TRIGGER"}, stop=snap(triggered=True))
    assert store.claim_exit("p1:1", "p1", 1.0) is True
    assert store.healthy() is True
    for side in SIDES:
        os.unlink(f"{db}{side}")
    _assert_refused(store, "is gone")
    # the restart after it finds a brand-new store, and says so
    with Store(db) as fresh:
        assert fresh.created_fresh is True and fresh.store_id != store.store_id
        assert fresh.load_stops() == [] and fresh.journal() == []


def test_deleting_only_the_wal_is_noticed(store: Store, db: Path) -> None:
    store.append(t=1.0, kind="check", payload={})
    os.unlink(f"{db}-wal")
    _assert_refused(store, "WAL file")


def test_renaming_the_store_away_is_noticed_and_renaming_back_heals(
    store: Store, db: Path, tmp_path: Path
) -> None:
    store.append(t=1.0, kind="check", payload={})
    moved = tmp_path / "moved.sqlite"
    os.rename(db, moved)
    _assert_refused(store, "is gone")
    os.rename(moved, db)
    assert store.healthy() is True
    store.append(t=3.0, kind="check", payload={})
    assert [r.t for r in store.journal()] == [1.0, 3.0]


@pytest.mark.parametrize("other", ["another store", "another database", "a copy of itself"])
def test_replacing_the_store_with_another_file_is_noticed(
    store: Store, db: Path, tmp_path: Path, other: str
) -> None:
    store.append(t=1.0, kind="check", payload={})
    src = tmp_path / "other.sqlite"
    if other == "another store":
        Store(src).close()
    elif other == "another database":
        with sqlite3.connect(src) as raw:
            raw.execute("CREATE TABLE x (a)")
        raw.close()
    else:
        shutil.copyfile(db, src)  # same content, same store id: still not the open file
    os.replace(src, db)
    _assert_refused(store, "another file")


def test_a_changed_store_id_is_refused_on_every_write(store: Store, db: Path) -> None:
    store.append(t=1.0, kind="check", payload={})
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE meta SET value = 'someone-else' WHERE key = 'store_id'")
    raw.close()
    with pytest.raises(StoreReplaced, match="someone-else"):
        store.append(t=2.0, kind="check", payload={})
    assert store.healthy() is False
    assert [r.t for r in store.journal()] == [1.0]  # the refused write left nothing


def test_store_id_and_created_fresh(db: Path, tmp_path: Path) -> None:
    with Store(db) as first:
        assert first.created_fresh is True and first.migrated_from is None
        assert len(first.store_id) == 32
        store_id = first.store_id
    with Store(db) as again, Store(db, read_only=True) as ro:
        assert again.created_fresh is False and again.store_id == store_id
        assert ro.created_fresh is False and ro.store_id == store_id
    with Store(tmp_path / "other.sqlite") as other:
        assert other.store_id != store_id


def test_an_sqlite_file_that_is_not_a_store_is_refused(db: Path) -> None:
    with sqlite3.connect(db) as raw:
        raw.execute("CREATE TABLE theirs (a)")
    raw.close()
    with pytest.raises(StoreUnavailable, match="not a risk-supervisor store"):
        Store(db)
    with sqlite3.connect(db) as raw:
        assert [r[0] for r in raw.execute("SELECT name FROM sqlite_master")] == ["theirs"]
    raw.close()


# -------------------------------------------------------------------------- -shm

_TRUNCATED_SHM = r"""
import json, os, sys
from supervisor.store.sqlite_store import Store, StoreUnavailable
path, first = sys.argv[1], sys.argv[2]
s = Store(path)
for i in range(3):
    s.append(t=float(i), kind="check", payload={"i": i})
os.truncate(path + "-shm", 0)  # what a cleanup script or a stray second opener can do
calls = {
    "append": lambda: s.append(t=9.0, kind="check", payload={}),
    "journal": s.journal,
    "healthy": s.healthy,
}
out = {"first": None}
try:
    calls[first]()
    out["first"] = "no fault"
except StoreUnavailable as e:
    out["first"] = [type(e).__name__, e.operation, e.message]
if first == "healthy":
    out["first"] = [type(s.last_error).__name__, s.last_error.operation, s.last_error.message]
out["healthy_after"] = s.healthy()
s.append(t=10.0, kind="check", payload={})
out["journal"] = [r.t for r in s.journal()]
print(json.dumps(out), flush=True)
os.truncate(path + "-shm", 0)
# no close(): the interpreter's exit closes the connection, which reads -shm
"""


@pytest.mark.parametrize("first", ["append", "journal", "healthy"])
def test_a_truncated_wal_index_is_a_store_fault_not_a_sigbus(db: Path, first: str) -> None:
    proc = run_child(_TRUNCATED_SHM, str(db), first)
    assert proc.returncode != -signal.SIGBUS, (
        f"SQLite touched a truncated -shm: SIGBUS; printed {proc.stdout!r}"
    )
    assert proc.returncode == 0, proc.stderr.decode()
    out = json.loads(proc.stdout)
    kind, operation, message = out["first"]
    assert (kind, operation) == ("StoreReplaced", first)
    assert "truncated" in message and "size is restored" in message
    # reported once, then SQLite rebuilt the index from the WAL: nothing was lost
    assert out["healthy_after"] is True
    assert out["journal"] == [0.0, 1.0, 2.0, 10.0]
    with Store(db) as s:
        assert [r.t for r in s.journal()] == [0.0, 1.0, 2.0, 10.0]


_UNWRITABLE_SHM = r"""
import json, sys
from supervisor.store.sqlite_store import Store, StoreUnavailable
path = sys.argv[1]
try:
    open(path + "-shm", "r+b").close()
    print(json.dumps({"skip": "file mode does not bind this process"}))
    sys.exit(0)
except PermissionError:
    pass
out = {}
try:
    s = Store(path)
    out["opened"] = True
    out["healthy"] = s.healthy()
    try:
        s.append(t=2.0, kind="check", payload={})
        out["append"] = None
    except StoreUnavailable as e:
        out["append"] = e.sqlite_error
except StoreUnavailable as e:
    out["opened"] = e.sqlite_error
print(json.dumps(out))
"""

_CRASHED = r"""
import os, sys
from supervisor.store.sqlite_store import Store
s = Store(sys.argv[1])
s.append(t=1.0, kind="check", payload={})
os._exit(0)  # a crash: -wal and -shm stay behind
"""


@pytest.mark.parametrize("shm", ["left by a crash", "empty"])
def test_an_unwritable_wal_index_is_a_clean_store_fault(db: Path, shm: str) -> None:
    assert run_child(_CRASHED, str(db)).returncode == 0
    shm_path = Path(f"{db}-shm")
    if shm == "empty":
        shm_path.write_bytes(b"")
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("root without setpriv: cannot make file modes bind")
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search"]
    shm_path.chmod(0o444)
    try:
        proc = run_child(_UNWRITABLE_SHM, str(db), prefix=prefix)
    finally:
        shm_path.chmod(0o644)
    if proc.returncode != 0 and b"setpriv" in proc.stderr:
        pytest.skip(f"setpriv refused: {proc.stderr.decode().strip()}")
    assert proc.returncode == 0, f"child died ({proc.returncode}): {proc.stderr.decode()}"
    out = json.loads(proc.stdout)
    if "skip" in out:
        pytest.skip(out["skip"])
    # refused at open, or opened and every write refused: never a signal, never a write
    assert out in (
        {"opened": "SQLITE_READONLY"},
        {"opened": "SQLITE_READONLY_CANTINIT"},
        {"opened": True, "healthy": False, "append": "SQLITE_READONLY"},
    ), out
    with Store(db) as s:
        assert [r.t for r in s.journal()] == [1.0]


def test_an_exclusive_store_has_no_wal_index_file(db: Path) -> None:
    with Store(db, exclusive=True) as s:
        s.append(t=1.0, kind="check", payload={})
        assert s.healthy() is True
        assert not Path(f"{db}-shm").exists()  # the WAL index lives in heap memory
        with pytest.raises(StoreUnavailable) as exc:
            Store(db, read_only=True)  # the price: nobody else can read it meanwhile
        assert exc.value.sqlite_error == "SQLITE_BUSY"
        os.unlink(db)
        with pytest.raises(StoreReplaced, match="is gone"):
            s.append(t=2.0, kind="check", payload={})
    with pytest.raises(ValueError, match="read-only"):
        Store(db, exclusive=True, read_only=True)


def test_a_relative_path_survives_a_chdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with Store("rel.sqlite") as s:
        (tmp_path / "elsewhere").mkdir()
        monkeypatch.chdir(tmp_path / "elsewhere")
        s.append(t=1.0, kind="check", payload={})
        assert s.healthy() is True
        assert s.path == "rel.sqlite"

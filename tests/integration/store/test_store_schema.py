"""Schema versions on real files: a version-1 store (as shipped) opens and migrates.

The version-1 file is built here from version 1's DDL, copied into this test
on purpose: the test must keep describing the files that exist on disk even
if the code's copy of that DDL is ever edited.
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import pytest
from store_helpers import QQQ_CALL, SPY_PUT, snap

from supervisor.store.sqlite_store import SCHEMA_VERSION, Store, StoreUnavailable, TriggerRow

V1_DDL = (
    "CREATE TABLE schema_version (version INTEGER NOT NULL, applied_wall_t REAL NOT NULL)",
    """CREATE TABLE stops (id TEXT PRIMARY KEY, symbol TEXT NOT NULL, sec_type TEXT NOT NULL,
        opt_right TEXT, strike REAL, expiry TEXT, multiplier REAL, qty REAL, entry_price REAL,
        opened_t REAL, active INTEGER NOT NULL, extreme REAL, stop REAL,
        breaches INTEGER NOT NULL, triggered INTEGER NOT NULL, ignored_quotes INTEGER NOT NULL,
        trigger_id TEXT, updated_wall_t REAL NOT NULL)""",
    """CREATE TABLE breaker (id INTEGER PRIMARY KEY CHECK (id = 1), state TEXT NOT NULL,
        updated_wall_t REAL NOT NULL)""",
    """CREATE TABLE journal (seq INTEGER PRIMARY KEY AUTOINCREMENT, t REAL,
        wall_t REAL NOT NULL, kind TEXT NOT NULL, position_id TEXT, payload TEXT NOT NULL)""",
    "CREATE INDEX journal_kind ON journal(kind, seq)",
    "CREATE INDEX journal_position ON journal(position_id, seq)",
    "CREATE INDEX journal_t ON journal(t)",
    """CREATE TABLE exits (trigger_id TEXT PRIMARY KEY, position_id TEXT, claimed_t REAL,
        claimed_wall_t REAL, order_id INTEGER, detail TEXT, recorded_wall_t REAL)""",
    "CREATE TABLE health (id INTEGER PRIMARY KEY CHECK (id = 1), wall_t REAL NOT NULL)",
)

V1_STOPS = [
    snap("p1", triggered=True, trigger_id="p1:105.0"),
    snap("p2", contract=SPY_PUT, qty=-3.0, stop=None, active=False),
]


def make_v1(path: Path) -> None:
    """A version-1 store with a little of everything, as version-1 code wrote it."""
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA journal_mode = WAL")
        for ddl in V1_DDL:
            raw.execute(ddl)
        raw.execute("INSERT INTO schema_version VALUES (1, 1.0)")
        for s in V1_STOPS:
            c = s.contract
            raw.execute(
                "INSERT INTO stops VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (s.id, c.symbol, c.sec_type.value, None if c.right is None else c.right.value,
                 c.strike, c.expiry, c.multiplier, s.qty, s.entry_price, s.opened_t,
                 int(s.active), s.extreme, s.stop, s.breaches, int(s.triggered),
                 s.ignored_quotes, s.trigger_id, 1.0),
            )  # fmt: skip
        raw.execute("INSERT INTO breaker VALUES (1, ?, 1.0)", ('{"state":"open","due":Infinity}',))
        rows = [
            (100.0, "position", "q1", {"id": "q1", "symbol": "QQQ", "qty": 1}),
            (101.0, "stop", "q1", {"action": "ACTIVATE"}),
            (102.0, "stop", "q1", {"action": "TRIGGER", "trigger_id": "q1:102.0"}),
            (105.0, "stop", "p1", {"action": "TRIGGER", "trigger_id": "p1:105.0"}),
            (106.0, "stop", "gone", {"action": "TRIGGER", "trigger_id": "gone:106.0"}),
            (107.0, "some_v1_kind", None, {"x": 1}),
        ]
        for t, kind, pid, payload in rows:
            raw.execute(
                "INSERT INTO journal (t, wall_t, kind, position_id, payload) VALUES (?,?,?,?,?)",
                (t, 1.0, kind, pid, json.dumps(payload)),
            )
        raw.execute("INSERT INTO exits VALUES ('p1:105.0', 'p1', 105.0, 1.0, 42, '{}', 2.0)")
        raw.execute(
            "INSERT INTO exits (trigger_id, position_id, claimed_t, claimed_wall_t) "
            "VALUES ('kill:k1:p2', 'p2', 110.0, 3.0)"
        )
    raw.close()


def schema_of(path: Path) -> list[tuple[object, ...]]:
    """Tables with their columns, indexes with theirs: what a store's schema means."""
    out: list[tuple[object, ...]] = []
    with sqlite3.connect(path) as raw:
        for kind, name, table in raw.execute(
            "SELECT type, name, tbl_name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' "
            "ORDER BY type, name"
        ).fetchall():
            if kind == "table":
                out.append((kind, name, raw.execute(f"PRAGMA table_info({name})").fetchall()))
            else:
                cols = raw.execute(f"PRAGMA index_xinfo({name})").fetchall()
                out.append((kind, name, table, cols))
    raw.close()
    return out


def test_a_version_1_store_opens_and_migrates(tmp_path: Path) -> None:
    old = tmp_path / "v1.sqlite"
    make_v1(old)
    with Store(old) as s:
        assert (s.migrated_from, s.created_fresh) == (1, False)
        assert len(s.store_id) == 32
        store_id = s.store_id
        # everything version 1 held is still there
        assert s.load_stops() == V1_STOPS
        assert s.load_breaker() == {"state": "open", "due": math.inf}
        assert [r.kind for r in s.journal()][-1] == "some_v1_kind"
        done = s.exit_for("p1:105.0")
        assert done is not None and (done["order_id"], done["reason"]) == (42, "stop")
        flat = s.exit_for("kill:k1:p2")
        assert flat is not None and flat["reason"] == "flatten" and flat["journal_seq"] is None
        # the TRIGGERs journaled under version 1 are indexed, with their symbols
        assert s.triggers_since(0.0) == [
            TriggerRow(102.0, "q1", "QQQ"),  # from its position row
            TriggerRow(105.0, "p1", "SPY"),  # from its saved stop
            TriggerRow(106.0, "gone", None),  # nothing left names it
        ]
        # and version 2's state works on it
        s.save_money({"hwm": 1.0})
        s.save_stop(snap("iron", contract=QQQ_CALL), extra={"legs": []})
        assert s.load_stop_extras() == {"iron": {"legs": []}}
    with Store(old) as again:
        assert (again.migrated_from, again.created_fresh) == (None, False)
        assert again.store_id == store_id
    with sqlite3.connect(old) as raw:
        assert raw.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    raw.close()


def test_a_migrated_store_has_exactly_a_fresh_store_s_schema(tmp_path: Path) -> None:
    make_v1(tmp_path / "old.sqlite")
    Store(tmp_path / "old.sqlite").close()
    Store(tmp_path / "new.sqlite").close()
    assert schema_of(tmp_path / "old.sqlite") == schema_of(tmp_path / "new.sqlite")


def test_a_version_1_store_is_not_migrated_read_only(tmp_path: Path) -> None:
    old = tmp_path / "v1.sqlite"
    make_v1(old)
    with pytest.raises(StoreUnavailable, match="opened writable to migrate"):
        Store(old, read_only=True)
    assert "meta" not in {entry[1] for entry in schema_of(old)}


def test_a_migration_that_fails_leaves_the_file_at_version_1(tmp_path: Path) -> None:
    old = tmp_path / "v1.sqlite"
    make_v1(old)
    with sqlite3.connect(old) as raw:
        raw.execute("CREATE TABLE money (x)")  # in the way of the migration's CREATE TABLE
    raw.close()
    before = schema_of(old)
    with pytest.raises(StoreUnavailable, match="open") as exc:
        Store(old)
    assert "money" in str(exc.value)
    assert schema_of(old) == before  # one transaction: nothing half-migrated
    with sqlite3.connect(old) as raw:
        raw.execute("DROP TABLE money")
    raw.close()
    with Store(old) as s:
        assert s.migrated_from == 1 and s.load_stops() == V1_STOPS


def test_newer_schema_is_refused(db: Path) -> None:
    Store(db).close()
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE schema_version SET version = 99")
    raw.close()
    with pytest.raises(StoreUnavailable, match="newer"):
        Store(db)

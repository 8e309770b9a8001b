"""The store's tables, versioned, and the migrations that bring an old file up to date.

A file is created by running version 1's DDL and then every migration in
order, the same path an old file takes: a fresh store and a migrated one
cannot drift apart. ``schema_version`` holds the version; a file newer than
this code is refused (it would be written with a schema the code does not
know), and a SQLite file with tables but no ``schema_version`` is refused as
"not a risk-supervisor store" rather than having tables added to it.

Version 2 (this round):

* ``meta``: ``store_id``, a random id written once when the file is created
  (or first migrated). It is the store's marker: checked on every write and
  by ``healthy()``, and exposed so that the daemon can tell, at start, the
  store it wrote from a new one.
* ``stops.extra``: opaque JSON beside a stop state (a strategy's legs).
* ``exits.reason`` (``stop`` | ``flatten``) and ``exits.journal_seq`` (the
  journal row a claim was made with, when it was made in ``record``).
* ``money``, ``kills``, ``strategies``: the loss-limit state, every kill,
  the trader's declared strategies.
* ``triggers``: one row per TRIGGER stop row of the journal (same seq), with
  the position's symbol, indexed by time: the cooldown and stop-guard state
  are recomputed from it at start without scanning the journal. Backfilled
  from the journal on migration.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Final

__all__ = [
    "MIGRATIONS",
    "SCHEMA_V1",
    "SCHEMA_VERSION",
    "TRIGGER_SELECT",
    "SchemaState",
    "ensure_schema",
    "read_store_id",
    "schema_version",
]

SCHEMA_VERSION: Final = 2

#: Version 1 exactly as it shipped: files of that version exist on disk.
SCHEMA_V1: Final = (
    """CREATE TABLE IF NOT EXISTS schema_version (
        version INTEGER NOT NULL,
        applied_wall_t REAL NOT NULL)""",
    # Float columns are nullable on purpose: SQLite stores NaN as NULL, and a
    # NaN must not make the write fail (it is read back as NaN).
    """CREATE TABLE IF NOT EXISTS stops (
        id TEXT PRIMARY KEY,
        symbol TEXT NOT NULL,
        sec_type TEXT NOT NULL,
        opt_right TEXT,
        strike REAL,
        expiry TEXT,
        multiplier REAL,
        qty REAL,
        entry_price REAL,
        opened_t REAL,
        active INTEGER NOT NULL,
        extreme REAL,
        stop REAL,
        breaches INTEGER NOT NULL,
        triggered INTEGER NOT NULL,
        ignored_quotes INTEGER NOT NULL,
        trigger_id TEXT,
        updated_wall_t REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS breaker (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        state TEXT NOT NULL,
        updated_wall_t REAL NOT NULL)""",
    # AUTOINCREMENT: a seq is never reused even if the journal is pruned or
    # truncated, so a reader's "since_seq" cursor can never skip new rows.
    """CREATE TABLE IF NOT EXISTS journal (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        t REAL,
        wall_t REAL NOT NULL,
        kind TEXT NOT NULL,
        position_id TEXT,
        payload TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS journal_kind ON journal(kind, seq)",
    "CREATE INDEX IF NOT EXISTS journal_position ON journal(position_id, seq)",
    "CREATE INDEX IF NOT EXISTS journal_t ON journal(t)",
    """CREATE TABLE IF NOT EXISTS exits (
        trigger_id TEXT PRIMARY KEY,
        position_id TEXT,
        claimed_t REAL,
        claimed_wall_t REAL,
        order_id INTEGER,
        detail TEXT,
        recorded_wall_t REAL)""",
    """CREATE TABLE IF NOT EXISTS health (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        wall_t REAL NOT NULL)""",
)

#: The row of ``triggers`` for the journal row ``j``: its symbol from the
#: caller (first parameter), else the payload, else the saved stop, else the
#: position's last ``position`` row. Shared by ``record`` and the migration.
TRIGGER_SELECT: Final = """
    SELECT j.seq, j.t, j.position_id,
        COALESCE(
            {symbol},
            json_extract(j.payload, '$.symbol'),
            (SELECT s.symbol FROM stops s WHERE s.id = j.position_id),
            (SELECT json_extract(p.payload, '$.symbol') FROM journal p
              WHERE p.position_id = j.position_id AND p.kind = 'position' AND p.seq < j.seq
              ORDER BY p.seq DESC LIMIT 1)),
        json_extract(j.payload, '$.trigger_id')
    FROM journal j"""

# Migrations from version N to N+1, applied in order inside one transaction.
MIGRATIONS: Final[dict[int, tuple[str, ...]]] = {
    1: (
        """CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL)""",
        "INSERT INTO meta (key, value) VALUES ('store_id', lower(hex(randomblob(16))))",
        "ALTER TABLE stops ADD COLUMN extra TEXT",
        "ALTER TABLE exits ADD COLUMN reason TEXT NOT NULL DEFAULT 'stop'",
        "ALTER TABLE exits ADD COLUMN journal_seq INTEGER",
        # A flatten claim's key is "kill:<kill id>:<position id>".
        """UPDATE exits SET reason = 'flatten'
            WHERE trigger_id LIKE 'kill:%:%'""",
        """CREATE TABLE money (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            state TEXT NOT NULL,
            updated_wall_t REAL NOT NULL)""",
        """CREATE TABLE kills (
            id TEXT PRIMARY KEY,
            t REAL,
            mode TEXT NOT NULL,
            cause TEXT NOT NULL,
            operator TEXT,
            state TEXT NOT NULL,
            created_wall_t REAL NOT NULL,
            updated_wall_t REAL NOT NULL)""",
        "CREATE INDEX kills_t ON kills(t, created_wall_t)",
        """CREATE TABLE strategies (
            id TEXT PRIMARY KEY,
            spec TEXT NOT NULL,
            updated_wall_t REAL NOT NULL)""",
        """CREATE TABLE triggers (
            seq INTEGER PRIMARY KEY,
            t REAL,
            position_id TEXT,
            symbol TEXT,
            trigger_id TEXT)""",
        "CREATE INDEX triggers_t ON triggers(t, seq)",
        "INSERT INTO triggers (seq, t, position_id, symbol, trigger_id) "
        + TRIGGER_SELECT.format(symbol="NULL")
        + " WHERE j.kind = 'stop' AND json_extract(j.payload, '$.action') = 'TRIGGER'",
    ),
}


@dataclass(frozen=True, slots=True)
class SchemaState:
    """What opening a file found and did."""

    store_id: str
    created_fresh: bool  # this open created the store (the file was new or empty)
    migrated_from: int | None  # the version it had, when this open migrated it


class SchemaRefused(Exception):
    """The file cannot be used as a store by this code (the message says why)."""


def schema_version(conn: sqlite3.Connection) -> int | None:
    """The file's schema version, None when it has no ``schema_version`` table."""
    has_table = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if has_table is None:
        return None
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return None if row is None or row[0] is None else int(row[0])


def read_store_id(conn: sqlite3.Connection) -> str | None:
    """The store's marker, None when the file has none."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()
    return None if row is None else str(row[0])


def _is_empty(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is None


def ensure_schema(conn: sqlite3.Connection, path: str, *, read_only: bool) -> SchemaState:
    """Bring the file to ``SCHEMA_VERSION`` (creating it if empty) and put it in WAL mode.

    Raises :class:`SchemaRefused` for a file this code must not write into,
    ``sqlite3.Error`` for SQLite's own failures. A file already at this
    version is not written at all, so that a file that has become read-only
    still opens and can be restored from.
    """
    version = schema_version(conn)
    if version == SCHEMA_VERSION:
        if not read_only and conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        return SchemaState(_store_id(conn, path), created_fresh=False, migrated_from=None)
    if version is not None and version > SCHEMA_VERSION:
        raise SchemaRefused(
            f"{path} has schema version {version}, newer than this code's "
            f"{SCHEMA_VERSION}: refusing to write into it"
        )
    if version is None and not _is_empty(conn):
        raise SchemaRefused(f"{path} is an SQLite file but not a risk-supervisor store")
    if read_only:
        why = (
            "is not a risk-supervisor store"
            if version is None
            else f"has schema version {version} and must first be opened writable to migrate"
        )
        raise SchemaRefused(f"{path} {why}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Re-read inside the write lock: another process may have set up the
        # file since we looked.
        version = schema_version(conn)
        created = version is None
        if version is None:
            if not _is_empty(conn):
                raise SchemaRefused(f"{path} is an SQLite file but not a risk-supervisor store")
            for ddl in SCHEMA_V1:
                conn.execute(ddl)
            conn.execute(
                "INSERT INTO schema_version (version, applied_wall_t) VALUES (1, ?)",
                (time.time(),),
            )
            version = 1
        start = version
        for v in range(version, SCHEMA_VERSION):
            for ddl in MIGRATIONS[v]:
                conn.execute(ddl)
        if start != SCHEMA_VERSION:
            conn.execute(
                "UPDATE schema_version SET version = ?, applied_wall_t = ?",
                (SCHEMA_VERSION, time.time()),
            )
        state = SchemaState(
            _store_id(conn, path),
            created_fresh=created,
            migrated_from=None if created or start == SCHEMA_VERSION else start,
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return state


def _store_id(conn: sqlite3.Connection, path: str) -> str:
    store_id = read_store_id(conn)
    if not store_id:
        raise SchemaRefused(f"{path} has no store id (its meta table was emptied)")
    return store_id

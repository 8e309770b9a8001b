"""The daemon's memory across crashes: stop states, breaker state, journal, exit claims.

Everything the supervisor decides is written here *before* anyone acts on it, so
that a ``kill -9`` at any instant leaves either the decision on disk or no action
taken, never an action without its record. On start the daemon restores each
position's trailing stop and the breaker from this file, and ``claim_exit``
makes sure an exit order goes out at most once per trigger, however many times
the process dies and comes back in between.

One SQLite file in WAL mode. WAL lets the ``risk-supervisor journal`` command
(and reports) read while the daemon writes, and a commit is one append to the
WAL instead of a rewrite of the database pages.

Durability: ``synchronous=FULL`` by default. A committed transaction survives a
process crash under either NORMAL or FULL (the WAL frames are in the OS page
cache), but only FULL also survives a power loss or kernel crash: with NORMAL
the last commits before such a crash may vanish, and a TRIGGER journaled and
claimed, then lost, while its exit order did reach the broker is exactly the
"action without a record" this module exists to prevent. Measured on this
project's machine (ext4 on a virtio disk, SQLite 3.40, Python 3.11, a shared and
noisy VM: ranges over five runs of 2000-3000 calls, see the ``__main__`` block at
the end of this file; schema below, three journal indexes)::

    per call                     WAL+NORMAL     WAL+FULL
    append (autocommit)          85-150 us     320-540 us
    save_stop (autocommit)        40-70 us     290-500 us
    append_many, per row          18-25 us      20-34 us   (batches of 100)
    save_stops, per row            7-13 us       9-17 us   (batches of 100)

FULL costs one fsync of the WAL per commit, 0.25-0.4 ms here, i.e. a ceiling
of roughly 2000-3000 single-row commits a second for the whole daemon; at
quote rate that is affordable, and callers that fall behind can batch with
``append_many``/``save_stops`` (one fsync per batch). ``NORMAL`` is offered
only for operators who accept that after a power loss (not a process crash) the
last few stop updates may be missing, i.e. a stop restored at an older and
looser level until the price revisits its extreme; even then ``claim_exit`` and
``record_exit_order`` commit with FULL, and because an fsync of the WAL covers
every frame before it, the TRIGGER journaled just before the claim is made
durable by the claim itself.

Faults: every ``sqlite3`` error (locked, read-only, disk full, I/O, corrupt,
closed) is raised as :class:`StoreUnavailable` naming the operation, so the
caller has exactly one thing to catch and turn into "deny new entries"; a
write that fails leaves no partial transaction behind. ``healthy()`` answers the
same question without raising.

Journal kinds the daemon writes (free strings; the store enforces none):

``stop``        a trailing-stop decision (StopEvent: ACTIVATE, UPDATE, TRIGGER)
``breaker``     a breaker transition (BreakerTransition)
``failure``     a systemic failure reported to the breaker
``success``     a success reported to the breaker (half-open recovery)
``check``       a pre-trade check and its answer (CheckAnswer: allowed, reasons)
``admin``       an operator action (force open, reset)
``exit_order``  an exit order sent, or failing to be sent, for a trigger
``position``    a position opened, changed or closed at the broker
``restart``     the daemon started and what it restored
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import numbers
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, Literal

from actors.messages import Contract, Right, SecType, StopSnapshot
from supervisor.store.journal_kind import JournalKind

__all__ = [
    "JOURNAL_KINDS",
    "SCHEMA_VERSION",
    "JournalRow",
    "Store",
    "StoreUnavailable",
    "encode_payload",
]

SCHEMA_VERSION: Final = 1

JOURNAL_KINDS: Final = frozenset(k.value for k in JournalKind)


class StoreUnavailable(RuntimeError):
    """The store cannot do what was asked right now; the caller must fail safe.

    One exception type for every SQLite failure so that the daemon's answer is
    uniform: deny new entries, keep running, keep trying. ``operation`` says
    which store call failed and ``sqlite_error`` the SQLite code name (for
    example ``SQLITE_BUSY``, ``SQLITE_READONLY``, ``SQLITE_FULL``) so that logs
    and the health endpoint can tell a lock from a full disk.
    """

    def __init__(self, operation: str, message: str, sqlite_error: str | None = None) -> None:
        self.operation = operation
        self.message = message
        self.sqlite_error = sqlite_error
        suffix = f" [{sqlite_error}]" if sqlite_error else ""
        super().__init__(f"store {operation} failed: {message}{suffix}")


@dataclass(frozen=True, slots=True)
class JournalRow:
    """One journal entry as stored.

    ``seq`` is the journal's own order (gap-free, never reused), ``t`` the event
    time the caller gave (NaN if it was not finite: SQLite cannot store NaN) and
    ``wall_t`` the wall clock when the row was written, which tells how far
    behind events the daemon was running.
    """

    seq: int
    t: float
    wall_t: float
    kind: str
    position_id: str | None
    payload: dict[str, Any]

    @classmethod
    def entry(
        cls,
        *,
        t: float,
        kind: str,
        payload: Mapping[str, Any],
        position_id: str | None = None,
    ) -> JournalRow:
        """A row for ``append_many``: the store assigns ``seq`` and ``wall_t`` itself."""
        return cls(0, t, 0.0, kind, position_id, dict(payload))


# --------------------------------------------------------------------- JSON


def _json_default(o: Any) -> Any:
    """Make a payload journalable rather than refuse it.

    A decision that cannot be journaled cannot be acted on, so an odd value in
    a payload (a dataclass, an enum, a numpy scalar, a set) is converted, and
    as a last resort written as its ``str``, instead of raising.
    """
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return {f.name: getattr(o, f.name) for f in dataclasses.fields(o)}
    if isinstance(o, enum.Enum):
        return o.value
    if isinstance(o, Mapping):
        return dict(o)
    if isinstance(o, set | frozenset):
        try:
            return sorted(o)
        except TypeError:
            return list(o)
    if isinstance(o, bool | numbers.Integral):
        return int(o)
    if isinstance(o, numbers.Real):
        return float(o)
    tolist = getattr(o, "tolist", None)  # numpy scalars and arrays
    if callable(tolist):
        try:
            return tolist()
        except (TypeError, ValueError):
            pass
    iso = getattr(o, "isoformat", None)
    if callable(iso):
        return iso()
    return str(o)


_MAX_DEPTH: Final = 64


def _strict(o: Any, depth: int = 0) -> Any:
    """Plain strict-JSON values, non-finite floats as null (the slow path)."""
    if depth > _MAX_DEPTH:
        return "<too deep>"
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if o is None or isinstance(o, str | int):
        return o
    if isinstance(o, dict):
        return {
            k if isinstance(k, str) else str(_strict(k, depth + 1)): _strict(v, depth + 1)
            for k, v in o.items()
        }
    if isinstance(o, list | tuple):
        return [_strict(v, depth + 1) for v in o]
    return _strict(_json_default(o), depth + 1)


def encode_payload(payload: Mapping[str, Any]) -> str:
    """Strict JSON with NaN and ±inf written as ``null``.

    Strict because the journal is read by more than Python (SQLite's JSON
    functions, polars, jq), none of which accept ``NaN`` tokens. ``null``
    rather than a string because the non-finite values that reach a payload
    are IB's "no data" NaNs, for which null is the honest meaning, and a
    string would turn numeric columns of the analytics into text. The fast
    path is one ``json.dumps``; only a payload holding a non-finite float or a
    non-string key pays for the recursive clean-up.
    """
    try:
        return json.dumps(payload, allow_nan=False, default=_json_default, separators=(",", ":"))
    except (ValueError, TypeError):
        return json.dumps(_strict(payload), allow_nan=False, separators=(",", ":"))


# ---------------------------------------------------------------------- schema

_SCHEMA_V1: Final = (
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

# Migrations from version N to N+1, applied in order inside one transaction.
_MIGRATIONS: Final[dict[int, tuple[str, ...]]] = {}

_STOP_COLUMNS: Final = (
    "id, symbol, sec_type, opt_right, strike, expiry, multiplier, qty, entry_price, opened_t, "
    "active, extreme, stop, breaches, triggered, ignored_quotes, trigger_id"
)
_SAVE_BREAKER: Final = (
    "INSERT INTO breaker (id, state, updated_wall_t) VALUES (1, ?, ?) "
    "ON CONFLICT(id) DO UPDATE SET state = excluded.state, updated_wall_t = excluded.updated_wall_t"
)


def _breaker_json(state: Mapping[str, Any]) -> str:
    """The breaker's state with NaN/Infinity kept (an inf deadline must come back inf)."""
    return json.dumps(state, allow_nan=True, default=_json_default, separators=(",", ":"))


_SAVE_STOP: Final = (
    f"INSERT INTO stops ({_STOP_COLUMNS}, updated_wall_t) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(id) DO UPDATE SET symbol = excluded.symbol, sec_type = excluded.sec_type, "
    "opt_right = excluded.opt_right, strike = excluded.strike, expiry = excluded.expiry, "
    "multiplier = excluded.multiplier, qty = excluded.qty, entry_price = excluded.entry_price, "
    "opened_t = excluded.opened_t, active = excluded.active, extreme = excluded.extreme, "
    "stop = excluded.stop, breaches = excluded.breaches, triggered = excluded.triggered, "
    "ignored_quotes = excluded.ignored_quotes, trigger_id = excluded.trigger_id, "
    "updated_wall_t = excluded.updated_wall_t"
)
_APPEND: Final = (
    "INSERT INTO journal (t, wall_t, kind, position_id, payload) VALUES (?, ?, ?, ?, ?)"
)
_EXIT_COLUMNS: Final = (
    "trigger_id, position_id, claimed_t, claimed_wall_t, order_id, detail, recorded_wall_t"
)


def _stop_params(snap: StopSnapshot, wall_t: float) -> tuple[Any, ...]:
    c = snap.contract
    return (
        snap.id,
        c.symbol,
        c.sec_type.value,
        None if c.right is None else c.right.value,
        c.strike,
        c.expiry,
        c.multiplier,
        snap.qty,
        snap.entry_price,
        snap.opened_t,
        int(snap.active),
        snap.extreme,
        snap.stop,
        snap.breaches,
        int(snap.triggered),
        snap.ignored_quotes,
        snap.trigger_id,
        wall_t,
    )


def _f(v: Any) -> float:
    """A NOT-NULL float field back from SQLite: NULL can only have been NaN."""
    return math.nan if v is None else float(v)


def _stop_from_row(row: tuple[Any, ...]) -> StopSnapshot:
    (id_, symbol, sec_type, right, strike, expiry, multiplier, qty, entry_price, opened_t,
     active, extreme, stop, breaches, triggered, ignored_quotes, trigger_id) = row  # fmt: skip
    contract = Contract(
        symbol=symbol,
        sec_type=SecType(sec_type),
        right=None if right is None else Right(right),
        strike=None if strike is None else float(strike),
        expiry=expiry,
        multiplier=_f(multiplier),
    )
    return StopSnapshot(
        id=id_,
        contract=contract,
        qty=_f(qty),
        entry_price=_f(entry_price),
        opened_t=_f(opened_t),
        active=bool(active),
        extreme=_f(extreme),
        stop=None if stop is None else float(stop),
        breaches=int(breaches),
        triggered=bool(triggered),
        ignored_quotes=int(ignored_quotes),
        trigger_id=trigger_id,
    )


def _journal_row(row: tuple[Any, ...]) -> JournalRow:
    seq, t, wall_t, kind, position_id, payload = row
    return JournalRow(int(seq), _f(t), float(wall_t), kind, position_id, json.loads(payload))


def _exit_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    trigger_id, position_id, claimed_t, claimed_wall_t, order_id, detail, recorded_wall_t = row
    return {
        "trigger_id": trigger_id,
        "position_id": position_id,
        "claimed_t": claimed_t,
        "claimed_wall_t": claimed_wall_t,
        "order_id": order_id,
        "detail": None if detail is None else json.loads(detail),
        "recorded_wall_t": recorded_wall_t,
    }


# ----------------------------------------------------------------------- store


class Store:
    """The SQLite file behind the daemon; safe to share between threads.

    One connection guarded by a lock rather than one per thread: SQLite allows
    a single writer at a time anyway, and one connection keeps the prepared
    statements of the quote-rate calls (``save_stop``, ``append``) cached.
    Each single-row write is its own autocommit transaction (one statement,
    one fsync under FULL); the ``*_many`` calls and ``save_stops`` wrap their
    rows in one ``BEGIN IMMEDIATE`` transaction.

    ``busy_timeout_ms`` bounds how long a write waits for another connection's
    lock before giving up with :class:`StoreUnavailable`; it is short because a
    stalled write stalls the actor that journals, and the caller would rather
    deny entries at once than hang. ``read_only=True`` opens the file through a
    ``mode=ro`` URI: nothing can be written or created (a mistyped path fails
    instead of making an empty database), which is how the ``journal`` command
    reads a live daemon's file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout_ms: int = 200,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        read_only: bool = False,
    ) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be 'FULL' or 'NORMAL', not {synchronous!r}")
        if busy_timeout_ms < 0:
            raise ValueError(f"busy_timeout_ms must be >= 0, not {busy_timeout_ms}")
        self.path = os.fspath(path)
        self.read_only = read_only
        self.synchronous = synchronous
        self.last_error: StoreUnavailable | None = None
        self._lock = threading.Lock()
        self._closed = False
        try:
            if read_only:
                uri = "file:" + urllib.parse.quote(os.path.abspath(self.path)) + "?mode=ro"
                conn = sqlite3.connect(
                    uri,
                    uri=True,
                    timeout=busy_timeout_ms / 1000,
                    isolation_level=None,
                    check_same_thread=False,
                )
            else:
                conn = sqlite3.connect(
                    self.path,
                    timeout=busy_timeout_ms / 1000,
                    isolation_level=None,
                    check_same_thread=False,
                )
        except sqlite3.Error as e:
            raise self._fail("open", e) from e
        self._conn = conn
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            conn.execute(f"PRAGMA synchronous = {synchronous}")
            self._setup_schema()
        except sqlite3.Error as e:
            conn.close()
            raise self._fail("open", e) from e
        except StoreUnavailable:
            conn.close()
            raise

    def _setup_schema(self) -> None:
        conn = self._conn
        version = self._schema_version()
        if version == SCHEMA_VERSION:
            # Already set up: touch nothing, so that a file that has become
            # read-only still opens and can be restored from.
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if mode != "wal" and not self.read_only:
                conn.execute("PRAGMA journal_mode = WAL")
            return
        if version is not None and version > SCHEMA_VERSION:
            raise StoreUnavailable(
                "open",
                f"{self.path} has schema version {version}, newer than this code's "
                f"{SCHEMA_VERSION}: refusing to write into it",
            )
        if self.read_only:
            why = (
                "is not a risk-supervisor store"
                if version is None
                else f"has schema version {version} and must first be opened writable to migrate"
            )
            raise StoreUnavailable("open", f"{self.path} {why}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-read inside the write lock: another process may have set up
            # the file since we looked.
            version = self._schema_version()
            if version is None:
                for ddl in _SCHEMA_V1:
                    conn.execute(ddl)
                conn.execute(
                    "INSERT INTO schema_version (version, applied_wall_t) VALUES (?, ?)",
                    (SCHEMA_VERSION, time.time()),
                )
            elif version < SCHEMA_VERSION:
                for v in range(version, SCHEMA_VERSION):
                    for ddl in _MIGRATIONS[v]:
                        conn.execute(ddl)
                conn.execute(
                    "UPDATE schema_version SET version = ?, applied_wall_t = ?",
                    (SCHEMA_VERSION, time.time()),
                )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _schema_version(self) -> int | None:
        has_table = self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
        if has_table is None:
            return None
        row = self._conn.execute("SELECT max(version) FROM schema_version").fetchone()
        return None if row is None or row[0] is None else int(row[0])

    # ------------------------------------------------------------- plumbing

    def _fail(self, operation: str, e: sqlite3.Error) -> StoreUnavailable:
        err = StoreUnavailable(operation, str(e), getattr(e, "sqlite_errorname", None))
        self.last_error = err
        return err

    @contextmanager
    def _op(self, operation: str, *, transaction: bool = False) -> Iterator[sqlite3.Connection]:
        """Serialise one store call and turn any SQLite error into StoreUnavailable.

        With ``transaction`` the body runs inside ``BEGIN IMMEDIATE``: the
        write lock is taken up front, so a busy database fails at BEGIN (within
        the busy timeout) rather than halfway through a batch. On any error
        the transaction is rolled back so the connection is clean for the
        next call.
        """
        with self._lock:
            conn = self._conn
            try:
                if transaction:
                    conn.execute("BEGIN IMMEDIATE")
                yield conn
                if transaction:
                    conn.execute("COMMIT")
            except sqlite3.Error as e:
                self._rollback_quietly()
                raise self._fail(operation, e) from e
            except BaseException:
                self._rollback_quietly()
                raise

    def _rollback_quietly(self) -> None:
        try:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            # SQLite may already have rolled back (disk full, I/O error), or
            # the connection is closed: either way nothing is left open.
            pass

    @contextmanager
    def _durable(self, conn: sqlite3.Connection) -> Iterator[None]:
        """Commit with synchronous=FULL whatever the store's default is."""
        if self.synchronous == "FULL":
            yield
            return
        conn.execute("PRAGMA synchronous = FULL")
        try:
            yield
        finally:
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")

    def close(self) -> None:
        """Close the connection; later calls raise StoreUnavailable, healthy() is False."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def healthy(self) -> bool:
        """Can a write be committed right now? Never raises.

        A rolled-back ``BEGIN IMMEDIATE`` alone would miss a read-only file
        (SQLite grants the lock and refuses only the write), so the probe
        really writes and commits one tiny row: it fails for a lock held by
        someone else (after the busy timeout), a read-only file or connection,
        an I/O error or a disk too full to grow the WAL. One fsync under FULL,
        cheap enough for a health endpoint or a per-check call. It cannot know
        about a write that needs the database itself to grow into a full disk;
        that write raises StoreUnavailable on its own.
        """
        try:
            with self._op("healthy", transaction=True) as conn:
                conn.execute(
                    "INSERT INTO health (id, wall_t) VALUES (1, ?) "
                    "ON CONFLICT(id) DO UPDATE SET wall_t = excluded.wall_t",
                    (time.time(),),
                )
        except StoreUnavailable:
            return False
        return True

    # ----------------------------------------------------------- stop state

    def save_stop(self, snap: StopSnapshot) -> None:
        """Upsert one position's stop state (one statement, one commit)."""
        with self._op("save_stop") as conn:
            conn.execute(_SAVE_STOP, _stop_params(snap, time.time()))

    def save_stops(self, snaps: Iterable[StopSnapshot]) -> None:
        """Upsert many stop states atomically: all of them or, on a fault, none."""
        with self._op("save_stops", transaction=True) as conn:
            wall_t = time.time()
            conn.executemany(_SAVE_STOP, (_stop_params(s, wall_t) for s in snaps))

    def delete_stop(self, position_id: str) -> None:
        """Forget a closed position's stop; unknown ids are ignored."""
        with self._op("delete_stop") as conn:
            conn.execute("DELETE FROM stops WHERE id = ?", (position_id,))

    def load_stops(self) -> list[StopSnapshot]:
        """Every saved stop state, ordered by position id.

        Every field round-trips exactly except NaN, which SQLite stores as
        NULL: a NaN in a float field comes back as NaN, but a NaN ``stop``
        comes back as None. A row that cannot be decoded (an unknown sec_type,
        say) raises StoreUnavailable rather than being skipped: a position
        silently restored without its stop would be unprotected.
        """
        with self._op("load_stops") as conn:
            rows = conn.execute(f"SELECT {_STOP_COLUMNS} FROM stops ORDER BY id").fetchall()
        out: list[StopSnapshot] = []
        for row in rows:
            try:
                out.append(_stop_from_row(row))
            except (ValueError, TypeError) as e:
                err = StoreUnavailable("load_stops", f"stop row {row[0]!r} cannot be decoded: {e}")
                self.last_error = err
                raise err from e
        return out

    # ------------------------------------------------------------- breaker

    def save_breaker(self, state: Mapping[str, Any]) -> None:
        """Replace the breaker's state, a JSON-able dict the breaker defines.

        Unlike journal payloads this is written with Python's NaN/Infinity
        tokens, because it must come back exactly: a breaker restored with an
        ``inf`` deadline turned into ``null`` could reopen for entries sooner
        than it was told to. Only this module reads it.
        """
        with self._op("save_breaker") as conn:
            conn.execute(_SAVE_BREAKER, (_breaker_json(state), time.time()))

    def load_breaker(self) -> dict[str, Any] | None:
        """The last saved breaker state, or None if none was ever saved."""
        with self._op("load_breaker") as conn:
            row = conn.execute("SELECT state FROM breaker WHERE id = 1").fetchone()
        if row is None:
            return None
        state = json.loads(row[0])
        if not isinstance(state, dict):
            err = StoreUnavailable("load_breaker", "stored breaker state is not a JSON object")
            self.last_error = err
            raise err
        return state

    # ------------------------------------------------------------- journal

    def append(
        self,
        *,
        t: float,
        kind: str,
        payload: Mapping[str, Any],
        position_id: str | None = None,
    ) -> int:
        """Journal one entry and return its seq once it is committed.

        The payload is stored as strict JSON with NaN and ±inf as null (see
        ``encode_payload``); a value json cannot encode is converted rather
        than refused. A non-finite ``t`` is stored as NULL and read back as
        NaN. Returns only after the commit, so the caller may act on the
        decision as soon as it has the seq.
        """
        return self.record(t=t, kind=kind, payload=payload, position_id=position_id)

    def record(
        self,
        *,
        t: float,
        kind: str,
        payload: Mapping[str, Any],
        position_id: str | None = None,
        stop: StopSnapshot | None = None,
        breaker: Mapping[str, Any] | None = None,
    ) -> int:
        """Journal a decision and save the state it leaves, in ONE transaction.

        A decision's journal row and the state it results in must never be
        apart on disk: killed between two commits, a restart would restore a
        stop or breaker looser than the journal says (or re-trigger a stop
        that already triggered). Returns the row's seq once committed.
        """
        text = encode_payload(payload)
        breaker_text = None if breaker is None else _breaker_json(breaker)
        wall_t = time.time()
        with self._op("record", transaction=True) as conn:
            cur = conn.execute(_APPEND, (t, wall_t, kind, position_id, text))
            if stop is not None:
                conn.execute(_SAVE_STOP, _stop_params(stop, wall_t))
            if breaker_text is not None:
                conn.execute(_SAVE_BREAKER, (breaker_text, wall_t))
            seq = cur.lastrowid
        assert seq is not None
        return seq

    def append_many(self, rows: Iterable[JournalRow]) -> list[int]:
        """Journal many entries in one transaction; their seqs, in order.

        Each row's ``seq`` and ``wall_t`` are ignored (use ``JournalRow.entry``
        to build them): the store assigns both.
        """
        prepared = [(r.t, r.kind, r.position_id, encode_payload(r.payload)) for r in rows]
        seqs: list[int] = []
        with self._op("append_many", transaction=True) as conn:
            wall_t = time.time()
            for t, kind, position_id, text in prepared:
                seq = conn.execute(_APPEND, (t, wall_t, kind, position_id, text)).lastrowid
                assert seq is not None
                seqs.append(seq)
        return seqs

    def journal(
        self,
        *,
        since_seq: int | None = None,
        since_t: float | None = None,
        until_t: float | None = None,
        kind: str | None = None,
        position_id: str | None = None,
        limit: int = 1000,
        newest: bool = False,
    ) -> list[JournalRow]:
        """Journal rows matching every filter given, in seq order.

        ``since_seq`` is exclusive (rows after it: pass the last seq you have
        read to page forward); ``since_t`` is inclusive and ``until_t``
        exclusive, so consecutive windows neither overlap nor leave gaps.
        ``limit`` (>= 1) keeps the first rows, or with ``newest`` the last
        ones, still returned in seq order.
        """
        if limit < 1:
            raise ValueError(f"limit must be >= 1, not {limit}")
        where: list[str] = []
        params: list[Any] = []
        if since_seq is not None:
            where.append("seq > ?")
            params.append(since_seq)
        if since_t is not None:
            where.append("t >= ?")
            params.append(since_t)
        if until_t is not None:
            where.append("t < ?")
            params.append(until_t)
        if kind is not None:
            where.append("kind = ?")
            params.append(kind)
        if position_id is not None:
            where.append("position_id = ?")
            params.append(position_id)
        sql = "SELECT seq, t, wall_t, kind, position_id, payload FROM journal"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY seq {'DESC' if newest else 'ASC'} LIMIT ?"
        params.append(limit)
        with self._op("journal") as conn:
            rows = conn.execute(sql, params).fetchall()
        if newest:
            rows.reverse()
        return [_journal_row(r) for r in rows]

    def last_journal(
        self, kind: str | None = None, position_id: str | None = None
    ) -> JournalRow | None:
        """The most recent row matching the filters, or None."""
        rows = self.journal(kind=kind, position_id=position_id, limit=1, newest=True)
        return rows[0] if rows else None

    # ---------------------------------------------------------- exit orders

    def claim_exit(self, trigger_id: str, position_id: str, t: float) -> bool:
        """Claim the right to send the exit order for ``trigger_id``.

        True exactly once per trigger id, across threads, processes and
        restarts (the claim is a durable row keyed by the id; ``INSERT OR
        IGNORE`` tells the one inserter apart from everyone else). Send the
        order only on True, and journal the TRIGGER before claiming. On
        StoreUnavailable do not send: the trigger stays unclaimed and is
        retried. A claim that has no order recorded after a restart (see
        ``pending_exits``) may or may not have reached the broker before the
        crash: reconcile with the broker's open orders and positions, never
        resend blindly.
        """
        with self._op("claim_exit") as conn, self._durable(conn):
            cur = conn.execute(
                "INSERT OR IGNORE INTO exits (trigger_id, position_id, claimed_t, claimed_wall_t) "
                "VALUES (?, ?, ?, ?)",
                (trigger_id, position_id, t, time.time()),
            )
            return cur.rowcount == 1

    def record_exit_order(self, trigger_id: str, order_id: int, detail: Mapping[str, Any]) -> None:
        """Remember which broker order carried out a claimed exit.

        Recording for an id that was never claimed still records (an order
        id must never be lost), and makes any later claim of it return False.
        Recording again overwrites: the latest order for the trigger wins.
        """
        text = encode_payload(detail)
        with self._op("record_exit_order") as conn, self._durable(conn):
            conn.execute(
                "INSERT INTO exits (trigger_id, order_id, detail, recorded_wall_t) "
                "VALUES (?, ?, ?, ?) ON CONFLICT(trigger_id) DO UPDATE SET "
                "order_id = excluded.order_id, detail = excluded.detail, "
                "recorded_wall_t = excluded.recorded_wall_t",
                (trigger_id, order_id, text, time.time()),
            )

    def exit_for(self, trigger_id: str) -> dict[str, Any] | None:
        """The claim and order of a trigger, or None if it was never claimed.

        Keys: trigger_id, position_id, claimed_t, claimed_wall_t, order_id
        (None until recorded), detail (a dict, or None until recorded),
        recorded_wall_t.
        """
        with self._op("exit_for") as conn:
            row = conn.execute(
                f"SELECT {_EXIT_COLUMNS} FROM exits WHERE trigger_id = ?", (trigger_id,)
            ).fetchone()
        return None if row is None else _exit_dict(row)

    def pending_exits(self) -> list[dict[str, Any]]:
        """Claims with no order recorded: what to reconcile with the broker at start."""
        with self._op("pending_exits") as conn:
            rows = conn.execute(
                f"SELECT {_EXIT_COLUMNS} FROM exits WHERE order_id IS NULL "
                "ORDER BY claimed_wall_t, trigger_id"
            ).fetchall()
        return [_exit_dict(r) for r in rows]


# --------------------------------------------------------------- measuring

if __name__ == "__main__":  # pragma: no cover - the measurement quoted above
    import sys
    import tempfile

    from actors.messages import Contract as _C
    from actors.messages import SecType as _S

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    payload = {"action": "UPDATE", "stop": 101.5, "ref_price": 103.2, "extreme": 104.0}
    snap = StopSnapshot("p1", _C("SPY", _S.STK), 10.0, 100.0, 0.0, True, 104.0, 101.5, 0, False, 0)
    mode: Literal["FULL", "NORMAL"]
    for mode in ("NORMAL", "FULL"):
        with tempfile.TemporaryDirectory() as d, Store(f"{d}/s.db", synchronous=mode) as s:
            t0 = time.perf_counter()
            for i in range(n):
                s.append(t=float(i), kind="stop", payload=payload, position_id="p1")
            append_us = (time.perf_counter() - t0) / n * 1e6
            t0 = time.perf_counter()
            for i in range(n):
                s.save_stop(dataclasses.replace(snap, breaches=i))
            save_us = (time.perf_counter() - t0) / n * 1e6
            rows = [JournalRow.entry(t=1.0, kind="stop", payload=payload, position_id="p1")] * 100
            t0 = time.perf_counter()
            for _ in range(n // 100):
                s.append_many(rows)
            many_us = (time.perf_counter() - t0) / n * 1e6
            snaps = [dataclasses.replace(snap, id=f"p{i}") for i in range(100)]
            t0 = time.perf_counter()
            for _ in range(n // 100):
                s.save_stops(snaps)
            stops_us = (time.perf_counter() - t0) / n * 1e6
            print(
                f"WAL+{mode:6}  append {append_us:6.1f} us  save_stop {save_us:6.1f} us  "
                f"append_many {many_us:5.1f} us/row  save_stops {stops_us:5.1f} us/row"
            )

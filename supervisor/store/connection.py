"""The store's connection: open and migrate, check the files, run one transaction.

Every call first checks that the path still names the database this
connection opened (and its ``-wal``/``-shm``, see ``file_identity``), and every
write transaction that the file's store id is this store's. A deleted or
replaced store fails with :class:`StoreReplaced` instead of writing into an
unlinked inode that no restart would read.

The WAL index: by default a shared memory map of ``-shm``, which is what lets
other processes (the ``journal`` command, the kill -9 test) read the live
store. Truncated under the process, touching it is a SIGBUS; the file check
refuses to touch a truncated one (the microseconds between the check and
SQLite's access remain). With ``exclusive=True`` the connection takes
``locking_mode=EXCLUSIVE`` before WAL: SQLite then keeps the WAL index in heap
memory, with no ``-shm`` at all and so no SIGBUS whatever happens to the
directory, at the price that no other process can read the store while the
daemon runs (``journal`` then fails with "database is locked").

Faults: every ``sqlite3`` error (locked, read-only, disk full, I/O, corrupt,
closed) is raised as :class:`StoreUnavailable` naming the operation and the
SQLite error code, so the caller has exactly one thing to catch and turn into
"deny new entries"; a write that fails leaves no partial transaction behind.
``healthy()`` answers the same question without raising.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import urllib.parse
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal, Self

from supervisor.store.file_identity import FileIdentity
from supervisor.store.payload_codec import decode_state
from supervisor.store.schema import SchemaRefused, ensure_schema, read_store_id
from supervisor.store.store_unavailable import (
    REPLACED_OR_MISSING,
    StoreReplaced,
    StoreUnavailable,
)

__all__ = ["StoreConnection"]


class StoreConnection:
    """One SQLite connection to the store's file: opening, checks, transactions, health.

    The plumbing under :class:`~supervisor.store.sqlite_store.Store`, which
    adds the tables' calls. One connection guarded by a lock rather than one
    per thread: SQLite allows a single writer at a time anyway, and one
    connection keeps the prepared statements of the quote-rate calls cached.
    Every write is one ``BEGIN IMMEDIATE`` transaction (one fsync under
    FULL): the write lock is taken up front, so a busy database fails at BEGIN
    (within the busy timeout) rather than halfway through.

    ``busy_timeout_ms`` bounds how long a write waits for another connection's
    lock before giving up with :class:`StoreUnavailable`; it is short because a
    stalled write stalls the actor that journals, and the caller would rather
    deny entries at once than hang. ``read_only=True`` opens the file through a
    ``mode=ro`` URI: nothing can be written or created (a mistyped path fails
    instead of making an empty database), which is how the ``journal`` command
    reads a live daemon's file. ``exclusive=True``: see the module docstring.

    After opening: ``store_id`` (the file's marker), ``created_fresh`` (this
    open created the store) and ``migrated_from`` (the schema version this
    open migrated from, else None).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout_ms: int = 200,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        read_only: bool = False,
        exclusive: bool = False,
    ) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be 'FULL' or 'NORMAL', not {synchronous!r}")
        if busy_timeout_ms < 0:
            raise ValueError(f"busy_timeout_ms must be >= 0, not {busy_timeout_ms}")
        if read_only and exclusive:
            raise ValueError("an exclusive store is the daemon's: it cannot be read-only")
        self.path = os.fspath(path)
        self.read_only = read_only
        self.exclusive = exclusive
        self.synchronous = synchronous
        self.last_error: StoreUnavailable | None = None
        self._busy_s = busy_timeout_ms / 1000
        self._lock = threading.Lock()
        self._closed = False
        # Absolute: a later chdir must not make the checks look at another file.
        self._abspath = os.path.abspath(self.path)
        self._files = FileIdentity(self._abspath)
        # Also before a connection that was never closed is closed at exit or
        # by the garbage collector (SQLite's checkpoint on close reads -shm).
        self._at_exit = weakref.finalize(self, self._files.check)
        try:
            conn = sqlite3.connect(
                self._uri() if read_only else self._abspath,
                uri=read_only,
                timeout=self._busy_s,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as e:
            raise self._fail("open", e) from e
        self._conn = conn
        try:
            opened = os.stat(self._abspath)
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            conn.execute(f"PRAGMA synchronous = {synchronous}")
            if exclusive:  # before the first WAL access: the WAL index stays in heap memory
                conn.execute("PRAGMA locking_mode = EXCLUSIVE")
            state = ensure_schema(conn, self.path, read_only=read_only)
            why = self._files.pin(opened)
            if why is not None:
                raise self._replaced("open", why)
        except sqlite3.Error as e:
            conn.close()
            raise self._fail("open", e) from e
        except (SchemaRefused, OSError) as e:
            conn.close()
            err = StoreUnavailable("open", str(e))
            self.last_error = err
            raise err from e
        except StoreUnavailable:
            conn.close()
            raise
        self.store_id: str = state.store_id
        self.created_fresh: bool = state.created_fresh
        self.migrated_from: int | None = state.migrated_from

    def _uri(self) -> str:
        return "file:" + urllib.parse.quote(self._abspath) + "?mode=ro"

    # ------------------------------------------------------------- plumbing

    def _fail(self, operation: str, e: sqlite3.Error) -> StoreUnavailable:
        err = StoreUnavailable(operation, str(e), getattr(e, "sqlite_errorname", None))
        self.last_error = err
        return err

    def _replaced(self, operation: str, why: str) -> StoreReplaced:
        err = StoreReplaced(operation, why)
        self.last_error = err
        return err

    def _fault(self, operation: str, why: str) -> StoreUnavailable:
        err = StoreUnavailable(operation, why)
        self.last_error = err
        return err

    @contextmanager
    def _op(
        self, operation: str, *, write: bool = False, durable: bool = False
    ) -> Iterator[sqlite3.Connection]:
        """Serialise one store call; any SQLite error becomes StoreUnavailable.

        First the files are checked (replaced, missing, a truncated WAL
        index: StoreReplaced before SQLite touches them). With ``write`` the
        body runs inside ``BEGIN IMMEDIATE`` after the store id is checked,
        and is committed at the end; ``durable`` commits with
        ``synchronous=FULL`` whatever the store's default. On any error the
        transaction is rolled back so the connection is clean for the next
        call.
        """
        with self._lock:
            if self._closed:
                raise self._fault(operation, "the store is closed")
            why = self._files.check()
            if why is not None:
                raise self._replaced(operation, why)
            conn = self._conn
            stricter = durable and self.synchronous != "FULL"
            try:
                if stricter:
                    conn.execute("PRAGMA synchronous = FULL")
                if write:
                    conn.execute("BEGIN IMMEDIATE")
                    found = read_store_id(conn)
                    if found != self.store_id:
                        raise self._replaced(
                            operation,
                            f"{REPLACED_OR_MISSING}: its store id is {found!r}, "
                            f"not {self.store_id!r}",
                        )
                yield conn
                if write:
                    conn.execute("COMMIT")
            except sqlite3.Error as e:
                self._rollback_quietly()
                raise self._fail(operation, e) from e
            except BaseException:
                self._rollback_quietly()
                raise
            finally:
                if stricter:
                    self._relax_quietly()
            if write:
                # Deleted or replaced *while* we wrote: the commit went into a
                # file nobody will open again. Not durable, so not done (the
                # caller fails closed; a verdict is never "allowed" from here).
                why = self._files.same_files()
                if why is not None:
                    raise self._replaced(operation, f"during the write: {why}")
                self._files.grown()

    def _rollback_quietly(self) -> None:
        try:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            # SQLite may already have rolled back (disk full, I/O error), or
            # the connection is closed: either way nothing is left open.
            pass

    def _relax_quietly(self) -> None:
        with contextlib.suppress(sqlite3.Error):  # closed or broken: the next call says so
            self._conn.execute(f"PRAGMA synchronous = {self.synchronous}")

    def close(self) -> None:
        """Close the connection; later calls raise StoreUnavailable, healthy() is False.

        SQLite checkpoints on close, which reads the WAL index: the files are
        checked first, so that a truncated ``-shm`` is given its size back
        rather than crashing the process on its way out.
        """
        with self._lock:
            if not self._closed:
                self._closed = True
                self._at_exit.detach()
                self._files.check()
                self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def healthy(self) -> bool:
        """Can a write be committed right now, into the store a restart would read? Never raises.

        The files are checked (as before every call), then the probe really
        writes and commits one tiny row: a rolled-back ``BEGIN IMMEDIATE`` alone
        would miss a read-only file (SQLite grants the lock and refuses only
        the write). It fails for a lock held by someone else (after the busy
        timeout), a read-only file or connection, an I/O error, a disk too full
        to grow the WAL, a replaced or missing file. Last, unless exclusive, a
        fresh read-only connection reads the store id through the path, as a
        restart would: a file overwritten in place with another store fails
        here. About 1 ms under FULL: fine for a health endpoint or a retry
        loop. It cannot know about a write that needs the database itself to
        grow into a full disk; that write raises StoreUnavailable on its own.
        """
        try:
            with self._op("healthy", write=True) as conn:
                conn.execute(
                    "INSERT INTO health (id, wall_t) VALUES (1, ?) "
                    "ON CONFLICT(id) DO UPDATE SET wall_t = excluded.wall_t",
                    (time.time(),),
                )
            if not self.exclusive:
                self._peek_store_id()
        except StoreUnavailable:
            return False
        return True

    def _peek_store_id(self) -> None:
        try:
            peek = sqlite3.connect(
                self._uri(), uri=True, timeout=self._busy_s, isolation_level=None
            )
            try:
                found = read_store_id(peek)
            finally:
                peek.close()
        except sqlite3.Error as e:
            raise self._fail("healthy", e) from e
        if found != self.store_id:
            raise self._replaced(
                "healthy",
                f"{REPLACED_OR_MISSING}: {self.path} holds store id {found!r}, "
                f"not {self.store_id!r}",
            )

    def _decode(self, operation: str, text: str, what: str) -> dict[str, Any]:
        try:
            return decode_state(text, what)
        except ValueError as e:
            raise self._fault(operation, f"{what} cannot be decoded: {e}") from e

    def _load_one(self, operation: str, table: str) -> dict[str, Any] | None:
        with self._op(operation) as conn:
            row = conn.execute(f"SELECT state FROM {table} WHERE id = 1").fetchone()
        return None if row is None else self._decode(operation, row[0], f"{table} state")

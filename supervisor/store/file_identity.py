"""Is the file at the store's path still the one this connection writes?

SQLite keeps the file descriptors it opened, so deleting, renaming or
replacing the store's files under a running daemon goes unnoticed by SQLite:
writes keep succeeding into an unlinked inode that no restart will read, and
the daemon restarts on an empty store. And the WAL index (``-shm``) is a
shared memory map: truncated under the process, the next access to it kills
the process with SIGBUS, which no ``except`` can catch.

So before every store call the three paths are ``stat``-ed (a few
microseconds) and compared with what the connection opened:

* the database: same ``(st_dev, st_ino)``, else "database file replaced or
  missing" (deleted, renamed away, replaced by another file);
* ``-wal``: same identity once it exists (SQLite deletes it only when the
  last connection closes, never under an open one);
* ``-shm``: same identity, and never smaller than it was after the last
  write: SQLite only ever grows it while a connection has it mapped, so a
  smaller file was truncated by someone else, and touching the map now
  would be a SIGBUS. The check gives the file its size back at once (see
  ``_restore``) and reports the fault; SQLite then rebuilds the index from
  the WAL, and closing the connection (which touches the index) is safe.

A file identity cannot be read from inside SQLite, so the database's is
taken from its path right after the connection opened it and again after the
schema was read; the two must agree (see ``FileIdentity.pin``). What a
``stat`` cannot see: a truncation of ``-shm`` in the microseconds between the
check and SQLite's access (and a restored ``-shm`` is sparse: on a disk full
at that very moment, touching it could still fault), and a file overwritten
in place (same inode).
The store id checked on every write and by ``healthy()`` covers the second
as far as SQLite re-reads the page; the first is why a store on a disk that
other tools may touch is a risk the README names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from supervisor.store.store_unavailable import REPLACED_OR_MISSING

__all__ = ["FileIdentity"]


@dataclass(slots=True)
class _Pinned:
    path: str
    ident: tuple[int, int] | None = None
    size: int = 0


def _stat(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None


def _restore(shm: _Pinned, size: int) -> str:
    """Give a truncated ``-shm`` its size back, so that nothing mapped is past its end.

    Done through ``truncate(2)`` on the path: opening the file would be worse,
    since closing any descriptor of it drops every POSIX lock this process
    holds on it, SQLite's included. The restored pages read as zeros, which
    SQLite takes for an uninitialised WAL index and rebuilds from the WAL at
    its next transaction: the store works again, the fault is reported once.
    """
    why = (
        f"the WAL index {shm.path} was truncated under the process "
        f"({size} < {shm.size} bytes; touching it would have been a SIGBUS)"
    )
    try:
        os.truncate(shm.path, shm.size)
    except OSError as e:
        return f"{why}; its size could not be restored ({e}): the store is unusable"
    return f"{why}; its size is restored and SQLite rebuilds it from the WAL"


class FileIdentity:
    """The identities of a store's database, ``-wal`` and ``-shm`` files, and their check."""

    __slots__ = ("_db", "_shm", "_wal")

    def __init__(self, path: str) -> None:
        self._db = _Pinned(path)
        self._wal = _Pinned(path + "-wal")
        self._shm = _Pinned(path + "-shm")

    def pin(self, opened: os.stat_result) -> str | None:
        """Take the identities now; ``opened`` is the database's stat taken at connect.

        Returns why not (the path changed between the two looks), or None.
        """
        now = _stat(self._db.path)
        if now is None or (now.st_dev, now.st_ino) != (opened.st_dev, opened.st_ino):
            return f"{REPLACED_OR_MISSING}: {self._db.path} changed while it was being opened"
        self._db.ident = (now.st_dev, now.st_ino)
        for side in (self._wal, self._shm):
            st = _stat(side.path)
            if st is not None:
                side.ident, side.size = (st.st_dev, st.st_ino), st.st_size
        return None

    def check(self) -> str | None:
        """Why the files are no longer this connection's, or None when they are."""
        db = self._db
        st = _stat(db.path)
        if st is None:
            return f"{REPLACED_OR_MISSING}: {db.path} is gone"
        if (st.st_dev, st.st_ino) != db.ident:
            return f"{REPLACED_OR_MISSING}: {db.path} is another file now"
        for side, what in ((self._wal, "WAL file"), (self._shm, "WAL index")):
            st = _stat(side.path)
            if st is None:
                if side.ident is not None:
                    return f"{REPLACED_OR_MISSING}: the {what} {side.path} is gone"
                continue
            ident = (st.st_dev, st.st_ino)
            if side.ident is None:
                side.ident, side.size = ident, st.st_size  # created since: pin it now
            elif ident != side.ident:
                return f"{REPLACED_OR_MISSING}: the {what} {side.path} is another file now"
            elif st.st_size < side.size:
                return _restore(side, st.st_size)
        return None

    def same_files(self) -> str | None:
        """Identity only (no size rules): are the database and its WAL still ours?"""
        db = self._db
        st = _stat(db.path)
        if st is None:
            return f"{REPLACED_OR_MISSING}: {db.path} is gone"
        if (st.st_dev, st.st_ino) != db.ident:
            return f"{REPLACED_OR_MISSING}: {db.path} is another file now"
        wal = self._wal
        if wal.ident is not None:
            st = _stat(wal.path)
            if st is None:
                return f"{REPLACED_OR_MISSING}: the WAL file {wal.path} is gone"
            if (st.st_dev, st.st_ino) != wal.ident:
                return f"{REPLACED_OR_MISSING}: the WAL file {wal.path} is another file now"
        return None

    def grown(self) -> None:
        """Note the ``-shm`` size after a write (SQLite may have grown it)."""
        shm = self._shm
        if shm.ident is None:
            return
        st = _stat(shm.path)
        if st is not None and (st.st_dev, st.st_ino) == shm.ident and st.st_size > shm.size:
            shm.size = st.st_size

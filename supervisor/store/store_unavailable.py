"""The one exception every store failure is raised as, so callers have one thing to catch."""

from __future__ import annotations

__all__ = ["REPLACED_OR_MISSING", "StoreReplaced", "StoreUnavailable"]

#: The message every "this is no longer our file" fault starts with.
REPLACED_OR_MISSING = "database file replaced or missing"


class StoreUnavailable(RuntimeError):
    """The store cannot do what was asked right now; the caller must fail safe.

    One exception type for every SQLite failure so that the daemon's answer is
    uniform: deny new entries, keep running, keep trying. ``operation`` says
    which store call failed and ``sqlite_error`` the SQLite code name (for
    example ``SQLITE_BUSY``, ``SQLITE_READONLY``, ``SQLITE_FULL``) so that logs
    and the health endpoint can tell a lock from a full disk. It is None for a
    fault the store found itself (a replaced file, an undecodable row).
    """

    def __init__(self, operation: str, message: str, sqlite_error: str | None = None) -> None:
        self.operation = operation
        self.message = message
        self.sqlite_error = sqlite_error
        suffix = f" [{sqlite_error}]" if sqlite_error else ""
        super().__init__(f"store {operation} failed: {message}{suffix}")


class StoreReplaced(StoreUnavailable):
    """The files at the store's path are no longer the ones this connection uses.

    Deleted, renamed away, replaced by another file, or the WAL index
    truncated under the process. Writes would land in an unlinked inode that
    no restart will ever read (or, for a truncated ``-shm``, kill the process
    with SIGBUS), so they are refused. A subclass so that code catching
    :class:`StoreUnavailable` needs no change, and the daemon can still tell
    "the disk is full, retry" from "an operator must look at the file".
    """

"""The daemon's memory across crashes: the journal and every state it restores.

Everything the supervisor decides is written here *before* anyone acts on it,
so that a ``kill -9`` at any instant leaves either the decision on disk or no
action taken, never an action without its record. ``record`` writes a
decision's journal row and every state it leaves (a stop, the breaker, the
money controls, a kill, a strategy, an exit claim) in ONE transaction. On
start the daemon restores from here, and exit claims make sure an exit order
goes out at most once per trigger (and a flatten order once per position and
kill), however many times the process dies and comes back in between.

One SQLite file in WAL mode (``connection``: opening, file checks, faults;
``schema``: tables and migrations). WAL lets the ``risk-supervisor journal``
command read while the daemon writes, and a commit is one append to the WAL
instead of a rewrite of the database pages.

Durability: ``synchronous=FULL`` by default. A committed transaction survives a
process crash under either NORMAL or FULL (the WAL frames are in the OS page
cache), but only FULL also survives a power loss or kernel crash: with NORMAL
the last commits before such a crash may vanish, and a TRIGGER journaled and
claimed, then lost, while its exit order did reach the broker is exactly the
"action without a record" this module exists to prevent. FULL costs one fsync
of the WAL per commit (``bench/bench_store.py`` measures it against a bare
``INSERT`` + commit with the same pragmas, and a bare ``write`` + ``fsync``).
``NORMAL`` is offered only for operators who accept that after a power loss
(not a process crash) the last few commits may be missing; even then exit
claims, exit orders and kills commit with FULL, and because an fsync of the
WAL covers every frame before it, whatever was journaled before them is made
durable with them.

At start the daemon reads ``created_fresh``: a store created by this very
open holds no stop, claim or kill, so a position it knows nothing about must
not be re-armed as if it had never triggered (a deleted store would otherwise
let a second exit go out).

Heartbeats need nothing durable beyond their journal rows: the dead-man
switch re-arms at the next heartbeat or check after a restart, and a kill it
fired is saved as a kill.

A journal kind outside :class:`JournalKind` is a programming error and raises
``ValueError`` before anything is written; every other fault is a
:class:`StoreUnavailable` (a :class:`StoreReplaced` when the files are no
longer the store's).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Mapping
from typing import Any, Final, overload

from actors.messages import StopSnapshot
from supervisor.store.connection import StoreConnection
from supervisor.store.exit_claims import (
    EXIT_COLUMNS,
    ExitClaim,
    ExitReason,
    exit_dict,
    exit_reason,
    flatten_key,
)
from supervisor.store.journal_row import JOURNAL_KINDS, JournalRow, check_kind, journal_row
from supervisor.store.kill_record import (
    KILL_COLUMNS,
    SAVE_KILL,
    KillRecord,
    kill_from_row,
    kill_params,
)
from supervisor.store.payload_codec import encode_payload, encode_state
from supervisor.store.schema import SCHEMA_VERSION
from supervisor.store.stop_rows import SAVE_STOP, STOP_COLUMNS, stop_from_row, stop_params
from supervisor.store.store_unavailable import StoreReplaced, StoreUnavailable
from supervisor.store.strategy_change import DELETE_STRATEGY, SAVE_STRATEGY, StrategyChange
from supervisor.store.trigger_row import INSERT_TRIGGER, TriggerRow, is_trigger

__all__ = [
    "JOURNAL_KINDS",
    "SCHEMA_VERSION",
    "ExitClaim",
    "ExitReason",
    "JournalRow",
    "KillRecord",
    "Store",
    "StoreReplaced",
    "StoreUnavailable",
    "StrategyChange",
    "TriggerRow",
    "encode_payload",
    "flatten_key",
]

_APPEND: Final = (
    "INSERT INTO journal (t, wall_t, kind, position_id, payload) VALUES (?, ?, ?, ?, ?)"
)
_SAVE_BREAKER: Final = (
    "INSERT INTO breaker (id, state, updated_wall_t) VALUES (1, ?, ?) "
    "ON CONFLICT(id) DO UPDATE SET state = excluded.state, updated_wall_t = excluded.updated_wall_t"
)
_SAVE_MONEY: Final = (
    "INSERT INTO money (id, state, updated_wall_t) VALUES (1, ?, ?) "
    "ON CONFLICT(id) DO UPDATE SET state = excluded.state, updated_wall_t = excluded.updated_wall_t"
)
_CLAIM: Final = (
    "INSERT OR IGNORE INTO exits "
    "(trigger_id, position_id, claimed_t, claimed_wall_t, reason, journal_seq) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)


class Store(StoreConnection):
    """The store's calls, table by table, over one connection (see ``StoreConnection``).

    Writes: ``record`` (a decision and every state it leaves, one
    transaction), ``append``/``append_many``, ``save_*``/``delete_*`` for state
    changes that are no decision of their own, ``claim_exit`` and
    ``record_exit_order``. Reads: ``load_*``, ``journal``, ``triggers_since``,
    ``exit_for``, ``pending_exits``. Constructor arguments and the attributes
    ``store_id``, ``created_fresh``, ``migrated_from``: see StoreConnection.
    """

    # ----------------------------------------------------------- stop state

    def save_stop(self, snap: StopSnapshot, *, extra: Mapping[str, Any] | None = None) -> None:
        """Upsert one position's (or strategy's) stop state, with its opaque ``extra``."""
        params = stop_params(snap, time.time(), extra)
        with self._op("save_stop", write=True) as conn:
            conn.execute(SAVE_STOP, params)

    def save_stops(self, snaps: Iterable[StopSnapshot]) -> None:
        """Upsert many stop states atomically: all of them or, on a fault, none."""
        wall_t = time.time()
        params = [stop_params(s, wall_t) for s in snaps]
        with self._op("save_stops", write=True) as conn:
            conn.executemany(SAVE_STOP, params)

    def delete_stop(self, position_id: str) -> None:
        """Forget a closed position's (or ended strategy's) stop; unknown ids are ignored."""
        with self._op("delete_stop", write=True) as conn:
            conn.execute("DELETE FROM stops WHERE id = ?", (position_id,))

    def load_stops(self) -> list[StopSnapshot]:
        """Every saved stop state, ordered by id.

        Every field round-trips exactly except NaN, which SQLite stores as
        NULL: a NaN in a float field comes back as NaN, but a NaN ``stop``
        comes back as None. A row that cannot be decoded (an unknown sec_type,
        say) raises StoreUnavailable rather than being skipped: a position
        silently restored without its stop would be unprotected.
        """
        with self._op("load_stops") as conn:
            rows = conn.execute(f"SELECT {STOP_COLUMNS} FROM stops ORDER BY id").fetchall()
        out: list[StopSnapshot] = []
        for row in rows:
            try:
                out.append(stop_from_row(row))
            except (ValueError, TypeError) as e:
                raise self._fault(
                    "load_stops", f"stop row {row[0]!r} cannot be decoded: {e}"
                ) from e
        return out

    def load_stop_extras(self) -> dict[str, dict[str, Any]]:
        """The ``extra`` of every stop state that has one (a strategy's legs), by id."""
        with self._op("load_stop_extras") as conn:
            rows = conn.execute(
                "SELECT id, extra FROM stops WHERE extra IS NOT NULL ORDER BY id"
            ).fetchall()
        return {
            id_: self._decode("load_stop_extras", text, f"extra of stop {id_!r}")
            for id_, text in rows
        }

    # ------------------------------------------------------------- breaker

    def save_breaker(self, state: Mapping[str, Any]) -> None:
        """Replace the breaker's state, a JSON-able dict the breaker defines.

        Unlike journal payloads this is written with Python's NaN/Infinity
        tokens, because it must come back exactly (see ``payload_codec``).
        A breaker change that is a decision goes through ``record(breaker=...)``.
        """
        text = encode_state(state)
        with self._op("save_breaker", write=True) as conn:
            conn.execute(_SAVE_BREAKER, (text, time.time()))

    def load_breaker(self) -> dict[str, Any] | None:
        """The last saved breaker state, or None if none was ever saved."""
        return self._load_one("load_breaker", "breaker")

    # --------------------------------------------------------------- money

    def save_money(self, state: Mapping[str, Any]) -> None:
        """Replace the money controls' state (DESIGN §4.3), a JSON-able dict the daemon defines.

        What it holds is the daemon's: the high-water mark and whether its NLV
        came from IB, the base of the estimated NLV, the last NLV and daily
        P&L with their times, the loss latch. Kept exactly, like the breaker's.
        A change that is a decision goes through ``record(money=...)``.
        """
        text = encode_state(state)
        with self._op("save_money", write=True) as conn:
            conn.execute(_SAVE_MONEY, (text, time.time()))

    def load_money(self) -> dict[str, Any] | None:
        """The last saved money state, or None if none was ever saved."""
        return self._load_one("load_money", "money")

    # --------------------------------------------------------------- kills

    def load_kills(self) -> list[KillRecord]:
        """Every kill ever recorded, oldest first (by t, then by when it was first saved)."""
        with self._op("load_kills") as conn:
            rows = conn.execute(
                f"SELECT {KILL_COLUMNS} FROM kills ORDER BY t, created_wall_t, id"
            ).fetchall()
        return [self._kill(row) for row in rows]

    def last_kill(self) -> KillRecord | None:
        """The newest kill (by t, then by when it was first saved), or None."""
        with self._op("last_kill") as conn:
            row = conn.execute(
                f"SELECT {KILL_COLUMNS} FROM kills "
                "ORDER BY t DESC, created_wall_t DESC, id DESC LIMIT 1"
            ).fetchone()
        return None if row is None else self._kill(row)

    def _kill(self, row: tuple[Any, ...]) -> KillRecord:
        try:
            return kill_from_row(row)
        except (ValueError, TypeError) as e:
            raise self._fault("load_kills", f"kill {row[0]!r} cannot be decoded: {e}") from e

    # ---------------------------------------------------------- strategies

    def save_strategy(self, strategy_id: str, spec: Mapping[str, Any]) -> None:
        """Save a trader-declared strategy (its legs: whatever the daemon needs to rebuild it)."""
        change = _strategy(StrategyChange(strategy_id, spec))
        with self._op("save_strategy", write=True) as conn:
            _write_strategy(conn, change, time.time())

    def delete_strategy(self, strategy_id: str) -> None:
        """Forget a strategy; an unknown id is ignored."""
        with self._op("delete_strategy", write=True) as conn:
            conn.execute(DELETE_STRATEGY, (strategy_id,))

    def load_strategies(self) -> dict[str, dict[str, Any]]:
        """Every saved strategy's spec, by id (in id order)."""
        with self._op("load_strategies") as conn:
            rows = conn.execute("SELECT id, spec FROM strategies ORDER BY id").fetchall()
        return {
            id_: self._decode("load_strategies", text, f"spec of strategy {id_!r}")
            for id_, text in rows
        }

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
        decision as soon as it has the seq. ``kind`` must be a JournalKind.
        """
        seq = self._record("append", t, kind, payload, position_id)
        assert seq is not None  # no claim: always written
        return seq

    @overload
    def record(
        self,
        *,
        t: float,
        kind: str,
        payload: Mapping[str, Any],
        position_id: str | None = None,
        stop: StopSnapshot | None = None,
        stop_extra: Mapping[str, Any] | None = None,
        breaker: Mapping[str, Any] | None = None,
        money: Mapping[str, Any] | None = None,
        kill: KillRecord | None = None,
        strategy: StrategyChange | None = None,
        claim: None = None,
    ) -> int: ...

    @overload
    def record(
        self,
        *,
        t: float,
        kind: str,
        payload: Mapping[str, Any],
        position_id: str | None = None,
        stop: StopSnapshot | None = None,
        stop_extra: Mapping[str, Any] | None = None,
        breaker: Mapping[str, Any] | None = None,
        money: Mapping[str, Any] | None = None,
        kill: KillRecord | None = None,
        strategy: StrategyChange | None = None,
        claim: ExitClaim | tuple[str, str],
    ) -> int | None: ...

    def record(
        self,
        *,
        t: float,
        kind: str,
        payload: Mapping[str, Any],
        position_id: str | None = None,
        stop: StopSnapshot | None = None,
        stop_extra: Mapping[str, Any] | None = None,
        breaker: Mapping[str, Any] | None = None,
        money: Mapping[str, Any] | None = None,
        kill: KillRecord | None = None,
        strategy: StrategyChange | None = None,
        claim: ExitClaim | tuple[str, str] | None = None,
    ) -> int | None:
        """Journal a decision and save every state it leaves, in ONE transaction.

        A decision's journal row and the state it results in must never be
        apart on disk: killed between two commits, a restart would restore a
        stop or breaker looser than the journal says, re-trigger a stop that
        already triggered, forget a kill, or send a second exit. Any kind may
        carry any state (a ``failure`` row with the breaker's state, a
        ``money`` row with the money state, …). Returns the row's seq once
        committed.

        * ``stop`` (with ``stop_extra``): the stop state after the decision;
        * ``breaker``, ``money``: replace that state (kept exactly);
        * ``kill``: upsert the kill by its id (each step saves its new state);
        * ``strategy``: save (or, with spec None, delete) a declared strategy;
        * ``claim``: claim an exit (a TRIGGER's id, or ``flatten_key(kill,
          position)``) with the row. If that key was already claimed, the
          decision was already recorded: NOTHING is written (no row, no
          state) and the result is None — send no order.

        A ``stop`` row whose ``action`` is TRIGGER is also indexed for
        ``triggers_since``. Rows with a claim or a kill commit with
        ``synchronous=FULL`` even on a NORMAL store.
        """
        return self._record(
            "record", t, kind, payload, position_id, stop, stop_extra, breaker, money, kill,
            strategy, claim,
        )  # fmt: skip

    def _record(
        self,
        operation: str,
        t: float,
        kind: str,
        payload: Mapping[str, Any],
        position_id: str | None,
        stop: StopSnapshot | None = None,
        stop_extra: Mapping[str, Any] | None = None,
        breaker: Mapping[str, Any] | None = None,
        money: Mapping[str, Any] | None = None,
        kill: KillRecord | None = None,
        strategy: StrategyChange | None = None,
        claim: ExitClaim | tuple[str, str] | None = None,
    ) -> int | None:
        check_kind(kind)
        text = encode_payload(payload)
        breaker_text = None if breaker is None else encode_state(breaker)
        money_text = None if money is None else encode_state(money)
        change = None if strategy is None else _strategy(strategy)
        exit_claim = None if claim is None else _claim(claim)
        wall_t = time.time()
        stop_row = None if stop is None else stop_params(stop, wall_t, stop_extra)
        kill_row = None if kill is None else kill_params(kill, wall_t)
        trigger = is_trigger(kind, payload)
        durable = exit_claim is not None or kill is not None
        with self._op(operation, write=True, durable=durable) as conn:
            if exit_claim is not None and _claimed(conn, exit_claim.key):
                return None
            seq = conn.execute(_APPEND, (t, wall_t, kind, position_id, text)).lastrowid
            assert seq is not None
            if stop_row is not None:
                conn.execute(SAVE_STOP, stop_row)
            if breaker_text is not None:
                conn.execute(_SAVE_BREAKER, (breaker_text, wall_t))
            if money_text is not None:
                conn.execute(_SAVE_MONEY, (money_text, wall_t))
            if kill_row is not None:
                conn.execute(SAVE_KILL, kill_row)
            if change is not None:
                _write_strategy(conn, change, wall_t)
            if exit_claim is not None:
                key, pid = exit_claim
                conn.execute(_CLAIM, (key, pid, t, wall_t, exit_reason(key).value, seq))
            if trigger:
                conn.execute(INSERT_TRIGGER, (None if stop is None else stop.contract.symbol, seq))
        return seq

    def append_many(self, rows: Iterable[JournalRow]) -> list[int]:
        """Journal many entries in one transaction; their seqs, in order.

        Each row's ``seq`` and ``wall_t`` are ignored (use ``JournalRow.entry``
        to build them): the store assigns both. Every kind is checked before
        anything is written.
        """
        prepared = [
            (r.t, r.kind, r.position_id, encode_payload(r.payload), is_trigger(r.kind, r.payload))
            for r in rows
        ]
        for _, kind, _, _, _ in prepared:
            check_kind(kind)
        seqs: list[int] = []
        with self._op("append_many", write=True) as conn:
            wall_t = time.time()
            for t, kind, position_id, text, trigger in prepared:
                seq = conn.execute(_APPEND, (t, wall_t, kind, position_id, text)).lastrowid
                assert seq is not None
                if trigger:
                    conn.execute(INSERT_TRIGGER, (None, seq))
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
        return [journal_row(r) for r in rows]

    def last_journal(
        self, kind: str | None = None, position_id: str | None = None
    ) -> JournalRow | None:
        """The most recent row matching the filters, or None."""
        rows = self.journal(kind=kind, position_id=position_id, limit=1, newest=True)
        return rows[0] if rows else None

    def triggers_since(self, t: float) -> list[TriggerRow]:
        """Every stop TRIGGER with event time >= ``t``, oldest first (then in journal order).

        What the cooldown and the stop guard are recomputed from at start:
        pass now − max(``after_trigger_s``, ``window_s``). Read from the
        ``triggers`` index, never by scanning the journal.
        """
        with self._op("triggers_since") as conn:
            rows = conn.execute(
                "SELECT t, position_id, symbol FROM triggers WHERE t >= ? ORDER BY t, seq", (t,)
            ).fetchall()
        return [TriggerRow(float(r[0]), r[1], r[2]) for r in rows]

    # ---------------------------------------------------------- exit orders

    def claim_exit(self, trigger_id: str, position_id: str, t: float) -> bool:
        """Claim the right to send the exit order for ``trigger_id``.

        True exactly once per key, across threads, processes and restarts
        (the claim is a durable row keyed by the id; ``INSERT OR IGNORE``
        tells the one inserter apart from everyone else). The key is a
        trigger id or ``flatten_key(kill_id, position_id)``; its reason is
        read from it. Send the order only on True, and journal the decision
        before claiming (or claim with the row: ``record(claim=...)``). On
        StoreUnavailable do not send: the claim did not happen and is retried.
        A claim that has no order recorded after a restart (see
        ``pending_exits``) may or may not have reached the broker before the
        crash: reconcile with the broker's open orders and positions, never
        resend blindly.
        """
        if not trigger_id:
            raise ValueError("an exit claim needs a non-empty key")
        reason = exit_reason(trigger_id).value
        with self._op("claim_exit", write=True, durable=True) as conn:
            cur = conn.execute(_CLAIM, (trigger_id, position_id, t, time.time(), reason, None))
            return cur.rowcount == 1

    def record_exit_order(self, trigger_id: str, order_id: int, detail: Mapping[str, Any]) -> None:
        """Remember which broker order carried out a claimed exit.

        Recording for an id that was never claimed still records (an order
        id must never be lost), and makes any later claim of it return False.
        Recording again overwrites: the latest order for the trigger wins.
        """
        text = encode_payload(detail)
        reason = exit_reason(trigger_id).value
        with self._op("record_exit_order", write=True, durable=True) as conn:
            conn.execute(
                "INSERT INTO exits (trigger_id, order_id, detail, recorded_wall_t, reason) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(trigger_id) DO UPDATE SET "
                "order_id = excluded.order_id, detail = excluded.detail, "
                "recorded_wall_t = excluded.recorded_wall_t",
                (trigger_id, order_id, text, time.time(), reason),
            )

    def exit_for(self, trigger_id: str) -> dict[str, Any] | None:
        """The claim and order of a key, or None if it was never claimed.

        Keys: trigger_id, position_id, claimed_t, claimed_wall_t, order_id
        (None until recorded), detail (a dict, or None until recorded),
        recorded_wall_t, reason (``stop`` | ``flatten``), journal_seq (the
        row it was claimed with in ``record``, else None).
        """
        with self._op("exit_for") as conn:
            row = conn.execute(
                f"SELECT {EXIT_COLUMNS} FROM exits WHERE trigger_id = ?", (trigger_id,)
            ).fetchone()
        return None if row is None else exit_dict(row)

    def pending_exits(self, reason: ExitReason | str | None = None) -> list[dict[str, Any]]:
        """Claims with no order recorded (of one reason, if given): to reconcile at start."""
        sql = f"SELECT {EXIT_COLUMNS} FROM exits WHERE order_id IS NULL"
        params: tuple[str, ...] = ()
        if reason is not None:
            sql += " AND reason = ?"
            params = (ExitReason(reason).value,)
        with self._op("pending_exits") as conn:
            rows = conn.execute(sql + " ORDER BY claimed_wall_t, trigger_id", params).fetchall()
        return [exit_dict(r) for r in rows]


# ------------------------------------------------------------------ helpers


def _claimed(conn: sqlite3.Connection, key: str) -> bool:
    return conn.execute("SELECT 1 FROM exits WHERE trigger_id = ?", (key,)).fetchone() is not None


def _claim(claim: ExitClaim | tuple[str, str]) -> ExitClaim:
    key, position_id = claim
    if not key or not position_id:
        raise ValueError(f"an exit claim needs a key and a position id, not {claim!r}")
    return ExitClaim(key, position_id)


def _strategy(change: StrategyChange) -> tuple[str, str | None]:
    """Checked and encoded before the transaction: a bad argument writes nothing."""
    strategy_id, spec = change
    if not strategy_id:
        raise ValueError("a strategy needs a non-empty id")
    return strategy_id, None if spec is None else encode_state(spec)


def _write_strategy(
    conn: sqlite3.Connection, change: tuple[str, str | None], wall_t: float
) -> None:
    strategy_id, text = change
    if text is None:
        conn.execute(DELETE_STRATEGY, (strategy_id,))
    else:
        conn.execute(SAVE_STRATEGY, (strategy_id, text, wall_t))

"""Durability under SIGKILL: what was journaled is never loosened by a crash.

The daemon runs as a real process (``python -m supervisor run``) on a SQLite
store in ``tmp_path``, with exit orders on, against the gateway simulator in
this process; the simulator outlives every daemon, as a broker would, keeping
its positions and every order it received. A price driver moves every
underlying in small random steps all the time, so stops on long and short
stocks and options activate, trail and trigger, and triggers send exit orders.
At seeded random moments, while prices move, the daemon is killed with
SIGKILL and started again on the same store and config; new positions appear,
the broker fills some exit orders, and the breaker is forced open (and later
reset) through the API shortly before some kills. The issue's promise is
checked after every kill, against the journal as it was at the kill:

* every open position's stop, as saved (``load_stops``, what the next start
  restores) and as the restarted daemon reports it (``GET /v1/state``), is at
  least as strict as its last journaled stop event: for a long, stop >= the
  journaled stop; for a short, stop <= it; active stays active; triggered stays
  triggered;
* the breaker, as saved and as restored, is at least as strict as its last
  journaled transition (a forced open stays open: it has no due time);
* no saved stop is triggered without its TRIGGER journaled (it would never
  send its exit);
* no trigger id is in two TRIGGER rows, and the simulator received at most one
  exit order (orderRef ``rs-exit:…``) per trigger id across all the restarts —
  and none that was not journaled first.

Random kills seconds apart seldom land inside the millisecond between two
commits, so a second test aims at exactly that: it freezes the daemon
(SIGSTOP) the instant a journal row is committed and checks what a SIGKILL
there would leave. (It found that a decision's journal row and the state it
leaves were once written in two commits; they are now one transaction.)
Anything looser than the journal, two exit orders for one trigger, an order
not journaled, a wrong side or quantity, fails.

``RS_KILL9_SEED``, ``RS_KILL9_CYCLES`` (default 4) and ``RS_KILL9_PROBES``
(default 120) change the seed, the number of kills and the number of aimed
attempts, to hunt for rare interleavings.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import random
import signal
import sqlite3
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import DaemonProcess, until

from supervisor.ib.adapter import EXIT_REF_PREFIX, exit_order_ref
from supervisor.simulator import SimPosition, SimulatorThread
from supervisor.store.sqlite_store import Store

pytestmark = pytest.mark.e2e

SEED = int(os.environ.get("RS_KILL9_SEED", "20260611"))
CYCLES = int(os.environ.get("RS_KILL9_CYCLES", "4"))
EXPIRY = (dt.date.today() + dt.timedelta(days=60)).isoformat()

#: Per driver step (every STEP_S), the standard deviation of an underlying's log move.
STEP_S = 0.04
SIGMA_STOCK = 0.0025
SIGMA_INDEX = 0.0006


class LooserThanJournal(AssertionError):
    """The store a SIGKILL left behind restores less strictly than its journal says."""


#: Breaker states from the least to the most strict.
STRICTNESS = {"closed": 0, "half_open": 1, "open": 2}
#: Transitions to OPEN that only an operator reset ends (no due time).
NO_TIMER = {"operator_force_open", "store_unavailable"}


def daemon_toml(sim_port: int, store: Path) -> str:
    return f"""
[ib]
host = "127.0.0.1"
port = {sim_port}
client_id = 51
exit_orders = true
connect_timeout_s = 5.0
reconnect_min_s = 0.05
reconnect_max_s = 0.3
probe_interval_s = 5.0

[api]
listen = "127.0.0.1:0"

[metrics]
enabled = false

[store]
path = "{store}"

[trailing_stop]
activation_pct = 1.0
trailing_pct = 1.0
min_move_pct = 0.1
confirm_quotes = 1

[trailing_stop.symbols.SPY]
activation_pct = 5.0
trailing_pct = 5.0

[trailing_stop.symbols.QQQ]
activation_pct = 5.0
trailing_pct = 5.0

[breaker]
failure_threshold = 1000
"""


# ------------------------------------------------------------------ the market


@dataclass
class Book:
    """What the simulated account holds; positions are added as the test goes."""

    sim: SimulatorThread
    next_con_id: int = 4001
    sides: dict[str, float] = field(default_factory=dict)  # position id -> signed qty

    def add(self, pos: SimPosition) -> None:
        """Hold ``pos`` at the simulator, at a cost equal to its price now (options too)."""
        g = self.sim.sim

        def add() -> None:
            g.add_position(pos)
            if pos.sec_type == "OPT":
                pos.avg_cost = round(g.market.mark(pos.instrument()) * pos.multiplier, 2)
                g.add_position(pos)

        self.sim.call(add)
        self.sides[str(pos.con_id)] = pos.qty

    def working_exits(self) -> list[int]:
        """Order ids of the exit orders still open at the broker (simulator loop)."""
        return [
            o.order_id
            for o in self.sim.sim.orders
            if o.is_open and o.order_ref.startswith(EXIT_REF_PREFIX)
        ]

    def held(self) -> set[str]:
        g = self.sim.sim
        return self.sim.call(lambda: {str(c) for c, p in g.positions.items() if p.qty != 0})


class PriceDriver(threading.Thread):
    """Moves every underlying by a random step every STEP_S and pushes the quotes."""

    def __init__(self, sim: SimulatorThread, rng: random.Random) -> None:
        super().__init__(name="price-driver", daemon=True)
        self.sim = sim
        self.rng = rng
        self.sigmas: dict[str, float] = {}
        self.lock = threading.Lock()
        self.halt = threading.Event()
        self.steps = 0
        self.error: BaseException | None = None

    def follow(self, symbol: str, sigma: float) -> None:
        with self.lock:
            self.sigmas[symbol] = sigma

    def run(self) -> None:
        try:
            while not self.halt.wait(STEP_S):
                with self.lock:
                    moves = {s: self.rng.gauss(0.0, sigma) for s, sigma in self.sigmas.items()}
                self.sim.call(self._step, moves)
                self.steps += 1
        except BaseException as exc:  # reported by the test, not lost in a thread
            self.error = exc

    def _step(self, moves: dict[str, float]) -> None:
        """On the simulator's loop: every underlying one step on, quotes pushed."""
        g = self.sim.sim
        for symbol, r in moves.items():
            und = g.market.underlyings[symbol]
            g.set_underlying(symbol, und.price * math.exp(r), und.vol)

    def stop(self) -> None:
        self.halt.set()
        self.join(10.0)
        assert not self.is_alive(), "price driver did not stop"


# ------------------------------------------------------------------ the journal


@dataclass
class Journaled:
    """The store as it was when a daemon died (read-only, after the kill)."""

    last_stop: dict[str, dict[str, Any]]  # position id -> payload of its last stop event
    stops: dict[str, Any]  # position id -> StopSnapshot saved for it
    breaker_row: dict[str, Any] | None  # payload of the last breaker transition
    breaker_saved: dict[str, Any] | None  # load_breaker()
    triggers: Counter[str]  # trigger id -> TRIGGER rows
    actions: Counter[str]  # ACTIVATE / UPDATE / TRIGGER rows in all
    exit_rows: list[dict[str, Any]]


def read_store(path: Path) -> Journaled:
    store = Store(path, read_only=True)
    try:
        rows = store.journal(kind="stop", limit=10_000_000)
        last: dict[str, dict[str, Any]] = {}
        triggers: Counter[str] = Counter()
        actions: Counter[str] = Counter()
        for row in rows:
            assert row.position_id is not None
            last[row.position_id] = row.payload
            actions[row.payload["action"]] += 1
            if row.payload["action"] == "TRIGGER":
                triggers[row.payload["trigger_id"]] += 1
        breaker = store.last_journal(kind="breaker")
        exits = [r.payload for r in store.journal(kind="exit_order", limit=10_000_000)]
        return Journaled(
            last_stop=last,
            stops={s.id: s for s in store.load_stops()},
            breaker_row=None if breaker is None else breaker.payload,
            breaker_saved=store.load_breaker(),
            triggers=triggers,
            actions=actions,
            exit_rows=exits,
        )
    finally:
        store.close()


def stop_problems(
    where: str,
    j: Journaled,
    held: set[str],
    sides: dict[str, float],
    have: dict[str, dict[str, Any]],
) -> list[str]:
    """How ``have`` (position id -> active/stop/triggered) is looser than the journal."""
    problems = []
    for pid, e in sorted(j.last_stop.items()):
        if pid not in held:
            continue  # closed at the broker: nothing to restore
        s = have.get(pid)
        if s is None:
            problems.append(f"{where}: {pid} has journaled {e['action']} but no stop at all")
            continue
        long = sides[pid] > 0
        if not s["active"]:
            problems.append(f"{where}: {pid} journaled {e['action']} (active) but is not active")
        stop = s["stop"]
        if stop is None or (stop < e["stop"] if long else stop > e["stop"]):
            problems.append(
                f"{where}: {pid} ({'long' if long else 'short'}) stop {stop} is looser than the "
                f"journaled {e['action']} at {e['stop']}"
            )
        if e["action"] == "TRIGGER" and not s["triggered"]:
            problems.append(f"{where}: {pid} journaled TRIGGER but is not triggered")
    return problems


def breaker_problems(where: str, j: Journaled, state: str, due: float | None) -> list[str]:
    row = j.breaker_row
    if row is None:
        return []
    want = row["to"]
    if STRICTNESS[state] >= STRICTNESS[want]:
        return []
    if (
        want == "open"
        and state == "half_open"
        and row["cause"]["reason"] not in NO_TIMER
        and due is not None
        and time.time() >= due
    ):
        return []  # an automatic open that fell due while the daemon was down
    return [f"{where}: breaker {state} is looser than the journaled transition to {want}: {row}"]


def snapshot_view(s: Any) -> dict[str, Any]:
    return {
        "active": s.active,
        "stop": s.stop,
        "triggered": s.triggered,
        "trigger_id": s.trigger_id,
    }


def silent_triggers(where: str, j: Journaled, held: set[str]) -> list[str]:
    """Saved stops that are triggered although no TRIGGER of theirs was journaled.

    Restored so, a stop would never trigger again and its exit would never be
    sent: the decision must be on the journal before it is in the state.
    """
    return [
        f"{where}: {pid} is saved triggered ({s.trigger_id}) but no TRIGGER was journaled"
        for pid, s in sorted(j.stops.items())
        if pid in held and s.triggered and s.trigger_id not in j.triggers
    ]


# ------------------------------------------------------------------ the test


def test_kill9_never_loosens_a_stop_the_breaker_or_repeats_an_exit(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    store_path = tmp_path / "state.sqlite"
    sim = SimulatorThread(seed=SEED % 1000, call_timeout=10.0)
    driver = PriceDriver(sim, random.Random(rng.random()))
    config = tmp_path / "daemon.toml"
    daemon = DaemonProcess(config, tmp_path)
    problems: list[str] = []  # the state restored is looser than the journal
    order_problems: list[str] = []  # exit orders: never two for one trigger, never unjournaled
    kills: list[dict[str, Any]] = []
    sim.start()
    try:
        g = sim.sim
        book = Book(sim)
        for symbol, price, sigma in (
            ("AAPL", 100.0, SIGMA_STOCK),
            ("MSFT", 400.0, SIGMA_STOCK),
            ("NVDA", 120.0, SIGMA_STOCK),
            ("SPY", 500.0, SIGMA_INDEX),
            ("QQQ", 430.0, SIGMA_INDEX),
        ):
            sim.call(g.set_underlying, symbol, price, 0.2, push=False)
            driver.follow(symbol, sigma)
        book.add(SimPosition(1001, "AAPL", "STK", 100, 100.0))
        book.add(SimPosition(1002, "MSFT", "STK", -50, 400.0))
        book.add(SimPosition(1003, "NVDA", "STK", 40, 120.0))
        book.add(SimPosition(2001, "SPY", "OPT", -2, 0.0, right="P", strike=480.0, expiry=EXPIRY))
        book.add(SimPosition(2002, "QQQ", "OPT", 3, 0.0, right="C", strike=440.0, expiry=EXPIRY))
        newcomers = iter(
            [("AMD", 150.0), ("INTC", 40.0), ("IBM", 180.0), ("ORCL", 120.0), ("KO", 60.0),
             ("XOM", 110.0), ("PEP", 170.0), ("CSCO", 50.0), ("T", 20.0), ("WMT", 90.0)]
            * 10
        )  # fmt: skip

        config.write_text(daemon_toml(sim.port, store_path), encoding="utf-8")
        daemon.start()
        daemon.wait_connected()
        until(
            lambda: len(daemon.get("/v1/state")["positions"]) == len(book.sides),
            20.0,
            "every position in the daemon",
            diagnose=daemon.diagnose,
        )
        driver.start()

        for cycle in range(CYCLES):
            # New positions, one long and one short stock, opened while the daemon runs.
            for qty in (100, -100):
                symbol, price = next(newcomers)
                symbol = f"{symbol}{book.next_con_id}"
                sim.call(g.set_underlying, symbol, price, 0.3, push=False)
                book.add(SimPosition(book.next_con_id, symbol, "STK", qty, price))
                driver.follow(symbol, SIGMA_STOCK)
                book.next_con_id += 1
            # The broker fills an open exit order now and then (the position closes).
            working = sim.call(book.working_exits)
            if working and rng.random() < 0.5:
                sim.call(g.fill_order, rng.choice(working))

            # Prices move for a while; the breaker is forced open (cycles 1 .. n-2),
            # or reset (last cycle), shortly before the kill.
            time.sleep(rng.uniform(0.8, 2.5))
            if 1 <= cycle <= CYCLES - 2:
                assert daemon.post("/v1/breaker/force-open", {"operator": "kill9"}) == {
                    "state": "open"
                }
                time.sleep(rng.uniform(0.0, 0.4))
            elif cycle == CYCLES - 1 and cycle > 0:
                assert daemon.post("/v1/breaker/reset", {"operator": "kill9"}) == {
                    "state": "closed"
                }
                time.sleep(rng.uniform(0.0, 0.4))
            if driver.error is not None:
                raise driver.error

            daemon.kill9()
            held = book.held()
            j = read_store(store_path)
            saved = {pid: snapshot_view(s) for pid, s in j.stops.items()}
            problems += stop_problems(f"kill {cycle + 1}, saved", j, held, book.sides, saved)
            problems += silent_triggers(f"kill {cycle + 1}, saved", j, held)
            b = j.breaker_saved
            problems += breaker_problems(
                f"kill {cycle + 1}, saved",
                j,
                "closed" if b is None else b["state"],
                None if b is None else b["due"],
            )

            daemon.start()
            state = daemon.get("/v1/state")
            restored = {p["id"]: p for p in state["positions"]}
            problems += stop_problems(f"restart {cycle + 1}", j, held, book.sides, restored)
            breaker = state["breaker"]
            problems += breaker_problems(
                f"restart {cycle + 1}", j, breaker["state"], breaker["snapshot"]["due"]
            )
            kills.append(
                {
                    "journaled_breaker": None if j.breaker_row is None else j.breaker_row["to"],
                    "restored_breaker": breaker["state"],
                    "stops_journaled": sum(j.actions.values()),
                }
            )
            daemon.wait_connected()

        # Let the last daemon trade a little, then stop it cleanly.
        time.sleep(1.0)
        driver.stop()
        if driver.error is not None:
            raise driver.error
        time.sleep(0.5)
        assert daemon.terminate() == 0, daemon.diagnose()
        held = book.held()
        final = read_store(store_path)
        saved = {pid: snapshot_view(s) for pid, s in final.stops.items()}
        problems += stop_problems("after the clean stop", final, held, book.sides, saved)
        problems += silent_triggers("after the clean stop", final, held)

        # No TRIGGER repeated; at most one exit order per trigger, and none unjournaled.
        problems += [
            f"TRIGGER {tid} journaled {n} times" for tid, n in final.triggers.items() if n > 1
        ]
        placed = Counter(r["trigger_id"] for r in final.exit_rows if r["status"] == "placed")
        order_problems += [
            f"exit order journaled placed {n} times for {t}" for t, n in placed.items() if n > 1
        ]
        orders = sim.call(
            lambda: [
                (o.order_ref, o.client_id, o.order_id, o.action, o.qty, o.con_id)
                for o in g.orders
                if o.order_ref.startswith(EXIT_REF_PREFIX)
            ]
        )
        by_ref: dict[str, set[tuple[int, int]]] = defaultdict(set)
        for ref, client_id, order_id, *_ in orders:
            by_ref[ref].add((client_id, order_id))
        order_problems += [
            f"{len(ids)} exit orders (client, order id) {sorted(ids)} for one trigger: {ref}"
            for ref, ids in by_ref.items()
            if len(ids) > 1
        ]
        journaled_refs = {exit_order_ref(tid): tid for tid in final.triggers}
        order_problems += [
            f"exit order {ref} without a journaled TRIGGER"
            for ref in by_ref.keys() - journaled_refs.keys()
        ]
        for ref, _, order_id, action, qty, con_id in orders:
            side = book.sides[str(con_id)]
            want = ("SELL" if side > 0 else "BUY", abs(side))
            if not journaled_refs.get(ref, "").startswith(f"{con_id}@") or (action, qty) != want:
                order_problems.append(
                    f"exit order {order_id} {ref}: {action} {qty} of {con_id}, not {want}"
                )

        print(
            f"seed {SEED}: {len(kills)} kills, stop events {dict(final.actions)}, "
            f"{len(by_ref)} exit orders, {driver.steps} price steps; kills: {kills}"
        )
        assert not order_problems, "\n".join(order_problems + problems)
        assert not problems, "\n".join(problems)

        # The run exercised what it claims to.
        assert len(kills) == CYCLES >= 3
        assert final.actions["ACTIVATE"] >= 3 and final.actions["UPDATE"] >= 3, final.actions
        assert final.actions["TRIGGER"] >= 2 and len(by_ref) >= 2, (final.actions, by_ref)
        assert {"long", "short"} == {
            "long" if book.sides[tid.split("@")[0]] > 0 else "short" for tid in final.triggers
        }, final.triggers
        assert any(
            k["journaled_breaker"] == "open" and k["restored_breaker"] == "open" for k in kills
        ), f"no kill with the breaker journaled open: {kills}"
    except BaseException:
        print(daemon.diagnose())
        print("kills:", kills)
        raise
    finally:
        driver.halt.set()
        daemon.close()
        if driver.is_alive():
            driver.join(10.0)
        sim.stop()


PROBE_ATTEMPTS = int(os.environ.get("RS_KILL9_PROBES", "120"))

#: Each position's last journaled stop event, with the stop saved for it (NULLs if none).
LAST_STOPS_SQL = """
SELECT j.position_id, j.payload, s.active, s.stop, s.triggered
FROM journal AS j
JOIN (SELECT position_id, max(seq) AS seq FROM journal WHERE kind = 'stop' GROUP BY position_id)
    AS l ON j.seq = l.seq
LEFT JOIN stops AS s ON s.id = j.position_id
"""


def probe_toml(sim_port: int, store: Path) -> str:
    """Every favourable 1 % move is a stop event; the stops trail far, so none triggers."""
    return f"""
[ib]
port = {sim_port}
client_id = 52
reconnect_min_s = 0.05
reconnect_max_s = 0.3

[api]
listen = "127.0.0.1:0"

[metrics]
enabled = false

[store]
path = "{store}"

[trailing_stop]
activation_pct = 0.5
trailing_pct = 50.0
min_move_pct = 0.01

[breaker]
failure_threshold = 1000
"""


def test_sigkill_at_any_instant_leaves_the_saved_state_as_strict_as_the_journal(
    tmp_path: Path,
) -> None:
    """Aim the kill right behind the journal writes: freeze the daemon, look, then kill.

    Random kills seconds apart rarely land between two commits a millisecond
    apart, so the test above passes by luck more often than not. Here each
    attempt moves all eight stocks 1 % in their favour (eight stop events)
    or, every fourth attempt, forces the breaker open or resets it; the test
    polls the journal and freezes the daemon (SIGSTOP) the instant a random
    number of the attempt's rows are committed, then reads the store: what a
    SIGKILL at that instant would leave. A store looser than its journal is
    confirmed with a real SIGKILL and a fresh read (SQLite's recovery sees every
    committed write) and fails the test; a frozen read that only missed a
    commit in flight is not a failure, and the daemon is restarted. Otherwise
    the daemon continues (SIGCONT) and the next attempt follows.
    """
    rng = random.Random(SEED + 1)
    store_path = tmp_path / "state.sqlite"
    sim = SimulatorThread(seed=7, call_timeout=10.0)
    config = tmp_path / "probe.toml"
    daemon = DaemonProcess(config, tmp_path)
    poll: sqlite3.Connection | None = None
    sim.start()
    try:
        g = sim.sim
        book = Book(sim)
        symbols = [f"P{i}" for i in range(8)]
        for i, symbol in enumerate(symbols):
            sim.call(g.set_underlying, symbol, 100.0, 0.2, push=False)
            book.add(SimPosition(6001 + i, symbol, "STK", 100 if i % 2 == 0 else -100, 100.0))
        config.write_text(probe_toml(sim.port, store_path), encoding="utf-8")
        daemon.start()
        daemon.wait_connected()
        until(
            lambda: len(daemon.get("/v1/state")["positions"]) == len(symbols),
            20.0,
            "every position in the daemon",
            diagnose=daemon.diagnose,
        )
        held = set(book.sides)

        def favourable() -> None:
            for i, symbol in enumerate(symbols):
                und = g.market.underlyings[symbol]
                g.set_underlying(symbol, und.price * (1.01 if i % 2 == 0 else 0.99), und.vol)

        def looser(where: str, j: Journaled) -> list[str]:
            saved = {pid: snapshot_view(s) for pid, s in j.stops.items()}
            b = j.breaker_saved
            return stop_problems(where, j, held, book.sides, saved) + breaker_problems(
                where, j, "closed" if b is None else b["state"], None if b is None else b["due"]
            )

        # A bare read-only connection samples the store while the daemon is frozen: one
        # cheap query, so the daemon can be frozen and thawed many times per attempt.
        def connect() -> sqlite3.Connection:
            return sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, isolation_level=None)

        poll = connect()

        def rows_since(kind: str, seq: int) -> int:
            assert poll is not None
            (n,) = poll.execute(
                "SELECT count(*) FROM journal WHERE kind = ? AND seq > ?", (kind, seq)
            ).fetchone()
            return int(n)

        def last_seq() -> int:
            assert poll is not None
            (seq,) = poll.execute("SELECT coalesce(max(seq), 0) FROM journal").fetchone()
            return int(seq)

        def frozen_looser(where: str) -> list[str]:
            """The last journaled stop events and breaker transition against the saved state."""
            assert poll is not None
            last, have = {}, {}
            for pid, payload, active, stop, triggered in poll.execute(LAST_STOPS_SQL):
                last[pid] = json.loads(payload)
                if active is not None:
                    have[pid] = {"active": bool(active), "stop": stop, "triggered": bool(triggered)}
            row = poll.execute(
                "SELECT payload FROM journal WHERE kind = 'breaker' ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            saved = poll.execute("SELECT state FROM breaker WHERE id = 1").fetchone()
            j = Journaled(
                last_stop=last,
                stops={},
                breaker_row=None if row is None else json.loads(row[0]),
                breaker_saved=None if saved is None else json.loads(saved[0]),
                triggers=Counter(),
                actions=Counter(),
                exit_rows=[],
            )
            b = j.breaker_saved
            return stop_problems(where, j, held, book.sides, have) + breaker_problems(
                where, j, "closed" if b is None else b["state"], None if b is None else b["due"]
            )

        deadline = time.monotonic() + 30.0
        attempts = artifacts = samples = 0
        while attempts < PROBE_ATTEMPTS and time.monotonic() < deadline:
            attempts += 1
            seq = last_seq()
            if attempts % 4 == 0:
                action = "force-open" if attempts % 8 == 0 else "reset"
                daemon.post(f"/v1/breaker/{action}", {"operator": "probe"})
                kind, total = "breaker", 1
            else:
                sim.call(favourable)
                kind, total = "stop", len(symbols)
            # Freeze, look, thaw, every millisecond or so, until the attempt's rows are all
            # journaled and saved, or the saved state is found looser than the journal.
            give_up = time.monotonic() + 2.0
            while True:
                seen: list[str] = []
                done = False
                os.kill(daemon.pid, signal.SIGSTOP)
                try:
                    samples += 1
                    seen = frozen_looser(f"attempt {attempts}, frozen")
                    done = not seen and rows_since(kind, seq) >= total
                except sqlite3.OperationalError:
                    pass  # frozen inside a WAL-index update (SQLITE_PROTOCOL): look again
                finally:
                    if not seen:
                        os.kill(daemon.pid, signal.SIGCONT)
                if seen or done or time.monotonic() > give_up:
                    break
                time.sleep(rng.uniform(0.0, 0.002))
            if not seen:
                continue
            poll.close()  # the fresh read below is then the first connection: it recovers
            daemon.kill9()  # what a SIGKILL at that instant leaves, after SQLite recovery
            confirmed = looser(f"attempt {attempts}, killed", read_store(store_path))
            if confirmed:
                raise LooserThanJournal(
                    "\n".join(confirmed) + f"\n({attempts} attempts, {samples} frozen samples, "
                    f"{artifacts} commits in flight before)"
                )
            artifacts += 1  # the frozen read missed a commit in flight: carry on
            daemon.start()
            daemon.wait_connected()
            poll = connect()
        print(
            f"{attempts} attempts, {samples} frozen samples, {artifacts} commits in flight: "
            "none looser than the journal"
        )
        assert daemon.terminate() == 0
    except BaseException:
        print(daemon.diagnose())
        raise
    finally:
        if poll is not None:
            poll.close()
        daemon.close()
        sim.stop()


def test_helpers_of_this_file() -> None:
    """The comparison itself: looser stops and breakers are caught, stricter ones pass."""
    j = Journaled(
        last_stop={
            "L": {"action": "UPDATE", "stop": 101.0},
            "S": {"action": "TRIGGER", "stop": 99.0},
            "gone": {"action": "ACTIVATE", "stop": 1.0},
        },
        stops={},
        breaker_row={"to": "open", "cause": {"reason": "operator_force_open"}},
        breaker_saved=None,
        triggers=Counter(),
        actions=Counter(),
        exit_rows=[],
    )
    sides = {"L": 10.0, "S": -10.0, "gone": 1.0}
    held = {"L", "S"}
    good = {
        "L": {"active": True, "stop": 101.5, "triggered": False},
        "S": {"active": True, "stop": 98.0, "triggered": True},
    }
    assert stop_problems("x", j, held, sides, good) == []
    bad = {
        "L": {"active": True, "stop": 100.9, "triggered": False},
        "S": {"active": True, "stop": 99.5, "triggered": False},
    }
    found = stop_problems("x", j, held, sides, bad)
    assert len(found) == 3, found
    assert len(stop_problems("x", j, held, sides, {})) == 2
    assert breaker_problems("x", j, "open", None) == []
    assert breaker_problems("x", j, "half_open", time.time() - 1)
    auto = {"to": "open", "cause": {"reason": "failure_threshold"}}
    j.breaker_row = auto
    assert breaker_problems("x", j, "half_open", time.time() - 1) == []
    assert breaker_problems("x", j, "half_open", time.time() + 60)
    assert breaker_problems("x", j, "closed", None)

"""Chaos: the store is deleted, locked and filled under a trading daemon, which is SIGKILLed.

The issue's "done when": *a chaos test deletes/locks/fills the store, SIGKILLs
at random points and restarts, and asserts no second exit, no lost decision,
never less strict.*

A daemon process (``exit_orders = true``) supervises stocks whose prices a
driver moves in small random steps, so stops arm, trail and trigger, and
triggers send exit orders to the simulator (which leaves them working). A
pretend trader asks the gate every 0.1 s. A seeded loop of cycles then, at
random moments:

* **delete**: the daemon is frozen (SIGSTOP), its journal read, its three
  store files unlinked, and it is thawed: ``/healthz`` must say the store is
  unavailable and entries must be denied; then SIGKILL and a restart on a
  fresh store — where no stop may send a second exit for a position IB
  already shows an exit order for;
* **lock**: another connection holds the database's write lock (``BEGIN
  EXCLUSIVE``) for ~2 s: store unavailable, entries denied, then (unless a
  SIGKILL lands first) the held rows are written and an operator resets the
  breaker it opened;
* **fill**: the daemon's file-size limit drops to one byte (``prlimit``
  RLIMIT_FSIZE: every write fails, as on a full disk) for ~2 s, then the
  same;
* **sigkill** at a random instant, and a restart on the same store;

and half the cycles force the breaker open first, so that restarts have an
OPEN transition in the journal to keep.

Checked throughout and at the end:

* never two exit orders for one position (every position here is opened
  once), by orderRef and by (client, order id) at the simulator, each on the
  closing side for the whole quantity, and none without its TRIGGER in the
  journal of its store;
* no lost decision: every allowed check answer is in the journal of its
  store; so is every answer given while the store was healthy, and after a
  lock or a fill that the daemon survived, every answer it gave during it;
* never less strict: after every restart on the same store the breaker is at
  least as strict as its last journaled transition.

``RS_CHAOS_SEED`` and ``RS_CHAOS_CYCLES`` (default 6) change the seed and the
number of cycles.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import resource
import signal
import sqlite3
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_helpers import DaemonProcess, until
from e2e_rig import daemon_doc, journal_rows, simulator, write_config

from supervisor.ib.adapter import EXIT_REF_PREFIX, exit_order_ref
from supervisor.simulator import SimPosition, SimulatorThread

pytestmark = pytest.mark.e2e

SEED = int(os.environ.get("RS_CHAOS_SEED", "20261206"))
CYCLES = int(os.environ.get("RS_CHAOS_CYCLES", "6"))
STEP_S = 0.04
SIGMA = 0.003
STRICTNESS = {"closed": 0, "half_open": 1, "open": 2}
FAULTS = ("delete", "lock", "fill", "sigkill")


# ------------------------------------------------------------------ the world


class PriceDriver(threading.Thread):
    """Every STEP_S, each followed underlying moves by a random log step; quotes pushed."""

    def __init__(self, sim: SimulatorThread, rng: random.Random) -> None:
        super().__init__(name="chaos-prices", daemon=True)
        self.sim = sim
        self.rng = rng
        self.symbols: list[str] = []
        self.lock = threading.Lock()
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def follow(self, symbol: str) -> None:
        with self.lock:
            self.symbols.append(symbol)

    def run(self) -> None:
        try:
            while not self.halt.wait(STEP_S):
                with self.lock:
                    moves = {s: self.rng.gauss(0.0, SIGMA) for s in self.symbols}
                self.sim.call(self._step, moves)
        except BaseException as exc:
            self.error = exc

    def _step(self, moves: dict[str, float]) -> None:
        g = self.sim.sim
        for symbol, r in moves.items():
            und = g.market.underlyings[symbol]
            g.set_underlying(symbol, und.price * math.exp(r), und.vol)


@dataclass
class Answer:
    ident: str
    allowed: bool
    sent: float  # monotonic
    answered: float  # monotonic


class Trader(threading.Thread):
    """Asks the gate every 0.1 s through whichever daemon is up; keeps every answer."""

    def __init__(self, daemon: DaemonProcess, interval: float = 0.1) -> None:
        super().__init__(name="chaos-trader", daemon=True)
        self.supervisor = daemon
        self.interval = interval
        self.answers: list[Answer] = []
        self.halt = threading.Event()
        self.lock = threading.Lock()
        self.n = 0

    def run(self) -> None:
        with httpx.Client(timeout=3.0) as client:
            while not self.halt.wait(self.interval):
                self.n += 1
                ident = f"t{self.n}"
                url = self.supervisor.api_url
                try:
                    token = self.supervisor.token
                    sent = time.monotonic()
                    r = client.post(
                        url + "/v1/checks",
                        json={
                            "id": ident,
                            "legs": [{"symbol": "AAPL", "sec_type": "STK", "qty": 1, "price": 1.0}],
                        },
                        headers={"Authorization": f"Bearer {token}"},
                    )
                except (httpx.HTTPError, OSError):
                    continue  # the daemon is down or restarting: no answer, nothing promised
                if r.status_code == 200:
                    with self.lock:
                        self.answers.append(
                            Answer(ident, bool(r.json()["allowed"]), sent, time.monotonic())
                        )

    def since(self, t: float) -> list[Answer]:
        with self.lock:
            return [a for a in self.answers if a.sent >= t]


@dataclass
class Epoch:
    """One store file's life: from its creation to its deletion (or the end)."""

    start: float
    journal: list[dict[str, Any]] = field(default_factory=list)
    # answers that may be missing from the journal: denials held in memory when the
    # daemon died, or given after its files were deleted
    excused: tuple[tuple[float, float], ...] = ()
    aside: Path | None = None  # its files, set aside when they were deleted


# ------------------------------------------------------------------ helpers


def _freeze(pid: int) -> None:
    os.killpg(pid, signal.SIGSTOP)


def _thaw(pid: int) -> None:
    os.killpg(pid, signal.SIGCONT)


def _read_journal(store: Path, pid: int | None = None) -> list[dict[str, Any]]:
    """The journal; a read that meets a frozen writer mid-index-update is retried."""
    for _ in range(50):
        try:
            return journal_rows(store)
        except sqlite3.OperationalError:
            if pid is not None:
                _thaw(pid)
                time.sleep(0.01)
                _freeze(pid)
            else:
                time.sleep(0.02)
    return journal_rows(store)


def _health(d: DaemonProcess) -> dict[str, Any] | None:
    try:
        return dict(d.get("/healthz", timeout=3.0))
    except (httpx.HTTPError, OSError):
        return None


def _store_is(d: DaemonProcess, want: str) -> bool:
    h = _health(d)
    return h is not None and h["store"] == want


def _entry_denied(d: DaemonProcess, ident: str) -> bool:
    answer = d.post(
        "/v1/checks",
        {"id": ident, "legs": [{"symbol": "AAPL", "sec_type": "STK", "qty": 1, "price": 1.0}]},
    )
    return answer["allowed"] is False


def _breaker_looser(restored: str, journal: list[dict[str, Any]]) -> str | None:
    rows = [r["payload"] for r in journal if r["kind"] == "breaker"]
    if not rows:
        return None
    last = rows[-1]
    if STRICTNESS[restored] < STRICTNESS[last["to"]]:
        return f"restored {restored}, but the journal's last transition is to {last['to']}: {last}"
    return None


def _dead_rows(ep: Epoch, ident: str) -> str:
    """Where a check missing from its store's journal went: into the deleted files?"""
    if ep.aside is None or not ep.aside.exists():
        return "no deleted store to look in"
    con = sqlite3.connect(str(ep.aside))
    try:
        n = con.execute(
            "SELECT count(*) FROM journal WHERE kind = 'check' "
            "AND json_extract(payload, '$.id') = ?",
            (ident,),
        ).fetchone()[0]
    finally:
        con.close()
    return (
        "its verdict was committed into the store file after it was deleted"
        if n
        else "not in the deleted store file either"
    )


# ------------------------------------------------------------------ the test


def test_chaos_store_faults_and_sigkills_never_repeat_an_exit_lose_a_decision_or_loosen(
    tmp_path: Path,
) -> None:
    rng = random.Random(SEED)
    store = tmp_path / "state.sqlite"
    problems: list[str] = []
    log: list[str] = []
    epochs: list[Epoch] = [Epoch(time.monotonic())]
    sides: dict[int, float] = {}
    with simulator(seed=SEED % 1000) as sim:
        g = sim.sim
        driver = PriceDriver(sim, random.Random(rng.random()))
        config = write_config(
            tmp_path / "daemon.toml",
            daemon_doc(
                sim.port,
                store,
                68,
                ib={"exit_orders": True},
                trailing_stop={
                    "activation_pct": 1.0,
                    "trailing_pct": 1.0,
                    "min_move_pct": 0.1,
                },
            ),
        )
        d = DaemonProcess(config, tmp_path)
        trader = Trader(d)
        next_con = [5001]

        def open_positions(n: int) -> None:
            for _ in range(n):
                con = next_con[0]
                next_con[0] += 1
                symbol = f"S{con}"
                qty = 100.0 if con % 2 else -100.0
                sim.call(g.set_underlying, symbol, 100.0, 0.3, push=False)
                sim.call(g.add_position, SimPosition(con, symbol, "STK", qty, 100.0))
                sides[con] = qty
                driver.follow(symbol)

        def restart(why: str) -> None:
            d.start()
            d.wait_connected()
            state = d.get("/v1/state")
            log.append(f"restart after {why}: breaker {state['breaker']['state']}")
            if why != "delete" and store.exists():
                looser = _breaker_looser(state["breaker"]["state"], epochs[-1].journal)
                if looser:
                    problems.append(f"after {why}: {looser}")

        def kill_and_read(why: str) -> None:
            d.kill9()
            if store.exists():
                epochs[-1].journal = _read_journal(store)

        def reset_if_open() -> None:
            if d.get("/v1/state")["breaker"]["state"] != "closed":
                assert d.post("/v1/breaker/reset", {"operator": "chaos"}) == {"state": "closed"}

        try:
            sim.call(g.set_underlying, "AAPL", 100.0, 0.2, push=False)
            open_positions(4)
            d.start()
            d.wait_connected()
            driver.start()
            trader.start()
            faults = list(FAULTS) + [rng.choice(FAULTS) for _ in range(max(CYCLES - 4, 0))]
            rng.shuffle(faults)
            for cycle, fault in enumerate(faults):
                open_positions(2)
                time.sleep(rng.uniform(0.6, 1.5))
                forced = rng.random() < 0.5  # an open breaker the restart must keep
                if forced:
                    assert d.post("/v1/breaker/force-open", {"operator": "chaos"}) == {
                        "state": "open"
                    }
                    time.sleep(rng.uniform(0.0, 0.3))
                log.append(f"cycle {cycle}: {'force-open, ' if forced else ''}{fault}")
                if fault == "sigkill":
                    kill_and_read(fault)
                    restart(fault)
                elif fault == "delete":
                    aside = tmp_path / f"deleted-{cycle}.sqlite"
                    _freeze(d.pid)
                    try:
                        epochs[-1].journal = _read_journal(store, d.pid)
                        for suffix in ("", "-wal", "-shm"):  # kept aside, for the diagnosis
                            with contextlib.suppress(FileNotFoundError):
                                os.link(f"{store}{suffix}", f"{aside}{suffix}")
                                Path(f"{store}{suffix}").unlink()
                    finally:
                        _thaw(d.pid)
                    epochs[-1].aside = aside
                    deleted = time.monotonic()
                    epochs[-1].excused += ((deleted, math.inf),)
                    until(
                        lambda: _store_is(d, "unavailable"),
                        5.0,
                        "/healthz: store unavailable after the delete",
                        diagnose=d.diagnose,
                    )
                    if not _entry_denied(d, f"deleted-{cycle}"):
                        problems.append(f"cycle {cycle}: an entry was allowed with no store")
                    time.sleep(rng.uniform(0.0, 0.5))
                    d.kill9()
                    epochs.append(Epoch(time.monotonic()))
                    restart(fault)
                else:  # lock or fill: the store fails, then comes back (or a SIGKILL first)
                    began = time.monotonic()
                    holder: sqlite3.Connection | None = None
                    if fault == "lock":
                        holder = sqlite3.connect(str(store), timeout=5.0, isolation_level=None)
                        holder.execute("BEGIN EXCLUSIVE")
                    else:
                        soft, hard = resource.prlimit(d.pid, resource.RLIMIT_FSIZE)
                        resource.prlimit(d.pid, resource.RLIMIT_FSIZE, (1, hard))
                    killed = False
                    try:
                        until(
                            lambda: _store_is(d, "unavailable"),
                            5.0,
                            f"/healthz: store unavailable under the {fault}",
                            diagnose=d.diagnose,
                        )
                        if not _entry_denied(d, f"{fault}-{cycle}"):
                            problems.append(f"cycle {cycle}: an entry was allowed under a {fault}")
                        time.sleep(rng.uniform(0.5, 1.5))
                        if rng.random() < 0.4:  # SIGKILL while rows are held in memory
                            d.kill9()
                            killed = True
                            epochs[-1].excused += ((began, time.monotonic()),)
                    finally:
                        if holder is not None:
                            holder.execute("ROLLBACK")
                            holder.close()
                        elif not killed:
                            resource.prlimit(d.pid, resource.RLIMIT_FSIZE, (soft, hard))
                    if killed:
                        epochs[-1].journal = _read_journal(store)
                        restart(f"{fault} (killed during it)")
                    else:
                        until(
                            lambda: _store_is(d, "ok"),
                            10.0,
                            f"/healthz: store back after the {fault}",
                            diagnose=d.diagnose,
                        )
                        state = d.get("/v1/state")["breaker"]
                        if state["state"] != "open":
                            problems.append(
                                f"cycle {cycle}: after a {fault} the breaker is {state['state']}, "
                                "not open (store_unavailable is sticky until a reset)"
                            )
                reset_if_open()
                if driver.error is not None:
                    raise driver.error

            time.sleep(1.0)
            trader.halt.set()
            trader.join(10.0)
            driver.halt.set()
            driver.join(10.0)
            time.sleep(0.5)
            assert d.terminate() == 0, d.diagnose()
            epochs[-1].journal = _read_journal(store)

            # ---------------------------------------------------- no second exit
            orders = [
                o
                for o in sim.call(lambda: list(g.orders))
                if o.order_ref.startswith(EXIT_REF_PREFIX)
            ]
            by_con: dict[int, list[Any]] = defaultdict(list)
            for o in orders:
                by_con[o.con_id].append(o)
            for con, os_ in sorted(by_con.items()):
                refs = Counter(o.order_ref for o in os_)
                ids = Counter((o.client_id, o.order_id) for o in os_)
                if len(os_) > 1:
                    problems.append(
                        f"position {con}: {len(os_)} exit orders "
                        f"{[(o.order_ref, o.client_id, o.order_id) for o in os_]}"
                    )
                problems += [
                    f"{con}: orderRef {r} used {n} times" for r, n in refs.items() if n > 1
                ]
                problems += [f"{con}: order id {i} used {n} times" for i, n in ids.items() if n > 1]
                for o in os_:
                    want = ("SELL" if sides[con] > 0 else "BUY", abs(sides[con]))
                    if (o.action, o.qty) != want:
                        problems.append(f"exit {o.order_ref}: {o.action} {o.qty}, not {want}")
            triggers: set[str] = set()
            trigger_rows: Counter[str] = Counter()
            for ep in epochs:
                for r in ep.journal:
                    if r["kind"] == "stop" and r["payload"]["action"] == "TRIGGER":
                        triggers.add(r["payload"]["trigger_id"])
                        trigger_rows[r["payload"]["trigger_id"]] += 1
            problems += [
                f"TRIGGER {t} journaled {n} times" for t, n in trigger_rows.items() if n > 1
            ]
            refs_of = {exit_order_ref(t) for t in triggers}
            problems += [
                f"exit order {o.order_ref} (order {o.order_id}) without a journaled TRIGGER"
                for o in orders
                if o.order_ref not in refs_of
            ]

            # ---------------------------------------------------- no lost decision
            bounds = [ep.start for ep in epochs[1:]] + [math.inf]
            answers = list(trader.answers)
            verified = 0
            for ep, end in zip(epochs, bounds, strict=True):
                journaled = {
                    r["payload"]["id"]: r["payload"]["allowed"]
                    for r in ep.journal
                    if r["kind"] == "check"
                }
                for a in answers:
                    if not ep.start <= a.sent < end:
                        continue
                    excused = not a.allowed and any(
                        lo <= a.answered and a.sent <= hi for lo, hi in ep.excused
                    )
                    if a.ident not in journaled:
                        if not excused:
                            elsewhere = [
                                i for i, e in enumerate(epochs)
                                if any(r["kind"] == "check" and r["payload"]["id"] == a.ident
                                       for r in e.journal)
                            ]  # fmt: skip
                            dead = _dead_rows(ep, a.ident)
                            excuses = [
                                (round(lo - ep.start, 3), hi - ep.start) for lo, hi in ep.excused
                            ]
                            problems.append(
                                f"check {a.ident} answered allowed={a.allowed} is not in the "
                                f"journal of its store (epoch {epochs.index(ep)}, sent "
                                f"{a.sent - ep.start:.3f}s after it began, answered "
                                f"{a.answered - a.sent:.3f}s later; epochs start at "
                                f"{[round(e.start - ep.start, 3) for e in epochs]}, "
                                f"excused {excuses}"
                                f"; in the journal of epochs {elsewhere}; {dead})"
                            )
                    elif journaled[a.ident] == a.allowed:
                        verified += 1
                    else:
                        problems.append(
                            f"check {a.ident}: answered allowed={a.allowed}, "
                            f"journaled {journaled[a.ident]}"
                        )

            print(
                f"seed {SEED}: {log}; {len(answers)} answers, {len(triggers)} triggers, "
                f"{len(orders)} exit orders over {len(by_con)} positions; "
                f"{verified} answers found in their journal"
            )
            assert not problems, "\n".join(problems)
            # The run did what it claims.
            assert {f for f in faults} == set(FAULTS)
            assert len(triggers) >= 2 and len(orders) >= 2, (triggers, orders)
            assert verified >= len(answers) // 2, (verified, len(answers))
            assert sum(a.allowed for a in answers) >= 5 and sum(not a.allowed for a in answers) >= 1
        except BaseException:
            print("\n".join(log))
            print(d.diagnose())
            raise
        finally:
            trader.halt.set()
            driver.halt.set()
            d.close()
            if trader.is_alive():
                trader.join(10.0)
            if driver.is_alive():
                driver.join(10.0)


# ------------------------------------------------------------------ aimed at a commit

AIMED_HITS = int(os.environ.get("RS_CHAOS_AIMED_HITS", "2"))


def _in_write_transaction(store: Path) -> bool:
    """Whether someone (the frozen daemon) holds the store's write lock right now."""
    probe = sqlite3.connect(str(store), timeout=0.0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError:
        return True
    else:
        probe.execute("ROLLBACK")
        return False
    finally:
        probe.close()


def test_a_store_deleted_inside_a_write_never_leaves_an_allowed_verdict_only_in_the_dead_file(
    tmp_path: Path,
) -> None:
    """Random deletes rarely land inside a transaction; this aims them there.

    A trader asks the gate every 20 ms. The daemon is frozen (SIGSTOP) at
    random instants until it is caught holding the store's write lock — in the
    middle of journaling something, most often a check's verdict. Its three
    files are then moved out of the way (hard-linked aside, then unlinked at
    the path) and it is thawed: the transaction commits into files no restart
    will read. The daemon is killed half a second later and the files set
    aside are read. A check whose verdict is only there was answered
    *allowed* with nothing durable behind it — DESIGN §Durability's "a verdict
    is on disk before its answer leaves the daemon" is then false for the
    store the next start reads: the answer must have been a denial.
    """
    rng = random.Random(SEED + 7)
    store = tmp_path / "state.sqlite"
    problems: list[str] = []
    hits = 0
    with simulator(seed=7) as sim:
        sim.call(sim.sim.set_underlying, "AAPL", 100.0, 0.2, push=False)
        sim.call(sim.sim.add_position, SimPosition(1001, "AAPL", "STK", 100, 100.0))
        config = write_config(tmp_path / "daemon.toml", daemon_doc(sim.port, store, 71))
        d = DaemonProcess(config, tmp_path)
        trader = Trader(d, interval=0.02)
        try:
            d.start()
            d.wait_connected()
            trader.start()
            deadline = time.monotonic() + 25.0
            attempt = 0
            while hits < AIMED_HITS and time.monotonic() < deadline:
                attempt += 1
                time.sleep(rng.uniform(0.0, 0.004))
                _freeze(d.pid)
                try:
                    caught = _in_write_transaction(store)
                except sqlite3.Error:
                    caught = False
                if not caught:
                    _thaw(d.pid)
                    continue
                hits += 1
                aside = tmp_path / f"dead-{hits}.sqlite"
                try:
                    (seq,) = (
                        sqlite3.connect(f"file:{store}?mode=ro", uri=True)
                        .execute("SELECT coalesce(max(seq), 0) FROM journal")
                        .fetchone()
                    )
                    for suffix in ("", "-wal", "-shm"):
                        with contextlib.suppress(FileNotFoundError):
                            os.link(f"{store}{suffix}", f"{aside}{suffix}")
                            Path(f"{store}{suffix}").unlink()
                finally:
                    _thaw(d.pid)
                time.sleep(0.5)
                d.kill9()
                dead = sqlite3.connect(str(aside))
                try:
                    late = [
                        (kind, json.loads(payload))
                        for kind, payload in dead.execute(
                            "SELECT kind, payload FROM journal WHERE seq > ? ORDER BY seq", (seq,)
                        )
                    ]
                finally:
                    dead.close()
                answered = {a.ident: a.allowed for a in trader.answers}
                for kind, payload in late:
                    if kind == "check" and payload["allowed"] and answered.get(payload["id"]):
                        problems.append(
                            f"hit {hits} (attempt {attempt}): check {payload['id']} was answered "
                            "allowed, but its verdict was committed only into the deleted store "
                            "file (the store the restart reads has no trace of it)"
                        )
                print(
                    f"hit {hits} at attempt {attempt}: committed after the delete: "
                    f"{[(k, p.get('id') or p.get('action')) for k, p in late]}"
                )
                d.start()
                d.wait_connected()
            trader.halt.set()
            trader.join(10.0)
            assert hits >= 1, f"never caught the daemon inside a write in {attempt} attempts"
            assert not problems, "\n".join(problems)
            assert d.terminate() == 0
        except BaseException:
            print(d.diagnose())
            raise
        finally:
            trader.halt.set()
            d.close()
            if trader.is_alive():
                trader.join(10.0)

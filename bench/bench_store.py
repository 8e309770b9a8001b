"""The store's write latency, each call against baselines measured in the same run.

    python bench/bench_store.py [--n N] [--quick]

Prints a table and writes bench/results/store.json. Every figure is the median
and p99 of N single calls; the calls of every kind are interleaved (one of
each per round) so that a noisy neighbour on the shared 2-core machine slows
all of them alike, and each is printed as a ratio to the baselines:

* ``bare INSERT+commit``: one autocommit ``INSERT`` of a journal-sized row on a
  raw ``sqlite3`` connection with the store's pragmas (WAL, the same
  ``synchronous``, busy timeout): the floor of any durable journal row;
* ``write+fsync``: 200 bytes written and ``fsync``-ed to a file in the same
  directory: the floor of one durable commit on this disk.

Under ``synchronous=FULL`` (the default) every store write is one transaction
and one fsync of the WAL; the ``fsync/commit`` column counts them with strace
when it is installed (the difference between runs of N and 2N calls, so the
open and schema setup do not count). ``NORMAL`` rows show the calls that then
commit with no fsync (claims and kills commit with FULL whatever the
setting, so they are measured under FULL only); their ``med/fsync`` is
against the FULL run's ``write+fsync``. The file
checks before every call (three ``stat``) are timed alone as ``file check``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from actors.messages import Contract, SecType, StopSnapshot  # noqa: E402
from supervisor.store.file_identity import FileIdentity  # noqa: E402
from supervisor.store.sqlite_store import KillRecord, Store, flatten_key  # noqa: E402

PAYLOAD = {"t": 1.0, "type": "stop", "id": "p1", "action": "UPDATE", "stop": 101.5,
           "ref_price": 103.2, "extreme": 104.0, "trigger_id": None}  # fmt: skip
BREAKER = {"state": "closed", "trips": 0, "window": [{"t": 1.0, "weight": 1.0, "kind": "other"}]}
SNAP = StopSnapshot("p1", Contract("SPY", SecType.STK), 10.0, 100.0, 0.0, True, 104.0, 101.5, 0,
                    False, 0)  # fmt: skip
Sync = Literal["FULL", "NORMAL"]


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def summary(xs: list[float]) -> dict[str, float]:
    return {"median": statistics.median(xs), "p99": pct(xs, 99), "n": len(xs)}


def calls(store: Store, raw: sqlite3.Connection, fd: int) -> dict[str, Callable[[int], object]]:
    """Each measured call, given the round number (keys and states vary per round)."""
    text = json.dumps(PAYLOAD)
    files = FileIdentity(store.path)
    files.pin(os.stat(store.path))

    def write_fsync(i: int) -> None:
        os.write(fd, text.encode())
        os.fsync(fd)

    return {
        "bare INSERT+commit": lambda i: raw.execute(
            "INSERT INTO journal (t, wall_t, kind, position_id, payload) VALUES (?, ?, ?, ?, ?)",
            (float(i), time.time(), "stop", "p1", text),
        ),
        "write+fsync": write_fsync,
        "file check": lambda i: files.check(),
        "append": lambda i: store.append(t=float(i), kind="check", payload=PAYLOAD),
        "record(stop)": lambda i: store.record(
            t=float(i),
            kind="stop",
            payload=PAYLOAD,
            position_id="p1",
            stop=dataclasses.replace(SNAP, breaches=i),
        ),
        "record(failure, breaker)": lambda i: store.record(
            t=float(i), kind="failure", payload={"kind": "other"}, breaker={**BREAKER, "trips": i}
        ),
        "record(TRIGGER, claim)": lambda i: store.record(
            t=float(i),
            kind="stop",
            position_id=f"p{i}",
            payload={**PAYLOAD, "action": "TRIGGER", "trigger_id": f"p{i}:{i}"},
            stop=dataclasses.replace(SNAP, id=f"p{i}", triggered=True, trigger_id=f"p{i}:{i}"),
            claim=(f"p{i}:{i}", f"p{i}"),
        ),
        "record(kill, flatten claim)": lambda i: store.record(
            t=float(i),
            kind="kill",
            payload={"step": "flatten_order"},
            kill=KillRecord("k1", 1.0, "flatten", "kill", "ops", {"orders": i}),
            claim=(flatten_key("k1", f"p{i}"), f"p{i}"),
        ),
        "save_stop": lambda i: store.save_stop(dataclasses.replace(SNAP, breaches=i)),
    }


#: Calls that commit with FULL whatever the store's setting: not run again under NORMAL,
#: where an fsync between the cheap calls would only blur their figures.
ALWAYS_FULL = ("write+fsync", "record(TRIGGER, claim)", "record(kill, flatten claim)")


def measure(sync: Sync, n: int) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory(dir=ROOT / "bench") as tmp:
        store = Store(os.path.join(tmp, "s.sqlite"), synchronous=sync)
        raw = sqlite3.connect(os.path.join(tmp, "raw.sqlite"), isolation_level=None)
        raw.execute("PRAGMA busy_timeout = 200")
        raw.execute("PRAGMA journal_mode = WAL")
        raw.execute(f"PRAGMA synchronous = {sync}")
        raw.execute(
            "CREATE TABLE journal (seq INTEGER PRIMARY KEY AUTOINCREMENT, t REAL, "
            "wall_t REAL NOT NULL, kind TEXT NOT NULL, position_id TEXT, payload TEXT NOT NULL)"
        )
        fd = os.open(os.path.join(tmp, "fsync.bin"), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            todo = calls(store, raw, fd)
            if sync == "NORMAL":
                todo = {k: v for k, v in todo.items() if k not in ALWAYS_FULL}
            for i in range(min(20, n)):  # warm up caches and the WAL
                for call in todo.values():
                    call(-1 - i)
            xs: dict[str, list[float]] = {name: [] for name in todo}
            for i in range(n):
                for name, call in todo.items():
                    t0 = time.perf_counter()
                    call(i)
                    xs[name].append(time.perf_counter() - t0)
            return {name: summary(v) for name, v in xs.items()}
        finally:
            os.close(fd)
            raw.close()
            store.close()


# ------------------------------------------------------------- fsync counting

_FSYNC_CHILD_CALLS = ("append", "record(stop)", "record(TRIGGER, claim)", "save_stop")
_FSYNC_CHILD_CALLS_NORMAL = ("append", "record(stop)", "save_stop")


def _fsync_child(path: str, sync: Sync, name: str, n: int) -> None:
    """Run in a subprocess under strace: open a store, then n calls of one kind."""
    store = Store(path, synchronous=sync)
    raw = sqlite3.connect(":memory:")
    todo = calls(store, raw, -1)
    for i in range(n):
        todo[name](i)
    store.close()


def fsyncs_per_commit(sync: Sync, n: int) -> dict[str, float] | str:
    strace = shutil.which("strace")
    if strace is None:
        return "strace not installed"
    out: dict[str, float] = {}
    for name in _FSYNC_CHILD_CALLS if sync == "FULL" else _FSYNC_CHILD_CALLS_NORMAL:
        counts = []
        for k in (n, 2 * n):
            with tempfile.TemporaryDirectory(dir=ROOT / "bench") as tmp:
                trace = os.path.join(tmp, "trace")
                res = subprocess.run(
                    [strace, "-f", "-qq", "-e", "trace=fsync,fdatasync", "-o", trace,
                     sys.executable, __file__, "--fsync-child", os.path.join(tmp, "s.sqlite"),
                     sync, name, str(k)],
                    capture_output=True, text=True, timeout=120,
                )  # fmt: skip
                if res.returncode != 0:
                    return f"strace failed: {res.stderr.strip()[-200:]}"
                text = Path(trace).read_text()
                counts.append(len(re.findall(r"\b(?:fsync|fdatasync)\(", text)))
        out[name] = (counts[1] - counts[0]) / n
    return out


# ----------------------------------------------------------------------- main


def report(r: dict[str, Any]) -> None:
    for sync in ("FULL", "NORMAL"):
        res = r[sync]
        base_i, base_f = res["bare INSERT+commit"], r["FULL"]["write+fsync"]
        fs = r["fsync_per_commit"].get(sync, {})
        print(f"\nWAL + synchronous={sync}  (n={base_i['n']:.0f} each, interleaved)")
        print(
            f"{'call':28} {'median':>9} {'p99':>9}   {'med/INSERT':>10} {'p99/INSERT':>10} "
            f"{'med/fsync':>9}  fsync/commit"
        )
        for name, s in res.items():
            f = fs.get(name) if isinstance(fs, dict) else None
            print(
                f"{name:28} {s['median'] * 1e6:7.1f}us {s['p99'] * 1e6:7.1f}us   "
                f"{s['median'] / base_i['median']:10.2f} {s['p99'] / base_i['p99']:10.2f} "
                f"{s['median'] / base_f['median']:9.2f}  {'' if f is None else f'{f:.2f}'}"
            )
        if isinstance(fs, str):
            print(f"fsync/commit: {fs}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=None, help="calls of each kind (default 400)")
    ap.add_argument("--quick", action="store_true", help="150 calls of each kind")
    ap.add_argument("--fsync-child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.fsync_child:
        path, sync, name, k = args.fsync_child
        _fsync_child(path, sync, name, int(k))
        return
    n = args.n or (150 if args.quick else 400)
    started = time.perf_counter()
    r: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.platform()}, {os.cpu_count()} cpus, SQLite {sqlite3.sqlite_version}",
        "FULL": measure("FULL", n),
        "NORMAL": measure("NORMAL", n),
        "fsync_per_commit": {},
    }
    fsync_n = 20 if args.quick else 40
    fs_full = fsyncs_per_commit("FULL", fsync_n)
    r["fsync_per_commit"] = (
        {"FULL": fs_full, "NORMAL": fsyncs_per_commit("NORMAL", fsync_n)}
        if isinstance(fs_full, dict)
        else {"FULL": fs_full, "NORMAL": fs_full}
    )
    r["elapsed_s"] = time.perf_counter() - started
    print(r["machine"])
    report(r)
    print(f"\n{r['elapsed_s']:.1f} s")
    out = ROOT / "bench" / "results" / "store.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(r, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

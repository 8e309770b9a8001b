"""SIGKILL at random points: what a child saw committed is on disk, whole and gap-free."""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from store_helpers import REPO

from supervisor.store.sqlite_store import Store

# ------------------------------------------------------------ durability

_CHILD = r"""
import sys
from actors.messages import Contract, SecType, StopSnapshot
from supervisor.store.sqlite_store import Store

def snap_for(i):
    pid = f"p{i % 3}"
    return StopSnapshot(pid, Contract("SPY", SecType.STK), 1.0 + i, 100.0, 0.0, True,
                        100.0 + i, 95.0 + i, i, False, 0)

s = Store(sys.argv[1])
last = s.last_journal(kind="stop")
i = 0 if last is None else last.payload["i"] + 1
print("ready", flush=True)
while True:
    sn = snap_for(i)
    seq = s.append(t=float(i), kind="stop", position_id=sn.id, payload={"i": i})
    if i % 7 == 0:
        s.save_stops([sn])
    else:
        s.save_stop(sn)
    print(seq, flush=True)
    i += 1
"""


def test_sigkill_at_random_points_leaves_a_consistent_gap_free_store(db: Path) -> None:
    rng = random.Random(20240601)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    printed_all: list[int] = []
    for _run in range(5):
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(db)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=REPO,
        )
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n", child.stderr.read() if child.stderr else b""
        time.sleep(rng.uniform(0.02, 0.25))
        child.send_signal(signal.SIGKILL)
        out, _err = child.communicate(timeout=10)
        assert child.returncode == -signal.SIGKILL
        lines = out.decode().split("\n")[:-1]  # drop a partial last line
        printed = [int(x) for x in lines]
        assert printed, "the child made no progress before the kill"
        printed_all += printed

        with sqlite3.connect(db) as raw:
            assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        with Store(db) as s:
            rows = s.journal(limit=1_000_000)
            seqs = [r.seq for r in rows]
            assert seqs == list(range(1, len(seqs) + 1)), "journal seqs have a gap"
            assert set(printed_all) <= set(seqs), "a seq the child saw committed is missing"
            assert seqs[-1] - printed_all[-1] in (0, 1)  # at most the one in flight
            assert [r.payload["i"] for r in rows] == list(range(len(rows)))

            stops = {sn.id: sn for sn in s.load_stops()}
            last_i_by_pos: dict[str, list[int]] = {}
            for r in rows:
                assert r.position_id is not None
                last_i_by_pos.setdefault(r.position_id, []).append(r.payload["i"])
            for pid, idx in last_i_by_pos.items():
                saved = stops[pid].breaches  # the child's i for that state
                if idx[-1] == rows[-1].payload["i"] and seqs[-1] > printed_all[-1]:
                    # killed between journaling this step and saving its stop
                    assert saved in idx[-2:], (pid, saved, idx[-2:])
                else:
                    assert saved == idx[-1], (pid, saved, idx[-1])
                assert stops[pid] == dataclasses.replace(
                    stops[pid], qty=1.0 + saved, extreme=100.0 + saved, stop=95.0 + saved
                )


_KILL_CHILD = r"""
import sys
from actors.messages import Contract, SecType, StopSnapshot
from supervisor.store.sqlite_store import KillRecord, Store, flatten_key

s = Store(sys.argv[1], synchronous="NORMAL")
print("ready", flush=True)
i = 0
while True:
    kill = KillRecord(f"k{i}", float(i), "flatten", "kill", "ops", {"step": i})
    seq = s.record(t=float(i), kind="kill", payload={"i": i}, kill=kill,
                   claim=(flatten_key(f"k{i}", "p1"), "p1"))
    trig = StopSnapshot(f"p{i}", Contract("SPY", SecType.STK), 1.0, 100.0, 0.0, True,
                        101.0, 99.0, 1, True, 0, f"p{i}:{i}")
    seq2 = s.record(t=float(i), kind="stop", position_id=f"p{i}",
                    payload={"action": "TRIGGER", "trigger_id": f"p{i}:{i}"},
                    stop=trig, claim=(f"p{i}:{i}", f"p{i}"))
    print(seq, seq2, flush=True)
    i += 1
"""


def test_sigkill_never_separates_a_kill_or_a_trigger_from_its_claim(db: Path) -> None:
    """Even on a NORMAL store: every row, its state and its claim, or none of them."""
    rng = random.Random(20260611)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for _run in range(3):
        db.unlink(missing_ok=True)
        for side in ("-wal", "-shm"):
            Path(f"{db}{side}").unlink(missing_ok=True)
        child = subprocess.Popen(
            [sys.executable, "-c", _KILL_CHILD, str(db)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=REPO,
        )
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n", child.stderr.read() if child.stderr else b""
        time.sleep(rng.uniform(0.05, 0.3))
        child.send_signal(signal.SIGKILL)
        out, _err = child.communicate(timeout=10)
        assert child.returncode == -signal.SIGKILL
        seen = [tuple(map(int, x.split())) for x in out.decode().split("\n")[:-1]]
        assert seen, "the child made no progress before the kill"
        with Store(db) as s:
            kills = {k.id: k for k in s.load_kills()}
            stops = {x.id: x for x in s.load_stops()}
            rows = {r.seq: r for r in s.journal(limit=1_000_000)}
            for i, (seq, seq2) in enumerate(seen):
                assert kills[f"k{i}"].state == {"step": i} and rows[seq].payload == {"i": i}
                assert stops[f"p{i}"].triggered and rows[seq2].kind == "stop"
            n = len(kills)
            assert n in (len(seen), len(seen) + 1)  # at most the one in flight
            for i in range(n):
                claim = s.exit_for(f"kill:k{i}:p1")
                assert claim is not None and rows[claim["journal_seq"]].payload == {"i": i}
            for pid, stop in stops.items():
                claim = s.exit_for(stop.trigger_id or "")
                assert claim is not None and rows[claim["journal_seq"]].position_id == pid
            assert len(s.triggers_since(0.0)) == len(stops)
            assert len(rows) == len(kills) + len(stops)

"""The recording writer: rotation, restart, retention, overflow and disk errors."""

from __future__ import annotations

import datetime as dt
import errno
import io
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from supervisor.record import Recorder, iter_events
from supervisor.record.day_files import Part

MIDNIGHT = dt.datetime(2026, 12, 7, tzinfo=dt.UTC).timestamp()  # 2026-12-07 00:00 UTC
DAY0 = dt.date(2026, 12, 6)
DAY1 = dt.date(2026, 12, 7)


class FakeClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def quote(t: float, i: int) -> dict[str, Any]:
    return {"t": t, "type": "quote", "id": "SPY", "bid": 100.0 + i / 7, "ask": 100.5, "last": None}


def read_all(paths: list[Path]) -> list[dict[str, Any]]:
    warnings: list[str] = []
    out = [json.loads(line) for _, _, line in iter_events(paths, warn=warnings.append)]
    assert not warnings, warnings
    return out


def wait_until(cond: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def data_files(d: Path) -> list[Path]:
    return sorted(d.glob("events-*.jsonl.zst"))


def test_rotates_at_midnight_utc_by_event_time(tmp_path: Path) -> None:
    clock = FakeClock(MIDNIGHT - 10)
    rec = Recorder(tmp_path, 30, clock, "[trailing_stop]\n")
    events = [quote(MIDNIGHT - 2 + i, i) for i in range(5)]  # 23:59:58 … 00:00:02
    for e in events:
        rec.record(e)
    assert rec.close()
    files = data_files(tmp_path)
    assert [f.name for f in files] == [Part(DAY0, 0).data_name, Part(DAY1, 0).data_name]
    assert read_all(files[:1]) == events[:2]
    assert read_all(files[1:]) == events[2:]
    assert (tmp_path / Part(DAY0, 0).config_name).read_text() == "[trailing_stop]\n"
    assert (tmp_path / Part(DAY1, 0).config_name).read_text() == "[trailing_stop]\n"
    assert (rec.written, rec.dropped) == (5, 0)


def test_a_late_event_stays_in_the_open_part_in_arrival_order(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, 30, FakeClock(MIDNIGHT), "")
    events = [quote(MIDNIGHT + 1, 0), quote(MIDNIGHT - 1, 1), quote(MIDNIGHT + 2, 2)]
    for e in events:
        rec.record(e)
    assert rec.close()
    files = data_files(tmp_path)
    assert [f.name for f in files] == [Part(DAY1, 0).data_name]
    assert read_all(files) == events


def test_a_restart_starts_a_new_part_losing_and_repeating_nothing(tmp_path: Path) -> None:
    clock = FakeClock(MIDNIGHT + 100)
    first = [quote(MIDNIGHT + 100 + i, i) for i in range(50)]
    second = [quote(MIDNIGHT + 200 + i, i) for i in range(50)]
    rec = Recorder(tmp_path, 30, clock, "a = 1\n")
    for e in first:
        rec.record(e)
    assert rec.close()
    rec = Recorder(tmp_path, 30, clock, "a = 2\n")
    for e in second:
        rec.record(e)
    assert rec.close()
    files = data_files(tmp_path)
    assert [f.name for f in files] == [Part(DAY1, 0).data_name, Part(DAY1, 1).data_name]
    assert read_all(files) == first + second
    # each part keeps the config it ran with
    assert (tmp_path / Part(DAY1, 0).config_name).read_text() == "a = 1\n"
    assert (tmp_path / Part(DAY1, 1).config_name).read_text() == "a = 2\n"


def test_a_restart_after_a_crash_keeps_every_flushed_line_once(tmp_path: Path) -> None:
    clock = FakeClock(MIDNIGHT + 100)
    rec = Recorder(tmp_path, 30, clock, "", flush_interval_s=0.01)
    first = [quote(MIDNIGHT + 100 + i, i) for i in range(200)]
    for e in first[:100]:
        rec.record(e)
    wait_until(lambda: rec.written == 100)  # one block flushed to the OS
    path = data_files(tmp_path)[0]
    flushed = path.stat().st_size
    for e in first[100:]:
        rec.record(e)
    assert rec.close()
    # a crash mid-write: the part ends a few bytes into the block after the flushed one
    path.write_bytes(path.read_bytes()[: flushed + 10])
    rec = Recorder(tmp_path, 30, clock, "")
    second = [quote(MIDNIGHT + 400 + i, i) for i in range(20)]
    for e in second:
        rec.record(e)
    assert rec.close()
    warnings: list[str] = []
    got = [json.loads(x) for _, _, x in iter_events(data_files(tmp_path), warn=warnings.append)]
    assert got == first[:100] + second  # every flushed line, once, in order
    assert any("cut short" in w for w in warnings)


def test_set_config_starts_a_part_with_the_new_text_beside_it(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, 30, FakeClock(MIDNIGHT), "old\n")
    rec.record(quote(MIDNIGHT + 1, 1))
    rec.set_config("new\n")
    rec.record(quote(MIDNIGHT + 2, 2))
    assert rec.close()
    assert (tmp_path / Part(DAY1, 0).config_name).read_text() == "old\n"
    assert (tmp_path / Part(DAY1, 1).config_name).read_text() == "new\n"
    assert read_all(data_files(tmp_path)) == [quote(MIDNIGHT + 1, 1), quote(MIDNIGHT + 2, 2)]


def test_retention_deletes_days_older_than_retention_days(tmp_path: Path) -> None:
    today = DAY1
    keep, drop = [], []
    for age in (0, 1, 3, 4, 10):
        day = today - dt.timedelta(days=age)
        for name in (Part(day, 0).data_name, Part(day, 0).config_name):
            (tmp_path / name).write_bytes(b"")
            (keep if age <= 3 else drop).append(name)
    (tmp_path / "notes.txt").write_text("not ours")
    rec = Recorder(tmp_path, 3, FakeClock(MIDNIGHT + 5), "")
    rec.record(quote(MIDNIGHT + 5, 0))
    assert rec.close()
    left = set(os.listdir(tmp_path))
    assert set(keep) <= left
    assert not set(drop) & left
    assert "notes.txt" in left


def test_floats_round_trip_exactly_and_non_finite_numbers_as_json_tokens(tmp_path: Path) -> None:
    values = [0.1 + 0.2, 1e-320, 1.7976931348623157e308, -0.0, 5e-324, 1 / 3, 123456.789e10]
    rec = Recorder(tmp_path, 30, FakeClock(MIDNIGHT), "")
    for i, v in enumerate(values):
        rec.record({"t": MIDNIGHT + i, "type": "quote", "id": "X", "bid": v, "ask": None})
    rec.record({"t": MIDNIGHT + 9, "type": "quote", "id": "X", "bid": math.nan, "ask": math.inf})
    rec.record({"t": MIDNIGHT + 9, "type": "quote", "id": "X", "bid": -math.inf, "ask": 1})
    assert rec.close()
    raw = [line for _, _, line in iter_events(data_files(tmp_path))]
    got = [json.loads(x) for x in raw]
    for v, g in zip(values, got, strict=False):
        assert repr(g["bid"]) == repr(v)
    assert b"NaN" in raw[-2] and b"Infinity" in raw[-2] and b"-Infinity" in raw[-1]
    assert math.isnan(got[-2]["bid"]) and got[-2]["ask"] == math.inf
    assert got[-1]["bid"] == -math.inf and got[-1]["ask"] == 1


def test_an_event_json_cannot_hold_is_dropped_and_counted(tmp_path: Path) -> None:
    dropped: list[int] = []
    rec = Recorder(tmp_path, 30, FakeClock(MIDNIGHT), "", on_dropped=dropped.append)
    rec.record({"t": MIDNIGHT, "type": "quote", "id": object()})
    rec.record(quote(MIDNIGHT + 1, 1))
    assert rec.close()
    assert sum(dropped) == 1 and rec.dropped == 1 and rec.written == 1
    assert read_all(data_files(tmp_path)) == [quote(MIDNIGHT + 1, 1)]


# ------------------------------------------------------------ a stalled disk


class StalledFile(io.RawIOBase):
    """A file whose first write blocks until released: a disk that hangs."""

    def __init__(self, entered: threading.Event, release: threading.Event) -> None:
        self.entered = entered
        self.release = release
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self.entered.set()
        assert self.release.wait(30), "the test never released the stalled disk"
        self.data += bytes(b)
        return len(b)


def test_record_never_blocks_on_a_stalled_disk_and_counts_the_overflow(tmp_path: Path) -> None:
    entered, release = threading.Event(), threading.Event()
    files: list[StalledFile] = []

    def opener(path: Path) -> BinaryIO:
        f = StalledFile(entered, release)
        files.append(f)
        return f  # type: ignore[return-value]

    dropped: list[int] = []
    written: list[int] = []
    rec = Recorder(
        tmp_path,
        30,
        FakeClock(MIDNIGHT),
        "cfg",
        queue_size=10,
        opener=opener,
        on_dropped=dropped.append,
        on_written=written.append,
    )
    rec.record(quote(MIDNIGHT, 0))
    assert entered.wait(10), "the writer never reached the disk"
    # the writer is now stuck inside write(); the caller must not notice
    done = threading.Event()

    def caller() -> None:
        for i in range(1, 1001):
            rec.record(quote(MIDNIGHT + i, i))
        done.set()

    th = threading.Thread(target=caller, daemon=True)
    th.start()
    assert done.wait(10), "record() blocked on a stalled disk"
    assert rec.dropped == 990 and sum(dropped) == 990  # 10 fit in the queue
    assert not rec.close(timeout_s=0.2), "close() claimed a flush the disk never did"
    release.set()
    rec._thread.join(10)
    assert not rec._thread.is_alive()
    assert sum(written) == 11 and rec.written == 11


# ------------------------------------------------------------------ full disk


class FullDiskFile(io.RawIOBase):
    def __init__(self, error: int) -> None:
        self.error = error

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        raise OSError(self.error, os.strerror(self.error))


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EIO])
def test_a_full_disk_drops_and_counts_logs_once_and_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, error: int
) -> None:
    clock = FakeClock(MIDNIGHT)
    full = [True]

    def opener(path: Path) -> BinaryIO:
        if full[0] and path.name.endswith(".jsonl.zst"):
            return FullDiskFile(error)  # type: ignore[return-value]
        return open(path, "xb")

    dropped: list[int] = []
    rec = Recorder(
        tmp_path,
        30,
        clock,
        "",
        on_dropped=dropped.append,
        retry_after_s=60,
        flush_interval_s=0.01,
        opener=opener,
    )
    lost = [quote(MIDNIGHT + i, i) for i in range(30)]
    with caplog.at_level(logging.ERROR, logger="supervisor.record.recorder"):
        for e in lost:
            rec.record(e)
        wait_until(lambda: rec.dropped == 30)  # the failed flush lost them all
        # still within the retry pause: dropped without touching the disk
        rec.record(quote(MIDNIGHT + 31, 31))
        wait_until(lambda: rec.dropped == 31)
        full[0] = False
        clock.t = MIDNIGHT + 61  # the pause is over: a new part is opened
        kept = [quote(MIDNIGHT + 62 + i, i) for i in range(5)]
        for e in kept:
            rec.record(e)
        assert rec.close()
    stops = [r for r in caplog.records if "recording stopped" in r.getMessage()]
    assert len(stops) == 1
    assert rec.written == 5
    assert rec.dropped == sum(dropped) == 31
    readable = [p for p in data_files(tmp_path) if p.stat().st_size > 0]
    assert read_all(readable) == kept


def test_close_returns_and_later_records_are_counted(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, 30, FakeClock(MIDNIGHT), "")
    rec.record(quote(MIDNIGHT, 0))
    assert rec.close()
    rec.record(quote(MIDNIGHT + 1, 1))
    assert (rec.written, rec.dropped) == (1, 1)
    assert rec.close()  # twice is harmless


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="retention_days"):
        Recorder("x", 0, FakeClock(0), "")

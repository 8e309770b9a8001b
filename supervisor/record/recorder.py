"""The recording writer: every input event, one zstd file per UTC day, off the hot path.

``record()`` is called from the threads that make decisions (the IB loop, the
API), so it does one thing: put the event on a bounded queue without waiting.
A background thread encodes, compresses and writes. When the queue is full —
the disk stalls, or the writer cannot keep up — the event is dropped and
counted; when a write fails (ENOSPC, EIO, any ``OSError``) the lines not yet
known to be on disk are dropped and counted, the part is abandoned, and a new
part is tried every ``retry_after_s``. Either incident is logged once, when it
starts, and once more when recording resumes. Nothing here raises into the
caller, blocks it, or stops the daemon.

Files (see :mod:`supervisor.record.day_files`): one or more parts per UTC day,
chosen by the event's ``t`` (the wall clock when ``t`` is unusable). The first
event of a later day closes the current part and opens that day's; an event
whose day is *earlier* than the open part's (a late arrival around midnight)
goes into the open part, so the file order is always the arrival order. A
part is one zstd frame; a block is flushed every ``flush_interval_s`` so a
crash loses at most that much, and the reader skips the cut-off last line.

Callbacks (``on_written``, ``on_dropped``) receive line counts. ``on_dropped``
may run in the caller's thread (queue overflow): it must be as cheap as a
Prometheus counter increment and thread-safe.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO, Final

import zstandard

from supervisor.record import day_files
from supervisor.record.event_line import encode, event_time

log = logging.getLogger(__name__)

Opener = Callable[[Path], BinaryIO]
"""Creates a new file for writing (never an existing one); the default is ``open(p, "xb")``."""

Clock = Callable[[], float]


def _open_new(path: Path) -> BinaryIO:
    return open(path, "xb")


class _Close:
    """Queue item: flush, end the part, stop the thread."""


class _NewConfig:
    """Queue item: later lines belong to a new part run with this config text."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


_CLOSE: Final = _Close()
_BATCH: Final = 1024


class Recorder:
    """Writes every recorded event once, or counts it as dropped; never the caller's problem."""

    def __init__(
        self,
        dir: str | Path,
        retention_days: int,
        clock: Clock,
        config_text: str,
        *,
        queue_size: int = 65536,
        on_written: Callable[[int], None] | None = None,
        on_dropped: Callable[[int], None] | None = None,
        opener: Opener = _open_new,
        flush_interval_s: float = 1.0,
        retry_after_s: float = 30.0,
        level: int = 3,
    ) -> None:
        if retention_days < 1:
            raise ValueError(f"retention_days must be an integer >= 1, got {retention_days!r}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size!r}")
        self.dir = Path(dir)
        self.retention_days = retention_days
        self._clock = clock
        self._config_text = config_text
        self._on_written = on_written
        self._on_dropped = on_dropped
        self._opener = opener
        self._flush_interval_s = flush_interval_s
        self._retry_after_s = retry_after_s
        self._cctx = zstandard.ZstdCompressor(level=level)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._count_lock = threading.Lock()
        self.written = 0
        """Lines known to be on disk (flushed to the OS)."""
        self.dropped = 0
        """Lines lost: queue overflow, encoding errors, failed writes, records after close."""
        self._overflowed = 0  # drops since the writer last looked; set by callers
        self._closed = False
        # writer-thread state
        self._file: BinaryIO | None = None
        self._compressor: Any = None
        self._part: day_files.Part | None = None
        self._pending = 0  # lines handed to the compressor since the last good flush
        self._last_flush = time.monotonic()
        self._failed_at: float | None = None  # clock time of the last disk error
        self._failed_lines = 0  # dropped during the current disk incident
        self._overflow_logged = False
        self._bad_event_logged = False
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ any thread

    def record(self, event: Mapping[str, Any]) -> None:
        """Queue one event in the replay format; never blocks, never raises.

        The recorder takes the mapping over: do not change it afterwards.
        """
        try:
            if self._closed:
                self._drop_from_caller()
                return
            self._queue.put_nowait(event)
        except queue.Full:
            self._drop_from_caller()
        except Exception:  # pragma: no cover - put_nowait has no other failure
            self._drop_from_caller()

    def set_config(self, text: str) -> None:
        """A new config is in force: the next line starts a new part with this text beside it."""
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_NewConfig(text))

    def close(self, timeout_s: float = 5.0) -> bool:
        """Flush and end the open part; True when everything queued reached the disk in time.

        Returns within ``timeout_s`` even when the disk hangs; what has not
        been written by then is lost with the process.
        """
        deadline = time.monotonic() + timeout_s
        if not self._closed:
            self._closed = True
            try:
                self._queue.put(_CLOSE, timeout=max(0.0, timeout_s))
            except queue.Full:
                return False
        self._thread.join(max(0.0, deadline - time.monotonic()))
        return not self._thread.is_alive()

    def _drop_from_caller(self) -> None:
        with self._count_lock:
            self.dropped += 1
            self._overflowed += 1
        if self._on_dropped is not None:
            with contextlib.suppress(Exception):
                self._on_dropped(1)

    # --------------------------------------------------------- writer thread

    def _count(self, *, written: int = 0, dropped: int = 0) -> None:
        if written:
            with self._count_lock:
                self.written += written
            if self._on_written is not None:
                with contextlib.suppress(Exception):
                    self._on_written(written)
        if dropped:
            with self._count_lock:
                self.dropped += dropped
            if self._on_dropped is not None:
                with contextlib.suppress(Exception):
                    self._on_dropped(dropped)

    def _run(self) -> None:
        try:
            while True:
                try:
                    item = self._queue.get(timeout=self._flush_interval_s)
                except queue.Empty:
                    self._flush()
                    if self._closed:  # close() could not queue its marker in time
                        self._end_part()
                        return
                    continue
                batch = [item]
                with contextlib.suppress(queue.Empty):
                    while len(batch) < _BATCH:
                        batch.append(self._queue.get_nowait())
                for item in batch:
                    if item is _CLOSE:
                        self._end_part()
                        self._drop_late()
                        self._note_overflow()
                        return
                    if isinstance(item, _NewConfig):
                        self._config_text = item.text
                        self._end_part()
                    else:
                        self._write(item)
                self._note_overflow()
                if time.monotonic() - self._last_flush >= self._flush_interval_s:
                    self._flush()
        except Exception:  # never take the daemon down; say why recording stopped
            log.exception("recording stopped: the writer thread failed")
            self._abandon()

    def _drop_late(self) -> None:
        """Events that raced ``close()`` into the queue are counted, not silently lost."""
        late = 0
        with contextlib.suppress(queue.Empty):
            while True:
                if not isinstance(self._queue.get_nowait(), _Close | _NewConfig):
                    late += 1
        self._count(dropped=late)

    def _note_overflow(self) -> None:
        with self._count_lock:
            n, self._overflowed = self._overflowed, 0
        if n and not self._overflow_logged:
            self._overflow_logged = True
            log.warning(
                "recording queue full: dropping events (the disk is slow or stalled); "
                "risk_supervisor_recording_dropped_total counts them"
            )
        elif not n and self._overflow_logged and self._queue.qsize() == 0:
            self._overflow_logged = False
            log.warning("recording queue drained: recording every event again")

    def _write(self, event: Mapping[str, Any]) -> None:
        try:
            line = encode(event)
        except (TypeError, ValueError) as exc:
            self._count(dropped=1)
            if not self._bad_event_logged:
                self._bad_event_logged = True
                log.error("recording: an event cannot be written as JSON (%s); dropped", exc)
            return
        t = event_time(event)
        day = day_files.utc_day(t if t is not None else self._clock())
        if self._part is not None and day > self._part.day:
            self._end_part()  # midnight UTC by event time: the next day gets its own part
        if self._file is None and not self._open(day):
            self._failed_lines += 1
            self._count(dropped=1)
            return
        try:
            out = self._compressor.compress(line)
            if out:
                assert self._file is not None
                self._file.write(out)
            self._pending += 1
        except OSError as exc:
            self._disk_error(exc, extra=1)

    def _open(self, day: Any) -> bool:
        """Open a new part of ``day``; False while the disk is failing (then retried later)."""
        now = self._clock()
        if self._failed_at is not None and now - self._failed_at < self._retry_after_s:
            return False
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            names = os.listdir(self.dir)
            self._expire(names, now)
            part = day_files.next_part(day, names)
            cfg = self._opener(self.dir / part.config_name)
            try:
                cfg.write(self._config_text.encode("utf-8"))
            finally:
                cfg.close()
            self._file = self._opener(self.dir / part.data_name)
        except OSError as exc:
            self._disk_error(exc, extra=0)
            return False
        self._part = part
        self._compressor = self._cctx.compressobj()
        self._pending = 0
        if self._failed_at is not None:
            log.warning(
                "recording resumed in %s after dropping %d line(s)",
                part.data_name,
                self._failed_lines,
            )
            self._failed_at = None
            self._failed_lines = 0
        return True

    def _expire(self, names: list[str], now: float) -> None:
        for name in day_files.expired(names, day_files.utc_day(now), self.retention_days):
            try:
                (self.dir / name).unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("recording: cannot delete expired %s: %s", name, exc)

    def _flush(self) -> None:
        """Push the lines given so far to the OS as a complete block (readable after a crash)."""
        self._last_flush = time.monotonic()
        if self._file is None or not self._pending:
            return
        try:
            self._file.write(self._compressor.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK))
            self._file.flush()
        except OSError as exc:
            self._disk_error(exc, extra=0)
            return
        n, self._pending = self._pending, 0
        self._count(written=n)

    def _end_part(self) -> None:
        if self._file is None:
            return
        try:
            self._file.write(self._compressor.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH))
            self._file.flush()
            self._file.close()
        except OSError as exc:
            self._disk_error(exc, extra=0)
            return
        n, self._pending = self._pending, 0
        self._count(written=n)
        self._file = None
        self._part = None
        self._compressor = None

    def _disk_error(self, exc: OSError, *, extra: int) -> None:
        """Drop what is not known to be on disk, abandon the part, retry later."""
        lost = self._pending + extra
        self._pending = 0
        self._abandon()
        first = self._failed_at is None
        self._failed_at = self._clock()
        self._failed_lines += lost
        self._count(dropped=lost)
        if first:
            what = errno.errorcode.get(exc.errno or 0, "error")
            log.error(
                "recording stopped (%s: %s): dropping lines, retrying every %g s; "
                "the daemon goes on",
                what,
                exc.strerror or exc,
                self._retry_after_s,
            )

    def _abandon(self) -> None:
        f, self._file = self._file, None
        self._part = None
        self._compressor = None
        if f is not None:
            with contextlib.suppress(Exception):
                f.close()

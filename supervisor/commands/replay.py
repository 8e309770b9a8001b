"""``risk-supervisor replay``: recorded events through the same actors, on event time.

The daemon's own topology (:class:`actors.topology.Topology`) and gate
(:class:`supervisor.core.gate.Gate`), built on an :class:`InlineDispatcher`
(every message handled in this thread, in order) and a
:class:`VirtualScheduler` (timers on event time), so the output is a function
of the input alone: the same input gives the same bytes. Before an event at
time ``t`` is delivered, every timer due at or before ``t`` fires, so a timer
transition is written at exactly the time it fell due.

A bad line (not JSON, not an object, an unknown type, a missing or ill-typed
field, time going backwards, a strategy rule broken) is reported on stderr as
``line N: …`` and changes nothing, not even the clock.

Lines are decoded by msgspec, several times faster than Python's ``json``
and, where it succeeds, value for value the same (arbitrary integers, floats
correctly rounded, the last of duplicate keys). What it refuses — ``NaN`` and
``Infinity`` tokens, lone surrogates, integers too long for it, deep nesting,
and every line that is not JSON at all — goes to Python's ``json``, which
decides exactly as before (and words the error).
"""

from __future__ import annotations

import importlib
import json
import math
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TextIO, cast

import msgspec

from actors.messages import (
    Admin,
    BreakerTransition,
    CheckRequest,
    Kill,
    PositionClosed,
    PositionUpdate,
    Quote,
    StopEvent,
)
from actors.probe import Probe
from actors.runtime import InlineDispatcher
from actors.scheduler import VirtualScheduler
from actors.topology import KEEP, Refused, Topology
from supervisor import json_codec
from supervisor.config import Config
from supervisor.core.gate import Gate

Line = dict[str, Any]
_NOTHING: tuple[Line, ...] = ()  # what most events print


Parse = Callable[[Line, float], Any]

#: Replay's parser for each line ``type`` (``tune`` judges lines by the same rules).
#: A ``position`` line is further checked against the strategy rules, which need
#: the topology's state (see :meth:`Replay._parse_position`).
PARSERS: Mapping[str, Parse] = {
    "position": json_codec.position,
    "quote": json_codec.quote,
    "close": json_codec.close,
    "account": json_codec.account,
    "pnl": json_codec.pnl,
    "market": json_codec.market,
    "failure": json_codec.failure,
    "success": json_codec.success,
    "admin": json_codec.admin,
    "heartbeat": json_codec.heartbeat,
    "check": json_codec.check,
}


def _dumps(obj: Line) -> str:
    return json.dumps(obj, separators=(", ", ": "))


class _Sink(Probe):
    """Keeps only what replay prints: stop decisions and breaker transitions."""

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, StopEvent | BreakerTransition):
            self.messages.append(message)
        return None


class Replay:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.dispatcher = InlineDispatcher()
        self.scheduler = VirtualScheduler()
        self._outbox: list[Any] = []  # the sink appends here, in this thread
        self.sink = _Sink.start(dispatcher=self.dispatcher, into=self._outbox)
        self.topology = Topology(
            config, dispatcher=self.dispatcher, scheduler=self.scheduler, sink=self.sink
        )
        self.gate = Gate(self.topology.portfolio, self.topology.breaker, margin=config.gate.margin)
        self.last_t = -math.inf
        self.bad_lines = 0
        deliver: dict[str, Callable[[Any], Any]] = {
            "position": self._position,
            "quote": self._quote,
            "close": self._close,
            "account": self.topology.account,
            "pnl": self.topology.pnl,
            "market": self.topology.market,
            "failure": self.topology.failure,
            "success": self.topology.success,
            "admin": self._admin,
            "heartbeat": self.topology.heartbeat,
            "check": self._check,
        }
        self._handlers: dict[str, tuple[Parse, Callable[[Any], Any]]] = {
            kind: (self._parse_position if kind == "position" else parse, deliver[kind])
            for kind, parse in PARSERS.items()
        }

    def close(self) -> None:
        self.topology.stop()
        if self.sink.is_alive():
            self.sink.stop()

    def feed(self, lines: Iterable[str | bytes], out: TextIO, err: TextIO) -> int:
        """Process every line; returns the number of bad lines."""
        return self.feed_events(((None, n, line) for n, line in enumerate(lines, 1)), out, err)

    def feed_events(
        self,
        events: Iterable[tuple[str | None, int, str | bytes]],
        out: TextIO,
        err: TextIO,
        *,
        name_files: bool = False,
    ) -> int:
        """As :meth:`feed`, from a reader's (file, line number, line); returns the bad lines.

        ``name_files``: a bad line is named ``file: line N`` (several files),
        else ``line N``.
        """
        event = self.event
        write = out.write
        for name, n, line in events:
            if not line.strip():
                continue
            try:
                outputs = event(line)
            except json_codec.BadInput as exc:
                self.bad_lines += 1
                where = f"{name}: line {n}" if name_files else f"line {n}"
                err.write(f"{where}: {exc}\n")
                continue
            for obj in outputs:
                write(_dumps(obj) + "\n")
        return self.bad_lines

    def event(self, line: str | bytes) -> Sequence[Line]:
        message: Any = json_codec.fast_quote(line)  # most lines: one typed decode
        if message is not None:
            t = message.t
            deliver: Callable[[Any], Any] = self._quote
            if t < self.last_t:
                raise self._back_in_time(t)
        else:
            obj = _decode(line)
            t = json_codec.event_time(obj)
            if t < self.last_t:
                raise self._back_in_time(t)
            kind = obj.get("type")
            handler = self._handlers.get(kind) if isinstance(kind, str) else None
            if handler is None:
                raise json_codec.BadInput(
                    f"type must be one of {', '.join(sorted(self._handlers))}, got {kind!r}"
                )
            parse, deliver = handler
            message = parse(obj, t)  # parse and validate fully before time moves
        self.last_t = t
        self.scheduler.advance_to(t)  # timers due by now fire first, at their own time
        out = self._drain() if self._outbox else _NOTHING
        printed = deliver(message)
        if printed is not None:
            out = [*out, printed]
        if self._outbox:
            out = [*out, *self._drain()]
        return out

    def _back_in_time(self, t: float) -> json_codec.BadInput:
        return json_codec.BadInput(f"t {t!r} goes back in time (last event at {self.last_t!r})")

    def _drain(self) -> list[Line]:
        lines: list[Line] = []
        taken, self._outbox[:] = list(self._outbox), []
        for m in taken:
            if isinstance(m, StopEvent):
                lines.append(json_codec.stop_line(m))
            else:
                lines.append(json_codec.breaker_line(m))
        return lines

    # ------------------------------------------------------------- per type

    def _parse_position(self, obj: Line, t: float) -> tuple[PositionUpdate, Any]:
        update = json_codec.position(obj, t)
        strategy = json_codec.strategy_of(obj)
        if strategy is json_codec.KEEP_STRATEGY:
            strategy = KEEP
        try:
            self.topology.validate(update, strategy)
        except Refused as exc:
            raise json_codec.BadInput(str(exc)) from None
        return update, strategy

    def _position(self, message: tuple[PositionUpdate, Any]) -> None:
        update, strategy = message
        self.topology.position(update, strategy)

    def _quote(self, q: Quote) -> None:
        self.topology.quote(q)

    def _close(self, message: PositionClosed) -> None:
        self.topology.close(message.t, message.id)

    def _admin(self, a: Admin | Kill) -> None:
        if isinstance(a, Kill):
            self.topology.kill(a)
        else:
            self.topology.admin(a)

    def _check(self, request: CheckRequest) -> Line:
        return json_codec.check_line(self.gate.check(request))


_fast_decode = msgspec.json.Decoder().decode


def _decode(line: str | bytes) -> dict[str, Any]:
    """One line as a JSON object; anything else is a bad line, never a crash."""
    try:
        obj = _fast_decode(line)
    except (msgspec.DecodeError, RecursionError, ValueError):
        return _decode_json(line)  # Python's json decides, with its own words
    if type(obj) is not dict:
        raise json_codec.BadInput("not a JSON object")
    return cast(dict[str, Any], obj)


def _decode_json(line: str | bytes) -> dict[str, Any]:
    """Python's json: NaN and Infinity are numbers (IB's feed has them), errors are named."""
    try:
        text = line.decode("utf-8") if isinstance(line, bytes) else line
    except UnicodeDecodeError as exc:
        raise json_codec.BadInput(f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise json_codec.BadInput(f"not JSON: {exc.msg} at column {exc.colno}") from None
    except (ValueError, RecursionError) as exc:  # >4300-digit ints, 100 000-deep nesting
        raise json_codec.BadInput(f"not usable JSON: {type(exc).__name__}") from None
    if not isinstance(obj, dict):
        raise json_codec.BadInput("not a JSON object")
    return obj


class EventReader(Protocol):
    """``supervisor.record.reader.iter_events``: (file name, line number, raw line), in order."""

    def __call__(self, paths: Sequence[Path | str]) -> Iterator[tuple[str, int, bytes]]: ...


def _plain_events(paths: Sequence[Path | str]) -> Iterator[tuple[str, int, bytes]]:
    """Uncompressed files only: the stand-in until the recording reader is there."""
    for path in paths:
        with open(path, "rb") as f:
            for n, line in enumerate(f, start=1):
                yield str(path), n, line


def event_reader() -> EventReader:
    """The recording reader (``.jsonl`` and ``.jsonl.zst``, several files) if installed.

    Looked up at run time: ``supervisor.record`` is another engineer's module,
    and replay must keep working (plain files) on a tree that lacks it.
    """
    try:
        module = importlib.import_module("supervisor.record.reader")
    except ImportError:
        return _plain_events
    return cast(EventReader, module.iter_events)


def read_lines(paths: Iterable[str]) -> Iterator[bytes]:
    """The lines of several files in order, as bytes (decoding is per line)."""
    for _name, _n, line in event_reader()(list(paths)):
        yield line


def run(
    config: Config,
    paths: str | Sequence[str],
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Replay files in order; exit code 0 when every line was good, 1 otherwise.

    With several files a bad line is named by its file and its line in it.
    """
    files = [paths] if isinstance(paths, str) else list(paths)
    replay = Replay(config)
    try:
        bad = replay.feed_events(event_reader()(files), out, err, name_files=len(files) > 1)
    finally:
        replay.close()
    if bad:
        err.write(f"{bad} bad line(s)\n")
    return 1 if bad else 0

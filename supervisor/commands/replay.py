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
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TextIO

from actors.messages import (
    Admin,
    BreakerTransition,
    CheckRequest,
    Kill,
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
from supervisor.record.reader import iter_events

Line = dict[str, Any]


Parse = Callable[[Line, float], Any]

#: Replay's parser for each line ``type`` (``tune`` judges lines by the same rules).
#: A ``position`` line is further checked against the strategy rules, which need
#: the topology's state (see :meth:`Replay._parse_position`).
PARSERS: Mapping[str, Parse] = {
    "position": json_codec.position,
    "quote": json_codec.quote,
    "close": lambda o, t: (t, json_codec.position_id(o)),
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
        return self.feed_events((("", n, line) for n, line in enumerate(lines, 1)), out, err)

    def feed_events(
        self, events: Iterable[tuple[str, int, str | bytes]], out: TextIO, err: TextIO
    ) -> int:
        """Process (file, line number, line) triples; a bad line is named ``[file:]line N``."""
        for name, n, line in events:
            if not line.strip():
                continue
            try:
                outputs = self.event(line)
            except json_codec.BadInput as exc:
                self.bad_lines += 1
                where = f"{name}: line {n}" if name else f"line {n}"
                err.write(f"{where}: {exc}\n")
                continue
            for obj in outputs:
                out.write(_dumps(obj) + "\n")
        return self.bad_lines

    def event(self, line: str | bytes) -> list[Line]:
        obj = _decode(line)
        t = json_codec.event_time(obj)
        if t < self.last_t:
            raise json_codec.BadInput(f"t {t!r} goes back in time (last event at {self.last_t!r})")
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
        out = self._drain() if self._outbox else []
        printed = deliver(message)
        if printed is not None:
            out.append(printed)
        if self._outbox:
            out += self._drain()
        return out

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

    def _close(self, message: tuple[float, str]) -> None:
        self.topology.close(*message)

    def _admin(self, a: Admin | Kill) -> None:
        if isinstance(a, Kill):
            self.topology.kill(a)
        else:
            self.topology.admin(a)

    def _check(self, request: CheckRequest) -> Line:
        return json_codec.check_line(self.gate.check(request))


def _decode(line: str | bytes) -> dict[str, Any]:
    """One line as a JSON object; anything else is a bad line, never a crash."""
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


def read_lines(paths: Iterable[str]) -> Iterator[bytes]:
    """The lines of several files in order, as bytes (decoding is per line)."""
    for path in paths:
        with open(path, "rb") as f:
            yield from f


def run(
    config: Config,
    paths: str | Sequence[str],
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Replay files (``.jsonl``, ``.jsonl.zst``, in order); 0 when every line was good, else 1."""
    files = [paths] if isinstance(paths, str) else list(paths)
    replay = Replay(config)
    try:

        def warn(message: str) -> None:
            err.write(message + "\n")

        events = iter_events(files, warn=warn)
        if len(files) == 1:  # one file: lines are named by number alone, as always
            events = (("", n, line) for _, n, line in events)
        bad = replay.feed_events(events, out, err)
    finally:
        replay.close()
    if bad:
        err.write(f"{bad} bad line(s)\n")
    return 1 if bad else 0

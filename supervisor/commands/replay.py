"""``risk-supervisor replay``: recorded events through the same actors, on event time.

The actors run on an :class:`InlineDispatcher` (every message handled in this
thread, in order) and timers on a :class:`VirtualScheduler`, so the output is a
function of the input file alone: the same file gives the same bytes. Before an
event at time ``t`` is delivered, every timer due at or before ``t`` fires, so
an OPEN → HALF_OPEN transition is written at exactly the time it fell due.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, TextIO

import pykka

from actors.breaker_actor import BreakerActor
from actors.messages import BreakerTransition, PositionClosed, StopEvent
from actors.portfolio_actor import PortfolioActor
from actors.position_actor import PositionActor
from actors.probe import Probe
from actors.runtime import InlineDispatcher
from actors.scheduler import VirtualScheduler
from supervisor import json_codec
from supervisor.config import Config


def _dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(", ", ": "))


class Replay:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.dispatcher = InlineDispatcher()
        self.scheduler = VirtualScheduler()
        d = self.dispatcher
        self._outbox: list[Any] = []  # the sink appends here, in this thread
        self.sink = Probe.start(dispatcher=d, into=self._outbox)
        self.breaker = BreakerActor.start(
            config.breaker, dispatcher=d, scheduler=self.scheduler, subscriber=self.sink
        )
        self.portfolio = PortfolioActor.start(
            config.gate, dispatcher=d, breaker=self.breaker, net_liquidation=config.net_liquidation
        )
        self.positions: dict[str, pykka.ActorRef[Any]] = {}
        self.last_t = -math.inf
        self.bad_lines = 0

    def close(self) -> None:
        for ref in (*self.positions.values(), self.portfolio, self.breaker, self.sink):
            if ref.is_alive():
                ref.stop()

    def feed(self, lines: Iterable[str], out: TextIO, err: TextIO) -> int:
        """Process every line; returns the number of bad lines."""
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                outputs = self.event(line)
            except json_codec.BadInput as exc:
                self.bad_lines += 1
                err.write(f"line {n}: {exc}\n")
                continue
            for obj in outputs:
                out.write(_dumps(obj) + "\n")
        return self.bad_lines

    def event(self, line: str) -> list[dict[str, Any]]:
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise json_codec.BadInput(f"not JSON: {exc.msg} at column {exc.colno}") from None
        if not isinstance(obj, dict):
            raise json_codec.BadInput("not a JSON object")
        t = json_codec.event_time(obj)
        if t < self.last_t:
            raise json_codec.BadInput(f"t {t!r} goes back in time (last event at {self.last_t!r})")
        kind = obj.get("type")
        handler = self._handlers.get(kind) if isinstance(kind, str) else None
        if handler is None:
            raise json_codec.BadInput(
                f"type must be one of {', '.join(sorted(self._handlers))}, got {kind!r}"
            )
        message = handler.parse(obj, t)  # parse fully before time moves: a bad line changes nothing
        self.last_t = t
        self.scheduler.advance_to(t)  # timers due by now fire first, at their own time
        out = self._drain() if self._outbox else []
        out += handler.deliver(self, message)
        if self._outbox:
            out += self._drain()
        return out

    def _drain(self) -> list[dict[str, Any]]:
        lines: list[dict[str, Any]] = []
        taken, self._outbox[:] = list(self._outbox), []
        for m in taken:
            if isinstance(m, StopEvent):
                lines.append(json_codec.stop_line(m))
            elif isinstance(m, BreakerTransition):
                lines.append(json_codec.breaker_line(m))
        return lines

    # ------------------------------------------------------------- per type

    def _position(self, update: Any) -> list[dict[str, Any]]:
        ref = self.positions.get(update.id)
        if ref is None:
            if update.qty != 0:
                self.positions[update.id] = PositionActor.start(
                    update,
                    self.config.stop_params(update.contract.symbol),
                    dispatcher=self.dispatcher,
                    portfolio=self.portfolio,
                    subscriber=self.sink,
                )
        else:
            ref.tell(update)
            if update.qty == 0:
                del self.positions[update.id]
        return []

    def _to_position(self, message: Any) -> list[dict[str, Any]]:
        ref = self.positions.get(message.id)
        if ref is not None:
            ref.tell(message)
            if isinstance(message, PositionClosed):
                del self.positions[message.id]
        return []

    def _to(self, target: str) -> Callable[[Any], list[dict[str, Any]]]:
        def deliver(message: Any) -> list[dict[str, Any]]:
            getattr(self, target).tell(message)
            return []

        return deliver

    def _check(self, request: Any) -> list[dict[str, Any]]:
        future: pykka.Future[Any] = pykka.ThreadingFuture()
        self.portfolio.tell(
            type(request)(request.t, request.id, request.legs, future, request.invalid)
        )
        return [json_codec.check_line(future.get(timeout=5))]

    class _Handler:
        def __init__(
            self,
            parse: Callable[[dict[str, Any], float], Any],
            deliver: Callable[[Replay, Any], list[dict[str, Any]]],
        ) -> None:
            self.parse = parse
            self.deliver = deliver

    _handlers: ClassVar[dict[str, _Handler]] = {
        "position": _Handler(json_codec.position, lambda r, m: r._position(m)),
        "quote": _Handler(json_codec.quote, lambda r, m: r._to_position(m)),
        "close": _Handler(
            lambda o, t: PositionClosed(t, json_codec._string(o, "id")),
            lambda r, m: r._to_position(m),
        ),
        "account": _Handler(json_codec.account, lambda r, m: r._to("portfolio")(m)),
        "failure": _Handler(json_codec.failure, lambda r, m: r._to("breaker")(m)),
        "success": _Handler(json_codec.success, lambda r, m: r._to("breaker")(m)),
        "admin": _Handler(json_codec.admin, lambda r, m: r._to("breaker")(m)),
        "check": _Handler(json_codec.check, lambda r, m: r._check(m)),
    }


def run(config: Config, path: str, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Replay a file; exit code 0 when every line was good, 1 otherwise."""
    replay = Replay(config)
    try:
        with open(path, encoding="utf-8") as f:
            bad = replay.feed(f, out, err)
    finally:
        replay.close()
    if bad:
        err.write(f"{bad} bad line(s)\n")
    return 1 if bad else 0

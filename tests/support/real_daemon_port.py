"""The real :class:`Daemon` as an ApiPort, for running the API's tests against it too.

The core is giving the Daemon the whole ``DaemonPort`` in parallel with the
API's rewrite. Until it lands, this thin adapter calls the Daemon's own
method wherever it has one, and otherwise today's equivalent:

==================  ==========================================================
``health``          ``breaker_view()`` and ``store.healthy()`` (no IB state)
``state``           ``breaker_view()``, ``portfolio_view()``, ``stop_snapshots()``
``force_open``      ``admin(AdminAction.FORCE_OPEN, operator)``
``reset``           ``admin(AdminAction.RESET, operator)``
``journal``         ``store.journal(...)``
==================  ==========================================================

``kill``, ``heartbeat`` and the strategy methods have no equivalent today:
:func:`missing` names them, and the tests needing them are marked xfail on
the real daemon *only while* the Daemon lacks the method — the moment the
core adds one, those tests run against it and fail if it is wrong. It also
turns pykka's timeouts into the facade's ``DaemonTimeout``, as the Daemon's
port methods are to.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pykka

from actors.messages import AdminAction, BreakerState, CheckAnswer, FailureKind, KillMode
from supervisor.core.daemon import Daemon
from supervisor.core.facade import (
    BreakerStatus,
    DaemonState,
    DaemonTimeout,
    Health,
    HeartbeatStatus,
    JournalEntry,
    KillStatus,
    StrategyLegSpec,
    StrategyStatus,
)

#: Port methods with a stand-in built from today's Daemon.
ADAPTED = frozenset({"health", "state", "force_open", "reset", "journal"})


def missing(*names: str) -> list[str]:
    """The port methods among ``names`` the real Daemon neither has nor can be adapted to."""
    return [n for n in names if n not in ADAPTED and not callable(getattr(Daemon, n, None))]


def _own(daemon: Daemon, name: str) -> Callable[..., Any] | None:
    method = getattr(daemon, name, None)
    return method if callable(method) else None


class RealDaemonPort:
    """A started :class:`Daemon`, seen through the port (see the module docstring)."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    @property
    def clock(self) -> Callable[[], float]:
        return self.daemon.clock

    def _call(self, name: str, fallback: Callable[..., Any] | None, *args: Any, **kw: Any) -> Any:
        method = _own(self.daemon, name) or fallback
        if method is None:
            raise NotImplementedError(f"Daemon.{name}: not in the core yet")
        try:
            return method(*args, **kw)
        except (pykka.Timeout, pykka.ActorDeadError) as exc:
            raise DaemonTimeout(str(exc)) from exc

    # ------------------------------------------------------------ stand-ins

    def _health(self) -> Health:
        store = self.daemon.store
        status = "none" if store is None else "ok" if store.healthy() else "unavailable"
        return Health(self.daemon.breaker_view().state, status, None)

    def _state(self) -> DaemonState:
        breaker = self.daemon.breaker_view()
        return DaemonState(
            self.daemon.clock(),
            BreakerStatus(breaker.state, breaker.snapshot),
            self.daemon.portfolio_view(),
            tuple(self.daemon.stop_snapshots()),
        )

    def _journal(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        kinds: Sequence[str] = (),
        position_id: str | None = None,
        limit: int = 1000,
        after_seq: int | None = None,
    ) -> Sequence[JournalEntry]:
        store = self.daemon.store
        if store is None:
            raise LookupError("no store")
        # Today's store filters one kind at a time: the first ``limit`` rows of
        # each, merged in seq order, hold the first ``limit`` rows of them all.
        rows = sorted(
            (
                row
                for kind in (kinds or [None])
                for row in store.journal(
                    since_seq=after_seq,
                    since_t=since,
                    until_t=until,
                    kind=kind,
                    position_id=position_id,
                    limit=limit,
                )
            ),
            key=lambda r: r.seq,
        )[:limit]
        return [
            WallTimedEntry(r.seq, r.t, r.kind, r.position_id, r.payload, r.wall_t) for r in rows
        ]

    # ----------------------------------------------------------------- port

    def health(self) -> Health:
        result: Health = self._call("health", self._health)
        return result

    def state(self) -> DaemonState:
        result: DaemonState = self._call("state", self._state)
        return result

    def check(self, obj: Mapping[str, Any]) -> CheckAnswer:
        result: CheckAnswer = self._call("check", None, obj)
        return result

    def failure(self, kind: FailureKind, code: int | None = None, detail: str = "") -> None:
        self._call("failure", None, kind, code, detail)

    def success(self, detail: str = "") -> None:
        self._call("success", None, detail)

    def force_open(self, operator: str) -> BreakerState:
        result: BreakerState = self._call(
            "force_open", lambda op: self.daemon.admin(AdminAction.FORCE_OPEN, op), operator
        )
        return result

    def reset(self, operator: str) -> BreakerState:
        result: BreakerState = self._call(
            "reset", lambda op: self.daemon.admin(AdminAction.RESET, op), operator
        )
        return result

    def kill(self, mode: KillMode, operator: str) -> KillStatus:
        result: KillStatus = self._call("kill", None, mode, operator)
        return result

    def heartbeat(self) -> HeartbeatStatus:
        result: HeartbeatStatus = self._call("heartbeat", None)
        return result

    def strategies(self) -> Sequence[StrategyStatus]:
        result: Sequence[StrategyStatus] = self._call("strategies", None)
        return result

    def put_strategy(self, strategy_id: str, legs: Sequence[StrategyLegSpec]) -> StrategyStatus:
        result: StrategyStatus = self._call("put_strategy", None, strategy_id, legs)
        return result

    def delete_strategy(self, strategy_id: str) -> bool:
        result: bool = self._call("delete_strategy", None, strategy_id)
        return result

    def journal(self, **filters: Any) -> Sequence[JournalEntry]:
        result: Sequence[JournalEntry] = self._call("journal", self._journal, **filters)
        return result


@dataclass(frozen=True, slots=True)
class WallTimedEntry(JournalEntry):
    """A journal entry with the store's wall clock (asked of the core for JournalEntry)."""

    wall_t: float | None = None

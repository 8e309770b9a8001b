"""A deterministic, in-memory daemon port: every route tested without actors or threads.

It implements :class:`supervisor.api.port.ApiPort` with just enough behaviour
for the API's tests to be about the API: a breaker that opens on five
failures or a force-open, a gate with one delta limit, kills that open the
breaker and claim one flatten order per position, a heartbeat, strategies
with the daemon's namespace rule, and a journal. Time is a :class:`FakeClock`.
It also records every call, and can be told to fail the next calls the way a
daemon in trouble does (``DaemonTimeout``, ``StoreUnavailable``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from actors.messages import (
    BreakerState,
    CheckAnswer,
    Contract,
    FailureKind,
    KillMode,
    Reason,
    ReasonCode,
    SecType,
    StopSnapshot,
)
from actors.portfolio_view import PortfolioView
from supervisor import json_codec
from supervisor.core.facade import (
    BreakerStatus,
    DaemonState,
    Health,
    HeartbeatStatus,
    JournalEntry,
    KillOrderStatus,
    KillStatus,
    MoneyStatus,
    StrategyLegSpec,
    StrategyLegStatus,
    StrategyRefused,
    StrategyStatus,
)

T0 = 1767225600.0  # 2026-01-01 00:00:00 UTC


@dataclass(frozen=True, slots=True)
class BetaPortfolioView(PortfolioView):
    """The view with the beta-weighted delta the API asks the core to add (DESIGN §4.1)."""

    beta_weighted_delta: float | None = None


class FakeClock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


class FakeDaemon:
    """An ApiPort with a one-limit gate; deterministic given its clock."""

    FAILURE_THRESHOLD = 5

    def __init__(
        self,
        *,
        clock: Callable[[], float] | None = None,
        delta_limit: float = 500.0,
        net_liquidation: float = 1e6,
        heartbeat_timeout_s: float | None = None,
        ib: str | None = "connected",
    ) -> None:
        self.clock: Callable[[], float] = clock or FakeClock()
        self.delta_limit = delta_limit
        self.net_liquidation = net_liquidation
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.ib = ib
        self.store = "ok"
        self.breaker = BreakerState.CLOSED
        self.forced = False
        self.failures: list[tuple[FailureKind, int | None, str]] = []
        self.successes: list[str] = []
        self.positions: dict[str, StopSnapshot] = {}
        self.prices: dict[str, float] = {}
        self.rows: list[JournalEntry] = []
        self.last_kill: KillStatus | None = None
        self.last_beat: float | None = None
        self.declared: dict[str, StrategyStatus] = {}
        self.money = MoneyStatus()
        self.beta_weighted_delta: float | None = None
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.fail_with: BaseException | None = None
        self._lock = threading.Lock()

    # ----------------------------------------------------------- test hooks

    def hold(self, position_id: str, symbol: str, qty: float, price: float) -> None:
        """A stock position the gate counts (delta = qty)."""
        self.positions[position_id] = StopSnapshot(
            position_id,
            Contract(symbol, SecType.STK),
            qty,
            price,
            self.clock(),
            False,
            price,
            None,
            0,
            False,
            0,
        )
        self.prices[position_id] = price

    def _enter(self, name: str, *args: Any) -> float:
        self.calls.append((name, args))
        if self.fail_with is not None:
            raise self.fail_with
        return self.clock()

    def _journal(
        self, t: float, kind: str, payload: Mapping[str, Any], position_id: str | None = None
    ) -> None:
        self.rows.append(JournalEntry(len(self.rows) + 1, t, kind, position_id, dict(payload)))

    def _open(self, t: float, cause: str) -> None:
        if self.breaker is not BreakerState.OPEN:
            self._journal(t, "breaker", {"from": self.breaker.value, "to": "open", "cause": cause})
        self.breaker = BreakerState.OPEN

    def _delta(self) -> float:
        return sum(p.qty for p in self.positions.values())

    # ------------------------------------------------------------- the port

    def health(self) -> Health:
        self._enter("health")
        return Health(self.breaker, self.store, self.ib, "" if self.store == "ok" else "store")

    def state(self) -> DaemonState:
        t = self._enter("state")
        delta = self._delta()
        rows = tuple(
            {
                "id": p.id,
                "symbol": p.contract.symbol,
                "sec_type": p.contract.sec_type.value,
                "right": None,
                "strike": None,
                "expiry": None,
                "multiplier": 1.0,
                "qty": p.qty,
                "price": self.prices[p.id],
                "delta": p.qty,
                "dollar_delta": p.qty * self.prices[p.id],
                "gamma": 0.0,
                "vega": 0.0,
                "theta": 0.0,
                "notional": abs(p.qty) * self.prices[p.id],
                "greeks_t": t,
            }
            for p in self.positions.values()
        )
        view = BetaPortfolioView(
            t,
            delta,
            sum(r["dollar_delta"] for r in rows),
            0.0,
            0.0,
            0.0,
            self.net_liquidation,
            {"max_portfolio_delta": self.delta_limit},
            {"max_portfolio_delta": abs(delta)},
            {"max_portfolio_delta": abs(delta) / self.delta_limit},
            None,
            {},
            rows,
            self.beta_weighted_delta,
        )
        snapshot = {"state": self.breaker.value, "trips": 0, "forced": self.forced}
        return DaemonState(
            t,
            BreakerStatus(self.breaker, snapshot),
            view,
            tuple(self.positions.values()),
            self.money,
            self._heartbeat_status(),
            self.last_kill,
            tuple(self.declared.values()),
        )

    def check(self, obj: Mapping[str, Any]) -> CheckAnswer:
        t = self._enter("check", dict(obj))
        request = json_codec.check(obj, t)
        self.last_beat = t
        problem = request.invalid or _order_problem(request.legs)
        if problem:
            answer = CheckAnswer(
                t, request.id, False, (Reason(ReasonCode.INVALID_ORDER),), detail=problem
            )
        else:
            before = self._delta()
            after = before + sum(leg.qty for leg in request.legs)
            reducing = abs(after) < abs(before)
            reasons: list[Reason] = []
            if abs(after) > self.delta_limit and abs(after) > abs(before):
                reasons.append(Reason(ReasonCode.MAX_PORTFOLIO_DELTA, abs(after), self.delta_limit))
            if self.breaker is not BreakerState.CLOSED and not reducing:
                reasons.append(Reason(ReasonCode.BREAKER_OPEN))
            answer = CheckAnswer(t, request.id, not reasons, tuple(reasons), reducing, self.breaker)
        self._journal(t, "check", {**json_codec.check_line(answer), "detail": answer.detail})
        return answer

    def failure(self, kind: FailureKind, code: int | None = None, detail: str = "") -> None:
        t = self._enter("failure", kind, code, detail)
        with self._lock:
            self.failures.append((kind, code, detail))
            self._journal(t, "failure", {"kind": kind.value, "code": code, "detail": detail})
            if len(self.failures) >= self.FAILURE_THRESHOLD or kind is FailureKind.MARGIN:
                self._open(t, "failure_threshold")

    def success(self, detail: str = "") -> None:
        t = self._enter("success", detail)
        self.successes.append(detail)
        self._journal(t, "success", {"detail": detail})

    def force_open(self, operator: str) -> BreakerState:
        t = self._enter("force_open", operator)
        self._journal(t, "admin", {"action": "force_open", "operator": operator})
        self._open(t, "operator_force_open")
        self.forced = True
        return self.breaker

    def reset(self, operator: str) -> BreakerState:
        t = self._enter("reset", operator)
        self._journal(t, "admin", {"action": "reset", "operator": operator})
        self.breaker, self.forced = BreakerState.CLOSED, False
        self.failures.clear()
        return self.breaker

    def kill(self, mode: KillMode, operator: str) -> KillStatus:
        t = self._enter("kill", mode, operator)
        self._open(t, "kill")
        self.forced = True
        orders = (
            tuple(KillOrderStatus(pid, "claimed") for pid in sorted(self.positions))
            if mode is KillMode.FLATTEN
            else ()
        )
        kill = KillStatus(
            f"kill-{len(self.rows) + 1}",
            t,
            mode,
            "kill",
            operator,
            self.breaker,
            "" if mode is KillMode.HALT else "requested",
            orders,
        )
        self.last_kill = kill
        self._journal(t, "kill", {"mode": mode.value, "operator": operator})
        return kill

    def _heartbeat_status(self) -> HeartbeatStatus:
        timeout = self.heartbeat_timeout_s
        if timeout is None or self.last_beat is None:
            return HeartbeatStatus(timeout, self.last_beat, None)
        deadline = self.last_beat + timeout
        return HeartbeatStatus(timeout, self.last_beat, deadline, self.clock() >= deadline)

    def heartbeat(self) -> HeartbeatStatus:
        self.last_beat = self._enter("heartbeat")
        return self._heartbeat_status()

    def strategies(self) -> Sequence[StrategyStatus]:
        self._enter("strategies")
        return tuple(self.declared.values())

    def put_strategy(self, strategy_id: str, legs: Sequence[StrategyLegSpec]) -> StrategyStatus:
        t = self._enter("put_strategy", strategy_id, tuple(legs))
        if strategy_id in self.positions:
            raise StrategyRefused(f"id: {strategy_id!r} is a position id")
        symbols = {leg.contract.symbol for leg in legs if leg.contract is not None}
        if len(symbols) > 1:
            raise StrategyRefused(f"legs: one underlying per strategy, got {sorted(symbols)}")
        status = StrategyStatus(
            strategy_id,
            next(iter(symbols), ""),
            "waiting",
            tuple(self._leg_status(leg) for leg in legs),
        )
        self.declared[strategy_id] = status
        self._journal(t, "strategy", {"id": strategy_id, "action": "declared"})
        return status

    def _leg_status(self, leg: StrategyLegSpec) -> StrategyLegStatus:
        held = next((p for p in self.positions.values() if p.contract == leg.contract), None)
        return StrategyLegStatus(
            None if held is None else held.id,
            leg.contract,
            leg.ratio,
            None if held is None else held.qty,
        )

    def delete_strategy(self, strategy_id: str) -> bool:
        t = self._enter("delete_strategy", strategy_id)
        if self.declared.pop(strategy_id, None) is None:
            return False
        self._journal(t, "strategy", {"id": strategy_id, "action": "dissolved"})
        return True

    def journal(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        kinds: Sequence[str] = (),
        position_id: str | None = None,
        limit: int = 1000,
        after_seq: int | None = None,
    ) -> Sequence[JournalEntry]:
        self._enter("journal")
        if self.store == "none":
            raise LookupError("no store")
        rows = [
            r
            for r in self.rows
            if (after_seq is None or r.seq > after_seq)
            and (since is None or r.t >= since)
            and (until is None or r.t < until)
            and (not kinds or r.kind in kinds)
            and (position_id is None or r.position_id == position_id)
        ]
        return rows[:limit]

    # ---------------------------------------------------------------- extras

    def note(self, kind: str, payload: Mapping[str, Any], position_id: str | None = None) -> None:
        """A journal row as the daemon would write for something the API did not ask."""
        self._journal(self.clock(), kind, payload, position_id)

    def with_strategy(self, status: StrategyStatus) -> None:
        self.declared[status.id] = status

    def with_kill(self, kill: KillStatus) -> None:
        self.last_kill = kill

    def with_money(self, **fields: Any) -> None:
        self.money = replace(self.money, **fields)


def _order_problem(legs: Sequence[Any]) -> str:
    if not legs:
        return "an order needs at least one leg"
    for i, leg in enumerate(legs):
        if not math.isfinite(leg.qty) or leg.qty == 0:
            return f"legs[{i}].qty must be a finite non-zero number"
        if leg.price is not None and not math.isfinite(leg.price):
            return f"legs[{i}].price must be finite"
        if leg.sec_type is SecType.OPT and None in (
            leg.right,
            leg.strike,
            leg.expiry,
            leg.multiplier,
        ):
            return f"legs[{i}]: an option leg needs right, strike, expiry and multiplier"
    return ""

"""The replay driver: lines in, decisions out (DESIGN §6 "Replay input" / "Replay output").

Facts copied from the contract:

- Output, one object a line in time order: `stop` {t,type,id,action,stop,
  ref_price,extreme}, `breaker` {t,type,from,to,cause}, `check`
  {t,type,id,allowed,reasons[{code,value,limit}]}.
- A timer transition (OPEN -> HALF_OPEN, the heartbeat kill) is written with
  the exact time it fell due, before the output of the next event; an event
  at exactly the due time sees it fired; replay ends at the last event.
- The heartbeat timer and the breaker timer due in one gap fire in time
  order; at the same instant the kill comes first and the breaker's timer is
  dropped.
- A quote feeds one position, so it writes at most one stop line (its
  strategy's or its own), then any breaker line it causes (stop_guard).
- `market` lines feed only the collar and the index price.
- A `quote` or `close` for an id that is not open is ignored; a `position`
  line with qty 0 for an unknown id does nothing (semantics doc).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from oracle.book import Position, Stamp, Stamped, Strategy, finite_positive, greeks_from
from oracle.breaker import Breaker
from oracle.config import Config, StopParams, parse_config
from oracle.events import (
    ADMIN_ACTIONS,
    KILL_MODES,
    LINE_FAILURE_KINDS,
    BadLine,
    contract_of,
    opt_num,
    parse_line,
    req_finite,
    req_str,
    unset_ib_value,
)
from oracle.gate import Gate
from oracle.money import Money
from oracle.portfolio import bsm_greeks
from oracle.stops import TRIGGER, StopState, step


@dataclass
class ReplayResult:
    """The output lines and the numbers (1-based) of the bad lines."""

    lines: list[dict[str, Any]]
    bad_lines: set[int]


def reference_price(
    params: StopParams, long: bool, bid: float | None, ask: float | None, last: float | None
) -> float | None:
    """The reference price under the price source (exit: bid for a long, ask for a short)."""
    if params.price_source == "last":
        return last
    if params.price_source == "mid":
        if bid is None or ask is None:
            return None
        return (bid + ask) / 2
    return bid if long else ask


def accepted(
    params: StopParams,
    ref: float | None,
    bid: float | None,
    ask: float | None,
    *,
    leg: bool,
) -> bool:
    """§3's validity rules (§3.1 for a strategy leg: a reference price of 0 is a price)."""
    if ref is None or not math.isfinite(ref):
        return False
    if ref < 0 or (ref == 0 and not leg):
        return False
    crossed = (
        bid is not None
        and ask is not None
        and math.isfinite(bid)
        and math.isfinite(ask)
        and bid > ask
    )
    if crossed:
        return False
    if params.max_spread_pct is not None:
        if not finite_positive(bid) or not finite_positive(ask):
            return False
        assert bid is not None and ask is not None
        mid = (bid + ask) / 2
        if (ask - bid) / mid * 100 > params.max_spread_pct:
            return False
    return True


@dataclass
class Replay:
    """All replay state; `run` feeds lines through it."""

    cfg: Config
    out: list[dict[str, Any]] = field(default_factory=list)
    positions: dict[str, Position] = field(default_factory=dict)
    strategies: dict[str, Strategy] = field(default_factory=dict)
    spent: set[str] = field(default_factory=set)
    market_quotes: dict[tuple[Any, ...], tuple[Stamp, float, float]] = field(default_factory=dict)
    market_index: Stamped | None = None
    #: Each symbol's latest underlying price: the newest stock-position price or option
    #: und_price seen, positions closed since included (never `market` lines).
    underlying: dict[str, Stamped] = field(default_factory=dict)
    triggers: list[tuple[str, float]] = field(default_factory=list)
    heartbeat_due: float | None = None
    clock: float | None = None

    def __post_init__(self) -> None:
        """Wire the breaker, the gate and the money bookkeeping."""
        self.breaker = Breaker(self.cfg.breaker, self.out)
        self.gate = Gate(self.cfg)
        self.money = Money(self.cfg)

    # -- the loop --------------------------------------------------------------

    def run(self, lines: list[str]) -> ReplayResult:
        """Feed every line; collect output and bad line numbers."""
        bad: set[int] = set()
        for number, text in enumerate(lines, start=1):
            try:
                obj = parse_line(text)
                t = float(obj["t"])
                if self.clock is not None and t < self.clock:
                    raise BadLine("t goes back in time")
                action = self.validate(obj)
            except BadLine:
                bad.add(number)
                continue
            self.clock = t
            self.fire_timers(t)
            action(t, number)
        return ReplayResult(self.out, bad)

    def fire_timers(self, t: float) -> None:
        """Fire every timer due at or before t, in time order; the kill first at one instant."""
        while True:
            hb = self.heartbeat_due
            br = self.breaker.due
            hb_fires = hb is not None and hb <= t
            br_fires = br is not None and br <= t
            if hb_fires and (not br_fires or (hb is not None and br is not None and hb <= br)):
                assert hb is not None
                self.heartbeat_due = None
                self.breaker.force_open(hb, reason="heartbeat_lost", operator=None)
            elif br_fires:
                self.breaker.fire_timer()
            else:
                return

    def arm_heartbeat(self, t: float) -> None:
        """A heartbeat or a check (valid or not) re-arms the deadline."""
        if self.cfg.heartbeat_timeout_s is not None:
            self.heartbeat_due = t + self.cfg.heartbeat_timeout_s

    # -- validation: every check that can make a line bad, before anything changes --

    def validate(self, obj: dict[str, Any]) -> Any:
        """Check a line fully; return the closure that applies it."""
        kind = obj["type"]
        if kind == "position":
            return self.validate_position(obj)
        if kind == "quote":
            pid = req_str(obj, "id")
            bid, ask, last = opt_num(obj, "bid"), opt_num(obj, "ask"), opt_num(obj, "last")
            greeks = obj.get("greeks")
            if greeks is not None and not isinstance(greeks, dict):
                raise BadLine("greeks must be an object")
            return lambda t, seq: self.on_quote(t, seq, pid, bid, ask, last, greeks)
        if kind == "close":
            pid = req_str(obj, "id")
            return lambda t, seq: self.close(pid)
        if kind == "account":
            nlv = req_finite(obj, "net_liquidation")
            return lambda t, seq: self.on_money(lambda: self.money.on_account(nlv), t)
        if kind == "pnl":
            if "daily" not in obj:
                raise BadLine("daily is required")
            raw = obj["daily"]
            if raw is not None and not isinstance(raw, int | float):
                raise BadLine("daily must be a number or null")
            if isinstance(raw, bool):
                raise BadLine("daily must be a number or null")
            daily = unset_ib_value(raw)
            return lambda t, seq: self.on_money(lambda: self.money.on_pnl(t, daily), t)
        if kind == "market":
            contract = contract_of(obj)
            bid, ask, last = opt_num(obj, "bid"), opt_num(obj, "ask"), opt_num(obj, "last")
            return lambda t, seq: self.on_market(t, seq, contract, bid, ask, last)
        if kind == "failure":
            fkind = obj.get("kind")
            if fkind not in LINE_FAILURE_KINDS:
                raise BadLine("kind must be one of the failure kinds")
            assert isinstance(fkind, str)
            code, detail = obj.get("code"), obj.get("detail")
            return lambda t, seq: self.breaker.failure(t, fkind, code, detail)
        if kind == "success":
            return lambda t, seq: self.breaker.success(t)
        if kind == "check":
            req_str(obj, "id")
            return lambda t, seq: self.on_check(t, obj)
        if kind == "heartbeat":
            return lambda t, seq: self.arm_heartbeat(t)
        if kind == "admin":
            action = obj.get("action")
            if action not in ADMIN_ACTIONS:
                raise BadLine("action must be force_open, reset or kill")
            if action == "kill":
                mode = obj.get("mode")
                if mode is not None and mode not in KILL_MODES:
                    raise BadLine("unknown kill mode")
            operator = obj.get("operator")
            who = operator if isinstance(operator, str) else "operator"
            return lambda t, seq: self.on_admin(t, str(action), who)
        raise BadLine("unknown type")

    def validate_position(self, obj: dict[str, Any]) -> Any:
        """A position line: fields, then the strategy rules of §3.1."""
        pid = req_str(obj, "id")
        contract = contract_of(obj)
        qty = req_finite(obj, "qty")
        entry = req_finite(obj, "entry_price")
        has_strategy = "strategy" in obj
        strategy = obj.get("strategy")
        if strategy is not None and not isinstance(strategy, str):
            raise BadLine("strategy must be a string or null")
        if pid in self.strategies or pid in self.spent:
            raise BadLine("position id clashes with a strategy id")
        existing = self.positions.get(pid)
        if isinstance(strategy, str):
            if strategy == pid or strategy in self.positions:
                raise BadLine("strategy id clashes with a position id")
            if strategy in self.spent:
                raise BadLine("strategy id is spent")
            current = existing.strategy if existing is not None else None
            if current is not None and current != strategy:
                raise BadLine("a position is a leg of at most one strategy")
            live = self.strategies.get(strategy)
            if live is not None and live.symbol != contract[1]:
                raise BadLine("a strategy has one underlying symbol")
        elif existing is not None and existing.strategy is not None and not has_strategy:
            live = self.strategies.get(existing.strategy)
            if live is not None and live.symbol != contract[1] and qty != 0:
                raise BadLine("a strategy has one underlying symbol")

        def apply(t: float, seq: int) -> None:
            self.on_position(obj, pid, contract, qty, entry, has_strategy, strategy)

        return apply

    # -- positions and strategies ----------------------------------------------

    def on_position(
        self,
        obj: dict[str, Any],
        pid: str,
        contract: tuple[Any, ...],
        qty: float,
        entry: float,
        has_strategy: bool,
        strategy: str | None,
    ) -> None:
        """Open, update or close a position; join or leave a strategy."""
        existing = self.positions.get(pid)
        if qty == 0:
            if existing is not None:
                self.close(pid)
            return
        is_opt = contract[0] == "OPT"
        if existing is None:
            pos = Position(
                id=pid,
                symbol=contract[1],
                sec_type=contract[0],
                contract=contract,
                qty=qty,
                entry=entry,
                right=contract[2] if is_opt else None,
                strike=contract[3] if is_opt else None,
                expiry=contract[4] if is_opt else None,
                multiplier=contract[5] if is_opt else 1.0,
            )
            pos.fresh_stop()
            self.positions[pid] = pos
            if strategy is not None:
                self.join(pos, strategy)
            return
        pos = existing
        changed = qty != pos.qty or entry != pos.entry
        flipped = (qty > 0) != (pos.qty > 0)
        pos.qty = qty
        pos.entry = entry
        if contract != pos.contract:
            pos.contract = contract
            pos.symbol = contract[1]
            pos.sec_type = contract[0]
            pos.right = contract[2] if is_opt else None
            pos.strike = contract[3] if is_opt else None
            pos.expiry = contract[4] if is_opt else None
            pos.multiplier = contract[5] if is_opt else 1.0
        if pos.strategy is None and not pos.stop_off and flipped:
            pos.fresh_stop()
        if has_strategy and strategy is None and pos.strategy is not None:
            self.leave(pos)
            return
        if strategy is not None and pos.strategy is None:
            self.join(pos, strategy)
            return
        if pos.strategy is not None and changed:
            self.strategies[pos.strategy].restart()

    def join(self, pos: Position, sid: str) -> None:
        """A position becomes a leg: its per-leg stop is off; a started strategy restarts."""
        strat = self.strategies.get(sid)
        if strat is None:
            strat = Strategy(id=sid, symbol=pos.symbol)
            self.strategies[sid] = strat
        strat.legs.append(pos.id)
        pos.strategy = sid
        pos.stop_off = False
        pos.quoted_since_join = False
        pos.leg_ref = None
        strat.restart()

    def leave(self, pos: Position) -> None:
        """`"strategy": null`: counts as that leg closing alone; the position stays open."""
        sid = pos.strategy
        assert sid is not None
        strat = self.strategies[sid]
        if strat.triggered:
            strat.legs.remove(pos.id)
            pos.strategy = None
            pos.stop_off = True
            if not strat.legs:
                self.end_strategy(sid)
            return
        self.end_strategy(sid)

    def end_strategy(self, sid: str) -> None:
        """The strategy's stop ends: remaining legs' per-leg stops start fresh; the id is spent."""
        strat = self.strategies.pop(sid)
        self.spent.add(sid)
        for leg_id in strat.legs:
            leg = self.positions.get(leg_id)
            if leg is None:
                continue
            leg.strategy = None
            leg.quoted_since_join = False
            leg.leg_ref = None
            if not strat.triggered:
                leg.fresh_stop()
            else:
                leg.stop_off = True

    def close(self, pid: str) -> None:
        """A position closes; a leg closing before its strategy's TRIGGER ends the strategy."""
        pos = self.positions.pop(pid, None)
        if pos is None:
            return
        sid = pos.strategy
        if sid is None:
            return
        strat = self.strategies[sid]
        strat.legs.remove(pid)
        if not strat.triggered or not strat.legs:
            self.end_strategy(sid)

    # -- quotes ------------------------------------------------------------------

    def on_quote(
        self,
        t: float,
        seq: int,
        pid: str,
        bid: float | None,
        ask: float | None,
        last: float | None,
        greeks_raw: object,
    ) -> None:
        """A position's quote: validity, market data, then its stop (or its strategy's)."""
        pos = self.positions.get(pid)
        if pos is None:
            return
        params = self.cfg.stop_params(pos.symbol)
        ref = reference_price(params, pos.long, bid, ask, last)
        if not accepted(params, ref, bid, ask, leg=pos.strategy is not None):
            return
        assert ref is not None
        stamp = (t, seq)
        if finite_positive(bid):
            assert bid is not None
            pos.bid = Stamped(bid, stamp)
        if finite_positive(ask):
            assert ask is not None
            pos.ask = Stamped(ask, stamp)
        if finite_positive(last):
            assert last is not None
            pos.last = Stamped(last, stamp)
        if finite_positive(bid) and finite_positive(ask):
            assert bid is not None and ask is not None
            if bid <= ask:
                pos.collar_quote = (stamp, bid, ask)
        greeks = greeks_from(greeks_raw)
        if greeks is not None:
            pos.greeks = greeks
            pos.greeks_stamp = stamp
            pos.ib_greeks = True
        elif pos.is_option and not pos.ib_greeks:
            self.compute_greeks(t, stamp, pos, bid, ask, last)
        seen = pos.und_price() if pos.is_option else pos.stock_price()
        known = self.underlying.get(pos.symbol)
        if seen is not None and (known is None or seen.stamp > known.stamp):
            self.underlying[pos.symbol] = seen
        if pos.strategy is not None:
            self.strategy_quote(t, pos, ref)
            return
        if pos.stop_off:
            return
        action = step(pos.stop, params, pos.entry, pos.long, ref, strategy=False)
        if action is not None:
            self.emit_stop(t, pos.id, action, pos.stop, ref, pos.symbol)

    def compute_greeks(
        self,
        t: float,
        stamp: Stamp,
        pos: Position,
        bid: float | None,
        ask: float | None,
        last: float | None,
    ) -> None:
        """'Where there are none, the supervisor computes them (BSM)': from this quote's mid
        (else its last) and the underlying's latest price; impossible: the Greeks stay as
        they were."""
        if finite_positive(bid) and finite_positive(ask):
            assert bid is not None and ask is not None
            own: float | None = (bid + ask) / 2
        elif finite_positive(last):
            own = last
        else:
            return
        und = self.underlying.get(pos.symbol)
        greeks = bsm_greeks(pos, own, None if und is None else und.value, t, self.cfg)
        if greeks is not None:
            pos.greeks = greeks
            pos.greeks_stamp = stamp

    def strategy_quote(self, t: float, pos: Position, ref: float) -> None:
        """An accepted leg quote: maybe start the strategy's stop, then feed its net price."""
        pos.leg_ref = ref
        pos.quoted_since_join = True
        assert pos.strategy is not None
        strat = self.strategies[pos.strategy]
        if strat.triggered:
            return
        legs = [self.positions[lid] for lid in strat.legs]
        if not strat.started:
            if len(legs) < 2 or not all(leg.quoted_since_join for leg in legs):
                return
            u = 0
            for leg in legs:
                u = math.gcd(u, round(abs(leg.qty)) * round(leg.multiplier))
            weights = {leg.id: leg.qty * leg.multiplier / u for leg in legs}
            entry = 0.0
            for leg in legs:
                entry += weights[leg.id] * leg.entry
            if entry == 0:
                return
            strat.started = True
            strat.weights = weights
            strat.long = entry > 0
            strat.entry = abs(entry)
            strat.state = StopState(extreme=strat.entry)
        net = 0.0
        for leg in legs:
            assert leg.leg_ref is not None
            net += strat.weights[leg.id] * leg.leg_ref
        p = net if strat.long else -net
        assert strat.state is not None
        params = self.cfg.stop_params(strat.symbol)
        action = step(strat.state, params, strat.entry, strat.long, p, strategy=True)
        if action is not None:
            if action == TRIGGER:
                strat.triggered = True
            self.emit_stop(t, strat.id, action, strat.state, p, strat.symbol)

    def emit_stop(
        self, t: float, sid: str, action: str, state: StopState, ref: float, symbol: str
    ) -> None:
        """Write a stop line; a TRIGGER feeds cooldown and the stop guard."""
        self.out.append(
            {
                "t": t,
                "type": "stop",
                "id": sid,
                "action": action,
                "stop": state.stop,
                "ref_price": ref,
                "extreme": state.extreme,
            }
        )
        if action != TRIGGER:
            return
        self.triggers.append((symbol, t))
        guard_n = self.cfg.stop_guard_max_triggers
        guard_w = self.cfg.stop_guard_window_s
        if guard_n is not None and guard_w is not None:
            recent = [t0 for (_, t0) in self.triggers if t - guard_w < t0 <= t]
            if len(recent) >= guard_n:
                self.breaker.failure(t, "stop_guard", None, f"{len(recent)} triggers: {sid}")

    # -- market lines, money, checks, admin -------------------------------------

    def on_market(
        self,
        t: float,
        seq: int,
        contract: tuple[Any, ...],
        bid: float | None,
        ask: float | None,
        last: float | None,
    ) -> None:
        """A market line: the collar's quote and the index price, nothing else."""
        stamp = (t, seq)
        good_sides = finite_positive(bid) and finite_positive(ask)
        if good_sides:
            assert bid is not None and ask is not None
            if bid <= ask:
                self.market_quotes[contract] = (stamp, bid, ask)
        if contract[0] == "STK" and contract[1] == self.cfg.beta_index:
            if finite_positive(last):
                assert last is not None
                self.market_index = Stamped(last, stamp)
            elif good_sides:
                assert bid is not None and ask is not None
                if bid <= ask:
                    self.market_index = Stamped((bid + ask) / 2, stamp)

    def on_money(self, update: Any, t: float) -> None:
        """A pnl or account line: update, then test the loss limits."""
        update()
        if self.cfg.loss_limit_set:
            breach = self.money.over_limit()
            if breach is not None:
                self.breaker.loss_trip(t, breach)

    def on_check(self, t: float, obj: dict[str, Any]) -> None:
        """A check: re-arms the heartbeat, then the gate answers."""
        self.arm_heartbeat(t)
        line = self.gate.check(
            t,
            obj,
            positions=list(self.positions.values()),
            market_quotes=self.market_quotes,
            market_index=self.market_index,
            underlying=self.underlying,
            nlv=self.money.estimate(),
            pnl_time=self.money.pnl_time,
            triggers=self.triggers,
            breaker=self.breaker,
        )
        self.out.append(line)

    def on_admin(self, t: float, action: str, operator: str) -> None:
        """Operator actions: force_open, reset, kill (any mode acts as halt)."""
        if action == "force_open":
            self.breaker.force_open(t, operator=operator)
        elif action == "kill":
            self.breaker.force_open(t, reason="kill", operator=operator)
        else:
            self.breaker.reset(t, operator=operator)
            self.money.on_reset()


def oracle_replay(config_toml_text: str, event_lines: list[str]) -> ReplayResult:
    """Replay event lines under a config: the output lines and the bad line numbers."""
    replay = Replay(parse_config(config_toml_text))
    return replay.run(event_lines)

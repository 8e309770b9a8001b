"""The routed lines replayed for one parameter set, through the production stops.

Strategies are few, and what happens to them can differ from set to set in
ways that change the topology itself (a leg leaving a triggered strategy
keeps it alive; leaving one that has not triggered spends its id and gives
the remaining legs fresh stops of their own), so they are not vectorised:
:class:`SetModel` is one set's copy of the routing rules of
``actors/topology.py`` (which position lines make, change, leave or refuse
legs), of ``actors/position_actor.py`` (a leg's quote judged by
``reference_price(..., zero_ok=True)``; a fresh per-leg stop from the entry
price after its strategy ends before its trigger; the stop kept off after
leaving a triggered one) and of ``actors/strategy_actor.py``, driving the
production :class:`~actors.strategy_stop.StrategyStop` and
:class:`~actors.trailing_stop.TrailingStop` objects. Its stop lines are the
ones replay prints for that set; tests hold this on random recordings.

Each TRIGGER is also judged (:func:`.outcomes.judge`) on the price the stop
ran on, after it: a position's reference price, a strategy's price in its
stop's units (net price for a debit, −net for a credit, from each leg's
latest accepted quote), until the position closes, flips or gets a fresh
stop, or the strategy's legs change.

Pure: events in, rows out; no threads, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Protocol

import numpy as np

from actors.messages import PositionUpdate, QuoteFault, StopAction
from actors.strategy_stop import StrategyState, StrategyStop
from actors.trailing_stop import Decision, StopParams, TrailingStop, reference_price
from supervisor.tune.outcomes import judge
from supervisor.tune.routed import (
    Adopted,
    Routed,
    RoutedClose,
    RoutedPosition,
    RoutedQuote,
)

ACTION_CODE = {StopAction.ACTIVATE: 0, StopAction.UPDATE: 1, StopAction.TRIGGER: 2}
TRIGGERED = StrategyState.TRIGGERED
LIVE = StrategyState.LIVE


class NetPrice(Protocol):
    """The strategy's price in its stop's units from its legs' latest quotes, or None.

    ``StrategyStop`` computes it inside ``quote`` while the stop is live; after
    the TRIGGER it stops pricing, and the outcome needs the price on
    (``StrategyStop.net_price``).
    """

    def __call__(self, stop: StrategyStop) -> float | None: ...


def _net_price(stop: StrategyStop) -> float | None:
    return stop.net_price()


net_price: NetPrice = _net_price


def unit(legs: Iterable[tuple[float, float]]) -> Fraction:
    """u: the gcd of the legs' |qty| × multiplier (DESIGN §3.1), exactly."""
    g = Fraction(0)
    for qty, mult in legs:
        v = abs(Fraction(qty) * Fraction(mult))
        num = math.gcd(g.numerator * v.denominator, v.numerator * g.denominator)
        g = Fraction(num, g.denominator * v.denominator)
    return g


# ------------------------------------------------------------------ output


@dataclass(slots=True)
class ModelRows:
    """Stop decisions of the routed lines: every one (``keep``) or the TRIGGERs only.

    Outcome columns are NaN / False except on TRIGGER rows.
    """

    set: list[int] = field(default_factory=list)
    line: list[int] = field(default_factory=list)
    t: list[float] = field(default_factory=list)
    id: list[str] = field(default_factory=list)
    symbol: list[str] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)  # "position" | "strategy"
    action: list[int] = field(default_factory=list)
    stop: list[float] = field(default_factory=list)
    ref_price: list[float] = field(default_factory=list)
    extreme: list[float] = field(default_factory=list)
    giveback_pct: list[float] = field(default_factory=list)
    whipsaw: list[bool] = field(default_factory=list)
    saved_pct: list[float] = field(default_factory=list)
    saved: list[float] = field(default_factory=list)
    cut: list[bool] = field(default_factory=list)
    bad_lines: dict[int, int] = field(default_factory=dict)
    """Per set: routed lines that set refused (besides the lines bad in every set)."""

    def __len__(self) -> int:
        return len(self.set)

    def extend(self, other: ModelRows) -> None:
        for name in ModelRows.__dataclass_fields__:
            if name == "bad_lines":
                self.bad_lines.update(other.bad_lines)
            else:
                getattr(self, name).extend(getattr(other, name))

    def relabelled(self, was: int, now: int) -> ModelRows:
        """These rows of set ``was`` as set ``now``'s (a set that decides alike)."""
        if was == now:
            return self
        out = ModelRows(bad_lines={now: self.bad_lines.get(was, 0)})
        for name in ModelRows.__dataclass_fields__:
            if name != "bad_lines":
                getattr(out, name).extend(getattr(self, name))
        out.set = [now] * len(self.set)
        return out

    def ordered(self) -> ModelRows:
        """Rows in replay's order within each set: by set, line, action."""
        order = sorted(range(len(self)), key=lambda i: (self.set[i], self.line[i], self.action[i]))
        out = ModelRows(bad_lines=dict(self.bad_lines))
        for name in ModelRows.__dataclass_fields__:
            if name != "bad_lines":
                col = getattr(self, name)
                getattr(out, name).extend(col[i] for i in order)
        return out


@dataclass(slots=True)
class LifePath:
    """One stop's prices and decisions (for the report's chart), recorded on request."""

    id: str
    symbol: str
    kind: str
    long: bool
    times: list[float] = field(default_factory=list)
    prices: list[float] = field(default_factory=list)
    decisions: list[tuple[float, str, float]] = field(default_factory=list)
    end_t: float = math.nan
    triggered: bool = False


class _Watch:
    """A TRIGGER waiting for the prices that follow it (DESIGN §8)."""

    __slots__ = ("factor", "long", "p", "points", "row", "t", "until", "x")

    def __init__(
        self, row: int, t: float, p: float, x: float, long: bool, factor: float, horizon: float
    ) -> None:
        self.row = row
        self.t = t
        self.p = p
        self.x = x
        self.long = long
        self.factor = factor  # money per unit of price: qty × multiplier, or ±u
        self.until = t + horizon
        self.points: list[tuple[float, float]] = []


# ------------------------------------------------------------------ state


class _Pos:
    """A position actor: its own stop, or a leg (stop off) of ``strategy``."""

    __slots__ = (
        "id",
        "multiplier",
        "opened_t",
        "params",
        "path",
        "qty",
        "stop_off",
        "strategy",
        "symbol",
        "trail",
        "watch",
    )

    def __init__(
        self, pid: str, symbol: str, params: StopParams, trail: TrailingStop, qty: float, t: float
    ) -> None:
        self.id = pid
        self.symbol = symbol  # the one it opened with: its stop's parameters
        self.params = params
        self.trail = trail
        self.qty = qty
        self.multiplier = 1.0
        self.opened_t = t
        self.strategy: _Strat | None = None
        self.stop_off = False
        self.watch: _Watch | None = None
        self.path: LifePath | None = None


class _Strat:
    """A strategy actor and the topology's record of it."""

    __slots__ = ("alive", "id", "legs", "path", "refs", "stop", "symbol", "watch")

    def __init__(self, sid: str, symbol: str, params: StopParams) -> None:
        self.id = sid
        self.symbol = symbol
        self.stop = StrategyStop(sid, symbol, params)
        self.legs: list[str] = []  # the topology's list
        self.refs: dict[str, _Pos] = {}  # the actor's: legs it gives their stops back
        self.alive = True
        self.watch: _Watch | None = None
        self.path: LifePath | None = None


ParamsOf = Callable[[str], StopParams]


def _lookup(params: dict[str, list[StopParams]], i: int) -> ParamsOf:
    table = {symbol: ps[i] for symbol, ps in params.items()}
    return table.__getitem__


class SetModel:
    """One parameter set's view of the routed lines (a mini topology, production stops)."""

    def __init__(
        self,
        set_index: int,
        params_of: ParamsOf,
        horizon_s: float,
        out: ModelRows,
        *,
        keep_decisions: bool = False,
        record_paths: bool = False,
    ) -> None:
        self.set = set_index
        self.params_of = params_of
        self.horizon_s = horizon_s
        self.out = out
        self.keep = keep_decisions
        self.record = record_paths
        self.paths: list[LifePath] = []
        self.positions: dict[str, _Pos] = {}
        self.leg_of: dict[str, str] = {}
        self.strategies: dict[str, _Strat] = {}
        self.spent: set[str] = set()
        self.last_t = -math.inf
        self.bad = 0

    # -------------------------------------------------------------- events

    def feed(self, ev: Routed) -> None:
        kind = type(ev)
        if kind is RoutedQuote:
            assert isinstance(ev, RoutedQuote)
            if ev.t < self.last_t:  # back in time behind a line only this set took
                self.bad += 1
                return
            self.last_t = ev.t
            self._quote(ev.line, ev.t, ev.id, ev.bid, ev.ask, ev.last)
            return
        if kind is Adopted:
            assert isinstance(ev, Adopted)
            self._adopt(ev)
            return
        assert not isinstance(ev, RoutedQuote | Adopted)
        if ev.t < self.last_t:
            self.bad += 1
            return
        if isinstance(ev, RoutedPosition):
            if self._refused(ev):
                self.bad += 1
                return
            self.last_t = ev.t
            self._position(ev)
            return
        self.last_t = ev.t
        if isinstance(ev, RoutedClose) and ev.id in self.positions:
            self._close(ev.t, ev.id)

    def finish(self, common_last_t: float) -> None:
        """The recording ended: judge what is still waiting for prices."""
        end = max(common_last_t, self.last_t)
        for pos in self.positions.values():
            self._end_life(pos, end)
        for st in self.strategies.values():
            if st.watch is not None:
                self._judge(st.watch, end)
                st.watch = None
            if st.path is not None:
                st.path.end_t = end
        self.out.bad_lines[self.set] = self.bad

    # ------------------------------------------------------------ topology

    def _refused(self, ev: RoutedPosition) -> bool:
        """``Topology.validate``: would this line break a strategy rule?"""
        u = ev.update
        pid = u.id
        strategy = ev.strategy
        if pid in self.strategies or pid in self.spent:
            return True
        current = self.leg_of.get(pid)
        if (
            current is not None
            and u.qty != 0
            and (ev.keep or strategy == current)
            and u.contract.symbol != self.strategies[current].symbol
        ):
            return True
        if ev.keep or strategy is None or u.qty == 0:
            return False
        # (a strategy named after a plain open position never gets here: bad in every set)
        if strategy in self.positions or strategy == pid or strategy in self.spent:
            return True
        if current is not None and current != strategy:
            return True
        record = self.strategies.get(strategy)
        return record is not None and record.symbol != u.contract.symbol

    def _position(self, ev: RoutedPosition) -> None:
        """``Topology.position``."""
        u = ev.update
        t, pid = u.t, u.id
        pos = self.positions.get(pid)
        current = self.leg_of.get(pid)
        if u.qty == 0:
            if pos is not None:
                self._close(t, pid)
            return
        target = current if ev.keep else ev.strategy
        if pos is None:
            pos = self._spawn(u)
        else:
            self._change(pos, u)
        if current is not None and target != current:
            self._leave(t, pid)
        if target is not None and target != current:
            self._join(u, target, pos)
        elif target is not None:
            st = self.strategies[target]
            leg = st.stop.legs.get(pid)
            if leg is not None:  # the strategy actor's LegChanged
                if leg.qty != u.qty or leg.entry != u.entry_price:
                    self._end_strategy_path(st, t)
                st.stop.change(pid, u.qty, u.entry_price)

    def _spawn(self, u: PositionUpdate) -> _Pos:
        symbol = u.contract.symbol
        params = self.params_of(symbol)
        trail = TrailingStop(params, long=u.qty > 0, entry_price=u.entry_price)
        pos = _Pos(u.id, symbol, params, trail, u.qty, u.t)
        pos.multiplier = u.contract.multiplier if u.contract.is_option else 1.0
        self.positions[u.id] = pos
        self._new_life(pos)
        return pos

    def _change(self, pos: _Pos, u: PositionUpdate) -> None:
        """``PositionActor._change``: a new quantity or entry keeps the stop; a flip restarts."""
        long = u.qty > 0
        pos.qty = u.qty
        pos.multiplier = u.contract.multiplier if u.contract.is_option else 1.0
        if long != pos.trail.long:
            self._end_life(pos, u.t)
            pos.trail = TrailingStop(pos.params, long=long, entry_price=u.entry_price)
            pos.opened_t = u.t
            self._new_life(pos)
        else:
            pos.trail.entry_price = u.entry_price

    def _set_leg(
        self, pos: _Pos, t: float, strategy: _Strat | None, *, fresh: bool, stop_off: bool
    ) -> None:
        """``PositionActor._set_leg``."""
        pos.strategy = strategy
        pos.stop_off = stop_off
        if fresh:
            self._end_life(pos, t)
            pos.trail = TrailingStop(
                pos.params, long=pos.qty > 0, entry_price=pos.trail.entry_price
            )
            pos.opened_t = t
            self._new_life(pos)

    def _join(self, u: PositionUpdate, sid: str, pos: _Pos) -> None:
        st = self.strategies.get(sid)
        if st is None:
            symbol = u.contract.symbol
            st = self.strategies[sid] = _Strat(sid, symbol, self.params_of(symbol))
            if self.record:
                st.path = LifePath(sid, st.symbol, "strategy", True)
                self.paths.append(st.path)
        st.legs.append(u.id)
        self.leg_of[u.id] = sid
        self._set_leg(pos, u.t, st, fresh=False, stop_off=False)
        st.refs[u.id] = pos
        self._end_strategy_path(st, u.t)
        m = u.contract.multiplier if u.contract.is_option else 1.0
        st.stop.join(u.id, u.qty, m, u.entry_price)

    def _leave(self, t: float, pid: str) -> None:
        """``Topology._leave`` and the strategy actor's ``_left``."""
        sid = self.leg_of.pop(pid)
        st = self.strategies[sid]
        triggered = st.stop.state is TRIGGERED
        st.legs.remove(pid)
        # the strategy actor
        st.refs.pop(pid, None)
        self._end_strategy_path(st, t)
        note = st.stop.leave(pid)
        ended = note is not None and note.what == "ended"
        if ended:
            for ref in st.refs.values():
                self._set_leg(ref, t, None, fresh=True, stop_off=False)
            st.refs.clear()
        if ended or not st.stop.legs:
            st.alive = False
        # the topology
        pos = self.positions.get(pid)
        if pos is not None:
            self._set_leg(pos, t, None, fresh=not triggered, stop_off=triggered)
        if not triggered or not st.legs:
            for leg in st.legs:
                self.leg_of.pop(leg, None)
            del self.strategies[sid]
            self.spent.add(sid)

    def _close(self, t: float, pid: str) -> None:
        if pid in self.leg_of:
            self._leave(t, pid)
        pos = self.positions.pop(pid)
        self._end_life(pos, t)

    def _adopt(self, ev: Adopted) -> None:
        """A plain position handed over mid-life: its quotes so far through its own stop."""
        params = self.params_of(ev.symbol)
        trail = TrailingStop(params, long=ev.long, entry_price=ev.entry0)
        pos = _Pos(ev.id, ev.symbol, params, trail, ev.qty, ev.opened_t)
        pos.multiplier = ev.multiplier
        self.positions[ev.id] = pos
        self._new_life(pos)
        rows = np.frombuffer(ev.rows, dtype=np.float64).reshape(-1, 7).tolist()
        for t, bid, ask, last, entry, qty, line in rows:
            trail.entry_price = entry
            pos.qty = qty
            self._own_quote(pos, int(line), t, bid, ask, last)
        trail.entry_price = ev.entry
        pos.qty = ev.qty

    # -------------------------------------------------------------- quotes

    def _quote(self, line: int, t: float, pid: str, bid: float, ask: float, last: float) -> None:
        pos = self.positions.get(pid)
        if pos is None:
            return
        if pos.strategy is None and not pos.stop_off:
            self._own_quote(pos, line, t, bid, ask, last)
            return
        self._after(pos, t, bid, ask, last)
        st = pos.strategy
        # a leg: judged by the leg rules (a reference price of 0 is a price). The
        # strategy judges it again by its own parameters: the same verdict when they
        # are the position's (one symbol), so only a leg of another symbol's
        # parameters needs its own look.
        if st is None or st.stop.params is not pos.params:
            ref = reference_price(pos.params, pos.qty > 0, bid, ask, last, zero_ok=True)
            if isinstance(ref, QuoteFault) or st is None:
                return
        if not st.alive:
            return
        stop = st.stop
        was = stop.state
        result, _note = stop.quote(pid, bid, ask, last)
        if isinstance(result, QuoteFault):
            return
        if was is TRIGGERED:
            w = st.watch
            if w is not None or st.path is not None:
                price = net_price(stop)
                if price is not None:
                    self._point(st, t, price)
            return
        path = st.path
        if path is not None and stop.state in (LIVE, TRIGGERED) and stop.last_price is not None:
            path.times.append(t)
            path.prices.append(stop.last_price)
            path.long = not stop.credit
        if isinstance(result, Decision):
            row = self._emit(line, t, st.id, st.symbol, "strategy", result)
            if path is not None:
                path.decisions.append((t, result.action.value, result.stop))
            if result.action is StopAction.TRIGGER:
                legs = stop.legs.values()
                u = float(unit((leg.qty, leg.multiplier) for leg in legs))
                st.watch = _Watch(
                    row,
                    t,
                    result.ref_price,
                    result.extreme,
                    not stop.credit,
                    -u if stop.credit else u,
                    self.horizon_s,
                )
                if st.path is not None:
                    st.path.triggered = True

    def _own_quote(
        self, pos: _Pos, line: int, t: float, bid: float, ask: float, last: float
    ) -> None:
        watched = pos.watch is not None
        self._after(pos, t, bid, ask, last)
        trail = pos.trail
        result = trail.on_quote(bid, ask, last)
        if pos.path is not None and not watched and not isinstance(result, QuoteFault):
            ref = trail.reference(bid, ask, last)
            assert not isinstance(ref, QuoteFault)
            pos.path.times.append(t)
            pos.path.prices.append(ref)
        if isinstance(result, Decision):
            row = self._emit(line, t, pos.id, pos.symbol, "position", result)
            if pos.path is not None:
                pos.path.decisions.append((t, result.action.value, result.stop))
            if result.action is StopAction.TRIGGER:
                pos.watch = _Watch(
                    row,
                    t,
                    result.ref_price,
                    result.extreme,
                    trail.long,
                    pos.qty * pos.multiplier,
                    self.horizon_s,
                )
                if pos.path is not None:
                    pos.path.triggered = True

    def _after(self, pos: _Pos, t: float, bid: float, ask: float, last: float) -> None:
        """A quote after the position's own stop triggered: the price that followed."""
        if pos.watch is None:
            return
        ref = pos.trail.reference(bid, ask, last)
        if not isinstance(ref, QuoteFault):
            self._point(pos, t, ref)

    def _point(self, who: _Pos | _Strat, t: float, price: float) -> None:
        if who.path is not None:
            who.path.times.append(t)
            who.path.prices.append(price)
        w = who.watch
        if w is None:
            return
        if t > w.until:
            self._judge(w, t)
            who.watch = None
        else:
            w.points.append((t, price))

    # ------------------------------------------------------------- outcome

    def _emit(self, line: int, t: float, who: str, symbol: str, kind: str, d: Decision) -> int:
        trigger = d.action is StopAction.TRIGGER
        if not (trigger or self.keep):
            return -1
        o = self.out
        o.set.append(self.set)
        o.line.append(line)
        o.t.append(t)
        o.id.append(who)
        o.symbol.append(symbol)
        o.kind.append(kind)
        o.action.append(ACTION_CODE[d.action])
        o.stop.append(d.stop)
        o.ref_price.append(d.ref_price)
        o.extreme.append(d.extreme)
        o.giveback_pct.append(math.nan)
        o.whipsaw.append(False)
        o.saved_pct.append(math.nan)
        o.saved.append(math.nan)
        o.cut.append(False)
        return len(o.set) - 1

    def _judge(self, w: _Watch, end_t: float) -> None:
        times = np.array([w.t, *(p[0] for p in w.points)])
        prices = np.array([w.p, *(p[1] for p in w.points)])
        r = judge(
            prices,
            times,
            np.full(len(prices), w.factor),
            np.zeros(1, dtype=np.int64),
            np.array([w.x]),
            long=w.long,
            multiplier=1.0,
            horizon_s=self.horizon_s,
            end_t=end_t,
        )
        o = self.out
        o.giveback_pct[w.row] = float(r.giveback_pct[0])
        o.whipsaw[w.row] = bool(r.whipsaw[0])
        o.saved_pct[w.row] = float(r.saved_pct[0])
        o.saved[w.row] = float(r.saved[0])
        o.cut[w.row] = bool(r.cut[0])

    def _new_life(self, pos: _Pos) -> None:
        if self.record:
            pos.path = LifePath(pos.id, pos.symbol, "position", pos.trail.long)
            self.paths.append(pos.path)

    def _end_life(self, pos: _Pos, t: float) -> None:
        if pos.watch is not None:
            self._judge(pos.watch, t)
            pos.watch = None
        if pos.path is not None:
            pos.path.end_t = t
            pos.path = None

    def _end_strategy_path(self, st: _Strat, t: float) -> None:
        """The legs changed: the price no longer means what it meant at the TRIGGER."""
        if st.watch is not None:
            self._judge(st.watch, t)
            st.watch = None
        path = st.path
        if path is not None and (path.times or path.decisions):
            path.end_t = t
            st.path = LifePath(st.id, st.symbol, "strategy", path.long)
            self.paths.append(st.path)


def run_models(
    routed: Sequence[Routed],
    params: dict[str, list[StopParams]],
    sets: Iterable[int],
    horizon_s: float,
    common_last_t: float,
    *,
    keep_decisions: bool = False,
) -> ModelRows:
    """Every routed line through each set's model; ``params[symbol][set]``.

    Sets whose parameters agree on every routed symbol decide alike: one
    model runs for all of them (a grid over a key that a symbol's table
    overrides, or over a symbol the routed lines do not use).
    """
    out = ModelRows()
    symbols = sorted(params)
    alike: dict[tuple[StopParams, ...], list[int]] = {}
    for i in sets:
        alike.setdefault(tuple(params[sym][i] for sym in symbols), []).append(i)
    for members in alike.values():
        first = members[0]
        rows = ModelRows()
        model = SetModel(
            first, _lookup(params, first), horizon_s, rows, keep_decisions=keep_decisions
        )
        feed = model.feed
        for ev in routed:
            feed(ev)
        model.finish(common_last_t)
        for i in members:
            out.extend(rows.relabelled(first, i))
    return out

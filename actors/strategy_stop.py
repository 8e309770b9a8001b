"""One trailing stop on a strategy's net price (DESIGN §3.1). Pure: no threads, no I/O.

A stop on one leg of a spread would close that leg alone and leave the other
naked, so the legs of a strategy share one stop on the price the combo
trades at:

    u   = gcd of the legs' |qty| × multiplier
    w_i = qty_i × multiplier_i / u
    E   = Σ w_i × entry_i          (> 0 a debit: a long; < 0 a credit)
    net = Σ w_i × ref_i            (each leg's latest reference price)

A debit is stopped as a long on the net price, a credit as a short on
−(net price), its cost to close, with E replaced by −E. Net prices may be ≤ 0,
so distances use magnitudes (:class:`NetTrailingStop`).

The stop starts at the first accepted leg quote after which the strategy has
at least two open legs and every open leg has had an accepted quote since it
joined; that quote gives the first net price. A leg that joins later, or a
change of a leg's quantity or entry price, restarts it from scratch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from fractions import Fraction
from typing import Any

from actors.messages import QuoteFault, StopAction
from actors.trailing_stop import Decision, StopParams, reference_price


class StrategyState(StrEnum):
    WAITING = "waiting"  # not started: fewer than two legs, or a leg not quoted since joining
    LIVE = "live"  # the stop runs on the net price
    NO_STOP = "no_stop"  # E = 0: neither a debit nor a credit; refused until a restart
    TRIGGERED = "triggered"  # stays so until its last leg closes
    ENDED = "ended"  # a leg closed alone before the trigger: the id is spent


class NetTrailingStop:
    """DESIGN §3 on a price that may be ≤ 0: candidates and moves use magnitudes.

    For positive prices the rules are §3's; the arithmetic is §3.1's, in its
    order, so results agree to the last bit with any faithful implementation.
    """

    __slots__ = ("active", "breaches", "entry", "extreme", "long", "params", "stop", "triggered")

    def __init__(self, params: StopParams, *, long: bool, entry: float) -> None:
        self.params = params
        self.long = long
        self.entry = entry
        self.extreme = entry
        self.active = False
        self.stop: float | None = None
        self.breaches = 0
        self.triggered = False

    def _candidate(self) -> float:
        p, x = self.params, self.extreme
        distance = max(abs(x) * p.trailing_pct / 100, p.min_trail_abs)
        return x - distance if self.long else x + distance

    def on_price(self, price: float) -> Decision | None:
        if self.triggered:
            return None
        p = self.params
        if self.long:
            self.extreme = max(self.extreme, price)
        else:
            self.extreme = min(self.extreme, price)
        if not self.active:
            if self.long:
                armed = self.extreme >= self.entry * (1 + p.activation_pct / 100)
            else:
                armed = self.extreme <= self.entry * (1 - p.activation_pct / 100)
            if not armed:
                return None
            self.active = True
            self.stop = self._candidate()
            return Decision(StopAction.ACTIVATE, self.stop, price, self.extreme)
        stop = self.stop
        assert stop is not None
        decision: Decision | None = None
        candidate = self._candidate()
        if self.long:
            moved = candidate > stop and candidate >= stop + abs(stop) * p.min_move_pct / 100
        else:
            moved = candidate < stop and candidate <= stop - abs(stop) * p.min_move_pct / 100
        if moved:
            self.stop = stop = candidate
            decision = Decision(StopAction.UPDATE, stop, price, self.extreme)
        breached = price <= stop if self.long else price >= stop
        if not breached:
            self.breaches = 0
            return decision
        self.breaches += 1
        if decision is None and self.breaches >= p.confirm_quotes:
            self.triggered = True
            return Decision(StopAction.TRIGGER, stop, price, self.extreme)
        return decision


@dataclass(slots=True)
class Leg:
    """One leg as the strategy sees it."""

    id: str
    qty: float
    multiplier: float  # 1 for a stock
    entry: float
    quote: tuple[float | None, float | None, float | None] | None = None  # since it joined


def _gcd(values: list[Fraction]) -> Fraction:
    g = Fraction(0)
    for v in values:
        a, b = g, abs(v)
        # gcd of two rationals: gcd(a/b, c/d) = gcd(a·d, c·b) / (b·d)
        num = math.gcd(a.numerator * b.denominator, b.numerator * a.denominator)
        g = Fraction(num, a.denominator * b.denominator)
    return g


@dataclass(frozen=True, slots=True)
class StrategyNote:
    """Something the journal (not replay output) must hear about."""

    what: str  # "started", "restarted", "no_stop", "ended", "triggered"
    detail: str = ""


@dataclass(slots=True)
class StrategyStop:
    id: str
    symbol: str
    params: StopParams
    legs: dict[str, Leg] = field(default_factory=dict)  # in join order
    state: StrategyState = StrategyState.WAITING
    stop: NetTrailingStop | None = None
    weights: dict[str, float] = field(default_factory=dict)
    credit: bool = False
    entry: float | None = None  # E in the stop's units (−E for a credit)
    last_price: float | None = None  # in the stop's units
    ignored: int = 0

    # ---------------------------------------------------------------- legs

    @property
    def finished(self) -> bool:
        return self.state in (StrategyState.TRIGGERED, StrategyState.ENDED)

    def join(self, leg_id: str, qty: float, multiplier: float, entry: float) -> StrategyNote | None:
        """A position becomes a leg (from its ``position`` line on)."""
        self.legs[leg_id] = Leg(leg_id, qty, multiplier, entry)
        return self._restart("a leg joined")

    def change(self, leg_id: str, qty: float, entry: float) -> StrategyNote | None:
        """A leg's quantity or entry price changed: restart (keeps its quote)."""
        leg = self.legs[leg_id]
        if leg.qty == qty and leg.entry == entry:
            return None
        leg.qty, leg.entry = qty, entry
        return self._restart(f"leg {leg_id} changed")

    def leave(self, leg_id: str) -> StrategyNote | None:
        """A leg closed (or left): before the trigger that ends the strategy; after, nothing."""
        self.legs.pop(leg_id, None)
        if self.finished:
            return None
        self.state = StrategyState.ENDED
        self.stop = None
        return StrategyNote("ended", f"leg {leg_id} closed alone")

    def _restart(self, why: str) -> StrategyNote | None:
        if self.finished:
            return None
        was = self.state
        self.state = StrategyState.WAITING
        self.stop = None
        self.last_price = None
        if was in (StrategyState.LIVE, StrategyState.NO_STOP):
            return StrategyNote("restarted", why)
        return None

    # -------------------------------------------------------------- quotes

    def leg_reference(
        self, leg: Leg, bid: float | None, ask: float | None, last: float | None
    ) -> float | QuoteFault:
        return reference_price(self.params, leg.qty > 0, bid, ask, last, zero_ok=True)

    def quote(
        self, leg_id: str, bid: float | None, ask: float | None, last: float | None
    ) -> tuple[Decision | QuoteFault | None, StrategyNote | None]:
        """One leg quote: a decision, the fault that made it ignored, or nothing."""
        leg = self.legs.get(leg_id)
        if leg is None or self.state is StrategyState.ENDED:
            return None, None
        ref = self.leg_reference(leg, bid, ask, last)
        if isinstance(ref, QuoteFault):
            self.ignored += 1
            return ref, None
        leg.quote = (bid, ask, last)
        note: StrategyNote | None = None
        if self.state is StrategyState.WAITING:
            note = self._start()
        if self.state is not StrategyState.LIVE:
            return None, note
        price = self.net_price()
        if price is None:
            return None, note
        assert self.stop is not None
        self.last_price = price
        decision = self.stop.on_price(price)
        if self.stop.triggered:
            self.state = StrategyState.TRIGGERED
        return decision, note

    def _start(self) -> StrategyNote | None:
        legs = list(self.legs.values())
        if len(legs) < 2 or any(leg.quote is None for leg in legs):
            return None
        u = _gcd([Fraction(abs(leg.qty)) * Fraction(leg.multiplier) for leg in legs])
        if u == 0:
            return None
        self.weights = {leg.id: leg.qty * leg.multiplier / float(u) for leg in legs}
        e = math.fsum(self.weights[leg.id] * leg.entry for leg in legs)
        if e == 0:
            self.state = StrategyState.NO_STOP
            return StrategyNote("no_stop", "E = 0: neither a debit nor a credit")
        self.credit = e < 0
        self.entry = -e if self.credit else e
        self.stop = NetTrailingStop(self.params, long=not self.credit, entry=self.entry)
        self.state = StrategyState.LIVE
        return StrategyNote("started", f"E = {e!r}, weights {self.weights}")

    def net_price(self) -> float | None:
        """The net price in the stop's units (−net for a credit), from each leg's latest quote.

        Public because an outcome (tune) follows the price on after the TRIGGER,
        when ``quote`` no longer prices."""
        terms = []
        for leg in self.legs.values():
            if leg.quote is None:
                return None
            ref = self.leg_reference(leg, *leg.quote)
            if isinstance(ref, QuoteFault):
                return None
            terms.append(self.weights[leg.id] * ref)
        net = math.fsum(terms)
        return -net if self.credit else net

    # --------------------------------------------------------- persistence

    def snapshot(self) -> dict[str, Any]:
        s = self.stop
        return {
            "id": self.id,
            "symbol": self.symbol,
            "state": self.state.value,
            "legs": [
                {
                    "id": leg.id,
                    "qty": leg.qty,
                    "multiplier": leg.multiplier,
                    "entry": leg.entry,
                    "quote": None if leg.quote is None else list(leg.quote),
                }
                for leg in self.legs.values()
            ],
            "weights": self.weights,
            "credit": self.credit,
            "entry": self.entry,
            "last_price": self.last_price,
            "stop": None
            if s is None
            else {
                "long": s.long,
                "entry": s.entry,
                "extreme": s.extreme,
                "active": s.active,
                "stop": s.stop,
                "breaches": s.breaches,
                "triggered": s.triggered,
            },
        }

    @classmethod
    def restore(cls, snap: dict[str, Any], params: StopParams) -> StrategyStop:
        st = cls(str(snap["id"]), str(snap["symbol"]), params)
        st.state = StrategyState(snap["state"])
        for leg in snap["legs"]:
            q = leg.get("quote")
            st.legs[str(leg["id"])] = Leg(
                str(leg["id"]),
                float(leg["qty"]),
                float(leg["multiplier"]),
                float(leg["entry"]),
                None if q is None else (q[0], q[1], q[2]),
            )
        st.weights = {str(k): float(v) for k, v in snap.get("weights", {}).items()}
        st.credit = bool(snap.get("credit", False))
        st.entry = snap.get("entry")
        st.last_price = snap.get("last_price")
        s = snap.get("stop")
        if s is not None:
            stop = NetTrailingStop(params, long=bool(s["long"]), entry=float(s["entry"]))
            stop.extreme = float(s["extreme"])
            stop.active = bool(s["active"])
            stop.stop = s["stop"]
            stop.breaches = int(s["breaches"])
            stop.triggered = bool(s["triggered"])
            st.stop = stop
        return st

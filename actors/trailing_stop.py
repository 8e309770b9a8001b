"""A whipsaw-protected trailing stop for one position, long or short (DESIGN §3).

Pure state machine: no threads, no clock, no I/O. The position actor feeds it
quotes and turns its decisions into messages. Every parameter is in percent
(``2.0`` means 2 %), and the arithmetic follows the design's formulas in the
same order so that results agree to the last bit with any other faithful
implementation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from actors.messages import PriceSource, QuoteFault, StopAction


@dataclass(frozen=True, slots=True)
class StopParams:
    """The tunables of one stop; validated by the config loader, checked again here."""

    activation_pct: float = 2.0
    trailing_pct: float = 1.5
    min_move_pct: float = 0.5
    confirm_quotes: int = 1
    max_spread_pct: float | None = None
    min_trail_abs: float = 0.0
    price_source: PriceSource = PriceSource.EXIT

    def __post_init__(self) -> None:
        problems = []
        if not (math.isfinite(self.activation_pct) and self.activation_pct >= 0):
            problems.append("activation_pct must be a finite number >= 0")
        if not (math.isfinite(self.trailing_pct) and self.trailing_pct > 0):
            problems.append("trailing_pct must be a finite number > 0")
        if not (math.isfinite(self.min_move_pct) and self.min_move_pct >= 0):
            problems.append("min_move_pct must be a finite number >= 0")
        if self.confirm_quotes < 1:
            problems.append("confirm_quotes must be an integer >= 1")
        if self.max_spread_pct is not None and not (
            math.isfinite(self.max_spread_pct) and self.max_spread_pct >= 0
        ):
            problems.append("max_spread_pct must be a finite number >= 0")
        if not (math.isfinite(self.min_trail_abs) and self.min_trail_abs >= 0):
            problems.append("min_trail_abs must be a finite number >= 0")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True, slots=True)
class Decision:
    action: StopAction
    stop: float
    ref_price: float
    extreme: float


def _valid(x: float | None) -> bool:
    return x is not None and math.isfinite(x) and x > 0


def _fault_of(x: float | None) -> QuoteFault:
    if x is None:
        return QuoteFault.MISSING_PRICE
    if not math.isfinite(x):
        return QuoteFault.NON_FINITE
    return QuoteFault.NON_POSITIVE


def reference_price(
    params: StopParams,
    long: bool,
    bid: float | None,
    ask: float | None,
    last: float | None,
    *,
    zero_ok: bool = False,
) -> float | QuoteFault:
    """The price a quote is judged by, or why the whole quote must be ignored.

    ``zero_ok``: a strategy leg's reference price of 0 is a price (a wing worth
    nothing on its exit side, DESIGN §3.1); only < 0 makes it ignored.
    """
    both_finite = bid is not None and ask is not None and math.isfinite(bid) and math.isfinite(ask)
    if both_finite and bid > ask:  # type: ignore[operator]
        return QuoteFault.CROSSED
    source = params.price_source
    ref: float | None
    if source is PriceSource.EXIT:
        ref = bid if long else ask
    elif source is PriceSource.MID:
        ref = None if bid is None or ask is None else (bid + ask) / 2
    else:
        ref = last
    if zero_ok:
        if ref is None or not math.isfinite(ref) or ref < 0:
            return _fault_of(ref)
    elif not _valid(ref):
        return _fault_of(ref)
    if params.max_spread_pct is not None:
        if not (_valid(bid) and _valid(ask)):
            return QuoteFault.BAD_SIDE
        assert bid is not None and ask is not None
        if (ask - bid) / ((bid + ask) / 2) * 100 > params.max_spread_pct:
            return QuoteFault.WIDE_SPREAD
    assert ref is not None
    return ref


class TrailingStop:
    """One position's stop. ``extreme`` is the peak of a long or the trough of a short."""

    __slots__ = (
        "active",
        "breaches",
        "entry_price",
        "extreme",
        "ignored",
        "long",
        "params",
        "stop",
        "triggered",
    )

    def __init__(
        self,
        params: StopParams,
        *,
        long: bool,
        entry_price: float,
        active: bool = False,
        extreme: float | None = None,
        stop: float | None = None,
        breaches: int = 0,
        triggered: bool = False,
        ignored: int = 0,
    ) -> None:
        if not _valid(entry_price):
            raise ValueError(f"entry_price must be a finite number > 0, got {entry_price!r}")
        if active and stop is None:
            raise ValueError("an active stop needs a stop level")
        self.params = params
        self.long = long
        self.entry_price = entry_price
        self.extreme = entry_price if extreme is None else extreme
        self.active = active
        self.stop = stop
        self.breaches = breaches
        self.triggered = triggered
        self.ignored = ignored

    def reference(
        self, bid: float | None, ask: float | None, last: float | None
    ) -> float | QuoteFault:
        return reference_price(self.params, self.long, bid, ask, last)

    def _candidate(self) -> float:
        p = self.params
        x = self.extreme
        if self.long:
            return min(x * (1 - p.trailing_pct / 100), x - p.min_trail_abs)
        return max(x * (1 + p.trailing_pct / 100), x + p.min_trail_abs)

    def on_quote(
        self,
        bid: float | None,
        ask: float | None,
        last: float | None,
        *,
        high: float | None = None,
        low: float | None = None,
    ) -> Decision | QuoteFault | None:
        """Judge one quote: a decision, the fault that made it ignored, or nothing.

        ``high``/``low`` are the extreme reference prices of quotes folded into
        this one by an overloaded mailbox, so a peak or trough is never lost.
        """
        ref = self.reference(bid, ask, last)
        if isinstance(ref, QuoteFault):
            self.ignored += 1
            return ref
        if self.triggered:
            return None
        p = self.params
        if self.long:
            seen = ref if high is None or not _valid(high) else max(ref, high)
            self.extreme = max(self.extreme, seen)
        else:
            seen = ref if low is None or not _valid(low) else min(ref, low)
            self.extreme = min(self.extreme, seen)

        if not self.active:
            if self.long:
                armed = self.extreme >= self.entry_price * (1 + p.activation_pct / 100)
            else:
                armed = self.extreme <= self.entry_price * (1 - p.activation_pct / 100)
            if not armed:
                return None
            self.active = True
            self.stop = self._candidate()
            return Decision(StopAction.ACTIVATE, self.stop, ref, self.extreme)

        stop = self.stop
        assert stop is not None
        decision: Decision | None = None
        candidate = self._candidate()
        if self.long:
            moved = candidate > stop and candidate >= stop * (1 + p.min_move_pct / 100)
        else:
            moved = candidate < stop and candidate <= stop * (1 - p.min_move_pct / 100)
        if moved:
            self.stop = stop = candidate
            decision = Decision(StopAction.UPDATE, stop, ref, self.extreme)

        breached = ref <= stop if self.long else ref >= stop
        if not breached:
            self.breaches = 0
            return decision
        self.breaches += 1
        if decision is None and self.breaches >= p.confirm_quotes:
            self.triggered = True
            return Decision(StopAction.TRIGGER, stop, ref, self.extreme)
        return decision

"""Trailing stops: a position's (DESIGN §3) and a strategy's on its net price (§3.1).

§3, long, entry E, each accepted quote with reference price p:
  1. already triggered: nothing;
  2. peak = max(peak, p) (peak starts at E);
  3. not active and peak >= E*(1+activation_pct/100): active,
     stop = min(peak*(1-trailing_pct/100), peak - min_trail_abs) -> ACTIVATE;
  4. active (not activated by this quote): candidate the same way; if
     candidate > stop and candidate >= stop*(1+min_move_pct/100): UPDATE;
  5. active and p <= stop: a breach; confirm_quotes consecutive breaches ->
     TRIGGER (once); a non-breaching quote resets the run.
Short: the mirror image (trough, activation at E*(1-a), stop = max(trough*(1+t),
trough + min_trail_abs), update when candidate < stop and candidate <=
stop*(1-m), breach when p >= stop).

§3.1 runs the same steps on the net price but with magnitudes, since net
prices may be <= 0: long candidate = extreme - max(|extreme|*t, min_trail_abs),
update when candidate > stop and candidate >= stop + |stop|*m; short candidate
= extreme + max(|extreme|*t, min_trail_abs), update when candidate < stop and
candidate <= stop - |stop|*m.  Each formula is written exactly as the contract
writes it, so float results agree with a literal implementation.
"""

from __future__ import annotations

from dataclasses import dataclass

from oracle.config import StopParams

ACTIVATE = "ACTIVATE"
UPDATE = "UPDATE"
TRIGGER = "TRIGGER"


@dataclass
class StopState:
    """The state of one stop: the extreme (peak or trough), the stop, the breach run."""

    extreme: float
    active: bool = False
    stop: float = 0.0
    breaches: int = 0
    triggered: bool = False


def _position_level(extreme: float, params: StopParams, long: bool) -> float:
    """§3's stop level for an extreme (positive prices)."""
    if long:
        return min(extreme * (1 - params.trailing_pct / 100), extreme - params.min_trail_abs)
    return max(extreme * (1 + params.trailing_pct / 100), extreme + params.min_trail_abs)


def _strategy_level(extreme: float, params: StopParams, long: bool) -> float:
    """§3.1's stop level for an extreme, using magnitudes."""
    distance = max(abs(extreme) * params.trailing_pct / 100, params.min_trail_abs)
    return extreme - distance if long else extreme + distance


def _moves(candidate: float, stop: float, params: StopParams, long: bool, strategy: bool) -> bool:
    """Whether a candidate is a move toward the position big enough to be an UPDATE."""
    mm = params.min_move_pct
    if long:
        if strategy:
            return candidate > stop and candidate >= stop + abs(stop) * mm / 100
        return candidate > stop and candidate >= stop * (1 + mm / 100)
    if strategy:
        return candidate < stop and candidate <= stop - abs(stop) * mm / 100
    return candidate < stop and candidate <= stop * (1 - mm / 100)


def step(
    state: StopState,
    params: StopParams,
    entry: float,
    long: bool,
    p: float,
    *,
    strategy: bool,
) -> str | None:
    """Feed one accepted quote's reference price; return the stop event it causes, if any.

    `entry` is E (for a credit strategy already replaced by -E, so > 0), `p`
    the price the stop runs on (for a credit strategy -(net price)).
    """
    if state.triggered:
        return None
    level = _strategy_level if strategy else _position_level
    if long:
        state.extreme = max(state.extreme, p)
        crossed_activation = state.extreme >= entry * (1 + params.activation_pct / 100)
    else:
        state.extreme = min(state.extreme, p)
        crossed_activation = state.extreme <= entry * (1 - params.activation_pct / 100)
    if not state.active:
        if crossed_activation:
            state.active = True
            state.stop = level(state.extreme, params, long)
            state.breaches = 0
            return ACTIVATE
        return None
    event: str | None = None
    candidate = level(state.extreme, params, long)
    if _moves(candidate, state.stop, params, long, strategy):
        state.stop = candidate
        event = UPDATE
    breach = p <= state.stop if long else p >= state.stop
    if breach:
        state.breaches += 1
        if state.breaches >= params.confirm_quotes:
            state.triggered = True
            return TRIGGER
    else:
        state.breaches = 0
    return event

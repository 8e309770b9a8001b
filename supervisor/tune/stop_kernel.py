"""``TrailingStop.on_quote`` for many parameter sets at once, bit for bit.

One segment (one stop's life) and a *group* of sets that share the reference
price series (same ``price_source`` and ``max_spread_pct``, so the same
quotes are accepted): each accepted quote updates every set's state arrays
with the same IEEE operations, in the same order, as the production stop —
``extreme * (1 - trailing_pct / 100)`` with the factor computed first,
Python's ``min``/``max`` tie rules — so each set's decisions are exactly the
ones replay writes. A test holds this against the production class.

Shorts run in *mirrored* space: every price is negated, which IEEE does
exactly, and the short formulas become the long ones with their own factors
(``-max(x·h, x+m) = min((-x)·h, (-x)-m)``). Output is negated back.

Two facts let most quotes be skipped without changing any result:

* the candidate stop is a function of the extreme alone, so ACTIVATE and
  UPDATE can only happen on a quote that moves the extreme or follows a
  change of entry price ("interesting" quotes);
* any other quote can only count or reset breaches: above every live stop it
  resets them all, so a run of such quotes is skipped at once.

Pure: arrays in, arrays out; no threads, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from actors.messages import PriceSource

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

ACTIVATE, UPDATE, TRIGGER = 0, 1, 2
ACTIONS = ("ACTIVATE", "UPDATE", "TRIGGER")


@dataclass(frozen=True, slots=True)
class SetArrays:
    """The parameter sets of one group, one entry per set (index into the caller's sets)."""

    index: I64
    activation_pct: F64
    trailing_pct: F64
    min_move_pct: F64
    min_trail_abs: F64
    confirm_quotes: I64

    def __len__(self) -> int:
        return len(self.index)


@dataclass(frozen=True, slots=True)
class Decisions:
    """Stop decisions of a segment: ``quote`` indexes the accepted quotes of the segment."""

    quote: I64
    set: I64
    action: npt.NDArray[np.int8]
    stop: F64
    extreme: F64

    @staticmethod
    def empty() -> Decisions:
        z = np.zeros(0, dtype=np.int64)
        return Decisions(z, z, np.zeros(0, np.int8), np.zeros(0), np.zeros(0))


def reference_prices(
    bid: F64,
    ask: F64,
    last: F64,
    *,
    long: bool,
    source: PriceSource,
    max_spread_pct: float | None,
) -> tuple[F64, B]:
    """Each quote's reference price and whether the stop accepts it (``reference_price``)."""
    with np.errstate(all="ignore"):
        finite_bid = np.isfinite(bid)
        finite_ask = np.isfinite(ask)
        ok = ~(finite_bid & finite_ask & (bid > ask))
        if source is PriceSource.EXIT:
            ref = bid if long else ask
        elif source is PriceSource.MID:
            ref = (bid + ask) / 2
        else:
            ref = last
        ok &= np.isfinite(ref) & (ref > 0)
        if max_spread_pct is not None:
            ok &= finite_bid & (bid > 0) & finite_ask & (ask > 0)
            spread = (ask - bid) / ((bid + ask) / 2) * 100
            ok &= ~(spread > max_spread_pct)
    return np.asarray(ref, dtype=np.float64), ok


def run_segment(
    prices: F64,
    entry: F64,
    *,
    long: bool,
    entry0: float,
    sets: SetArrays,
) -> Decisions:
    """Every decision of every set over one segment's *accepted* reference prices.

    ``entry`` is the entry price in force at each quote; ``entry0`` the one the
    stop began with (its starting extreme).
    """
    m = len(prices)
    s = len(sets)
    if m == 0 or s == 0:
        return Decisions.empty()
    sign = 1.0 if long else -1.0
    v = prices if long else -prices
    ev = entry if long else -entry
    # the factors, computed as the production stop computes them
    if long:
        f_act = 1 + sets.activation_pct / 100
        h = 1 - sets.trailing_pct / 100
        g = 1 + sets.min_move_pct / 100
    else:
        f_act = 1 - sets.activation_pct / 100
        h = 1 + sets.trailing_pct / 100
        g = 1 - sets.min_move_pct / 100
    mta = sets.min_trail_abs
    cq = sets.confirm_quotes

    ext = float(sign * entry0)
    # quotes that may activate or move a stop: a new extreme, or a new entry price
    before = np.empty(m, dtype=np.float64)
    before[0] = ext
    if m > 1:
        np.maximum.accumulate(v[:-1], out=before[1:])
        np.maximum(before[1:], ext, out=before[1:])
    interesting = v > before
    interesting[0] = True
    if m > 1:
        interesting[1:] |= ev[1:] != ev[:-1]
    where = np.flatnonzero(interesting)
    # next_interesting[i]: first interesting index >= i (m if none)
    nxt = np.full(m + 1, m, dtype=np.int64)
    nxt[where] = where
    nxt = np.minimum.accumulate(nxt[::-1])[::-1]

    active = np.zeros(s, dtype=bool)
    triggered = np.zeros(s, dtype=bool)
    stop = np.full(s, np.nan)
    breaches = np.zeros(s, dtype=np.int64)
    # kept up to date on every event, so a quiet quote touches as few arrays as possible
    live_active = np.zeros(s, dtype=bool)  # active and not triggered: the sets that can breach
    live_idle = np.ones(s, dtype=bool)  # not active and not triggered: the sets that can arm
    any_active = False
    any_idle = True
    hi = -np.inf  # the highest stop of a live, active set
    cand = np.zeros(s)
    cand_ext = math.nan  # the extreme ``cand`` was computed for
    out_q: list[int] = []
    out_sets: list[I64] = []
    out_action: list[int] = []
    out_stop: list[F64] = []
    out_ext: list[float] = []

    i = 0
    with np.errstate(all="ignore"):
        while i < m:
            x = float(v[i])
            new_level = bool(interesting[i])
            if not new_level and not x <= hi:
                # above every live stop: breaches reset, nothing else can happen
                if any_active:
                    breaches[:] = 0
                lim = int(nxt[i])
                if hi == -np.inf:
                    i = lim
                    continue
                step = 256
                j = i
                e = lim
                while j < lim:
                    e = min(lim, j + step)
                    w = v[j:e] <= hi
                    k = int(w.argmax())
                    if w[k]:
                        e = j + k
                        break
                    j = e
                    step *= 4
                i = e if j < lim else lim
                continue
            armed = moved = None
            if new_level:
                if x > ext:
                    ext = x
                if ext != cand_ext:
                    # Python's min(a, b) is a unless b < a
                    c1 = ext * h
                    c2 = ext - mta
                    cand = np.where(c2 < c1, c2, c1)
                    cand_ext = ext
                if any_idle:
                    armed = live_idle & (ext >= float(ev[i]) * f_act)
                    if not armed.any():
                        armed = None
                if any_active:
                    moved = live_active & (cand > stop) & (cand >= stop * g)
                    if moved.any():
                        stop = np.where(moved, cand, stop)
                    else:
                        moved = None
            trig = None
            if any_active:
                breached = live_active & (x <= stop)
                breaches = np.where(breached, breaches + 1, 0)
                trig = breached & (breaches >= cq)
                if moved is not None:
                    trig &= ~moved
                if not trig.any():
                    trig = None
            if armed is None and moved is None and trig is None:
                i += 1  # no stop moved and none fired: ``hi`` is unchanged
                continue
            if armed is not None:
                stop = np.where(armed, cand, stop)
            for mask, action in ((armed, ACTIVATE), (moved, UPDATE), (trig, TRIGGER)):
                if mask is not None:
                    idx = np.flatnonzero(mask)
                    out_q.append(i)
                    out_sets.append(idx)
                    out_action.append(action)
                    out_stop.append(stop[idx])
                    out_ext.append(ext)
            if armed is not None:
                active |= armed
            if trig is not None:
                triggered |= trig
                if triggered.all():
                    break
            live_active = active & ~triggered
            live_idle = ~active & ~triggered
            any_active = bool(live_active.any())
            any_idle = bool(live_idle.any())
            hi = float(stop[live_active].max()) if any_active else -np.inf
            i += 1

    if not out_q:
        return Decisions.empty()
    lens = [len(a) for a in out_sets]
    q = np.repeat(np.asarray(out_q, dtype=np.int64), lens)
    set_local = np.concatenate(out_sets)
    actions = np.repeat(np.asarray(out_action, dtype=np.int8), lens)
    stops = np.concatenate(out_stop) * sign
    exts = np.repeat(np.asarray(out_ext, dtype=np.float64), lens) * sign
    return Decisions(q, sets.index[set_local], actions, stops, exts)

"""What a TRIGGER did, judged on the prices that followed it (DESIGN §8).

For a trigger at time ``t`` with exit price ``P`` (its reference price: the
bid a long sells at, under the default ``price_source``) and extreme ``X``
(the peak of a long, the trough of a short, when it triggered):

* **giveback %** — how much of the extreme the exit gave back:
  ``(X − P) / |X| × 100`` for a long, ``(P − X) / |X| × 100`` for a short
  (a position's prices are > 0; a strategy's net price may not be);
* **whipsaw** — the reference price gets back to ``X`` (≥ for a long, ≤ for a
  short) at some quote in ``(t, t + horizon_s]``: the stop shook the position
  out before the move resumed;
* **saved %** — what the exit saved (> 0) or cost (< 0) against holding until
  ``t + horizon_s``, priced at the last reference price at or before then:
  ``(P − P_h) / |P| × 100`` for a long, ``(P_h − P) / |P| × 100`` for a
  short, and in money ``(P − P_h) × qty × multiplier`` (either side; for a
  strategy ``qty × multiplier`` is ±u, the units its net price is quoted in:
  +u for a debit, −u for a credit, whose stop runs on −net).

"The prices that followed" are the prices the stop ran on, after the
trigger: a position's own accepted quotes in the recording until it closed or
flipped there (or got a fresh stop), a strategy's price in its stop's units
after each accepted leg quote until its legs changed. If that happened before
``t + horizon_s``, the horizon is **cut**: whipsaw and saved are judged on
what there is, and the trigger is flagged ``cut``.

Pure: arrays in, arrays out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Outcomes:
    giveback_pct: F64
    whipsaw: B
    saved_pct: F64
    saved: F64
    cut: B


def judge(
    prices: F64,
    times: F64,
    qty: F64,
    trigger_at: I64,
    extreme: F64,
    *,
    long: bool,
    multiplier: float,
    horizon_s: float,
    end_t: float,
) -> Outcomes:
    """Outcomes of the triggers at accepted-quote indexes ``trigger_at`` of one segment."""
    if len(trigger_at) == 0:
        none = np.zeros(0)
        no = np.zeros(0, dtype=bool)
        return Outcomes(none, no, none.copy(), none.copy(), no.copy())
    with np.errstate(divide="ignore", invalid="ignore"):  # a net price of 0: NaN, not a number
        return _judge(prices, times, qty, trigger_at, extreme, long, multiplier, horizon_s, end_t)


def _judge(
    prices: F64,
    times: F64,
    qty: F64,
    trigger_at: I64,
    extreme: F64,
    long: bool,
    multiplier: float,
    horizon_s: float,
    end_t: float,
) -> Outcomes:
    n = len(trigger_at)
    give = np.empty(n)
    whip = np.zeros(n, dtype=bool)
    saved_pct = np.empty(n)
    saved = np.empty(n)
    cut = np.zeros(n, dtype=bool)
    p = prices[trigger_at]
    x = extreme
    t = times[trigger_at]
    until = t + horizon_s
    ends = np.searchsorted(times, until, side="right")
    for j in range(n):
        k = int(trigger_at[j])
        e = int(ends[j])
        after = prices[k + 1 : e]
        if len(after):
            whip[j] = bool((after >= x[j]).any() if long else (after <= x[j]).any())
        p_h = prices[e - 1]
        saved[j] = (p[j] - p_h) * qty[k] * multiplier
        scale = abs(p[j])
        saved_pct[j] = (p[j] - p_h) / scale * 100 if long else (p_h - p[j]) / scale * 100
    scale_x = np.abs(x)
    give[:] = (x - p) / scale_x * 100 if long else (p - x) / scale_x * 100
    cut[:] = end_t < until
    return Outcomes(give, whip, saved_pct, saved, cut)

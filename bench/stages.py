"""Where a check's time goes, from the dispatcher's priority timing (``on_priority``).

A check is two priority messages: the ``CheckRequest`` at the portfolio (the
assessment) and the ``Admit`` at the breaker (the admission). For each, the
pool dispatcher reports how long it waited in the mailbox and how long its
handler ran; what is left of the check's whole duration is the hand-offs
between threads (waking the worker, waking the caller) and the gate's own work.
"""

from __future__ import annotations

import threading
from typing import Any

from actors.gate.assessment import Admit
from actors.messages import CheckRequest

STAGES = ("portfolio_wait", "portfolio_run", "breaker_wait", "breaker_run")


class StageTimes:
    """An ``on_priority`` callback that keeps the check's stages (seconds)."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {s: [] for s in STAGES}
        self._lock = threading.Lock()

    def __call__(self, message: Any, waited: float, handled: float) -> None:
        if isinstance(message, CheckRequest):
            where = "portfolio"
        elif isinstance(message, Admit):
            where = "breaker"
        else:
            return
        with self._lock:
            self.samples[f"{where}_wait"].append(waited)
            self.samples[f"{where}_run"].append(handled)

    def clear(self) -> None:
        with self._lock:
            for xs in self.samples.values():
                xs.clear()

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        with self._lock:
            for stage, xs in self.samples.items():
                if xs:
                    s = sorted(xs)
                    out[stage] = {
                        "median": s[len(s) // 2],
                        "p99": s[min(len(s) - 1, int(0.99 * len(s)))],
                        "n": len(s),
                    }
        return out


def describe(summary: dict[str, dict[str, float]]) -> str:
    return (
        "  ".join(
            f"{stage} {v['median'] * 1e6:.0f}/{v['p99'] * 1e6:.0f} (n={v['n']:.0f})"
            for stage, v in summary.items()
        )
        or "none queued"
    )

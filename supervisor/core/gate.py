"""The pre-trade gate's one entry point: every check passes here (API, client, replay, tests).

Like NautilusTrader's ``RiskEngine.execute``, one object owns the verdict:

1. the portfolio actor assesses the order (limits, order controls, cooldown,
   freshness) and, unless a what-if must be fetched, hands it straight to the
   breaker actor's admission (rate, duplicates, margin, breaker, permit);
2. when the margin rules need IB's what-if, it is fetched *here*, outside
   every actor, bounded by ``[margin] whatif_timeout_s``, and the admission
   is asked with it (so a margin denial never takes a half-open permit);
3. an actor that does not answer in time → ``stale_data`` (fail closed);
4. the verdict is journaled before the answer leaves; a journal that cannot
   be written turns an allowance into ``breaker_open`` (fail closed);
5. metrics.

Replay runs the same object with no journal, no metrics and no broker: the
check line's ``whatif`` is the answer IB would have given.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

import pykka

from actors.gate.assessment import Admit, Assessment
from actors.gate.params import MarginParams
from actors.handle import Recipient
from actors.messages import (
    BreakerState,
    CheckAnswer,
    CheckRequest,
    Leg,
    Reason,
    ReasonCode,
    WhatIf,
)


class VerdictJournal(Protocol):
    def verdict(self, request: CheckRequest, answer: CheckAnswer) -> bool:
        """Journal a verdict (with the breaker state it leaves); False: not durable."""
        ...


class CheckMetrics(Protocol):
    def check(self, answer: CheckAnswer, duration_s: float) -> None: ...

    def whatif(self, duration_s: float, failure: str | None = None) -> None: ...


class WhatIfSource(Protocol):
    def whatif(self, legs: tuple[Leg, ...], timeout_s: float) -> WhatIf: ...


def _stale(t: float, id: str, detail: str) -> CheckAnswer:
    return CheckAnswer(t, id, False, (Reason(ReasonCode.STALE_DATA),), detail=detail)


def _whatif_failure(w: WhatIf) -> str | None:
    if w.error:
        return "timeout" if "timeout" in w.error else "error"
    fields = (
        w.init_margin_before,
        w.init_margin_after,
        w.maint_margin_before,
        w.maint_margin_after,
        w.equity_with_loan_before,
        w.equity_with_loan_after,
    )
    return "unset" if any(v is None for v in fields) else None


class Gate:
    def __init__(
        self,
        portfolio: Recipient,
        breaker: Recipient,
        *,
        margin: MarginParams | None = None,
        timeout_s: float = 2.0,
        journal: VerdictJournal | None = None,
        metrics: CheckMetrics | None = None,
        broker: WhatIfSource | None = None,
        perf_counter: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.portfolio = portfolio
        self.breaker = breaker
        self.margin = margin if margin is not None else MarginParams()
        self.timeout_s = timeout_s
        self.journal = journal
        self.metrics = metrics
        self.broker = broker
        self._perf = perf_counter
        self._fetch = broker is not None and self.margin.enabled

    def check(self, request: CheckRequest) -> CheckAnswer:
        started = self._perf()
        answer = self._decide(request)
        durable = self.journal is None or self.journal.verdict(request, answer)
        if not durable and answer.allowed:
            answer = CheckAnswer(
                answer.t,
                answer.id,
                False,
                (*answer.reasons, Reason(ReasonCode.BREAKER_OPEN)),
                answer.risk_reducing,
                BreakerState.OPEN,
                "the journal is unavailable",
                answer.whatif,
            )
        if self.metrics is not None:
            self.metrics.check(answer, self._perf() - started)
        return answer

    def _decide(self, request: CheckRequest) -> CheckAnswer:
        first: pykka.Future[Any] = pykka.ThreadingFuture()
        self.portfolio.tell(replace(request, reply_to=first, fetch_whatif=self._fetch))
        try:
            result = first.get(timeout=self.timeout_s)
        except pykka.Timeout:
            return _stale(request.t, request.id, "the gate did not answer in time")
        if isinstance(result, CheckAnswer):
            return result
        assert isinstance(result, Assessment)
        whatif = self._whatif(result)
        second: pykka.Future[CheckAnswer] = pykka.ThreadingFuture()
        self.breaker.tell(Admit(result, whatif, second))
        try:
            return second.get(timeout=self.timeout_s)
        except pykka.Timeout:
            return _stale(request.t, request.id, "the admission did not answer in time")

    def _whatif(self, a: Assessment) -> WhatIf:
        assert self.broker is not None
        started = self._perf()
        try:
            w = self.broker.whatif(a.legs, self.margin.whatif_timeout_s)
        except Exception as exc:  # a broken adapter must fail closed, not crash the check
            w = WhatIf(error=f"{type(exc).__name__}: {exc}")
        if self.metrics is not None:
            self.metrics.whatif(self._perf() - started, _whatif_failure(w))
        return w

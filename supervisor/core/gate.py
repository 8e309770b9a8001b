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

from actors.breaker_actor import Revoke
from actors.gate.assessment import Admit, Assess, Assessment
from actors.gate.order import invalid_reason, leg_contract, order_key
from actors.gate.params import MarginParams, OrderParams
from actors.handle import Handle, Recipient
from actors.messages import (
    BreakerState,
    CheckAnswer,
    CheckRequest,
    Contract,
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

    def check_stage(self, stage: str, duration_s: float) -> None: ...


class WhatIfSource(Protocol):
    def whatif(self, legs: tuple[Leg, ...], timeout_s: float) -> WhatIf: ...


class QuoteSource(Protocol):
    def ensure_quote(self, contract: Contract, wait_s: float) -> bool: ...


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
        orders: OrderParams | None = None,
        quotes: QuoteSource | None = None,
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
        self.orders = orders if orders is not None else OrderParams()
        self.quotes = quotes
        self._perf = perf_counter
        self._fetch = broker is not None and self.margin.enabled

    def check(self, request: CheckRequest) -> CheckAnswer:
        started = self._perf()
        answer = self._decide(request)
        decided = self._perf()
        durable = self.journal is None or self.journal.verdict(request, answer)
        if not durable and answer.allowed:
            # Not durable, so not allowed: the windows and the permit that the
            # allowance counted are given back, and the denial is what is journaled.
            self.breaker.tell(Revoke(answer.t, order_key(request.legs), answer.permit))
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
            if self.journal is not None:
                self.journal.verdict(request, answer)
        if self.metrics is not None:
            done = self._perf()
            # the actors' own stages (queue, evaluate) are timed by the dispatcher
            self.metrics.check_stage("journal", done - decided)
            self.metrics.check(answer, done - started)
        return answer

    def _watch_legs(self, request: CheckRequest) -> None:
        """The collar needs a quote of every leg's contract: subscribe and wait for it.

        Bounded by ``[orders] quote_wait_s`` in all; the adapter answers at once
        for contracts it already has quotes of. What does not come in time is
        the collar's ``stale_data`` (it fails closed).
        """
        if self.quotes is None or self.orders.price_collar_pct is None:
            return
        if request.invalid is not None or invalid_reason(request.legs) is not None:
            return
        deadline = self._perf() + self.orders.quote_wait_s
        for leg in request.legs:
            left = deadline - self._perf()
            try:
                self.quotes.ensure_quote(leg_contract(leg), max(left, 0.0))
            except Exception:  # no quote is the collar's stale_data, never a crash
                continue

    def _decide(self, request: CheckRequest) -> CheckAnswer:
        self._watch_legs(request)
        try:
            ran, result = self._here(self.portfolio, Assess(request))
        except Exception as exc:  # the portfolio failed on it (and restarts): fail closed
            return _stale(request.t, request.id, f"the gate failed: {type(exc).__name__}")
        if ran:
            return self._admit(request, result)
        first: pykka.Future[Any] = pykka.ThreadingFuture()
        self.portfolio.tell(replace(request, reply_to=first, fetch_whatif=self._fetch))
        try:
            result = first.get(timeout=self.timeout_s)
        except pykka.Timeout:
            return _stale(request.t, request.id, "the gate did not answer in time")
        if isinstance(result, CheckAnswer):
            return result
        assert isinstance(result, Assessment)  # the portfolio left the what-if to us
        return self._admit(request, result)

    def _admit(self, request: CheckRequest, a: Assessment) -> CheckAnswer:
        """The rest of a check whose assessment the gate holds.

        The steps the portfolio takes for a told check (the what-if when the
        margin gate needs one, then the admission), with the admission in this
        thread when the breaker is free, else through its priority lane.
        """
        whatif: WhatIf | None = request.whatif
        if self._fetch and a.margin_needed and not a.denied and whatif is None:
            whatif = self._whatif(a)
        try:
            ran, answer = self._here(self.breaker, Admit(a, whatif))
        except Exception as exc:
            return _stale(request.t, request.id, f"the admission failed: {type(exc).__name__}")
        if ran:
            assert isinstance(answer, CheckAnswer)
            return answer
        second: pykka.Future[CheckAnswer] = pykka.ThreadingFuture()
        self.breaker.tell(Admit(a, whatif, second))
        try:
            return second.get(timeout=self.timeout_s)
        except pykka.Timeout:
            return _stale(request.t, request.id, "the admission did not answer in time")

    def _here(self, target: Recipient, message: Assess | Admit) -> tuple[bool, Any]:
        """``call_here`` on a pooled actor, timed as the dispatcher times its priority mail."""
        if not isinstance(target, Handle):
            return False, None
        started = self._perf()
        ran, result = target.call_here(message)
        if ran and self.metrics is not None:
            self.metrics.check_stage("queue", 0.0)
            self.metrics.check_stage("evaluate", self._perf() - started)
        return ran, result

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

"""A pure, single-threaded stand-in for the gate's two actors, for boundary tests.

It wires the same pure parts the portfolio and breaker actors wire — the book,
the market book, the money, the assessor (portfolio half) and the admission
(breaker half) over one circuit breaker — so a test can set up a book and ask
one check at an exact event time without threads or mailboxes. The actors
themselves are exercised separately (message-level and replay tests).
"""

from __future__ import annotations

from actors.book import Book
from actors.circuit_breaker import BreakerParams, CircuitBreaker
from actors.gate.admission import Admission
from actors.gate.assessment import Assessment, Assessor
from actors.gate.params import GateParams
from actors.market_book import MarketBook
from actors.messages import (
    CheckAnswer,
    CheckRequest,
    Contract,
    Greeks,
    Leg,
    ReasonCode,
    Right,
    SecType,
    WhatIf,
)
from actors.money import Money

EXP = "2027-01-15"


def stk(symbol: str) -> Contract:
    return Contract(symbol, SecType.STK)


def opt(symbol: str, strike: float, right: Right = Right.CALL, mult: float = 100.0) -> Contract:
    return Contract(symbol, SecType.OPT, right, strike, EXP, mult)


def sleg(symbol: str, qty: float, price: float | None = None) -> Leg:
    return Leg(symbol, SecType.STK, qty, price)


def oleg(
    symbol: str,
    qty: float,
    strike: float,
    price: float | None = None,
    right: Right = Right.CALL,
    greeks: Greeks | None = None,
    mult: float = 100.0,
) -> Leg:
    return Leg(symbol, SecType.OPT, qty, price, right, strike, EXP, mult, greeks)


def codes(a: CheckAnswer) -> list[str]:
    return [r.code.value for r in a.reasons]


def triples(a: CheckAnswer) -> list[tuple[str, float | None, float | None]]:
    return [(r.code.value, r.value, r.limit) for r in a.reasons]


class PureGate:
    """The gate's pure logic, wired as the portfolio and breaker actors wire it."""

    def __init__(
        self,
        params: GateParams,
        breaker: BreakerParams | None = None,
        *,
        config_nlv: float | None = None,
    ) -> None:
        self.params = params
        self.book = Book(Assessor.needs_of(params), params.groups, params.pricing)
        self.market = MarketBook()
        self.money = Money(params.loss, config_nlv)
        self.assessor = Assessor(params, self.book, self.market, self.money)
        self.admission = Admission(params)
        self.cb = CircuitBreaker(breaker or BreakerParams())
        self._sync_nlv()

    def _sync_nlv(self) -> None:
        self.book.nlv = self.money.estimate()

    # inputs -------------------------------------------------------------

    def position(self, id: str, contract: Contract, qty: float) -> None:
        self.book.upsert(id, contract, qty)

    def close(self, id: str) -> None:
        self.book.remove(id)
        self.market.position_closed(id)

    def quote(
        self,
        t: float,
        id: str,
        bid: float | None,
        ask: float | None,
        last: float | None = None,
        greeks: Greeks | None = None,
    ) -> None:
        """An accepted quote of a held position (what a Mark carries)."""
        self.book.mark(id, t, bid, ask, last, greeks)
        h = self.book.holdings[id]
        self.market.position_quote(t, id, h.contract, bid, ask)

    def market_quote(
        self,
        t: float,
        contract: Contract,
        bid: float | None,
        ask: float | None,
        last: float | None = None,
    ) -> None:
        self.market.market_quote(t, contract, bid, ask, last)

    def account(self, t: float, nlv: float) -> None:
        self.money.account(t, nlv)
        self._sync_nlv()

    def pnl(self, t: float, daily: float | None) -> None:
        self.money.pnl(t, daily)
        self._sync_nlv()

    def trigger(self, t: float, symbol: str) -> None:
        assert self.assessor.cooldown is not None
        self.assessor.cooldown.triggered(t, symbol)

    # the check ------------------------------------------------------------

    def assess(self, t: float, *legs: Leg) -> Assessment:
        return self.assessor.assess(CheckRequest(t, "chk", tuple(legs)))

    def check(self, t: float, *legs: Leg, whatif: WhatIf | None = None) -> CheckAnswer:
        a = self.assess(t, *legs)
        return self.admission.decide(a, whatif, self.cb)[0]

    # breaker helpers ------------------------------------------------------

    def open_breaker(self, t: float) -> None:
        self.cb.force_open(t)

    def half_open(self, t: float) -> None:
        """HALF_OPEN at ``t`` with every permit still free."""
        from actors.messages import Failure, FailureKind

        self.cb.failure(Failure(t - self.cb.params.open_timeout_s, FailureKind.MARGIN))
        self.cb.advance(t)


R = ReasonCode

"""PortfolioActor: aggregate Greeks, exposure and money, and the book half of the gate.

Position actors tell it every change and every accepted quote's prices and
Greeks; the book keeps the aggregates incrementally. ``market`` quotes feed the
collar and the index price; P&L and NLV feed the estimated NLV, its
high-water mark and the loss trip (told to the breaker).

A check is answered without anyone blocking inside an actor: the portfolio
assesses it and hands the :class:`~actors.gate.assessment.Assessment` to the
breaker's admission, which completes the caller's future — or, when the
daemon must first fetch an IB what-if, back to the caller, who fetches it
outside every actor and then asks the admission itself. Checks are priority
mail: they never wait behind a queue of marks, and queued marks for one
position fold into the newest (the aggregates only need the latest).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from actors.book import Book
from actors.gate.assessment import Admit, Assess, Assessor
from actors.gate.params import GateParams
from actors.handle import Recipient
from actors.market_book import MarketBook
from actors.messages import (
    AccountUpdate,
    CheckRequest,
    GetPortfolio,
    LossBreach,
    Mark,
    MarketQuote,
    PnlUpdate,
    PositionClosed,
    PositionUpdate,
    ResetHighWater,
    Triggered,
)
from actors.money import Money
from actors.portfolio_view import PortfolioView, view_of
from actors.runtime import Dispatcher, InlineDispatcher, PooledActor


@dataclass(frozen=True, slots=True)
class MoneyView:
    """The money state after a ``pnl`` or ``account`` event (metrics, journal, state)."""

    t: float
    daily: float | None
    unrealized: float | None
    realized: float | None
    pnl_t: float | None
    nlv: float | None
    nlv_t: float | None
    nlv_from_ib: bool
    estimate: float | None
    high_water: float | None
    high_water_moved: bool
    snapshot: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SeedTriggers:
    """Recent TRIGGERs from the journal, after a restart: the cooldown goes on."""

    triggers: Sequence[Triggered]


@dataclass(frozen=True, slots=True)
class RestoreMoney:
    snapshot: dict[str, Any]


MARKS_HELD = 4096
"""Inline, marks are kept until the next other message or this many: then applied as one run."""

SETTLE_AFTER = 16
"""On a pool, the sums catch up when the mailbox runs dry or this many positions wait.

A flood of quotes then costs one admission per position per run of quotes
instead of one per quote, and a check (which settles first) pays for 16
positions at most, about 50 us.
"""


class PortfolioActor(PooledActor):
    def __init__(
        self,
        params: GateParams,
        *,
        dispatcher: Dispatcher,
        breaker: Recipient | None = None,
        subscriber: Recipient | None = None,
        net_liquidation: float | None = None,
    ) -> None:
        super().__init__(dispatcher=dispatcher)
        self.params = params
        self.breaker = breaker
        self.subscriber = subscriber
        self.market = MarketBook()
        self.money = Money(params.loss, net_liquidation)
        self.book = Book(Assessor.needs_of(params), params.groups, params.pricing)
        self.assessor = Assessor(params, self.book, self.market, self.money)
        # Inline (replay, tests) nobody waits on a check's latency: the sums
        # catch up with a run of quotes once, when something reads them. On a
        # pool a check must not pay for many: see SETTLE_AFTER.
        self._inline = isinstance(dispatcher, InlineDispatcher)
        # Inline: marks kept, applied as one run before anything else is handled.
        self._marks: list[Mark] = []
        self._nlv_changed()

    def is_priority(self, message: Any) -> bool:
        """Only marks wait in the ordinary lane (and fold there): everything else a check
        depends on — a position change, a TRIGGER (cooldown), P&L, a market quote the
        gate waited for — keeps its order with the checks, which overtake the marks."""
        return not isinstance(message, Mark)

    def is_quiet(self, message: Any) -> bool:
        """A mark only updates the book: an inline dispatcher may hold marks until
        something reads it (replay)."""
        return isinstance(message, Mark)

    def coalesce_key(self, message: Any) -> Hashable | None:
        """Queued marks of one position fold, newest wins — but only with their own
        kind: a mark without Greeks must never erase one that carried them."""
        if isinstance(message, Mark):
            return ("mark", message.id, message.greeks is not None)
        return None

    def on_receive(self, message: Any) -> Any:
        book = self.book
        if isinstance(message, Mark):
            if self._inline:
                self._marks.append(message)
                if len(self._marks) >= MARKS_HELD:
                    self._apply_marks()
                return None
            # The sums catch up when a check or a view reads them (Book.settle).
            h = book.holdings.get(message.id)
            if h is not None:
                book.mark_later(
                    message.id, message.t, message.bid, message.ask, message.last, message.greeks
                )
                if book.pending >= SETTLE_AFTER or not self.mailbox_depth:
                    book.settle()
                self.market.position_quote(
                    message.t, message.id, h.contract, message.bid, message.ask
                )
            return None
        if self._marks:
            self._apply_marks()
        if isinstance(message, CheckRequest):
            book.settle()
            return self._check(message)
        if isinstance(message, Assess):
            book.settle()
            return self.assessor.assess(message.request)
        elif isinstance(message, PositionUpdate):
            book.upsert(message.id, message.contract, message.qty)
        elif isinstance(message, PositionClosed):
            book.remove(message.id)
            self.market.position_closed(message.id)
        elif isinstance(message, MarketQuote):
            self.market.market_quote(
                message.t, message.contract, message.bid, message.ask, message.last
            )
        elif isinstance(message, AccountUpdate):
            hw = self.money.high_water
            self._money(message.t, self.money.account(message.t, message.net_liquidation), hw)
        elif isinstance(message, PnlUpdate):
            hw = self.money.high_water
            breach = self.money.pnl(message.t, message.daily, message.unrealized, message.realized)
            self._money(message.t, breach, hw)
        elif isinstance(message, Triggered):
            if self.assessor.cooldown is not None:
                self.assessor.cooldown.triggered(message.t, message.symbol)
            if self.breaker is not None:
                self.breaker.tell(message)  # the stop guard
        elif isinstance(message, ResetHighWater):
            hw = self.money.high_water
            self.money.reset()
            self._money(message.t, None, hw)
        elif isinstance(message, GetPortfolio):
            return self.view(message.t)
        elif isinstance(message, SeedTriggers):
            if self.assessor.cooldown is not None:
                for tr in message.triggers:
                    self.assessor.cooldown.triggered(tr.t, tr.symbol)
        elif isinstance(message, RestoreMoney):
            self.money.restore(message.snapshot)
            self._nlv_changed()
        return None

    def _check(self, req: CheckRequest) -> Any:
        a = self.assessor.assess(req)
        if req.fetch_whatif and a.margin_needed and not a.denied and req.whatif is None:
            if req.reply_to is not None:
                req.reply_to.set(a)  # the caller fetches the what-if, then admits
            return a
        admit = Admit(a, req.whatif, req.reply_to)
        if self.breaker is not None:
            self.breaker.tell(admit)
        return admit

    def _money(self, t: float, breach: LossBreach | None, before: float | None) -> None:
        self._nlv_changed()
        if breach is not None and self.breaker is not None:
            self.breaker.tell(breach)
        if self.subscriber is not None:
            m = self.money
            self.subscriber.tell(
                MoneyView(
                    t,
                    m.daily,
                    m.unrealized,
                    m.realized,
                    m.pnl_t,
                    m.nlv,
                    m.nlv_t,
                    m.nlv_from_ib,
                    m.estimate(),
                    m.high_water,
                    m.high_water != before,
                    m.snapshot(),
                )
            )

    def _nlv_changed(self) -> None:
        estimate = self.money.estimate()
        if estimate != self.book.nlv:
            self.book.nlv = estimate
            self.book.version += 1

    def _apply_marks(self) -> None:
        """The marks kept so far, in order, as one run (``Book.mark_many``)."""
        marks, self._marks = self._marks, []
        self.book.mark_many(marks)
        holdings = self.book.holdings
        self.market.position_quotes(
            (m.t, m.id, h.contract, m.bid, m.ask)
            for m in marks
            if (h := holdings.get(m.id)) is not None
        )

    def view(self, t: float | None = None) -> PortfolioView:
        if self._marks:
            self._apply_marks()
        self.book.settle()
        return view_of(self.book, self.params, self.assessor.limits, self.market, t)

"""PortfolioActor: aggregate Greeks and exposure, and the limits half of the gate.

Position actors tell it every change and every accepted quote's prices and
Greeks; the book keeps the aggregates incrementally. A check is answered in two
hops without anyone blocking inside an actor: the portfolio judges the limits
and hands its verdict to the breaker, which grants or refuses a half-open
permit and completes the caller's future. Checks are priority mail: they never
wait behind a queue of marks, and queued marks for one position fold into the
newest (the aggregates only need the latest).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from actors.book import Book
from actors.limits import GateParams, conclude, evaluate, needs_for
from actors.messages import (
    AccountUpdate,
    CheckRequest,
    GateRequest,
    GetPortfolio,
    Mark,
    PositionClosed,
    PositionUpdate,
)
from actors.portfolio_view import PortfolioView, view_of
from actors.runtime import Dispatcher, PooledActor


class PortfolioActor(PooledActor):
    def __init__(
        self,
        params: GateParams,
        *,
        dispatcher: Dispatcher,
        breaker: Any = None,
        net_liquidation: float | None = None,
    ) -> None:
        super().__init__(dispatcher=dispatcher)
        self.params = params
        self.breaker = breaker
        self.book = Book(needs_for(params), params.groups, params.pricing)
        if net_liquidation is not None:
            self.book.set_nlv(net_liquidation)

    def is_priority(self, message: Any) -> bool:
        return isinstance(message, (CheckRequest, GetPortfolio))

    def coalesce_key(self, message: Any) -> Hashable | None:
        """Queued marks of one position fold, newest wins — but only with their own
        kind: a mark without Greeks must never erase one that carried them."""
        if isinstance(message, Mark):
            return ("mark", message.id, message.greeks is not None)
        return None

    def on_receive(self, message: Any) -> Any:
        book = self.book
        if isinstance(message, Mark):
            book.mark(message.id, message.t, message.bid, message.ask, message.last, message.greeks)
        elif isinstance(message, PositionUpdate):
            book.upsert(message.id, message.contract, message.qty)
        elif isinstance(message, PositionClosed):
            book.remove(message.id)
        elif isinstance(message, AccountUpdate):
            book.set_nlv(message.net_liquidation)
        elif isinstance(message, CheckRequest):
            verdict = evaluate(book, message, self.params)
            if self.breaker is not None:
                self.breaker.tell(GateRequest(verdict, message.reply_to))
            elif message.reply_to is not None:
                message.reply_to.set(conclude(verdict, None, None))
            return verdict
        elif isinstance(message, GetPortfolio):
            return self.view(message.t)
        return None

    def view(self, t: float | None = None) -> PortfolioView:
        return view_of(self.book, self.params, t)

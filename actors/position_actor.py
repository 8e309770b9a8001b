"""PositionActor: one per position; owns its trailing stop and forwards its marks.

A thin shell over :class:`actors.trailing_stop.TrailingStop`: quotes in, stop
events out to the subscriber (journal, metrics, exit orders), and each
accepted quote's prices and Greeks on to the portfolio. Under overload its
mailbox folds queued quotes into the newest one while carrying the highest
and lowest reference price, so a peak or trough is never lost.

A position that is a leg of a strategy (DESIGN §3.1) has its own stop off: it
judges each quote by the leg rules and forwards the accepted ones to its
strategy's actor, which runs the one stop on the net price.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable
from typing import Any

from actors.handle import Recipient
from actors.messages import (
    GetStopState,
    LegQuote,
    Mark,
    PositionClosed,
    PositionUpdate,
    Quote,
    QuoteFault,
    Resync,
    SetLeg,
    StopAction,
    StopEvent,
    StopSnapshot,
    Triggered,
)
from actors.runtime import Dispatcher, PooledActor
from actors.trailing_stop import Decision, StopParams, TrailingStop, reference_price


def trigger_id(position_id: str, opened_t: float) -> str:
    """The idempotency key of a position's one exit: stable across restarts."""
    return f"{position_id}@{opened_t!r}"


class PositionActor(PooledActor):
    def __init__(
        self,
        update: PositionUpdate,
        params: StopParams,
        *,
        dispatcher: Dispatcher,
        portfolio: Recipient | None = None,
        subscriber: Recipient | None = None,
        restored: StopSnapshot | None = None,
    ) -> None:
        super().__init__(dispatcher=dispatcher)
        self.id = update.id
        self.params = params
        self.portfolio = portfolio
        self.subscriber = subscriber
        self.faults: Counter[QuoteFault] = Counter()
        self.strategy_id: str | None = None
        self.strategy: Recipient | None = None
        self.stop_off = False  # a leg of a strategy that triggered, taken out of it
        if restored is not None:
            self.contract, self.qty = restored.contract, restored.qty
            self.opened_t = restored.opened_t
            self.strategy_id = restored.strategy
            self.trail = TrailingStop(
                params,
                long=restored.qty > 0,
                entry_price=restored.entry_price,
                active=restored.active,
                extreme=restored.extreme,
                stop=restored.stop,
                breaches=restored.breaches,
                triggered=restored.triggered,
                ignored=restored.ignored_quotes,
            )
            if update.qty != 0:
                self._change(update)
        else:
            self.contract, self.qty, self.opened_t = update.contract, update.qty, update.t
            self.trail = TrailingStop(params, long=update.qty > 0, entry_price=update.entry_price)
        self._opening = update
        self._last_mark: Mark | None = None

    # ------------------------------------------------------------- pykka hooks

    def on_start(self) -> None:
        self._publish_position(self._opening)
        if self.subscriber is not None:
            self.subscriber.tell(self.snapshot())

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Quote):
            if self.strategy_id is not None or self.stop_off:
                self._leg_quote(message)
                return None
            # _quote, inlined: this is every quote of every position.
            q = message
            result = self.trail.on_quote(q.bid, q.ask, q.last, high=q.high, low=q.low)
            if result is None:
                self._mark(q)
            elif isinstance(result, QuoteFault):
                self.faults[result] += 1
            else:
                self._mark(q)
                if isinstance(result, Decision):
                    self._decide(q.t, result)
        elif isinstance(message, PositionUpdate):
            if message.qty == 0:
                self._close(PositionClosed(message.t, self.id))
            else:
                self._change(message)
                self._publish_position(message)
        elif isinstance(message, PositionClosed):
            self._close(message)
        elif isinstance(message, SetLeg):
            self._set_leg(message)
        elif isinstance(message, GetStopState):
            return self.snapshot()
        elif isinstance(message, Resync) and self.portfolio is not None:
            self.portfolio.tell(
                PositionUpdate(
                    self.opened_t, self.id, self.contract, self.qty, self.trail.entry_price
                )
            )
            if self._last_mark is not None:
                self.portfolio.tell(self._last_mark)
        return None

    def coalesce_key(self, message: Any) -> Hashable | None:
        # A leg's quotes each count for its strategy's stop: never folded.
        if isinstance(message, Quote) and self.strategy_id is None:
            return "quote"
        return None

    def coalesce(self, old: Any, new: Any) -> Any:
        """Newest quote wins; the extremes of the folded reference prices ride along."""
        refs = [
            r
            for q in (old, new)
            for r in (self.trail.reference(q.bid, q.ask, q.last), q.high, q.low)
            if r is not None and not isinstance(r, QuoteFault)
        ]
        if isinstance(self.trail.reference(new.bid, new.ask, new.last), QuoteFault):
            new = old  # an ignored quote must not erase a valid one
        if not refs:
            return new
        return Quote(
            new.t,
            new.id,
            new.bid,
            new.ask,
            new.last,
            new.greeks,
            high=max(refs),
            low=min(refs),
            folded=old.folded + new.folded + 1,
        )

    # ---------------------------------------------------------------- handling

    def _leg_quote(self, q: Quote) -> None:
        """A leg: judged by the leg rules (a reference price of 0 is a price)."""
        ref = reference_price(self.params, self.qty > 0, q.bid, q.ask, q.last, zero_ok=True)
        if isinstance(ref, QuoteFault):
            self.faults[ref] += 1
            self.trail.ignored += 1
            return
        self._mark(q)
        if self.strategy is not None:
            self.strategy.tell(LegQuote(q.t, self.id, q.bid, q.ask, q.last))

    def _mark(self, q: Quote) -> None:
        portfolio = self.portfolio
        if portfolio is None:
            return  # no one to tell, and only a Resync (to a portfolio) resends it
        mark = self._last_mark = Mark(q.t, self.id, q.bid, q.ask, q.last, q.greeks)
        portfolio.tell(mark)

    def _decide(self, t: float, d: Decision) -> None:
        tid = trigger_id(self.id, self.opened_t) if d.action is StopAction.TRIGGER else None
        if self.subscriber is not None:
            self.subscriber.tell(
                StopEvent(
                    t,
                    self.id,
                    d.action,
                    d.stop,
                    d.ref_price,
                    d.extreme,
                    self.qty,
                    self.contract,
                    tid,
                    self.snapshot(),
                )
            )
        if d.action is StopAction.TRIGGER and self.portfolio is not None:
            self.portfolio.tell(Triggered(t, self.id, self.contract.symbol))

    def _set_leg(self, message: SetLeg) -> None:
        self.strategy_id = message.strategy_id
        self.strategy = message.strategy
        self.stop_off = message.stop_off
        if message.fresh_stop:
            # The strategy ended before its trigger: a fresh per-leg stop
            # (extreme = entry, not active, no breaches) from the next quote.
            self.trail = TrailingStop(
                self.params, long=self.qty > 0, entry_price=self.trail.entry_price
            )
            self.opened_t = message.t
        if self.subscriber is not None:
            self.subscriber.tell(self.snapshot())

    def _change(self, update: PositionUpdate) -> None:
        """A new quantity or entry price keeps the stop; a flip of side starts afresh."""
        long = update.qty > 0
        self.contract, self.qty = update.contract, update.qty
        if long != self.trail.long:
            self.trail = TrailingStop(self.params, long=long, entry_price=update.entry_price)
            self.opened_t = update.t
        else:
            self.trail.entry_price = update.entry_price

    def _close(self, message: PositionClosed) -> None:
        if self.portfolio is not None:
            self.portfolio.tell(message)
        if self.subscriber is not None:
            self.subscriber.tell(message)
        self.actor_ref.stop(block=False)

    def _publish_position(self, update: PositionUpdate) -> None:
        if self.portfolio is not None:
            self.portfolio.tell(update)
        if self.subscriber is not None:
            self.subscriber.tell(update)

    def snapshot(self) -> StopSnapshot:
        s = self.trail
        return StopSnapshot(
            self.id,
            self.contract,
            self.qty,
            s.entry_price,
            self.opened_t,
            s.active,
            s.extreme,
            s.stop,
            s.breaches,
            s.triggered,
            s.ignored,
            trigger_id(self.id, self.opened_t) if s.triggered else None,
            self.strategy_id,
        )

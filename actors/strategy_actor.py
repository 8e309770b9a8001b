"""StrategyActor: one per strategy — the card's "one actor per position", for a spread.

A thin shell over :class:`actors.strategy_stop.StrategyStop`. Its legs'
position actors forward their accepted quotes; the topology tells it when a
leg joins, changes or leaves. It writes stop events with the strategy's id,
tells the portfolio of a TRIGGER (cooldown, stop guard), and when the
strategy ends before its trigger gives each remaining leg its own stop back.
Greeks stay per leg, in the portfolio.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actors.handle import Recipient
from actors.messages import (
    AttachLeg,
    ComboLeg,
    Contract,
    GetStrategyState,
    LegChanged,
    LegJoined,
    LegLeft,
    LegQuote,
    QuoteFault,
    SetLeg,
    StopAction,
    StopEvent,
    StrategyEvent,
    Triggered,
)
from actors.runtime import Dispatcher, PooledActor
from actors.strategy_stop import StrategyNote, StrategyState, StrategyStop
from actors.trailing_stop import Decision, StopParams


def strategy_trigger_id(strategy_id: str, created_t: float) -> str:
    """The idempotency key of a strategy's one combo exit: stable across restarts."""
    return f"{strategy_id}@{created_t!r}"


@dataclass(frozen=True, slots=True)
class StrategyView:
    """What a strategy actor tells the views (and the topology, on a leg's exit)."""

    id: str
    symbol: str
    state: StrategyState
    legs: tuple[ComboLeg, ...]
    entry: float | None
    net_price: float | None
    stop: float | None
    extreme: float | None
    active: bool
    credit: bool
    created_t: float
    snapshot: dict[str, Any]


class StrategyActor(PooledActor):
    def __init__(
        self,
        strategy_id: str,
        symbol: str,
        params: StopParams,
        created_t: float,
        *,
        dispatcher: Dispatcher,
        portfolio: Recipient | None = None,
        subscriber: Recipient | None = None,
        restored: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(dispatcher=dispatcher)
        self.id = strategy_id
        self.created_t = created_t
        self.portfolio = portfolio
        self.subscriber = subscriber
        self.strategy = (
            StrategyStop.restore(restored, params)
            if restored is not None
            else StrategyStop(strategy_id, symbol, params)
        )
        self.contracts: dict[str, Contract] = {}
        self.refs: dict[str, Recipient] = {}

    def on_receive(self, message: Any) -> Any:
        st = self.strategy
        if isinstance(message, LegQuote):
            result, note = st.quote(message.id, message.bid, message.ask, message.last)
            self._note(message.t, note)
            if isinstance(result, Decision):
                self._decide(message.t, result)
            elif isinstance(result, QuoteFault):
                pass  # counted by the stop; an ignored leg quote changes nothing
        elif isinstance(message, LegJoined):
            self.contracts[message.id] = message.contract
            if message.ref is not None:
                self.refs[message.id] = message.ref
            m = message.contract.multiplier if message.contract.is_option else 1.0
            self._note(message.t, st.join(message.id, message.qty, m, message.entry_price))
        elif isinstance(message, AttachLeg):
            if message.contract is not None:
                self.contracts[message.id] = message.contract
            if message.ref is not None:
                self.refs[message.id] = message.ref
        elif isinstance(message, LegChanged):
            if message.id in st.legs:
                self._note(message.t, st.change(message.id, message.qty, message.entry_price))
        elif isinstance(message, LegLeft):
            self._left(message)
        elif isinstance(message, GetStrategyState):
            return self.view()
        return None

    def _left(self, message: LegLeft) -> None:
        st = self.strategy
        self.contracts.pop(message.id, None)
        self.refs.pop(message.id, None)
        note = st.leave(message.id)
        self._note(message.t, note)
        ended = note is not None and note.what == "ended"
        if ended:
            for ref in self.refs.values():
                ref.tell(SetLeg(message.t, None, None, fresh_stop=True))
            self.refs.clear()
        if ended or not st.legs:
            self.actor_ref.stop(block=False)

    def _note(self, t: float, note: StrategyNote | None) -> None:
        if note is not None and self.subscriber is not None:
            self.subscriber.tell(
                StrategyEvent(t, self.id, note.what, note.detail, self.strategy.snapshot())
            )

    def _decide(self, t: float, d: Decision) -> None:
        trigger = d.action is StopAction.TRIGGER
        if self.subscriber is not None:
            self.subscriber.tell(
                StopEvent(
                    t,
                    self.id,
                    d.action,
                    d.stop,
                    d.ref_price,
                    d.extreme,
                    trigger_id=strategy_trigger_id(self.id, self.created_t) if trigger else None,
                    combo=self._combo(),
                    strategy_snapshot=self.strategy.snapshot(),
                )
            )
        if trigger and self.portfolio is not None:
            self.portfolio.tell(Triggered(t, self.id, self.strategy.symbol))

    def _combo(self) -> tuple[ComboLeg, ...]:
        return tuple(
            ComboLeg(leg.id, self.contracts[leg.id], leg.qty)
            for leg in self.strategy.legs.values()
            if leg.id in self.contracts
        )

    def view(self) -> StrategyView:
        st = self.strategy
        s = st.stop
        return StrategyView(
            self.id,
            st.symbol,
            st.state,
            self._combo(),
            st.entry,
            st.last_price,
            None if s is None else s.stop,
            None if s is None else s.extreme,
            False if s is None else s.active,
            st.credit,
            self.created_t,
            st.snapshot(),
        )

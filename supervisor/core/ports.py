"""What the core asks of the broker, and what the broker side feeds the core.

The core never imports ib_async. The IB adapter (``supervisor.ib``) implements
:class:`BrokerPort` and calls :class:`BrokerInputs` (the daemon); tests put a
simulator-backed adapter or a small fake behind the same protocols.

Every :class:`BrokerPort` method is called from a thread that is *not* an
actor's (the gate's caller, the kill switch's worker): actors never wait on
IB (DESIGN §9). Blocking methods take their own timeout and never exceed it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from actors.messages import (
    Contract,
    FailureKind,
    Leg,
    MarketQuote,
    PnlUpdate,
    PositionUpdate,
    Quote,
    WhatIf,
)


@dataclass(frozen=True, slots=True)
class OrderLeg:
    """One leg of a closing order: a combo (BAG) has several, a single exit one."""

    position_id: str
    contract: Contract
    ratio: int  # whole, > 0; the action says the side
    action: str  # "BUY" or "SELL"


@dataclass(frozen=True, slots=True)
class ClosingOrder:
    """A closing limit order the supervisor itself sends: a stop's exit or a flatten.

    ``key`` is its idempotency key — the trigger id of a stop, or
    ``"kill:<kill id>:<position or strategy id>"`` for a flatten — claimed in
    the store before the order is placed, so it is never sent twice, across
    restarts included. One leg: an order on that contract for ``qty`` units
    with ``action``; several legs: one BAG order for ``qty`` units of the
    combo, ``limit_price`` being the combo's net price per unit (a credit is
    negative), the legs' actions and ratios as they close each leg.
    """

    key: str
    legs: tuple[OrderLeg, ...]
    qty: float  # > 0: contracts/shares (one leg) or combo units
    action: str  # "BUY" or "SELL" (for a combo: BUY = pay the net price)
    limit_price: float
    reason: str  # "stop" or "flatten"
    subject: str = ""  # the position or strategy it closes (journal, claim)
    # Claimed in the store together with its decision (a TRIGGER's claim is in the
    # TRIGGER's own transaction): place it unless an order is already recorded.
    claimed: bool = False


@dataclass(frozen=True, slots=True)
class CancelResult:
    """How a global cancel ended: confirmed from IB's open orders, or not."""

    confirmed: bool
    left: int = 0  # open orders still there after the last try
    detail: str = ""


class BrokerPort(Protocol):
    """The broker as the core uses it (implemented by the IB adapter)."""

    def status(self) -> str:
        """The connection state: "connected", "connecting" or "disconnected"."""
        ...

    def whatif(self, legs: Sequence[Leg], timeout_s: float) -> WhatIf:
        """IB's what-if for the whole order (one combo for several legs).

        Returns within ``timeout_s`` whatever happens: on a timeout or an
        error, a ``WhatIf`` whose ``error`` says why (its numbers None).
        """
        ...

    def ensure_quote(self, contract: Contract, wait_s: float) -> bool:
        """Subscribe to ``contract`` if it has no market data yet and wait up to ``wait_s``
        for a first quote (quotes arrive through ``BrokerInputs.market_quote``).

        False when none came in time or the market-data line limit is reached.
        """
        ...

    def place_closing(self, order: ClosingOrder) -> None:
        """Claim, place, record and reconcile one closing order (asynchronous)."""
        ...

    def cancel_all(self, kill_id: str, timeout_s: float) -> CancelResult:
        """Global cancel, then confirm from IB's open orders that none is left (retried).

        Blocks the calling thread (the kill switch's own worker, never an
        actor) for at most ``timeout_s``.
        """
        ...


class BrokerInputs(Protocol):
    """What the broker side feeds the core (implemented by the daemon)."""

    clock: Callable[[], float]

    def position(self, update: PositionUpdate) -> None: ...

    def close_position(self, position_id: str) -> None: ...

    def quote(self, q: Quote) -> bool:
        """A quote of a held position; False when the id is not open."""
        ...

    def market_quote(self, q: MarketQuote) -> None: ...

    def account(self, net_liquidation: float) -> None: ...

    def pnl(self, update: PnlUpdate) -> None: ...

    def failure(self, kind: FailureKind, code: int | None = None, detail: str = "") -> None: ...

    def success(self, detail: str = "") -> None: ...

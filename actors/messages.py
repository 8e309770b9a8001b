"""Every message the actors exchange, and the closed sets they are made of.

Messages are immutable values: an actor may keep one it received, forward it,
or journal it, and no one else can change it underneath. Every message that
describes something happening carries its event time ``t`` (seconds since the
epoch, UTC): the actors never read a clock, which is what makes ``replay``
deterministic and lets tests drive time by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import msgspec


class _Described(StrEnum):
    """A closed set of codes, each with the sentence a human reads beside it."""

    text: str

    def __new__(cls, value: str, text: str = "") -> _Described:
        member = str.__new__(cls, value)
        member._value_ = value
        member.text = text
        return member

    def __str__(self) -> str:
        return str(self.value)


class PerQuote(msgspec.Struct, frozen=True, gc=False):
    """The base of the messages built for every quote (a quote, its Greeks, its mark).

    Immutable like every message here, but a ``msgspec.Struct`` rather than a
    frozen dataclass: a frozen dataclass sets each field through
    ``object.__setattr__`` and costs ~1 µs to build, a Struct ~0.08 µs, and a
    day's replay builds three of these per quote. ``gc=False``: they hold
    only numbers, strings and each other, never a cycle.
    """


# --------------------------------------------------------------------------- sets


class SecType(_Described):
    STK = ("STK", "stock")
    OPT = ("OPT", "option")


class Right(_Described):
    CALL = ("C", "call")
    PUT = ("P", "put")


class PriceSource(_Described):
    EXIT = ("exit", "the side a closing order would hit: bid for a long, ask for a short")
    MID = ("mid", "the midpoint of bid and ask")
    LAST = ("last", "the last trade")


class StopAction(_Described):
    ACTIVATE = ("ACTIVATE", "the position gained enough for the stop to arm")
    UPDATE = ("UPDATE", "the stop moved with the price")
    TRIGGER = ("TRIGGER", "the price crossed the stop: close the position")


class QuoteFault(_Described):
    """Why a quote was ignored by a trailing stop."""

    MISSING_PRICE = ("missing_price", "the reference price is missing")
    NON_FINITE = ("non_finite", "the reference price is NaN or infinite")
    NON_POSITIVE = ("non_positive", "the reference price is zero or negative")
    CROSSED = ("crossed", "bid is above ask")
    BAD_SIDE = ("bad_side", "a spread cap is set and bid or ask is missing or invalid")
    WIDE_SPREAD = ("wide_spread", "the spread is wider than max_spread_pct")


class BreakerState(_Described):
    CLOSED = ("closed", "entries allowed")
    OPEN = ("open", "new entries halted; risk-reducing orders still allowed")
    HALF_OPEN = ("half_open", "a few trial entries allowed to test recovery")


class FailureKind(_Described):
    ORDER_REJECTED = ("order_rejected", "the broker rejected an order")
    DATA_FEED = ("data_feed", "market data is missing, delayed or broken")
    CONNECTIVITY = ("connectivity", "the link to the broker is down or unstable")
    MARGIN = ("margin", "a margin or buying-power problem")
    SLIPPAGE = ("slippage", "a fill far from the expected price")
    OTHER = ("other", "any other systemic failure")
    # Raised by the supervisor itself, never accepted from outside (DESIGN §4.2, §4.3).
    STOP_GUARD = ("stop_guard", "too many trailing stops triggered within the guard window")
    LOSS_LIMIT = ("loss_limit", "the daily loss or drawdown limit was reached")

    @property
    def internal(self) -> bool:
        """Kinds only the supervisor raises: a failure line or POST may not name them."""
        return self in (FailureKind.STOP_GUARD, FailureKind.LOSS_LIMIT)


class TransitionReason(_Described):
    FAILURE_THRESHOLD = (
        "failure_threshold",
        "weighted failures in the window reached the threshold",
    )
    TRIP_KIND = ("trip_kind", "a failure of a kind that trips at once")
    HALF_OPEN_FAILURE = ("half_open_failure", "a failure while half-open")
    OPEN_TIMEOUT = ("open_timeout", "the open time elapsed")
    HALF_OPEN_SUCCESSES = ("half_open_successes", "enough successes while half-open")
    OPERATOR_FORCE_OPEN = ("operator_force_open", "an operator forced the breaker open")
    OPERATOR_RESET = ("operator_reset", "an operator reset the breaker")
    STORE_UNAVAILABLE = ("store_unavailable", "the state store cannot be written")
    KILL = ("kill", "the kill switch was used")
    HEARTBEAT_LOST = ("heartbeat_lost", "the trader stopped sending heartbeats")
    RESTORED = ("restored", "state restored after a restart")


class AdminAction(_Described):
    FORCE_OPEN = ("force_open", "force the breaker open until reset")
    RESET = ("reset", "close the breaker and clear its history")
    KILL = ("kill", "the kill switch: halt, and in the daemon cancel or flatten")


class KillMode(_Described):
    HALT = ("halt", "open the breaker, sticky: no new entries until an operator resets it")
    CANCEL = ("cancel", "halt, then cancel every open order of the account")
    FLATTEN = ("flatten", "cancel, then close every open position with a limit order")


class ReasonCode(_Described):
    """Why a check was denied. Declaration order is the order reasons are listed in."""

    # Portfolio limits (DESIGN §4 table, §4.1)
    MAX_PORTFOLIO_DELTA = ("max_portfolio_delta", "portfolio delta (share-equivalents)")
    MAX_PORTFOLIO_DOLLAR_DELTA = ("max_portfolio_dollar_delta", "portfolio dollar delta ($)")
    MAX_PORTFOLIO_GAMMA = ("max_portfolio_gamma", "portfolio gamma")
    MAX_PORTFOLIO_VEGA = ("max_portfolio_vega", "portfolio vega ($ per vol point)")
    MAX_PORTFOLIO_THETA = ("max_portfolio_theta", "portfolio theta ($ per day)")
    MAX_PER_SYMBOL_DELTA = ("max_per_symbol_delta", "delta of one underlying")
    MAX_BETA_WEIGHTED_DELTA = (
        "max_beta_weighted_delta",
        "beta-weighted dollar delta, in shares of the index",
    )
    MAX_SINGLE_POSITION_PCT = ("max_single_position_pct", "one position's notional, % of NLV")
    MAX_CORRELATED_PCT = ("max_correlated_pct", "a correlated group's notional, % of NLV")
    MAX_STRESS_LOSS = ("max_stress_loss", "worst loss over the stress grid ($)")
    # Order controls (DESIGN §4.2 table)
    MAX_LEG_CONTRACTS = ("max_leg_contracts", "an option leg's size, contracts")
    MAX_LEG_SHARES = ("max_leg_shares", "a stock leg's size, shares")
    MAX_ORDER_NOTIONAL = ("max_order_notional", "the order's notional ($)")
    MAX_ORDER_PREMIUM = ("max_order_premium", "the order's option premium ($)")
    PRICE_COLLAR_PCT = ("price_collar_pct", "a leg's price is outside the collar around the quote")
    ORDER_RATE = ("order_rate", "too many orders allowed within the order window")
    DUPLICATE_ORDER = ("duplicate_order", "the same order was allowed within the duplicate window")
    COOLDOWN = ("cooldown", "a stop on this underlying triggered too recently")
    # Margin (DESIGN §4.4)
    MAX_INIT_MARGIN_PCT = ("max_init_margin_pct", "initial margin after the order, % of NLV")
    MIN_EXCESS_LIQUIDITY = ("min_excess_liquidity", "excess liquidity after the order ($)")
    STALE_DATA = ("stale_data", "data the decision needs is missing or too old")
    BREAKER_OPEN = ("breaker_open", "the circuit breaker is open")
    BREAKER_HALF_OPEN_BUSY = ("breaker_half_open_busy", "no half-open trial permit left")
    INVALID_ORDER = ("invalid_order", "the order is malformed")

    @property
    def is_limit(self) -> bool:
        """A portfolio limit: judged on the portfolio after the order."""
        return self in LIMIT_CODES

    @property
    def is_control(self) -> bool:
        """An order control: judged on the order itself, in every state."""
        return self in CONTROL_CODES

    @property
    def is_margin(self) -> bool:
        return self in MARGIN_CODES


_R = ReasonCode
LIMIT_CODES: tuple[ReasonCode, ...] = (
    _R.MAX_PORTFOLIO_DELTA,
    _R.MAX_PORTFOLIO_DOLLAR_DELTA,
    _R.MAX_PORTFOLIO_GAMMA,
    _R.MAX_PORTFOLIO_VEGA,
    _R.MAX_PORTFOLIO_THETA,
    _R.MAX_PER_SYMBOL_DELTA,
    _R.MAX_BETA_WEIGHTED_DELTA,
    _R.MAX_SINGLE_POSITION_PCT,
    _R.MAX_CORRELATED_PCT,
    _R.MAX_STRESS_LOSS,
)
CONTROL_CODES: tuple[ReasonCode, ...] = (
    _R.MAX_LEG_CONTRACTS,
    _R.MAX_LEG_SHARES,
    _R.MAX_ORDER_NOTIONAL,
    _R.MAX_ORDER_PREMIUM,
    _R.PRICE_COLLAR_PCT,
    _R.ORDER_RATE,
    _R.DUPLICATE_ORDER,
)
MARGIN_CODES: tuple[ReasonCode, ...] = (_R.MAX_INIT_MARGIN_PCT, _R.MIN_EXCESS_LIQUIDITY)


# ------------------------------------------------------------------ value types


@dataclass(frozen=True, slots=True)
class Contract:
    """What is held. For an option ``symbol`` is the underlying."""

    symbol: str
    sec_type: SecType
    right: Right | None = None
    strike: float | None = None
    expiry: str | None = None  # YYYY-MM-DD
    multiplier: float = 1.0

    @property
    def is_option(self) -> bool:
        return self.sec_type is SecType.OPT


class Greeks(PerQuote, frozen=True, gc=False):
    """Per-share Greeks as IB's modelGreeks gives them; any field may be unknown."""

    delta: float | None = None
    gamma: float | None = None
    vega: float | None = None
    theta: float | None = None
    iv: float | None = None
    und_price: float | None = None


# ------------------------------------------------------------ position level


@dataclass(frozen=True, slots=True)
class PositionUpdate:
    """A position opened or changed at the broker; ``qty == 0`` closes it."""

    t: float
    id: str
    contract: Contract
    qty: float
    entry_price: float


@dataclass(frozen=True, slots=True)
class PositionClosed:
    t: float
    id: str


class Quote(PerQuote, frozen=True, gc=False):
    """One market-data update for a position's contract; any price may be missing."""

    t: float
    id: str
    bid: float | None
    ask: float | None
    last: float | None
    greeks: Greeks | None = None
    # Under overload a mailbox folds quotes together; these carry the highest
    # and lowest reference candidates seen since the last processed quote so
    # the stop never misses a peak or a trough (None: not coalesced).
    high: float | None = None
    low: float | None = None
    folded: int = 0


@dataclass(frozen=True, slots=True)
class StopEvent:
    """A decision of a trailing stop, journaled before anyone acts on it."""

    t: float
    id: str
    action: StopAction
    stop: float
    ref_price: float
    extreme: float
    qty: float = 0.0
    contract: Contract | None = None
    trigger_id: str | None = None  # set on TRIGGER: the idempotency key of the exit
    # The stop's whole state after this decision, so the two are stored as one.
    snapshot: StopSnapshot | None = field(default=None, compare=False, repr=False)
    # A strategy's stop: its legs (the exit is one combo order); its state to store.
    combo: tuple[ComboLeg, ...] = ()
    strategy_snapshot: dict[str, Any] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class StopSnapshot:
    """A position's whole stop state: what the store keeps and restores."""

    id: str
    contract: Contract
    qty: float
    entry_price: float
    opened_t: float
    active: bool
    extreme: float
    stop: float | None
    breaches: int
    triggered: bool
    ignored_quotes: int
    trigger_id: str | None = None
    strategy: str | None = None  # the strategy this position is a leg of (per-leg stop off)


class Mark(PerQuote, frozen=True, gc=False):
    """What a position actor tells the portfolio after each accepted quote."""

    t: float
    id: str
    bid: float | None
    ask: float | None
    last: float | None
    greeks: Greeks | None


@dataclass(frozen=True, slots=True)
class Resync:
    """Re-send your position and last mark to the portfolio (it was restarted)."""


@dataclass(frozen=True, slots=True)
class GetStopState:
    """Ask a position actor for its StopSnapshot."""


# ----------------------------------------------------------- portfolio level


@dataclass(frozen=True, slots=True)
class AccountUpdate:
    t: float
    net_liquidation: float | None  # None: IB sent its unset value (an event without an NLV)


@dataclass(frozen=True, slots=True)
class Leg:
    """One leg of a proposed order. For an option ``symbol`` is its underlying."""

    symbol: str
    sec_type: SecType
    qty: float
    price: float | None = None
    right: Right | None = None
    strike: float | None = None
    expiry: str | None = None
    multiplier: float | None = None
    greeks: Greeks | None = None


@dataclass(frozen=True, slots=True)
class Reason:
    code: ReasonCode
    value: float | None = None
    limit: float | None = None


@dataclass(frozen=True, slots=True)
class CheckRequest:
    """A proposed order. ``reply_to`` is a future the gate completes with its answer."""

    t: float
    id: str
    legs: tuple[Leg, ...]
    reply_to: Any = field(default=None, compare=False, repr=False)
    invalid: str | None = None  # set by the parser when the order is malformed
    whatif: WhatIf | None = None  # replay: the check line's what-if (DESIGN §6)
    # The daemon: hand back the assessment when a what-if must be fetched
    # (outside any actor) before the admission can answer.
    fetch_whatif: bool = False


@dataclass(frozen=True, slots=True)
class CheckAnswer:
    t: float
    id: str
    allowed: bool
    reasons: tuple[Reason, ...]
    risk_reducing: bool = False
    breaker_state: BreakerState | None = None
    detail: str = ""
    whatif: WhatIf | None = None  # the what-if the margin rules judged (journaled with it)
    permit: bool = False  # this allowance took a half-open trial permit
    # The breaker's state after this check (a permit may have been taken), to
    # be journaled with the verdict in one transaction.
    breaker_snapshot: dict[str, Any] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class GetPortfolio:
    """Ask the portfolio for a PortfolioView as of event time ``t`` (for freshness)."""

    t: float | None = None


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Register an actor to be told of every event an actor publishes."""

    ref: Any


# -------------------------------------------------------------- system level


@dataclass(frozen=True, slots=True)
class Failure:
    t: float
    kind: FailureKind
    code: int | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Success:
    t: float
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Admin:
    t: float
    action: AdminAction
    operator: str = "operator"


@dataclass(frozen=True, slots=True)
class SystemHalt:
    """The daemon itself cannot vouch for entries (e.g. its store is down): open, sticky."""

    t: float
    reason: TransitionReason
    detail: str = ""


@dataclass(frozen=True, slots=True)
class OpenTimeout:
    """The timer message that moves an OPEN breaker to HALF_OPEN by itself."""

    t: float


@dataclass(frozen=True, slots=True)
class TransitionCause:
    reason: TransitionReason
    failures_by_kind: tuple[tuple[FailureKind, float], ...] = ()
    failure: Failure | None = None
    operator: str | None = None
    latched: bool = False  # OPEN with no timer until an operator resets it

    def to_json(self) -> dict[str, Any]:
        failure = self.failure
        return {
            "reason": self.reason.value,
            "failures_by_kind": {k.value: w for k, w in self.failures_by_kind},
            "failure": None
            if failure is None
            else {"kind": failure.kind.value, "code": failure.code, "detail": failure.detail},
            "operator": self.operator,
            "latched": self.latched,
        }


@dataclass(frozen=True, slots=True)
class BreakerTransition:
    t: float
    from_state: BreakerState
    to_state: BreakerState
    cause: TransitionCause
    # The breaker's saved state after this transition (set on the last one of
    # an event), so the journal row and the state are stored as one.
    snapshot: dict[str, Any] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class GetBreakerState:
    """Ask the breaker for its BreakerSnapshot."""


@dataclass(frozen=True, slots=True)
class FailureRecorded:
    """Published for every failure the breaker receives, whatever its state."""

    failure: Failure
    state: BreakerState
    # The breaker's state after counting it (the window), stored with the failure row.
    snapshot: dict[str, Any] | None = field(default=None, compare=False, repr=False)


# ------------------------------------------------------ this round's inputs


class MarketQuote(PerQuote, frozen=True, gc=False):
    """A quote of any contract (held or not): feeds only the collar and the index price.

    Never a position's price, Greeks or stop (DESIGN §6 ``market``).
    """

    t: float
    contract: Contract
    bid: float | None
    ask: float | None
    last: float | None


@dataclass(frozen=True, slots=True)
class PnlUpdate:
    """IB's account P&L (reqPnL). ``daily`` None: unset (DBL_MAX/NaN), missing data."""

    t: float
    daily: float | None
    unrealized: float | None = None
    realized: float | None = None


@dataclass(frozen=True, slots=True)
class WhatIf:
    """IB's what-if answer for a whole order; None fields are unset values (DESIGN §4.4)."""

    init_margin_before: float | None = None
    init_margin_after: float | None = None
    maint_margin_before: float | None = None
    maint_margin_after: float | None = None
    equity_with_loan_before: float | None = None
    equity_with_loan_after: float | None = None
    error: str = ""  # why there is no answer (timeout, IB error); "" when IB answered


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The trader is alive (DESIGN §4.5); every check counts as one too."""

    t: float


@dataclass(frozen=True, slots=True)
class Kill:
    """The kill switch: the breaker goes OPEN, sticky; the daemon cancels or flattens."""

    t: float
    mode: KillMode
    operator: str = "operator"
    cause: TransitionReason = TransitionReason.KILL
    kill_id: str = ""


@dataclass(frozen=True, slots=True)
class Triggered:
    """A stop (a position's or a strategy's) triggered: for the cooldown and the stop guard."""

    t: float
    id: str
    symbol: str


@dataclass(frozen=True, slots=True)
class HeartbeatTimeout:
    """The timer message of the dead-man heartbeat's deadline."""

    t: float


@dataclass(frozen=True, slots=True)
class LossBreach:
    """A loss limit is reached at a ``pnl`` or ``account`` event: what tripped, with the P&L."""

    t: float
    rule: str  # "max_daily_loss" or "max_drawdown_pct"
    daily: float | None
    estimate: float | None
    high_water: float | None
    nlv: float | None

    def detail(self) -> str:
        if self.rule == "max_daily_loss":
            return f"daily P&L {self.daily!r} reached the daily loss limit"
        return (
            f"estimated NLV {self.estimate!r} fell to the drawdown limit below "
            f"the high-water mark {self.high_water!r}"
        )


@dataclass(frozen=True, slots=True)
class ResetHighWater:
    """An operator reset: the high-water mark restarts at the estimate of now."""

    t: float


@dataclass(frozen=True, slots=True)
class KillFired:
    """Published by the breaker when a kill takes effect: the daemon cancels or flattens."""

    kill: Kill
    state: BreakerState


# ---------------------------------------------------------------- strategies


@dataclass(frozen=True, slots=True)
class ComboLeg:
    """A strategy's leg as an exit order needs it."""

    position_id: str
    contract: Contract
    qty: float


@dataclass(frozen=True, slots=True)
class LegJoined:
    """A position becomes a leg of a strategy (told to the strategy actor)."""

    t: float
    id: str
    contract: Contract
    qty: float
    entry_price: float
    ref: Any = field(default=None, compare=False, repr=False)  # the leg's position actor


@dataclass(frozen=True, slots=True)
class AttachLeg:
    """After a restart: a restored strategy learns its leg's contract and actor again."""

    id: str
    contract: Contract | None
    ref: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class LegChanged:
    t: float
    id: str
    qty: float
    entry_price: float


@dataclass(frozen=True, slots=True)
class LegLeft:
    """A leg closed or left its strategy (``"strategy": null``)."""

    t: float
    id: str


class LegQuote(PerQuote, frozen=True, gc=False):
    """An accepted quote of a leg, forwarded by its position actor to its strategy."""

    t: float
    id: str
    bid: float | None
    ask: float | None
    last: float | None


@dataclass(frozen=True, slots=True)
class SetLeg:
    """Tell a position actor it is (``strategy`` set) or is no longer a leg.

    Leaving a strategy that ended before its trigger gives the position a
    fresh per-leg stop from its next accepted quote (DESIGN §3.1).
    """

    t: float
    strategy_id: str | None
    strategy: Any = field(default=None, compare=False, repr=False)  # the strategy actor
    fresh_stop: bool = False
    stop_off: bool = False  # left a strategy after its TRIGGER: no stop of its own either


@dataclass(frozen=True, slots=True)
class GetStrategyState:
    """Ask a strategy actor for its StrategyStatusView."""


@dataclass(frozen=True, slots=True)
class StrategyEvent:
    """A strategy started, restarted, ended or was refused: journaled, never a replay line."""

    t: float
    id: str
    what: str
    detail: str = ""
    snapshot: dict[str, Any] | None = field(default=None, compare=False, repr=False)

"""The lines tune cannot run for every parameter set at once, as the decoder hands them on.

Most of a recording is plain positions, whose stops :mod:`.stop_kernel` runs
for many sets together. Strategies (DESIGN §3.1) are different: whether a
position line is good can depend on the set (a leg leaving a strategy that
has triggered keeps the strategy alive, one leaving a strategy that has not
spends its id), so the topology itself differs from set to set. Every line
about an id that is ever part of a strategy — the strategy, its legs, any
position whose fate depends on one — is therefore **routed**: decoded once,
in order, and replayed per set by :mod:`.strategy_model`.

Time order is judged once where it is the same for every set: the decoder
drops a line behind the last line good in *every* set, and routes every line
whose verdict could differ (it goes back behind a routed position line that
some set may have refused), so a set's clock is the later of that common
clock and its own last good routed line — and a routed line behind its own
is bad in that set only, exactly as replay would judge it with that set's
config.

``Adopted`` hands over a plain position mid-life (its quotes so far, already
decoded) when a line makes its fate set-dependent: the per-set model replays
them through the production stop, so the position's whole life is decided in
one place.
"""

from __future__ import annotations

from dataclasses import dataclass

from actors.messages import PositionUpdate


@dataclass(frozen=True, slots=True)
class RoutedQuote:
    line: int
    t: float
    id: str
    bid: float  # NaN: missing (the stops treat NaN and null alike: the quote is ignored)
    ask: float
    last: float


@dataclass(frozen=True, slots=True)
class RoutedPosition:
    line: int
    t: float
    update: PositionUpdate
    strategy: str | None
    """The line's ``strategy``: an id, or None for ``null`` (leave); see ``keep``."""
    keep: bool
    """The line has no ``strategy`` field: a leg keeps its strategy."""


@dataclass(frozen=True, slots=True)
class RoutedClose:
    line: int
    t: float
    id: str


@dataclass(frozen=True, slots=True)
class RoutedClock:
    """A line about nothing routed whose goodness (time order) differs between sets."""

    line: int
    t: float


@dataclass(frozen=True, slots=True)
class Adopted:
    """A plain position's current stop life so far, handed over to the per-set model."""

    id: str
    symbol: str  # the symbol it opened with: its stop's parameters
    long: bool
    entry0: float  # the entry price its stop began with
    opened_t: float
    rows: bytes
    """Its quotes: seven doubles each, as :data:`.decoded.COLUMNS`."""
    qty: float  # now
    entry: float  # now
    multiplier: float  # now


Routed = RoutedQuote | RoutedPosition | RoutedClose | RoutedClock | Adopted

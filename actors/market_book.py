"""The newest usable quote of every contract the gate has seen, held or not.

Two readers: the price collar (DESIGN §4.2: the newest quote of the leg's
contract whose bid and ask are finite, > 0 and not crossed, from a held
position's accepted quotes or a ``market`` line) and the index price of the
beta-weighted delta (§4.1: a ``market`` line of the index stock, last else
mid). O(1) per quote; nothing here walks the book.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from actors.book import contract_key, positive
from actors.messages import Contract


@dataclass(frozen=True, slots=True)
class TwoSided:
    """A quote usable by the collar, when it was stamped (event time) and arrived (order)."""

    t: float
    bid: float
    ask: float
    seq: int = 0

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2


DBL_MAX = 1.7976931348623157e308


def _price(x: float | None) -> bool:
    """A usable price: finite, > 0, and not IB's unset DBL_MAX."""
    return positive(x) and x is not None and x < DBL_MAX


def two_sided(t: float, bid: float | None, ask: float | None, seq: int = 0) -> TwoSided | None:
    if _price(bid) and _price(ask):
        assert bid is not None and ask is not None
        if bid <= ask:
            return TwoSided(t, bid, ask, seq)
    return None


class MarketBook:
    def __init__(self) -> None:
        self._market: dict[tuple[object, ...], TwoSided] = {}
        # Quotes of open positions, per contract and position: a closed
        # position's quotes stop counting (DESIGN: "quotes of open positions").
        # (t, seq, bid, ask) of each: made a TwoSided only when the collar reads one
        self._held: dict[tuple[object, ...], dict[str, tuple[float, int, float, float]]] = {}
        # Arrival order of usable quotes: of two quotes stamped alike, the one
        # that came later is the newer (a line read later in a replay).
        self._seq = 0
        self._key_of: dict[str, tuple[object, ...]] = {}
        # position id -> (contract, its key): a contract is immutable, and the
        # same object comes with every quote of a position, so the key is
        # computed once per position instead of once per quote.
        self._keyed: dict[str, tuple[Contract, tuple[object, ...]]] = {}
        self._stock_price: dict[str, tuple[float, float]] = {}  # symbol -> (t, price)

    def position_quote(
        self, t: float, position_id: str, contract: Contract, bid: float | None, ask: float | None
    ) -> None:
        """An accepted quote of an open position."""
        # two_sided() inlined (the hot path of every quote): bid > 0, ask finite,
        # bid <= ask — so both are finite and > 0, and NaN fails a comparison.
        if bid is None or ask is None or not 0.0 < bid <= ask < math.inf:
            return
        keyed = self._keyed.get(position_id)
        if keyed is not None and keyed[0] is contract:
            key = keyed[1]
        else:
            key = contract_key(contract)
            old = self._key_of.get(position_id)
            if old is not None and old != key:
                self.position_closed(position_id)
            self._keyed[position_id] = (contract, key)
        self._key_of[position_id] = key
        held = self._held.get(key)
        if held is None:
            held = self._held[key] = {}
        self._seq += 1
        held[position_id] = (t, self._seq, bid, ask)  # a TwoSided when read (collar_quote)

    def position_quotes(
        self, quotes: Iterable[tuple[float, str, Contract, float | None, float | None]]
    ) -> None:
        """``position_quote`` for each (t, id, contract, bid, ask), in order, in fewer steps.

        Only a position's first usable quote of the run can change anything
        but its own slot (where it stands among the contract's quotes, a new
        contract): it goes through ``position_quote``; the later ones only
        replace the slot's value, which keeps its place. A position's contract
        cannot change within a run (that takes a position update).
        """
        inf = math.inf
        newest: dict[str, tuple[float, int, float, float]] = {}
        for t, position_id, contract, bid, ask in quotes:
            if bid is None or ask is None or not 0.0 < bid <= ask < inf:
                continue
            if position_id not in newest:
                self.position_quote(t, position_id, contract, bid, ask)
                newest[position_id] = (t, self._seq, bid, ask)
            else:
                self._seq += 1
                newest[position_id] = (t, self._seq, bid, ask)
        held, key_of = self._held, self._key_of
        for position_id, quote in newest.items():
            held[key_of[position_id]][position_id] = quote

    def position_closed(self, position_id: str) -> None:
        self._keyed.pop(position_id, None)
        key = self._key_of.pop(position_id, None)
        if key is None:
            return
        quotes = self._held.get(key)
        if quotes is not None:
            quotes.pop(position_id, None)
            if not quotes:
                del self._held[key]

    def market_quote(
        self, t: float, contract: Contract, bid: float | None, ask: float | None, last: float | None
    ) -> None:
        """A ``market`` line: the collar's quote and, for a stock, its price."""
        self._seq += 1
        quote = two_sided(t, bid, ask, self._seq)
        if quote is not None:
            self._market[contract_key(contract)] = quote
        if not contract.is_option:
            if _price(last):
                assert last is not None
                self._stock_price[contract.symbol] = (t, last)
            elif quote is not None:
                self._stock_price[contract.symbol] = (t, quote.mid)

    def collar_quote(self, contract: Contract) -> TwoSided | None:
        """The newest usable quote of ``contract``: latest event time, then latest arrival."""
        key = contract_key(contract)
        best = self._market.get(key)
        for t, seq, bid, ask in self._held.get(key, {}).values():
            if best is None or (t, seq) > (best.t, best.seq):
                best = TwoSided(t, bid, ask, seq)
        return best

    def market_stock_price(self, symbol: str) -> tuple[float, float] | None:
        """(t, price) of the newest ``market`` line of a stock: last, else mid."""
        return self._stock_price.get(symbol)

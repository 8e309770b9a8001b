"""A recording decoded once into the columns every parameter set reads.

Only positions, quotes and closes move a trailing stop, but every line counts
for *which* lines are good: replay refuses a line that goes back in time
relative to the last *good* line of any type, and a bad line changes
nothing. So every line is judged exactly as replay judges it — the same JSON
reading (orjson first, Python's json, which also reads NaN and Infinity, when
orjson refuses), the same parsers (:mod:`.line_rules`) — and then the stop
inputs of plain positions are laid out per **segment**: the life of one
``TrailingStop`` in replay, from the position's opening (or a flip of side, which starts a fresh
stop) to its close, its next flip, or the end of the recording.

Quote columns are contiguous per segment: ``bid``/``ask``/``last`` (NaN for
null — both make a price unusable, and the stop tells them apart only in its
fault counters), ``t``, ``line`` (the line's number in the input, for
replay's order), and the ``entry`` price and ``qty`` in force at each
quote (a position update keeps the stop but changes the entry price its
activation is measured from).

Lines about strategies (DESIGN §3.1) and the positions tied to them are not
laid out: their effect can differ from set to set, so they are **routed**, in
order, to :mod:`.strategy_model`, which replays them per set (see
:mod:`.routed`).
"""

from __future__ import annotations

import json
import math
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from supervisor import json_codec
from supervisor.tune.line_rules import LineParsers, replay_parsers
from supervisor.tune.routed import (
    Adopted,
    Routed,
    RoutedClock,
    RoutedClose,
    RoutedPosition,
    RoutedQuote,
)

F64 = npt.NDArray[np.float64]

COLUMNS = ("t", "bid", "ask", "last", "entry", "qty", "line")


@dataclass(frozen=True, slots=True)
class Segment:
    """One trailing stop's life in replay; its quotes are ``[start, stop)`` of the columns."""

    id: str
    symbol: str
    """The symbol the position opened with: replay picks the stop's parameters by it."""
    long: bool
    entry_price: float
    multiplier: float
    start: int
    stop: int
    opened_t: float
    end_t: float
    """When the segment ended: its close or flip, or the recording's last good line."""


@dataclass(slots=True)
class Decoded:
    segments: list[Segment]
    columns: dict[str, F64]
    lines: int = 0
    bad_lines: int = 0
    """Lines bad in every set; a routed position line may also be refused in some sets only."""
    strategy_legs: set[str] = field(default_factory=set)
    """Ids a position line made a strategy leg (DESIGN §3.1)."""
    first_t: float = math.nan
    last_t: float = math.nan
    """The last line good in every set."""
    routed: list[Routed] = field(default_factory=list)
    """Lines about strategies and the positions tied to them, for the per-set model."""
    routed_quotes: int = 0
    routed_symbols: set[str] = field(default_factory=set)
    strategies: set[str] = field(default_factory=set)
    """Ids a position line named as a strategy."""

    @property
    def quotes(self) -> int:
        """Quotes of positions with a stop: the shared segments' and the routed ones."""
        return sum(s.stop - s.start for s in self.segments) + self.routed_quotes

    @property
    def symbols(self) -> list[str]:
        return sorted({s.symbol for s in self.segments} | self.routed_symbols)


class _Open:
    """A position replay holds an actor for, and its current segment's quotes."""

    __slots__ = ("entry", "id", "long", "multiplier", "opened_t", "qty", "rows", "symbol")

    def __init__(
        self, id: str, symbol: str, long: bool, entry: float, qty: float, mult: float, t: float
    ) -> None:
        self.id = id
        self.symbol = symbol
        self.long = long
        self.entry = entry
        self.qty = qty
        self.multiplier = mult
        self.opened_t = t
        self.rows = array("d")  # seven doubles a quote: 56 bytes, not a tuple of objects


def _num(x: float | None) -> float:
    return math.nan if x is None else x


_BIG = 9.2e18
"""Below 2**63: a float orjson read here was not an integer it turned into a float."""


_GREEKS = frozenset(("delta", "gamma", "vega", "theta", "iv", "und_price"))


def _quick_quote(obj: dict[str, Any]) -> tuple[str, float, float, float] | None:
    """A quote ``json_codec.quote`` certainly accepts, read without building messages.

    Only the common shape (a string id, float-or-null prices, float-or-null
    Greeks, none of them beyond 2**63, where orjson may have read an integer
    as a float) is taken here; anything else goes through the parser itself, so
    what is a bad line is still replay's decision. A test holds the two equal.
    """
    qid = obj.get("id")
    b = obj.get("bid")
    a = obj.get("ask")
    last = obj.get("last")
    if type(qid) is not str or not qid:
        return None
    if b is None:
        b = math.nan
    elif type(b) is not float or not -_BIG < b < _BIG:
        return None
    if a is None:
        a = math.nan
    elif type(a) is not float or not -_BIG < a < _BIG:
        return None
    if last is None:
        last = math.nan
    elif type(last) is not float or not -_BIG < last < _BIG:
        return None
    g = obj.get("greeks")
    if g is not None:
        if type(g) is not dict:
            return None
        for k, v in g.items():
            if k not in _GREEKS or not (v is None or (type(v) is float and -_BIG < v < _BIG)):
                return None
    return qid, b, a, last


def decode(
    lines: Iterable[bytes | str],
    parsers: LineParsers | None = None,
) -> Decoded:
    """Judge every line as replay does; keep what the stops need, route what is per set.

    Replay's clock is the time of the last good line. Where a routed position
    line may be good in one set and bad in another, the clock is known only to
    lie between ``lo`` (the last line good in every set) and ``hi`` (the
    latest line good in some set): a line before ``lo`` is bad everywhere, one
    at or after ``hi`` passes the time check everywhere, and one in between is
    judged per set (routed, see :mod:`.routed`).
    """
    parsers = replay_parsers() if parsers is None else parsers
    BadInput = json_codec.BadInput
    event_time = json_codec.event_time
    strategy_of = json_codec.strategy_of
    KEEP = json_codec.KEEP_STRATEGY
    open_: dict[str, tuple[_Open, float]] = {}  # id -> (state, entry price the segment began at)
    routed: list[Routed] = []
    modeled: set[str] = set()  # ids whose every line is routed
    routed_symbols: set[str] = set()
    strategies: set[str] = set()
    legs: set[str] = set()
    done: list[tuple[Segment, array[float]]] = []
    lo = hi = -math.inf
    first_t = math.nan
    n = bad = routed_quotes = 0

    def finish(o: _Open, entry0: float, end_t: float) -> None:
        seg = Segment(o.id, o.symbol, o.long, entry0, o.multiplier, 0, 0, o.opened_t, end_t)
        done.append((seg, o.rows))

    def adopt(pid: str) -> None:
        """From now on every line about ``pid`` is routed; its current stop life goes too."""
        nonlocal routed_quotes
        modeled.add(pid)
        cur = open_.pop(pid, None)
        if cur is None:
            return
        o, entry0 = cur
        routed.append(
            Adopted(
                pid, o.symbol, o.long, entry0, o.opened_t, o.rows.tobytes(), o.qty, o.entry,
                o.multiplier,
            )
        )  # fmt: skip
        routed_symbols.add(o.symbol)
        routed_quotes += len(o.rows) // len(COLUMNS)

    quick = _quick_quote if parsers.get("quote") is json_codec.quote else None
    fast_loads = orjson.loads
    slow_loads = json.loads
    for raw in lines:
        n += 1
        if not raw.strip():
            n -= 1
            continue
        try:
            if quick is not None:
                # the common quote, read by orjson and checked in place; any other
                # line is read by Python's json below, exactly as replay reads it
                try:
                    obj = fast_loads(raw)
                except orjson.JSONDecodeError:
                    obj = None
                if type(obj) is dict and obj.get("type") == "quote":
                    qt = obj.get("t")
                    q = None
                    if isinstance(qt, float) and -_BIG < qt < _BIG:
                        q = quick(obj)
                    if q is not None and isinstance(qt, float) and qt >= hi:
                        t = qt
                        lo = hi = t
                        if first_t != first_t:
                            first_t = t
                        qid = q[0]
                        cur = open_.get(qid)
                        if cur is not None:
                            o = cur[0]
                            o.rows.extend((t, q[1], q[2], q[3], o.entry, o.qty, n))
                        elif modeled and qid in modeled:
                            routed.append(RoutedQuote(n, t, qid, q[1], q[2], q[3]))
                            routed_quotes += 1
                        continue
            try:
                obj = slow_loads(raw)
            except ValueError:
                raise BadInput("not JSON") from None
            if not isinstance(obj, dict):
                raise BadInput("not a JSON object")
            t = event_time(obj)
            if t < lo:
                raise BadInput("goes back in time")
            kind = obj.get("type")
            parse = parsers.get(kind) if isinstance(kind, str) else None
            if parse is None:
                raise BadInput("unknown type")
            msg = parse(obj, t)
            strategy: Any = strategy_of(obj) if kind == "position" else KEEP
        except BadInput:
            bad += 1
            continue
        except (OverflowError, UnicodeDecodeError):
            bad += 1
            continue
        certain = t >= hi  # the time check passes in every set
        if kind == "position":
            pid = msg.id
            joins = isinstance(strategy, str) and msg.qty != 0
            if joins and (strategy == pid or strategy in open_):
                # refused in every set: a strategy id may not be this or another
                # open position's (the open positions here are the same in every set)
                bad += 1
                continue
            if joins or not certain or pid in modeled:
                adopt(pid)
                if joins:
                    modeled.add(strategy)
                    strategies.add(strategy)
                    legs.add(pid)
                routed_symbols.add(msg.contract.symbol)
                routed.append(
                    RoutedPosition(
                        n, t, msg, strategy if isinstance(strategy, str) else None,
                        strategy is KEEP,
                    )
                )  # fmt: skip
                if certain:
                    hi = t  # good in the sets that do not refuse it
                if first_t != first_t:
                    first_t = t
                continue
        elif kind == "quote" or kind == "close":
            qid = msg.id
            if not certain and qid in open_:
                adopt(qid)
            if qid in modeled:
                if kind == "quote":
                    routed.append(
                        RoutedQuote(n, t, qid, _num(msg.bid), _num(msg.ask), _num(msg.last))
                    )
                    routed_quotes += 1
                else:
                    routed.append(RoutedClose(n, t, qid))
                if certain:
                    lo = hi = t
                if first_t != first_t:
                    first_t = t
                continue
        if not certain:
            routed.append(RoutedClock(n, t))  # its only effect: the clock, per set
            continue
        lo = hi = t
        if first_t != first_t:
            first_t = t
        if kind == "quote":
            cur = open_.get(msg.id)
            if cur is not None:
                o = cur[0]
                o.rows.extend((t, _num(msg.bid), _num(msg.ask), _num(msg.last), o.entry, o.qty, n))
        elif kind == "position":
            pid = msg.id
            cur = open_.get(pid)
            if cur is None:
                if msg.qty != 0:
                    c = msg.contract
                    mult = c.multiplier if c.is_option else 1.0
                    o = _Open(pid, c.symbol, msg.qty > 0, msg.entry_price, msg.qty, mult, t)
                    open_[pid] = (o, msg.entry_price)
            elif msg.qty == 0:
                finish(cur[0], cur[1], t)
                del open_[pid]
            else:
                o = cur[0]
                long = msg.qty > 0
                if long != o.long:  # a flip of side: a fresh stop, params of the first symbol
                    finish(o, cur[1], t)
                    c = msg.contract
                    mult = c.multiplier if c.is_option else 1.0
                    nxt = _Open(pid, o.symbol, long, msg.entry_price, msg.qty, mult, t)
                    open_[pid] = (nxt, msg.entry_price)
                else:
                    o.entry = msg.entry_price
                    o.qty = msg.qty
                    c = msg.contract
                    o.multiplier = c.multiplier if c.is_option else 1.0
        elif kind == "close":
            cur = open_.pop(msg.id, None)
            if cur is not None:
                finish(cur[0], cur[1], t)
    for o, entry0 in open_.values():
        finish(o, entry0, lo)
    out = _lay_out(done, n, bad, legs, first_t, lo)
    out.routed = routed
    out.routed_quotes = routed_quotes
    out.routed_symbols = routed_symbols
    out.strategies = strategies
    return out


def _lay_out(
    done: list[tuple[Segment, array[float]]],
    n: int,
    bad: int,
    legs: set[str],
    first_t: float,
    last_t: float,
) -> Decoded:
    width = len(COLUMNS)
    total = sum(len(rows) // width for _, rows in done)
    cols = np.empty((total, len(COLUMNS)), dtype=np.float64)
    segments = []
    at = 0
    for seg, rows in done:
        k = len(rows) // width
        if k:
            cols[at : at + k] = np.frombuffer(rows, dtype=np.float64).reshape(k, width)
        segments.append(
            Segment(
                seg.id,
                seg.symbol,
                seg.long,
                seg.entry_price,
                seg.multiplier,
                at,
                at + k,
                seg.opened_t,
                seg.end_t,
            )
        )
        at += k
    columns = {name: np.ascontiguousarray(cols[:, i]) for i, name in enumerate(COLUMNS)}
    return Decoded(segments, columns, n, bad, legs, first_t, last_t)


def save(decoded: Decoded, directory: Path) -> None:
    """The columns as ``.npy`` files, for worker processes to map without copying."""
    for name, col in decoded.columns.items():
        np.save(directory / f"{name}.npy", col)


def load_columns(directory: Path) -> dict[str, F64]:
    return {name: np.load(directory / f"{name}.npy", mmap_mode="r") for name in COLUMNS}

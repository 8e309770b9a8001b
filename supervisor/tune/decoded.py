"""A recording decoded once into the columns every parameter set reads.

Only positions, quotes and closes move a trailing stop, but every line counts
for *which* lines are good: replay refuses a line that goes back in time
relative to the last *good* line of any type, and a bad line changes
nothing. So every line is judged exactly as replay judges it — the same JSON
reading (orjson first, Python's json, which also reads NaN and Infinity, when
orjson refuses), the same parsers (:mod:`.line_rules`) — and then the stop
inputs are laid out per **segment**: the life of one ``TrailingStop`` in
replay, from the position's opening (or a flip of side, which starts a fresh
stop) to its close, its next flip, or the end of the recording.

Quote columns are contiguous per segment: ``bid``/``ask``/``last`` (NaN for
null — both make a price unusable, and the stop tells them apart only in its
fault counters), ``t``, ``line`` (the line's number in the input, for
replay's order), and the ``entry`` price and ``qty`` in force at each
quote (a position update keeps the stop but changes the entry price its
activation is measured from).
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
    strategy_legs: set[str] = field(default_factory=set)
    """Ids that were strategy legs (DESIGN §3.1): their per-leg stop is off and not tuned here."""
    first_t: float = math.nan
    last_t: float = math.nan

    @property
    def quotes(self) -> int:
        return sum(s.stop - s.start for s in self.segments)

    @property
    def symbols(self) -> list[str]:
        return sorted({s.symbol for s in self.segments})


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
    """Judge every line as replay does and keep what the stops need."""
    parsers = replay_parsers() if parsers is None else parsers
    BadInput = json_codec.BadInput
    event_time = json_codec.event_time
    open_: dict[str, tuple[_Open, float]] = {}  # id -> (state, entry price the segment began at)
    legs: set[str] = set()
    done: list[tuple[Segment, array[float]]] = []
    last_t = -math.inf
    first_t = math.nan
    n = bad = 0

    def finish(o: _Open, entry0: float, end_t: float) -> None:
        seg = Segment(o.id, o.symbol, o.long, entry0, o.multiplier, 0, 0, o.opened_t, end_t)
        done.append((seg, o.rows))

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
                    if q is not None and isinstance(qt, float):
                        t = qt
                        if t < last_t:
                            raise BadInput("goes back in time")
                        last_t = t
                        if first_t != first_t:
                            first_t = t
                        cur = open_.get(q[0])
                        if cur is not None:
                            o = cur[0]
                            o.rows.extend((t, q[1], q[2], q[3], o.entry, o.qty, n))
                        continue
            try:
                obj = slow_loads(raw)
            except ValueError:
                raise BadInput("not JSON") from None
            if not isinstance(obj, dict):
                raise BadInput("not a JSON object")
            t = event_time(obj)
            if t < last_t:
                raise BadInput("goes back in time")
            kind = obj.get("type")
            parse = parsers.get(kind) if isinstance(kind, str) else None
            if parse is None:
                raise BadInput("unknown type")
            msg = parse(obj, t)
        except BadInput:
            bad += 1
            continue
        except (OverflowError, UnicodeDecodeError):
            bad += 1
            continue
        last_t = t
        if first_t != first_t:
            first_t = t
        if kind == "quote":
            cur = open_.get(msg.id)
            if cur is not None:
                o = cur[0]
                o.rows.extend((t, _num(msg.bid), _num(msg.ask), _num(msg.last), o.entry, o.qty, n))
        elif kind == "position":
            pid = msg.id
            strategy = obj.get("strategy")
            if strategy is not None or pid in legs:
                # a strategy leg from this line on (§3.1): its per-leg stop is off
                if strategy is not None:
                    legs.add(pid)
                cur = open_.pop(pid, None)
                if cur is not None:
                    finish(cur[0], cur[1], t)
                continue
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
        finish(o, entry0, last_t)
    return _lay_out(done, n, bad, legs, first_t, last_t)


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

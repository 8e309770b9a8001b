"""Decoding a recording once: replay's judgement of lines, and stop lives as segments."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from supervisor import json_codec
from supervisor.tune.decoded import _quick_quote, decode
from supervisor.tune.routed import Adopted

value = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-5, 5),
    st.booleans(),
    st.text(max_size=2),
)
greeks = st.one_of(
    st.none(),
    st.dictionaries(
        st.sampled_from(["delta", "gamma", "iv", "und_price", "rho"]), value, max_size=3
    ),
    value,
)


@settings(max_examples=600, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["id", "bid", "ask", "last", "greeks", "extra"]),
        st.one_of(value, greeks, st.sampled_from(["SPY", ""])),
    )
)
def test_the_quick_quote_path_only_takes_quotes_the_parser_takes_and_reads_them_alike(
    obj: dict[str, Any],
) -> None:
    quick = _quick_quote(obj)
    if quick is None:
        return
    q = json_codec.quote(obj, 1.0)  # must not raise
    got = [quick[0], *(None if math.isnan(x) else x for x in quick[1:])]
    assert repr(got) == repr([q.id, q.bid, q.ask, q.last])


def lines(*objs: dict[str, Any]) -> list[bytes]:
    return [json.dumps(o).encode() for o in objs]


def pos(t: float, qty: float, entry: float = 100.0, pid: str = "A", **kw: Any) -> dict[str, Any]:
    return {"t": t, "type": "position", "id": pid, "symbol": "X", "sec_type": "STK",
            "qty": qty, "entry_price": entry, **kw}  # fmt: skip


def quote(t: float, bid: Any, pid: str = "A") -> dict[str, Any]:
    return {"t": t, "type": "quote", "id": pid, "bid": bid, "ask": None, "last": None}


def test_segments_follow_the_stop_lives_replay_has() -> None:
    d = decode(
        lines(
            quote(0, 1.0),  # no position yet: not a stop input
            pos(1, 10),
            quote(2, 101.0),
            pos(3, 20, 102.0),  # same side: the stop goes on, the entry price changes
            quote(4, 103.0),
            pos(5, -5, 99.0),  # a flip: a fresh stop
            quote(6, 98.0),
            {"t": 7, "type": "close", "id": "A"},
            quote(8, 97.0),  # closed: ignored
            pos(9, 1, 50.0),  # reopened: a new life
            quote(10, 51.0),
        )
    )
    shape = [(s.long, s.entry_price, s.stop - s.start, s.opened_t, s.end_t) for s in d.segments]
    assert shape == [(True, 100.0, 2, 1, 5), (False, 99.0, 1, 5, 7), (True, 50.0, 1, 9, 10)]
    first = d.segments[0]
    entries = d.columns["entry"][first.start : first.stop].tolist()
    assert entries == [100.0, 102.0]
    assert d.columns["qty"][first.start : first.stop].tolist() == [10.0, 20.0]
    assert d.bad_lines == 0 and d.lines == 11


def test_bad_lines_change_nothing_and_time_is_replays_clock() -> None:
    d = decode(
        [
            *lines(pos(1, 10), quote(5, 101.0)),
            b"{oops",
            json.dumps({"t": 9, "type": "mystery"}).encode(),  # bad: does not move the clock
            *lines(quote(8, 102.0)),  # good: 8 >= 5
            *lines({"t": 20, "type": "success"}),  # good, any type moves the clock
            *lines(quote(19, 103.0)),  # bad: back in time
            b'{"t": 21, "type": "quote", "id": "A", "bid": NaN, "ask": Infinity, "last": null}',
            b"",
        ]
    )
    seg = d.segments[0]
    bids = d.columns["bid"][seg.start : seg.stop].tolist()
    assert bids[:2] == [101.0, 102.0] and math.isnan(bids[2])
    assert d.columns["ask"][seg.stop - 1] == math.inf
    assert d.bad_lines == 3 and d.lines == 8


def test_a_position_that_joins_a_strategy_is_routed_whole_from_its_current_life() -> None:
    d = decode(
        lines(
            pos(1, 10, pid="A"),
            quote(2, 101.0, pid="A"),
            pos(3, 10, pid="A", strategy="S1"),  # becomes a leg: its life goes to the model
            quote(4, 102.0, pid="A"),
            pos(5, 12, pid="A"),  # still a leg (no strategy field keeps it)
            pos(7, 1, pid="B", strategy="S1"),
            quote(8, 5.0, pid="B"),
            pos(9, 1, pid="P"),  # never a leg: a plain segment
            quote(10, 50.0, pid="P"),
        )
    )
    assert [(s.id, s.stop - s.start) for s in d.segments] == [("P", 1)]
    kinds = [type(r).__name__ for r in d.routed]
    assert kinds == [
        "Adopted",  # A's life so far: its opening and its quote at t=2
        "RoutedPosition",
        "RoutedQuote",
        "RoutedPosition",
        "RoutedPosition",
        "RoutedQuote",
    ]
    adopted = d.routed[0]
    assert isinstance(adopted, Adopted)
    assert (adopted.id, adopted.long, adopted.entry0, adopted.opened_t) == ("A", True, 100.0, 1)
    assert np.frombuffer(adopted.rows).reshape(-1, 7)[:, 1].tolist() == [101.0]
    assert d.strategy_legs == {"A", "B"} and d.strategies == {"S1"}
    assert d.quotes == 4 and d.routed_quotes == 3


def test_a_strategy_named_after_an_open_plain_position_is_bad_in_every_set() -> None:
    d = decode(
        lines(
            pos(1, 10, pid="P"),
            pos(2, 1, pid="A", strategy="P"),  # P is an open position: refused everywhere
            pos(3, 1, pid="B", strategy="B"),  # its own id: refused everywhere
            quote(4, 101.0, pid="P"),
        )
    )
    assert d.bad_lines == 2 and not d.routed and not d.strategies
    assert [(s.id, s.stop - s.start) for s in d.segments] == [("P", 1)]


def test_a_line_behind_a_routed_position_line_is_judged_per_set() -> None:
    d = decode(
        lines(
            pos(1, 10, pid="P"),
            quote(2, 101.0, pid="P"),
            pos(5, 1, pid="A", strategy="S1"),  # may be refused in some set: clock 2 or 5
            quote(4, 102.0, pid="P"),  # so this is good in some sets only: P goes per set
            {"t": 3, "type": "success"},  # only its time order matters
            quote(1, 99.0, pid="P"),  # behind 2: bad in every set
            quote(6, 103.0, pid="P"),
        )
    )
    assert not d.segments
    assert [type(r).__name__ for r in d.routed] == [
        "RoutedPosition",
        "Adopted",
        "RoutedQuote",
        "RoutedClock",
        "RoutedQuote",
    ]
    assert d.bad_lines == 1 and d.last_t == 6


def test_lines_orjson_reads_differently_are_read_as_replay_reads_them() -> None:
    big = 123456789012345678901234  # beyond 64 bits: orjson would make it a float
    d = decode(
        [
            *lines(pos(1, 10, pid=str(big))),
            f'{{"t": 2, "type": "quote", "id": {big}, "bid": 101.5, "ask": null}}'.encode(),
            f'{{"t": 3, "type": "quote", "id": "{big}", "bid": {big}, "ask": null}}'.encode(),
            b'{"t": 4, "type": "quote", "id": "%d", "bid": NaN, "ask": 1e400}' % big,
            b'\xef\xbb\xbf{"t": 5, "type": "quote", "id": "%d", "bid": 102.0}' % big,
        ]
    )
    assert d.bad_lines == 0
    seg = d.segments[0]
    bids = d.columns["bid"][seg.start : seg.stop].tolist()
    assert bids[0] == 101.5 and bids[1] == float(big) and math.isnan(bids[2]) and bids[3] == 102.0
    assert d.columns["ask"][seg.start + 2] == math.inf

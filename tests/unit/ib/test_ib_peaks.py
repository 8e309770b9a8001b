"""The peaks inside one ticker event: every state judged as the position's own stop judges a quote.

The property that matters: feeding the stop what the feed sends for an event
(its final quote carrying ``high``/``low``, preceded by its last valid state
when it ends in one the stop ignores) leaves it with the same extreme as
feeding it every intermediate state as a quote of its own.
"""

from __future__ import annotations

import datetime as dt
import math

from hypothesis import given
from hypothesis import strategies as st
from ib_async import TickData

from actors.messages import PriceSource
from actors.trailing_stop import StopParams, TrailingStop
from supervisor.ib.feed import Peaks, event_extremes

NOW = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
BID, ASK, LAST, BID_SIZE = 1, 2, 4, 0
EXIT = StopParams()


def ticks(*items: tuple[int, float, float]) -> list[TickData]:
    return [TickData(NOW, kind, price, size) for kind, price, size in items]


def test_a_spike_of_the_bid_is_a_longs_peak_never_the_ask() -> None:
    event = ticks((BID, 104.0, 5), (ASK, 104.05, 5), (BID, 100.0, 5), (ASK, 100.05, 5))
    peaks = event_extremes(EXIT, True, (99.98, 100.02, 100.0), event, (100.0, 100.05, 100.0))
    # (104, 100.02) is crossed and ignored; (104, 104.05) gives the bid 104
    assert peaks == Peaks(104.0, 100.0)


def test_a_short_is_judged_on_the_ask() -> None:
    event = ticks((ASK, 95.0, 5), (BID, 94.9, 5), (ASK, 100.05, 5), (BID, 100.0, 5))
    peaks = event_extremes(EXIT, False, (99.98, 100.02, 100.0), event, (100.0, 100.05, 100.0))
    assert peaks == Peaks(100.05, 95.0)


def test_price_source_last_and_a_spread_cap() -> None:
    last = StopParams(price_source=PriceSource.LAST)
    event = ticks((LAST, 110.0, 1), (LAST, 100.0, 1))
    assert event_extremes(last, True, (None, None, 99.0), event, (None, None, 100.0)) == Peaks(
        110.0, 100.0
    )
    capped = StopParams(max_spread_pct=1.0)
    wide = ticks((BID, 104.0, 5), (ASK, 110.0, 5), (ASK, 100.5, 5), (BID, 100.0, 5))
    # (104, 110) is a 5.6 % spread: ignored by a capped stop, so no peak at 104
    assert event_extremes(capped, True, (100.0, 100.5, None), wide, (100.0, 100.5, None)) == Peaks()


def test_unset_and_emptied_sides_are_missing() -> None:
    event = ticks((BID, 1.7976931348623157e308, 5), (BID, -1.0, 0), (BID_SIZE, math.nan, 0))
    assert event_extremes(EXIT, True, (100.0, 100.1, None), event, (None, 100.1, None)) == Peaks()


def test_one_state_has_nothing_to_carry() -> None:
    event = ticks((BID, 101.0, 5))
    assert event_extremes(EXIT, True, (100.0, 101.5, None), event, (101.0, 101.5, None)) == Peaks()


def test_an_event_ending_crossed_hands_over_its_last_valid_state() -> None:
    event = ticks((ASK, 102.0, 5), (BID, 101.0, 5), (ASK, 100.5, 5))
    peaks = event_extremes(EXIT, True, (99.9, 100.1, None), event, (101.0, 100.5, None))
    assert peaks == Peaks(101.0, 99.9, (101.0, 102.0, None))


PRICES = st.floats(min_value=50.0, max_value=150.0, allow_nan=False).map(lambda x: round(x, 2))
TICKS = st.lists(st.tuples(st.sampled_from((BID, ASK)), PRICES), min_size=1, max_size=12)


@given(events=st.lists(TICKS, min_size=1, max_size=6), long=st.booleans())
def test_the_stop_sees_the_same_extreme_as_with_every_state_a_quote(
    events: list[list[tuple[int, float]]], long: bool
) -> None:
    params = StopParams(activation_pct=1e6)  # never arms: only the extreme is compared
    one_by_one = TrailingStop(params, long=long, entry_price=100.0)
    folded = TrailingStop(params, long=long, entry_price=100.0)
    state: tuple[float | None, float | None, float | None] = (99.9, 100.1, None)
    for event in events:
        previous = state
        bid, ask, last = state
        for kind, price in event:
            bid, ask = (price, ask) if kind == BID else (bid, price)
            one_by_one.on_quote(bid, ask, last)
        state = (bid, ask, last)
        peaks = event_extremes(
            params, long, previous, ticks(*((k, p, 5.0) for k, p in event)), state
        )
        if peaks.last_valid is not None:  # as the feed does: that state first, as a quote
            folded.on_quote(*peaks.last_valid, high=peaks.high, low=peaks.low)
            folded.on_quote(bid, ask, last)
        else:
            folded.on_quote(bid, ask, last, high=peaks.high, low=peaks.low)
    assert folded.extreme == one_by_one.extreme

"""Book.mark_later + settle give the book Book.mark gives, to the last bit.

The portfolio actor defers each quote's contributions to the sums until a
reader settles them; the claim (actors/book.py) is that no reader can tell:
the same totals, per-symbol and per-group sums, contributions, completeness
and freshness, whatever the quotes, their order and where the settles fall.
Also the Greeks-timestamp heap: rebuilt when superseded entries pile up, it
gives the same oldest timestamp. And a run of marks applied at once
(``Book.mark_many``, ``MarketBook.position_quotes``: replay's portfolio) leaves
the book and the market book exactly as the run quote by quote does.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from actors.book import Book, Needs, PricingParams
from actors.market_book import MarketBook
from actors.messages import Contract, Greeks, Mark, Right, SecType

CONTRACTS = [
    Contract("AAA", SecType.STK),
    Contract("BBB", SecType.STK),
    Contract("AAA", SecType.OPT, Right.CALL, 100.0, "2027-06-18", 100.0),
    Contract("AAA", SecType.OPT, Right.PUT, 90.0, "2027-06-18", 100.0),
    Contract("BBB", SecType.OPT, Right.CALL, 50.0, "2027-06-18", 10.0),
]
NEEDS = Needs(frozenset({"delta", "vega", "und_price"}), stock_price=True)
GROUPS = {"tech": ("AAA", "BBB"), "a": ("AAA",)}

# Prices and Greeks with the awkward values: missing, zero, negative, NaN, ±∞,
# absurd (beyond the book's SANE bound), and ordinary ones that do not add exactly.
number = st.one_of(
    st.none(),
    st.sampled_from([0.0, -0.0, -1.0, math.nan, math.inf, -math.inf, 1e250, 0.1, 0.2, 0.3]),
    st.floats(min_value=0.01, max_value=500.0, allow_nan=False),
)
greeks = st.one_of(
    st.none(),
    st.builds(Greeks, number, number, number, number, number, number),
)
quote = st.tuples(
    st.integers(0, 5),  # position (5: one never opened)
    number,
    number,
    number,
    greeks,
    st.booleans(),  # settle after it
)
op = st.one_of(
    st.tuples(st.just("quote"), quote),
    st.tuples(
        st.just("upsert"),
        st.tuples(st.integers(0, 4), st.integers(0, 4), st.sampled_from([-3.0, 1.0, 7.0])),
    ),
    st.tuples(st.just("remove"), st.integers(0, 4)),
)


def _state(book: Book) -> object:
    t = book.totals
    return (
        [s.value for s in (t.delta, t.gamma, t.vega, t.theta, t.dollar_delta)],
        {k: v.value for k, v in book.symbol_delta.items() if v.value != 0.0},
        {k: v.value for k, v in book.symbol_dollar_delta.items() if v.value != 0.0},
        {k: v.value for k, v in book.group_notional.items()},
        book.incomplete,
        {
            id: (h.delta, h.gamma, h.vega, h.theta, h.dollar_delta, h.notional, h.complete)
            for id, h in book.holdings.items()
        },
        book.oldest_greeks_t(),
        book.stale(1_000.0, 60.0),
        dict(book.und_price),
    )


@settings(max_examples=300, deadline=None)
@given(ops=st.lists(op, max_size=60))
def test_deferred_marks_read_the_same(ops: list[tuple[str, object]]) -> None:
    now = Book(NEEDS, GROUPS, PricingParams(0.01))
    later = Book(NEEDS, GROUPS, PricingParams(0.01))
    for t, (kind, arg) in enumerate(ops):
        if kind == "quote":
            i, bid, ask, last, g, settle = arg  # type: ignore[misc]
            now.mark(f"P{i}", float(t), bid, ask, last, g)
            later.mark_later(f"P{i}", float(t), bid, ask, last, g)
            if settle:
                later.settle()
                assert _state(later) == _state(now)
        elif kind == "upsert":
            i, c, qty = arg  # type: ignore[misc]
            now.upsert(f"P{i}", CONTRACTS[c], qty)
            later.upsert(f"P{i}", CONTRACTS[c], qty)
        else:
            now.remove(f"P{arg}")
            later.remove(f"P{arg}")
    later.settle()
    assert repr(_state(later)) == repr(_state(now))  # repr: NaN-safe and sign-of-zero exact


def test_greeks_heap_stays_bounded_and_answers_the_same() -> None:
    book = Book(NEEDS, {})
    for i in range(3):
        book.upsert(f"O{i}", CONTRACTS[2], 1.0)
    g = Greeks(0.5, 0.01, 0.2, -0.03, 0.25, 100.0)
    book.mark("O0", 5.0, 2.0, 2.1, 2.05, g)  # the oldest, never quoted again
    for k in range(10_000):
        book.mark_later(f"O{1 + k % 2}", 10.0 + k, 2.0, 2.1, 2.05, g)
    assert len(book._greeks_heap) <= 2 * len(book.holdings) + 65
    assert book.oldest_greeks_t() == 5.0
    book.remove("O0")
    assert book.oldest_greeks_t() == 10.0 + 9_998


# ------------------------------------------------------------- a run of marks

run_mark = st.tuples(st.integers(0, 5), number, number, number, greeks)
run_op = st.one_of(
    st.tuples(st.just("run"), st.lists(run_mark, max_size=25)),
    st.tuples(
        st.just("upsert"),
        st.tuples(st.integers(0, 4), st.integers(0, 4), st.sampled_from([-3.0, 1.0, 7.0])),
    ),
    st.tuples(st.just("remove"), st.integers(0, 4)),
    st.tuples(st.just("market"), st.tuples(st.integers(0, 4), number, number)),
)


def _market_state(m: MarketBook) -> object:
    return (
        {k: list(v.items()) for k, v in m._held.items()},
        dict(m._key_of),
        [m.collar_quote(c) for c in CONTRACTS],
    )


@settings(max_examples=300, deadline=None)
@given(ops=st.lists(run_op, max_size=25), with_greeks=st.booleans())
def test_a_run_of_marks_at_once_is_the_run_quote_by_quote(
    ops: list[tuple[str, object]], with_greeks: bool
) -> None:
    """Book.mark_many + MarketBook.position_quotes == mark_later + position_quote, each."""
    one, many = Book(NEEDS, GROUPS, PricingParams(0.01)), Book(NEEDS, GROUPS, PricingParams(0.01))
    m_one, m_many = MarketBook(), MarketBook()
    t = 0.0
    for kind, arg in ops:
        if kind == "run":
            marks = []
            for i, bid, ask, last, g in arg:  # type: ignore[attr-defined]
                t += 1.0
                if with_greeks and g is None:  # mostly runs without the model's case
                    g = Greeks(0.5, 0.01, 0.2, -0.03, 0.25, 100.0 + t)
                marks.append(Mark(t, f"P{i}", bid, ask, last, g))
            for mk in marks:
                h = one.holdings.get(mk.id)
                one.mark_later(mk.id, mk.t, mk.bid, mk.ask, mk.last, mk.greeks)
                if h is not None:
                    m_one.position_quote(mk.t, mk.id, h.contract, mk.bid, mk.ask)
            many.mark_many(marks)
            m_many.position_quotes(
                (mk.t, mk.id, h.contract, mk.bid, mk.ask)
                for mk in marks
                if (h := many.holdings.get(mk.id)) is not None
            )
            one.settle()
            many.settle()
            assert repr(_state(many)) == repr(_state(one))
            assert repr(_holdings(many)) == repr(_holdings(one))
            assert repr(_market_state(m_many)) == repr(_market_state(m_one))
        elif kind == "upsert":
            i, c, qty = arg  # type: ignore[misc]
            for b in (one, many):
                b.upsert(f"P{i}", CONTRACTS[c], qty)
        elif kind == "remove":
            for b, m in ((one, m_one), (many, m_many)):
                b.remove(f"P{arg}")
                m.position_closed(f"P{arg}")
        else:
            c, bid, ask = arg  # type: ignore[misc]
            t += 1.0
            for m in (m_one, m_many):
                m.market_quote(t, CONTRACTS[c], bid, ask, None)


def _holdings(book: Book) -> object:
    return {
        id: (h.bid, h.ask, h.last, h.greeks, h.greeks_t, h.greeks_computed, h.price_t, h.und_seen)
        for id, h in book.holdings.items()
    }

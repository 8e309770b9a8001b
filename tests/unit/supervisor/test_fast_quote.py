"""The typed fast path for quote lines: it answers exactly as the general path, or defers.

``json_codec.fast_quote`` is what replay runs for almost every line, so a
difference from the general parser (``quote(dict, event_time(dict))``) would
change replay's output; when it is not sure it must return None and let the
general path answer (with its own error for a bad line).
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from actors.messages import Greeks, Quote
from supervisor import json_codec

DBL_MAX = json_codec.DBL_MAX


def general(line: str) -> Quote | None:
    """What the general path makes of a line: the Quote, or None for anything else."""
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if not isinstance(obj, dict) or obj.get("type") != "quote":
        return None
    try:
        return json_codec.quote(obj, json_codec.event_time(obj))
    except json_codec.BadInput:
        return None


def test_a_plain_quote_with_greeks_is_the_general_paths_quote() -> None:
    line = (
        '{"t": 1.5, "type": "quote", "id": "P1", "bid": 1.25, "ask": 1.3, "last": null,'
        ' "greeks": {"delta": 0.5, "iv": 0.2, "und_price": 101}}'
    )
    q = json_codec.fast_quote(line)
    assert q == Quote(1.5, "P1", 1.25, 1.3, None, Greeks(0.5, None, None, None, 0.2, 101.0))
    assert q == general(line)


def test_ibs_unset_value_is_missing_on_the_fast_path_too() -> None:
    line = json.dumps(
        {"t": 2, "type": "quote", "id": 7, "bid": DBL_MAX, "ask": 3, "greeks": {"gamma": -DBL_MAX}}
    )
    q = json_codec.fast_quote(line)
    assert q == Quote(2.0, "7", None, 3.0, None, Greeks())
    assert q == general(line)


def test_what_the_fast_path_is_not_sure_of_goes_to_the_general_path() -> None:
    for line in (
        '{"t": 1, "type": "quote", "id": "P1", "bid": NaN}',  # Python's json reads NaN
        '{"t": 1, "type": "quote", "id": "P1", "bid": true}',
        '{"t": 1, "type": "quote", "id": ""}',
        '{"t": 1, "type": "quote", "id": true}',
        '{"t": 1e999, "type": "quote", "id": "P1"}',
        '{"t": 1, "type": "quote", "id": "P1", "greeks": {"rho": 1}}',
        '{"t": 1, "type": "quote", "id": "P1", "greeks": [1]}',
        '{"t": 1, "type": "quote", "id": "P1", "bid": ' + "9" * 400 + "}",
        '{"t": 1, "type": "position", "id": "P1"}',
        '{"type": "position", "t": 1, "type": "quote", "id": "P1"}',
        "[1, 2]",
        "not json",
        b'{"t": 1, "type": "quote", "id": "\xff"}',
    ):
        assert json_codec.fast_quote(line) is None, line


_number = st.one_of(
    st.none(),
    st.floats(allow_nan=False),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([DBL_MAX, -DBL_MAX, 0.0, -0.0, 1e308, 5e-324]),
    st.booleans(),
)
_field = st.one_of(_number, st.text(max_size=3), st.lists(st.integers(), max_size=2))
_greeks = st.one_of(
    st.none(),
    st.dictionaries(
        st.sampled_from(["delta", "gamma", "vega", "theta", "iv", "und_price", "rho"]),
        _number,
        max_size=7,
    ),
    st.integers(),
)


@st.composite
def quote_lines(draw: st.DrawFn) -> str:
    obj: dict[str, Any] = {
        "t": draw(st.one_of(st.floats(), st.integers(), st.booleans(), st.none())),
        "type": draw(st.sampled_from(["quote", "quote", "quote", "market", 3])),
        "id": draw(st.one_of(st.text(max_size=4), st.integers(), st.booleans(), st.none())),
    }
    for name in ("bid", "ask", "last", "extra"):
        if draw(st.booleans()):
            obj[name] = draw(_field)
    if draw(st.booleans()):
        obj["greeks"] = draw(_greeks)
    keys = draw(st.permutations(list(obj)))
    return json.dumps({k: obj[k] for k in keys})  # NaN/Infinity come out as Python's json has them


def same(a: Quote | None, b: Quote | None) -> bool:
    """Equal, with -0.0 told from 0.0 (a sign is data)."""
    if a is None or b is None:
        return a is b
    return repr(a) == repr(b) and all(
        math.copysign(1, x) == math.copysign(1, y)
        for x, y in zip(_floats(a), _floats(b), strict=True)
    )


def _floats(q: Quote) -> list[float]:
    g = q.greeks or Greeks()
    values = (q.t, q.bid, q.ask, q.last, g.delta, g.gamma, g.vega, g.theta, g.iv, g.und_price)
    return [v for v in values if v is not None]


@settings(max_examples=1500, deadline=None)
@given(quote_lines())
def test_the_fast_path_answers_as_the_general_path_or_defers(line: str) -> None:
    fast = json_codec.fast_quote(line)
    if fast is not None:
        assert same(fast, general(line)), line
    assert fast is None or type(fast.bid) is not bool

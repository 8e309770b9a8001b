"""Request bodies parsed with limits (``supervisor.api.json_body``), without a server."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervisor.api.json_body import (
    MAX_INT_DIGITS,
    only_fields,
    parse_object,
    text_field,
    whole_number,
)
from supervisor.api.responses import Problem


def _status(raw: bytes, required: bool = True) -> int:
    with pytest.raises(Problem) as exc:
        parse_object(raw, required=required)
    return exc.value.status


def test_integers_are_capped_at_200_digits_before_int_is_called() -> None:
    nines = b"9" * MAX_INT_DIGITS
    ok = parse_object(b'{"a": ' + nines + b', "b": -' + nines + b"}", required=True)
    assert ok["a"] == 10**MAX_INT_DIGITS - 1 and ok["b"] == -(10**MAX_INT_DIGITS) + 1
    assert math.isfinite(float(ok["a"]))  # nothing downstream can overflow
    for digits in (MAX_INT_DIGITS + 1, 401, 5000, 60_000):
        with pytest.raises(Problem) as exc:
            parse_object(b'{"qty": ' + b"1" * digits + b"}", required=True)
        assert exc.value.status == 422 and f"{digits} digits" in exc.value.detail


def test_nan_and_infinity_read_as_replay_reads_them() -> None:
    obj = parse_object(b'{"a": NaN, "b": Infinity, "c": -Infinity, "d": 1e999}', required=True)
    assert math.isnan(obj["a"]) and obj["b"] == math.inf and obj["c"] == -math.inf
    assert obj["d"] == math.inf


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"", 422),
        (b"  ", 422),
        (b"[]", 422),
        (b"1", 422),
        (b"{", 400),
        (b"\xff", 400),
        (b"[" * 100_000 + b"]" * 100_000, 400),
        (b'{"a": "\\ud800"}', 422),
        (b'{"\\udfff": 1}', 422),
    ],
)
def test_unusable_bodies(raw: bytes, status: int) -> None:
    assert _status(raw) == status


def test_empty_is_an_empty_object_when_optional() -> None:
    assert parse_object(b"", required=False) == {}


_SCALAR = (
    st.none()
    | st.booleans()
    | st.integers(-(10**50), 10**50)
    | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False)
)
_JSON = st.recursive(
    _SCALAR,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=8), _JSON, max_size=5))
def test_any_json_object_of_ordinary_numbers_reads_back(obj: dict[str, Any]) -> None:
    text = json.dumps(obj)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return  # lone surrogates are refused, tested above
    assert parse_object(text.encode(), required=True) == json.loads(text)


def test_field_rules() -> None:
    with pytest.raises(Problem, match="mdoe: unknown field"):
        only_fields({"mdoe": "flatten"}, ("mode", "operator"))
    assert text_field({}, "x", default="d", max_chars=3, non_empty=True) == "d"
    with pytest.raises(Problem, match="at most 3 characters"):
        text_field({"x": "abcd"}, "x", default="", max_chars=3, non_empty=False)
    assert whole_number({"n": 2.0}, "n", 0, 5) == 2 and whole_number({}, "n", 0, 5) is None
    for bad in (2.5, True, "2", math.inf, 6):
        with pytest.raises(Problem):
            whole_number({"n": bad}, "n", 0, 5)

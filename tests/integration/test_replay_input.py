"""Replay's input: lines decoded fast decide exactly as Python's json; several files in order.

msgspec decodes each line first and Python's json takes every line it
refuses, so for any line the result — the object, or the bad-line message —
must be Python's json's. Checked on the lines where the two parsers differ
(NaN and Infinity, huge and long integers, lone surrogates, deep nesting,
BOMs, bad UTF-8) and on generated ones.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supervisor import json_codec
from supervisor.commands import replay
from supervisor.config import load

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

TRICKY = [
    b'{"t": 1, "bid": NaN}',
    b'{"t": 1, "bid": Infinity, "ask": -Infinity}',
    b'{"t": 1e400}',
    b'{"t": 1, "id": 123456789012345678901234567890}',
    b'{"t": 1, "id": -9223372036854775809}',
    b'{"t": 1, "id": 18446744073709551616}',
    b'{"t": 1, "n": ' + b"9" * 5000 + b"}",
    b'{"t": 1, "id": "\\ud800"}',
    b'{"a": ' * 3000 + b"1" + b"}" * 3000,
    b"\xef\xbb\xbf" + b'{"t": 1}',
    b'{"t": 1, "id": "\xff"}',
    b'{"t": 1, "t": 2}',
    b'{"t": -0.0, "x": -0}',
    b'{"t": 1.0000000000000001, "x": 0.1e-400, "y": 5e-324}',
    b"[1, 2]",
    b'"text"',
    b"not json",
    b'{"t": 1} trailing',
    b'{"t": 01}',
    b'{"t": 1, "s": "tab\there"}',
    '{"t": 1, "id": "\udc80"}',  # a str line with a lone surrogate
    '{"t": 1, "id": "é"}',
]


def _old(line: str | bytes) -> object:
    """The decoding replay had: Python's json only."""
    try:
        return ("ok", replay._decode_json(line))
    except json_codec.BadInput as exc:
        return ("bad", str(exc))


def _new(line: str | bytes) -> object:
    try:
        return ("ok", replay._decode(line))
    except json_codec.BadInput as exc:
        return ("bad", str(exc))


def _same(a: object, b: object) -> bool:
    # repr: NaN equals NaN, -0.0 differs from 0.0, an int differs from a float
    return repr(a) == repr(b)


@pytest.mark.parametrize("line", TRICKY, ids=range(len(TRICKY)))
def test_tricky_lines_decode_as_python_json_decodes_them(line: str | bytes) -> None:
    assert _same(_new(line), _old(line))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(obj=st.dictionaries(st.text(max_size=5), json_values, max_size=5), as_bytes=st.booleans())
def test_generated_lines_decode_as_python_json_decodes_them(
    obj: dict[str, object], as_bytes: bool
) -> None:
    text = json.dumps(obj)  # NaN and Infinity as Python writes them
    line: str | bytes = text.encode() if as_bytes else text
    assert _same(_new(line), _old(line))


def test_nan_quote_still_parses_and_is_ignored_data() -> None:
    obj = replay._decode(b'{"t": 5, "type": "quote", "id": "A", "bid": NaN, "ask": 1, "last": 1}')
    assert math.isnan(obj["bid"])


def test_several_files_play_in_order_and_bad_lines_name_their_file(tmp_path: Path) -> None:
    first = tmp_path / "a.jsonl"
    second = tmp_path / "b.jsonl"
    lines = (EXAMPLES / "long_trigger.jsonl").read_text().splitlines(keepends=True)
    first.write_text("".join(lines[:5]))
    second.write_text("".join(lines[5:]) + "not json\n")
    out, err = io.StringIO(), io.StringIO()
    code = replay.run(load(EXAMPLES / "long_trigger.toml"), [str(first), str(second)], out, err)
    assert out.getvalue() == (EXAMPLES / "long_trigger.expected.jsonl").read_text()
    n = len(lines) - 5 + 1
    assert (
        err.getvalue()
        == f"{second}: line {n}: not JSON: Expecting value at column 1\n1 bad line(s)\n"
    )
    assert code == 1

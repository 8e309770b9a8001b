"""The oracle on the inline scenarios: the bad lines and output the contract implies."""

from __future__ import annotations

import pytest

from oracle import oracle_replay
from oracle.scenarios import INLINE


@pytest.mark.parametrize("name", sorted(INLINE))
def test_oracle_on_inline_scenario(name: str) -> None:
    """Bad line numbers and output lines exactly as worked out by hand."""
    config, lines, bad, out = INLINE[name]
    result = oracle_replay(config, lines)
    assert result.bad_lines == bad
    assert result.lines == out

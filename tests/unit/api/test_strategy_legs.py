"""Strategy bodies to leg specs (``supervisor.api.strategies.leg_specs``), without a server."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.messages import Contract, Right, SecType
from supervisor.api.responses import Problem
from supervisor.api.strategies import leg_specs
from supervisor.core.facade import StrategyLegSpec

OPT = {"symbol": "SPY", "sec_type": "OPT", "right": "P", "strike": 590, "expiry": "2026-06-19",
       "multiplier": 100}  # fmt: skip


def test_legs_by_contract_and_by_con_id() -> None:
    specs = leg_specs({"legs": [{**OPT, "ratio": -1}, {"con_id": 42, "ratio": 2.0},
                                {"symbol": "SPY", "sec_type": "STK", "ratio": 100}]})  # fmt: skip
    assert specs == [
        StrategyLegSpec(
            -1, contract=Contract("SPY", SecType.OPT, Right.PUT, 590.0, "2026-06-19", 100.0)
        ),
        StrategyLegSpec(2, con_id=42),
        StrategyLegSpec(100, contract=Contract("SPY", SecType.STK)),
    ]


@given(st.integers(-10_000, 10_000).filter(bool), st.integers(1, 2**31 - 1))
def test_any_valid_ratio_and_con_id_is_taken_as_is(ratio: int, con_id: int) -> None:
    assert leg_specs({"legs": [{"con_id": con_id, "ratio": ratio}]}) == [
        StrategyLegSpec(ratio, con_id=con_id)
    ]


@given(st.one_of(st.integers().filter(lambda r: r == 0 or abs(r) > 10_000),
                 st.floats().filter(lambda f: not f.is_integer()),
                 st.text(), st.booleans(), st.none()))  # fmt: skip
def test_any_other_ratio_is_refused_naming_it(ratio: object) -> None:
    with pytest.raises(Problem) as exc:
        leg_specs({"legs": [{"con_id": 1, "ratio": ratio}]})
    assert exc.value.status == 422 and exc.value.detail.startswith("legs[0].ratio")

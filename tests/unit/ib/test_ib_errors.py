"""IB error codes → breaker failure kinds; reconnect backoff; IB value conversions."""

from __future__ import annotations

import math
import random

import pytest
from ib_async import Contract as IbContract
from ib_async import OptionComputation

from actors.messages import FailureKind, Right
from supervisor.ib.errors import ERROR_CLASSES, classify, is_order_rejection
from supervisor.ib.feed import contract_of, greeks_of, ib_price
from supervisor.ib.session import backoff_delay

ORD, DAT, CON = FailureKind.ORDER_REJECTED, FailureKind.DATA_FEED, FailureKind.CONNECTIVITY
UNSET = 1.7976931348623157e308


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        *[(c, ORD) for c in (103, 104, 110, 135, 161, 201, 203, 434, 10147, 10148)],
        *[
            (c, DAT)
            for c in (101, 102, 200, 300, 354, 10089, 10090, 10091, 10168, 10186, 10197, 2103)
        ],
        *[(c, DAT) for c in (2105, 2157)],
        *[(c, CON) for c in (100, 326, 504, 507, 1100, 1300, 2110)],
        *[
            (c, None)
            for c in (202, 321, 399, 404, 1101, 1102, 2100, 2104, 2106, 2107, 2108, 2109, 2119)
        ],
        *[(c, None) for c in (2158, 10167)],
        (2999, None),  # unknown notice/warning range
        (10999, None),
        (150, FailureKind.OTHER),  # unknown error
        (999, FailureKind.OTHER),
    ],
)
def test_classify_table(code: int, kind: FailureKind | None) -> None:
    assert classify(code) is kind


def test_classify_margin_rejection_and_table_is_data() -> None:
    text = "Order rejected - reason:YOUR ORDER IS NOT ACCEPTED. ... EXCEED THE INITIAL MARGIN"
    assert classify(201, text) is FailureKind.MARGIN
    assert classify(201, "Order rejected - reason:Simulated rejection") is ORD
    assert classify(2103, "margin") is DAT  # only order rejections can be margin
    assert ERROR_CLASSES[2103] is DAT and ERROR_CLASSES[1102] is None
    with pytest.raises(TypeError):
        ERROR_CLASSES[1] = ORD  # type: ignore[index]


def test_order_rejection_is_not_a_cancel_confirmation() -> None:
    assert is_order_rejection(201) and is_order_rejection(201, "margin")
    assert is_order_rejection(110) and not is_order_rejection(202)
    assert not is_order_rejection(399)  # a warning: the order stays live


def test_backoff_is_exponential_jittered_and_bounded() -> None:
    rng = random.Random(1)
    for attempt in range(12):
        d = backoff_delay(attempt, 1.0, 60.0, rng)
        assert 1.0 <= d <= min(60.0, 2.0 ** (attempt + 1))
    assert backoff_delay(50, 1.0, 60.0, random.Random(2)) <= 60.0
    assert backoff_delay(0, 5.0, 2.0, random.Random(3)) == 2.0  # max below min: max wins
    a = [backoff_delay(3, 0.5, 30.0, random.Random(7)) for _ in range(2)]
    assert a[0] == a[1]  # seeded


def test_ib_unset_values_are_missing_never_numbers() -> None:
    assert ib_price(-1.0) is None and ib_price(UNSET) is None
    assert ib_price(None) is None and ib_price(0.0) == 0.0
    nan = ib_price(math.nan)
    assert nan is not None and math.isnan(nan)  # passed through: the stop judges it
    g = greeks_of(OptionComputation(0, -1.0, -2.0, -1.0, 0.0, -2.0, UNSET, -2.0, -1.0))
    assert g is not None
    assert (g.delta, g.gamma, g.vega, g.theta, g.iv, g.und_price) == (None,) * 6
    g = greeks_of(OptionComputation(0, 0.2, -0.3, 2.5, 0.0, 0.01, 0.5, -0.04, 500.0))
    assert g is not None and (g.delta, g.iv, g.und_price) == (-0.3, 0.2, 500.0)
    assert greeks_of(None) is None


def test_contracts_ib_to_ours() -> None:
    opt = contract_of(
        IbContract(
            conId=5,
            symbol="SPY",
            secType="OPT",
            strike=480.0,
            right="P",
            lastTradeDateOrContractMonth="20270115",
            multiplier="100",
        )
    )
    assert opt is not None and opt.expiry == "2027-01-15" and opt.right is Right.PUT
    assert opt.multiplier == 100.0 and opt.strike == 480.0
    assert contract_of(IbContract(conId=6, symbol="ES", secType="FUT")) is None
    bad = IbContract(conId=7, symbol="SPY", secType="OPT", right="X", strike=1.0)
    assert contract_of(bad) is None

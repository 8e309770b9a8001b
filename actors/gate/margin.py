"""The margin rules on IB's what-if (DESIGN §4.4).

| key | violated when | value |
|---|---|---|
| ``max_init_margin_pct`` | init after ÷ NLV × 100 > limit and init after > before | that % |
| ``min_excess_liquidity`` | EWL after − maint after < limit and lower than before | that $ |

Judged only for an entry nothing else denies. No answer, an error, or an
unset value among the fields a configured key uses → ``stale_data`` (null,
null): a what-if that cannot be read never lets an order through.
"""

from __future__ import annotations

import math

from actors.gate.params import MarginParams
from actors.gate.stale import StaleItem
from actors.messages import Reason, ReasonCode, WhatIf

DBL_MAX = 1.7976931348623157e308


def _number(x: float | None) -> float | None:
    """IB's unset values (None, NaN, ±∞, DBL_MAX) are missing, never numbers."""
    if x is None or not math.isfinite(x) or abs(x) >= DBL_MAX:
        return None
    return x


def judge_margin(
    params: MarginParams, whatif: WhatIf | None, nlv: float | None
) -> tuple[list[Reason], list[StaleItem]]:
    """The margin reasons and the missing data (if any) for one entry."""
    if whatif is None:
        return [], [StaleItem("no what-if answer")]
    if whatif.error:
        return [], [StaleItem(f"what-if: {whatif.error}")]
    reasons: list[Reason] = []
    stale: list[StaleItem] = []
    limit = params.max_init_margin_pct
    if limit is not None:
        before = _number(whatif.init_margin_before)
        after = _number(whatif.init_margin_after)
        if before is None or after is None:
            stale.append(StaleItem("what-if: initial margin unset"))
        elif nlv is None or not nlv > 0:
            stale.append(StaleItem("net liquidation value is unknown"))
        else:
            pct = after / nlv * 100
            if pct > limit and after > before:
                reasons.append(Reason(ReasonCode.MAX_INIT_MARGIN_PCT, pct, limit))
    floor = params.min_excess_liquidity
    if floor is not None:
        ewl_b = _number(whatif.equity_with_loan_before)
        ewl_a = _number(whatif.equity_with_loan_after)
        mm_b = _number(whatif.maint_margin_before)
        mm_a = _number(whatif.maint_margin_after)
        if ewl_b is None or ewl_a is None or mm_b is None or mm_a is None:
            stale.append(StaleItem("what-if: equity with loan or maintenance margin unset"))
        else:
            excess_after = ewl_a - mm_a
            if excess_after < floor and excess_after < ewl_b - mm_b:
                reasons.append(Reason(ReasonCode.MIN_EXCESS_LIQUIDITY, excess_after, floor))
    return reasons, stale

"""Every portfolio limit the gate knows, by its config key: adding a limit is one line here.

Listed in DESIGN §4's table order, which is the order an answer lists their
reasons in.
"""

from __future__ import annotations

from collections.abc import Callable

from actors.gate.limit import PortfolioLimit
from actors.gate.limits.beta_weighted_delta import BetaWeightedDelta
from actors.gate.limits.correlated_pct import CorrelatedPct
from actors.gate.limits.greek_sum import GreekSum
from actors.gate.limits.per_symbol_delta import PerSymbolDelta
from actors.gate.limits.single_position_pct import SinglePositionPct
from actors.gate.limits.stress_loss import StressLoss
from actors.gate.params import GateParams
from actors.messages import LIMIT_CODES, ReasonCode

C = ReasonCode

Factory = Callable[[float, GateParams], PortfolioLimit]

REGISTRY: dict[ReasonCode, Factory] = {
    C.MAX_PORTFOLIO_DELTA: lambda v, p: GreekSum(C.MAX_PORTFOLIO_DELTA, "delta", v),
    C.MAX_PORTFOLIO_DOLLAR_DELTA: lambda v, p: GreekSum(
        C.MAX_PORTFOLIO_DOLLAR_DELTA, "dollar_delta", v
    ),
    C.MAX_PORTFOLIO_GAMMA: lambda v, p: GreekSum(C.MAX_PORTFOLIO_GAMMA, "gamma", v),
    C.MAX_PORTFOLIO_VEGA: lambda v, p: GreekSum(C.MAX_PORTFOLIO_VEGA, "vega", v),
    C.MAX_PORTFOLIO_THETA: lambda v, p: GreekSum(C.MAX_PORTFOLIO_THETA, "theta", v),
    C.MAX_PER_SYMBOL_DELTA: lambda v, p: PerSymbolDelta(v),
    C.MAX_BETA_WEIGHTED_DELTA: lambda v, p: BetaWeightedDelta(v),
    C.MAX_SINGLE_POSITION_PCT: lambda v, p: SinglePositionPct(v),
    C.MAX_CORRELATED_PCT: lambda v, p: CorrelatedPct(v, dict(p.groups)),
    C.MAX_STRESS_LOSS: lambda v, p: StressLoss(v),
}

assert tuple(REGISTRY) == LIMIT_CODES, "the registry must list every limit, in table order"


def configured_limits(params: GateParams) -> tuple[PortfolioLimit, ...]:
    """The limits ``[limits]`` sets, in table order."""
    out = []
    for code, factory in REGISTRY.items():
        value = params.limits.get(code)
        if value is not None:
            out.append(factory(value, params))
    return tuple(out)

"""A loopback IB Gateway simulator that the real ``ib_async`` client talks to.

Used by the project's tests and by ``risk-supervisor demo``: it speaks the TWS
API wire protocol (server version 178) over TCP on 127.0.0.1, so the code
under test goes through ``ib_async`` exactly as it would against IB Gateway.

Modules: ``protocol`` (framing), ``client_messages`` (what clients send),
``encoders`` (what the gateway sends), ``market`` (prices), ``margin`` (the
margin model), ``broker`` (the account: positions, orders, fills, cash, P&L),
``what_if`` (what-if answers and their faults), ``server`` (sessions and
dispatch), ``thread`` (the simulator on its own loop).
"""

from .broker import (
    BAG_CON_ID,
    PnlSingleValues,
    PnlValues,
    SimComboLeg,
    SimFill,
    SimOrder,
    SimPosition,
)
from .error_codes import ERROR_MESSAGES
from .margin import Margin, WhatIfNumbers
from .market import Instrument, Market, ModelGreeks, Quote, Underlying
from .server import GatewaySimulator
from .thread import SimulatorThread
from .what_if import WhatIfFault

__all__ = [
    "BAG_CON_ID",
    "ERROR_MESSAGES",
    "GatewaySimulator",
    "Instrument",
    "Margin",
    "Market",
    "ModelGreeks",
    "PnlSingleValues",
    "PnlValues",
    "Quote",
    "SimComboLeg",
    "SimFill",
    "SimOrder",
    "SimPosition",
    "SimulatorThread",
    "Underlying",
    "WhatIfFault",
    "WhatIfNumbers",
]

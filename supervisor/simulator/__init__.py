"""A loopback IB Gateway simulator that the real ``ib_async`` client talks to.

Used by the project's tests and by ``risk-supervisor demo``: it speaks the TWS
API wire protocol (server version 178) over TCP on 127.0.0.1, so the code
under test goes through ``ib_async`` exactly as it would against IB Gateway.
"""

from .gateway import (
    ERROR_MESSAGES,
    GatewaySimulator,
    SimFill,
    SimOrder,
    SimPosition,
    SimulatorThread,
)
from .market import Instrument, Market, ModelGreeks, Quote, Underlying

__all__ = [
    "ERROR_MESSAGES",
    "GatewaySimulator",
    "Instrument",
    "Market",
    "ModelGreeks",
    "Quote",
    "SimFill",
    "SimOrder",
    "SimPosition",
    "SimulatorThread",
    "Underlying",
]

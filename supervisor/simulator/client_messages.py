"""What clients send (client → server), decoded into typed requests; pure.

Field orders are ``ib_async`` 2.1.0's ``client.py`` at server version 178.
Only the requests whose layout is not trivial live here: PLACE_ORDER (where
``whatIf`` sits after a run of optional blocks) and REQ_MKT_DATA (whose combo
legs shift the fields after them). A malformed message raises ``ValueError``
or ``IndexError``; the server logs it and keeps the session.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: IB's "unset" double; anything this large on the wire means "no value".
UNSET_DOUBLE = 1.7976931348623157e308

# Incoming (client → server) message ids.
IN_REQ_MKT_DATA = 1
IN_CANCEL_MKT_DATA = 2
IN_PLACE_ORDER = 3
IN_CANCEL_ORDER = 4
IN_REQ_OPEN_ORDERS = 5
IN_REQ_ACCT_DATA = 6
IN_REQ_EXECUTIONS = 7
IN_REQ_IDS = 8
IN_REQ_CONTRACT_DATA = 9
IN_REQ_AUTO_OPEN_ORDERS = 15
IN_REQ_ALL_OPEN_ORDERS = 16
IN_REQ_MANAGED_ACCTS = 17
IN_REQ_CURRENT_TIME = 49
IN_REQ_GLOBAL_CANCEL = 58
IN_REQ_MARKET_DATA_TYPE = 59
IN_REQ_POSITIONS = 61
IN_REQ_ACCOUNT_SUMMARY = 62
IN_CANCEL_ACCOUNT_SUMMARY = 63
IN_CANCEL_POSITIONS = 64
IN_START_API = 71
IN_REQ_ACCOUNT_UPDATES_MULTI = 76
IN_CANCEL_ACCOUNT_UPDATES_MULTI = 77
IN_REQ_PNL = 92
IN_CANCEL_PNL = 93
IN_REQ_PNL_SINGLE = 94
IN_CANCEL_PNL_SINGLE = 95
IN_REQ_COMPLETED_ORDERS = 99


def opt_float(text: str) -> float | None:
    """A wire float that may be unset (empty, non-finite or IB's 1.797e308 sentinel)."""
    if not text:
        return None
    v = float(text)
    if not math.isfinite(v) or v >= 1e307:
        return None
    return v


def int_field(text: str, default: int = 0) -> int:
    """A wire int; empty means ``default``."""
    return int(text) if text else default


@dataclass(frozen=True)
class ContractSpec:
    """The twelve contract fields ``ib_async`` sends for a ``Contract``."""

    con_id: int
    symbol: str
    sec_type: str
    expiry: str
    strike: float | None
    right: str
    multiplier: str
    exchange: str
    primary_exchange: str
    currency: str
    local_symbol: str
    trading_class: str

    @classmethod
    def parse(cls, f: list[str], at: int) -> ContractSpec:
        """Read the contract starting at ``f[at]``."""
        c = f[at : at + 12]
        if len(c) != 12:
            raise IndexError("truncated contract")
        return cls(
            con_id=int_field(c[0]),
            symbol=c[1],
            sec_type=c[2],
            expiry=c[3],
            strike=opt_float(c[4]),
            right=c[5],
            multiplier=c[6],
            exchange=c[7],
            primary_exchange=c[8],
            currency=c[9],
            local_symbol=c[10],
            trading_class=c[11],
        )


@dataclass(frozen=True)
class LegSpec:
    """One combo leg as a client sends it: ``ratio`` units of ``con_id`` per combo unit."""

    con_id: int
    ratio: int
    action: str
    exchange: str


@dataclass(frozen=True)
class PlaceOrderRequest:
    """The PLACE_ORDER fields the simulator acts on."""

    order_id: int
    contract: ContractSpec
    action: str
    qty: float
    order_type: str
    lmt_price: float | None
    aux_price: float | None
    tif: str
    account: str
    order_ref: str
    transmit: bool
    parent_id: int
    legs: tuple[LegSpec, ...]
    what_if: bool


class _Cursor:
    """Sequential reader over a message's fields."""

    def __init__(self, f: list[str], at: int) -> None:
        self.f = f
        self.i = at

    def take(self) -> str:
        v = self.f[self.i]
        self.i += 1
        return v

    def skip(self, n: int) -> None:
        if self.i + n > len(self.f):
            raise IndexError("truncated message")
        self.i += n


def parse_place_order(f: list[str]) -> PlaceOrderRequest:
    """Decode PLACE_ORDER (3) as ``ib_async.client.Client.placeOrder`` writes it at v178."""
    if len(f) < 35:
        raise ValueError(f"PLACE_ORDER with {len(f)} fields")
    contract = ContractSpec.parse(f, 2)
    legs: list[LegSpec] = []
    cur = _Cursor(f, 35)  # after hidden: the combo block (BAG only), then the rest
    if contract.sec_type == "BAG":
        for _ in range(int_field(cur.take())):
            con_id, ratio, action, exchange = cur.take(), cur.take(), cur.take(), cur.take()
            cur.skip(4)  # openClose, shortSaleSlot, designatedLocation, exemptCode
            legs.append(LegSpec(int_field(con_id), int_field(ratio), action, exchange))
        cur.skip(int_field(cur.take()))  # order combo leg prices
        cur.skip(2 * int_field(cur.take()))  # smart combo routing params
    # sharesAllocation, discretionaryAmt, goodAfterTime, goodTillDate, faGroup,
    # faMethod, faPercentage (no faProfile at >= 177), modelCode, shortSaleSlot,
    # designatedLocation, exemptCode, ocaType, rule80A, settlingFirm, allOrNone,
    # minQty, percentOffset, eTradeOnly, firmQuoteOnly, nbboPriceCap,
    # auctionStrategy, startingPrice, stockRefPrice, delta, stockRangeLower,
    # stockRangeUpper, overridePercentageConstraints, volatility, volatilityType
    cur.skip(29)
    if cur.take():  # deltaNeutralOrderType
        cur.skip(1 + 8)  # deltaNeutralAuxPrice, then the delta-neutral block
    else:
        cur.skip(1)  # deltaNeutralAuxPrice
    # continuousUpdate, referencePriceType, trailStopPrice, trailingPercent,
    # scaleInitLevelSize, scaleSubsLevelSize
    cur.skip(6)
    increment = opt_float(cur.take())  # scalePriceIncrement
    if increment is not None and increment > 0:
        cur.skip(7)
    cur.skip(3)  # scaleTable, activeStartTime, activeStopTime
    if cur.take():  # hedgeType
        cur.skip(1)  # hedgeParam
    cur.skip(4)  # optOutSmartRouting, clearingAccount, clearingIntent, notHeld
    if cur.take() == "1":  # deltaNeutralContract present
        cur.skip(3)
    if cur.take():  # algoStrategy
        cur.skip(2 * int_field(cur.take()))
    cur.skip(1)  # algoId
    what_if = cur.take() == "1"
    return PlaceOrderRequest(
        order_id=int(f[1]),
        contract=contract,
        action=f[16],
        qty=float(f[17] or 0),
        order_type=f[18],
        lmt_price=opt_float(f[19]),
        aux_price=opt_float(f[20]),
        tif=f[21],
        account=f[23],
        order_ref=f[26],
        transmit=f[27] != "0",
        parent_id=int_field(f[28]),
        legs=tuple(legs),
        what_if=what_if,
    )


@dataclass(frozen=True)
class MktDataRequest:
    """REQ_MKT_DATA (1, version 11)."""

    req_id: int
    contract: ContractSpec
    legs: tuple[LegSpec, ...]
    snapshot: bool


def parse_mkt_data(f: list[str]) -> MktDataRequest:
    """Decode REQ_MKT_DATA as ``ib_async.client.Client.reqMktData`` writes it."""
    contract = ContractSpec.parse(f, 3)
    cur = _Cursor(f, 15)
    legs: list[LegSpec] = []
    if contract.sec_type == "BAG":
        for _ in range(int_field(cur.take())):
            con_id, ratio, action, exchange = cur.take(), cur.take(), cur.take(), cur.take()
            legs.append(LegSpec(int_field(con_id), int_field(ratio), action, exchange))
    if cur.take() == "1":  # deltaNeutralContract
        cur.skip(3)
    cur.skip(1)  # genericTickList
    snapshot = cur.take() == "1"
    return MktDataRequest(int(f[2]), contract, tuple(legs), snapshot)

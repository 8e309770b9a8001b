"""Server → client messages: the field list of every message the simulator sends.

Pure functions. Each list is written against ``ib_async`` 2.1.0's
``decoder.py`` at server version 178, field for field; the comments name the
fields the decoder reads there. The server frames them with
:func:`.protocol.encode_message`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from .broker import SimFill, SimOrder
from .market import Instrument, ModelGreeks, Quote
from .protocol import Field

# Outgoing (server → client) message ids.
OUT_TICK_PRICE = 1
OUT_TICK_SIZE = 2
OUT_ORDER_STATUS = 3
OUT_ERR_MSG = 4
OUT_OPEN_ORDER = 5
OUT_ACCT_VALUE = 6
OUT_PORTFOLIO_VALUE = 7
OUT_ACCT_UPDATE_TIME = 8
OUT_NEXT_VALID_ID = 9
OUT_CONTRACT_DATA = 10
OUT_EXECUTION_DATA = 11
OUT_MANAGED_ACCTS = 15
OUT_TICK_OPTION_COMPUTATION = 21
OUT_CURRENT_TIME = 49
OUT_CONTRACT_DATA_END = 52
OUT_OPEN_ORDER_END = 53
OUT_ACCT_DOWNLOAD_END = 54
OUT_EXECUTION_DATA_END = 55
OUT_TICK_SNAPSHOT_END = 57
OUT_MARKET_DATA_TYPE = 58
OUT_COMMISSION_REPORT = 59
OUT_POSITION_DATA = 61
OUT_POSITION_END = 62
OUT_ACCOUNT_SUMMARY = 63
OUT_ACCOUNT_SUMMARY_END = 64
OUT_ACCOUNT_UPDATE_MULTI = 73
OUT_ACCOUNT_UPDATE_MULTI_END = 74
OUT_TICK_REQ_PARAMS = 81
OUT_PNL = 94
OUT_PNL_SINGLE = 95
OUT_COMPLETED_ORDERS_END = 102

# Tick types.
TICK_BID = 1
TICK_ASK = 2
TICK_LAST = 4
TICK_CLOSE = 9
TICK_MODEL_OPTION = 13

#: IB's "unset" double as TWS (Java) writes it on the wire.
UNSET_DOUBLE_TEXT = "1.7976931348623157E308"


def wire_time(t: float) -> str:
    """An execution timestamp ``ib_async`` parses with its zone: ``YYYYMMDD HH:MM:SS UTC``."""
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y%m%d %H:%M:%S") + " UTC"


def contract_fields(inst: Instrument) -> list[Field]:
    """conId … multiplier: the seven fields most messages start a contract with."""
    return [
        inst.con_id,
        inst.symbol,
        inst.sec_type,
        inst.wire_expiry,
        inst.strike if inst.strike is not None else 0.0,
        inst.right or "",
        inst.wire_multiplier,
    ]


def error(req_id: int, code: int, msg: str) -> list[Field]:
    """ERR_MSG (4, version 2) with the ``advancedOrderRejectJson`` of >= 166."""
    return [OUT_ERR_MSG, 2, req_id, code, msg, ""]


def position(account: str, inst: Instrument, qty: float, avg_cost: float) -> list[Field]:
    """POSITION_DATA (61, version 3): exactly 16 fields."""
    return [
        OUT_POSITION_DATA,
        3,
        account,
        *contract_fields(inst),
        inst.exchange,
        inst.currency,
        inst.local_symbol,
        inst.symbol,  # tradingClass
        float(qty),
        float(avg_cost),
    ]


def portfolio(
    account: str, inst: Instrument, qty: float, price: float, avg_cost: float, realized: float
) -> list[Field]:
    """PORTFOLIO_VALUE (7, version 8): exactly 20 fields."""
    value = qty * price * inst.multiplier
    return [
        OUT_PORTFOLIO_VALUE,
        8,
        *contract_fields(inst),
        "",  # primaryExchange
        inst.currency,
        inst.local_symbol,
        inst.symbol,  # tradingClass
        float(qty),
        price,
        value,
        float(avg_cost),
        value - qty * avg_cost,  # unrealizedPNL
        realized,
        account,
    ]


def account_value(account: str, tag: str, value: str, currency: str) -> list[Field]:
    """ACCT_VALUE (6, version 2)."""
    return [OUT_ACCT_VALUE, 2, tag, value, currency, account]


def account_summary(req_id: int, account: str, tag: str, value: str, currency: str) -> list[Field]:
    """ACCOUNT_SUMMARY (63, version 1)."""
    return [OUT_ACCOUNT_SUMMARY, 1, req_id, account, tag, value, currency]


def account_update_multi(
    req_id: int, account: str, tag: str, value: str, currency: str
) -> list[Field]:
    """ACCOUNT_UPDATE_MULTI (73, version 1); modelCode empty."""
    return [OUT_ACCOUNT_UPDATE_MULTI, 1, req_id, account, "", tag, value, currency]


def order_status(o: SimOrder, last_fill: float = 0.0) -> list[Field]:
    """ORDER_STATUS (3): no version field at >= 136; ``clientId`` is the owner's."""
    return [
        OUT_ORDER_STATUS,
        o.order_id,
        o.status,
        o.filled,
        o.remaining,
        o.avg_fill_price,
        o.perm_id,
        o.parent_id,
        last_fill,
        o.client_id,
        "",  # whyHeld
        0.0,  # mktCapPrice
    ]


@dataclass(frozen=True)
class OrderStateFields:
    """The OrderState block of an open order: margins as IB's *strings*."""

    status: str
    init_before: str = ""
    maint_before: str = ""
    equity_before: str = ""
    init_change: str = ""
    maint_change: str = ""
    equity_change: str = ""
    init_after: str = ""
    maint_after: str = ""
    equity_after: str = ""
    commission: float | None = None
    min_commission: float | None = None
    max_commission: float | None = None
    commission_currency: str = ""
    warning: str = ""


def open_order(
    o: SimOrder,
    account: str,
    *,
    order_ref: str,
    state: OrderStateFields,
    what_if: bool = False,
) -> list[Field]:
    """OPEN_ORDER (5) at v178, as ``ib_async.decoder.Decoder.openOrder`` reads it.

    No version field; no faProfile (>= 177); a combo's legs follow
    ``comboLegsDescrip``. ``order_ref`` is passed apart so the server can echo
    an empty one (a knob).
    """
    inst = o.instrument()
    legs: list[Field] = [len(o.legs)]
    for leg in o.legs:
        legs += [leg.con_id, leg.ratio, leg.action, leg.exchange, 0, 0, "", -1]
    return [
        OUT_OPEN_ORDER,
        o.order_id,
        inst.con_id,
        inst.symbol,
        inst.sec_type,
        inst.wire_expiry,
        inst.strike if inst.strike is not None else 0.0,
        inst.right or "",
        inst.wire_multiplier,
        inst.exchange,
        inst.currency,
        inst.local_symbol,
        inst.symbol,  # tradingClass
        o.action,
        o.qty,
        o.order_type,
        o.lmt_price,
        o.aux_price,
        o.tif,
        "",  # ocaGroup
        o.account or account,
        "O",  # openClose
        0,  # origin
        order_ref,
        o.client_id,
        o.perm_id,
        False,  # outsideRth
        False,  # hidden
        0.0,  # discretionaryAmt
        "",  # goodAfterTime
        "",  # sharesAllocation (deprecated)
        "",  # faGroup
        "",  # faMethod
        "",  # faPercentage
        # (faProfile only below v177)
        "",  # modelCode
        "",  # goodTillDate
        "",  # rule80A
        None,  # percentOffset
        "",  # settlingFirm
        0,  # shortSaleSlot
        "",  # designatedLocation
        -1,  # exemptCode
        0,  # auctionStrategy
        None,  # startingPrice
        None,  # stockRefPrice
        None,  # delta
        None,  # stockRangeLower
        None,  # stockRangeUpper
        0,  # displaySize
        False,  # blockOrder
        False,  # sweepToFill
        False,  # allOrNone
        None,  # minQty
        0,  # ocaType
        False,  # eTradeOnly
        False,  # firmQuoteOnly
        None,  # nbboPriceCap
        o.parent_id,
        0,  # triggerMethod
        None,  # volatility
        None,  # volatilityType
        "",  # deltaNeutralOrderType (empty: no delta-neutral block follows)
        None,  # deltaNeutralAuxPrice
        False,  # continuousUpdate
        None,  # referencePriceType
        None,  # trailStopPrice
        None,  # trailingPercent
        None,  # basisPoints
        None,  # basisPointsType
        "",  # comboLegsDescrip
        *legs,  # number of combo legs (a number), then 8 fields a leg
        0,  # number of order combo legs
        0,  # number of smart combo routing params
        None,  # scaleInitLevelSize
        None,  # scaleSubsLevelSize
        None,  # scalePriceIncrement (unset: no scale block follows)
        "",  # hedgeType (empty: no hedgeParam follows)
        False,  # optOutSmartRouting
        "",  # clearingAccount
        "",  # clearingIntent
        False,  # notHeld
        False,  # deltaNeutralContract present
        "",  # algoStrategy (empty: no params follow)
        False,  # solicited
        what_if,
        state.status,
        state.init_before,
        state.maint_before,
        state.equity_before,
        state.init_change,
        state.maint_change,
        state.equity_change,
        state.init_after,
        state.maint_after,
        state.equity_after,
        state.commission,
        state.min_commission,
        state.max_commission,
        state.commission_currency,
        state.warning,
        False,  # randomizeSize
        False,  # randomizePrice
        0,  # number of conditions (must be a number)
        "",  # adjustedOrderType
        None,  # triggerPrice
        None,  # trailStopPrice
        None,  # lmtPriceOffset
        None,  # adjustedStopPrice
        None,  # adjustedStopLimitPrice
        None,  # adjustedTrailingAmount
        0,  # adjustableTrailingUnit
        "",  # softDollarTier.name
        "",  # softDollarTier.val
        "",  # softDollarTier.displayName
        None,  # cashQty
        False,  # dontUseAutoPriceForHedge
        False,  # isOmsContainer
        False,  # discretionaryUpToLimitPrice
        False,  # usePriceMgmtAlgo
        None,  # duration (v159+)
        None,  # postToAts (v160+)
        False,  # autoCancelParent (v162+)
        None,  # minTradeQty (v170+)
        None,  # minCompeteSize
        None,  # competeAgainstBestOffset
        None,  # midOffsetAtWhole
        None,  # midOffsetAtHalf
    ]


def execution(req_id: int, x: SimFill, account: str, *, order_ref: str) -> list[Field]:
    """EXECUTION_DATA (11) at v178: no version field, pendingPriceRevision last."""
    inst = x.instrument
    return [
        OUT_EXECUTION_DATA,
        req_id,
        x.order_id,
        *contract_fields(inst),
        inst.exchange,
        inst.currency,
        inst.local_symbol,
        inst.symbol,  # tradingClass
        x.exec_id,
        wire_time(x.t),
        account,
        "SIM",  # exchange of execution
        x.side,
        x.shares,
        x.price,
        x.perm_id,
        x.client_id,
        0,  # liquidation
        x.cum_qty,
        x.avg_price,
        order_ref,
        "",  # evRule
        None,  # evMultiplier
        "",  # modelCode
        1,  # lastLiquidity: added
        False,  # pendingPriceRevision (v178)
    ]


def commission_report(x: SimFill) -> list[Field]:
    """COMMISSION_REPORT (59, version 1); realized P&L unset unless the fill closed."""
    realized: Field = x.realized if x.realized is not None else UNSET_DOUBLE_TEXT
    return [OUT_COMMISSION_REPORT, 1, x.exec_id, x.commission, "USD", realized, None, None]


def contract_data(req_id: int, inst: Instrument, under_con_id: int) -> list[Field]:
    """CONTRACT_DATA (10) at v178 (>= 164: no version field, no mdSizeMultiplier)."""
    return [
        OUT_CONTRACT_DATA,
        req_id,
        inst.symbol,
        inst.sec_type,
        inst.wire_expiry,  # lastTradeDateOrContractMonth[-lastTradeTime[-zone]]
        inst.strike if inst.strike is not None else 0.0,
        inst.right or "",
        inst.exchange or "SMART",
        inst.currency,
        inst.local_symbol,
        inst.symbol,  # marketName
        inst.symbol,  # tradingClass
        inst.con_id,
        0.01,  # minTick
        inst.wire_multiplier,
        "LMT,MKT,STP,STP LMT",  # orderTypes
        "SMART",  # validExchanges
        1,  # priceMagnifier
        under_con_id if inst.is_option else 0,  # underConId
        inst.symbol,  # longName
        "",  # primaryExchange
        inst.wire_expiry[:6],  # contractMonth
        "",  # industry
        "",  # category
        "",  # subcategory
        "US/Eastern",  # timeZoneId
        "",  # tradingHours
        "",  # liquidHours
        "",  # evRule
        None,  # evMultiplier
        0,  # number of secIds (must be a number)
        0,  # aggGroup
        inst.symbol if inst.is_option else "",  # underSymbol
        "STK" if inst.is_option else "",  # underSecType
        "",  # marketRuleIds
        inst.wire_expiry,  # realExpirationDate
        "COMMON" if not inst.is_option else "",  # stockType
        1.0,  # minSize
        1.0,  # sizeIncrement
        1.0,  # suggestedSizeIncrement
    ]


def quote_ticks(req_id: int, q: Quote, *, with_close: bool) -> list[list[Field]]:
    """TICK_PRICE (1, version 6) messages for a quote: exactly 7 fields each.

    A price is never empty here (``ib_async`` drops the tick then), and a
    bid size of 0 makes ``ib_async`` show the bid as NaN: a no-bid option.
    """
    out: list[list[Field]] = []
    if with_close:
        out.append([OUT_TICK_PRICE, 6, req_id, TICK_CLOSE, q.close, 0.0, 0])
    out.append([OUT_TICK_PRICE, 6, req_id, TICK_BID, q.bid, q.bid_size, 0])
    out.append([OUT_TICK_PRICE, 6, req_id, TICK_ASK, q.ask, q.ask_size, 0])
    out.append([OUT_TICK_PRICE, 6, req_id, TICK_LAST, q.last, q.last_size, 0])
    return out


def option_computation(req_id: int, g: ModelGreeks) -> list[Field]:
    """TICK_OPTION_COMPUTATION (21): no version field at >= 156; every number set."""
    return [
        OUT_TICK_OPTION_COMPUTATION,
        req_id,
        TICK_MODEL_OPTION,
        0,  # tickAttrib: return-based
        g.implied_vol,
        g.delta,
        g.opt_price,
        g.pv_dividend,
        g.gamma,
        g.vega,
        g.theta,
        g.und_price,
    ]


def pnl(req_id: int, values: Sequence[float | None]) -> list[Field]:
    """PNL (94): reqId, dailyPnL, unrealizedPnL, realizedPnL; ``None`` goes out as DBL_MAX.

    ``ib_async`` reads an empty field as 0.0, so "unset" must be IB's DBL_MAX.
    """
    return [OUT_PNL, req_id, *(_or_unset(v) for v in values)]


def pnl_single(req_id: int, position: float, values: Sequence[float | None]) -> list[Field]:
    """PNL_SINGLE (95): reqId, pos, dailyPnL, unrealizedPnL, realizedPnL, value."""
    return [OUT_PNL_SINGLE, req_id, position, *(_or_unset(v) for v in values)]


def _or_unset(v: float | None) -> Field:
    return UNSET_DOUBLE_TEXT if v is None else v

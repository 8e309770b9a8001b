"""IB error codes → breaker failure kinds: one table, one function, no state.

Threading: pure functions and constants; any thread.

The classes follow IB's message-code reference and what ib_async does with
each code. Everything an operator would want the breaker to react to is a
failure; the notices IB sends at every connect, and confirmations of our own
actions, are not — counting them would open the breaker on a healthy link.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from actors.messages import FailureKind

__all__ = ["DATA_LOST", "ERROR_CLASSES", "classify", "is_order_rejection"]

F = FailureKind

#: IB error code → the breaker failure kind it counts as (None: not a failure).
#:
#: A code not listed here is a failure of kind ``other`` below 2000 (errors) and
#: not a failure from 2000 up (IB's warning and notice range); see
#: :func:`classify`. 1101 is listed as None because it is not a failure by
#: itself: the adapter answers it by subscribing to market data again.
ERROR_CLASSES: Final[Mapping[int, FailureKind | None]] = MappingProxyType(
    {
        # -- orders: the broker refused an order or could not act on it
        103: F.ORDER_REJECTED,  # duplicate order id
        104: F.ORDER_REJECTED,  # cannot modify a filled order
        110: F.ORDER_REJECTED,  # price off the tick grid (ib_async: fatal for new orders)
        135: F.ORDER_REJECTED,  # order to modify or cancel not found
        161: F.ORDER_REJECTED,  # cancel attempted when not cancellable
        201: F.ORDER_REJECTED,  # order rejected (margin wording → margin, see classify)
        203: F.ORDER_REJECTED,  # security not allowed for this account
        434: F.ORDER_REJECTED,  # order size zero
        10147: F.ORDER_REJECTED,  # cancel of an unknown order id
        10148: F.ORDER_REJECTED,  # cancel of an order that cannot be cancelled
        # -- market data: missing, refused or broken
        101: F.DATA_FEED,  # max number of tickers reached
        102: F.DATA_FEED,  # duplicate ticker id
        200: F.DATA_FEED,  # no security definition
        300: F.DATA_FEED,  # unknown ticker id
        354: F.DATA_FEED,  # not subscribed to market data
        10089: F.DATA_FEED,  # additional subscription needed
        10090: F.DATA_FEED,  # part of the requested data not subscribed
        10091: F.DATA_FEED,  # additional subscription needed (delayed available)
        10168: F.DATA_FEED,  # delayed data not enabled
        10186: F.DATA_FEED,  # delayed data not available
        10197: F.DATA_FEED,  # no market data during a competing live session
        2103: F.DATA_FEED,  # market data farm connection broken
        2105: F.DATA_FEED,  # historical data farm connection broken
        2157: F.DATA_FEED,  # security definition farm connection broken
        # -- connectivity: the link to IB is down or unusable
        100: F.CONNECTIVITY,  # message rate exceeded (TWS may disconnect)
        326: F.CONNECTIVITY,  # client id already in use
        502: F.CONNECTIVITY,  # could not connect to TWS
        504: F.CONNECTIVITY,  # not connected
        507: F.CONNECTIVITY,  # bad message length (socket corrupted)
        1100: F.CONNECTIVITY,  # connectivity between IB and TWS lost
        1300: F.CONNECTIVITY,  # socket port reset, connection dropped
        2110: F.CONNECTIVITY,  # connectivity between TWS and server broken
        # -- informational: notices, confirmations of our own actions
        202: None,  # order cancelled (also confirms our own cancels)
        321: None,  # request validation warning (the order stays live)
        399: None,  # order message warning (e.g. held until market opens)
        404: None,  # shares not available for short sale: held, not rejected
        1101: None,  # restored, data lost: the adapter resubscribes
        1102: None,  # restored, data kept
        2100: None,  # account data unsubscribed
        2104: None,  # market data farm OK
        2106: None,  # historical data farm OK
        2107: None,  # historical data farm inactive, available on demand
        2108: None,  # market data farm inactive, available on demand
        2109: None,  # outside-RTH flag ignored
        2119: None,  # market data farm connecting
        2158: None,  # security definition farm OK
        10167: None,  # showing delayed market data
    }
)

#: 1101: connectivity restored but TWS dropped every market-data subscription.
DATA_LOST: Final = 1101

#: Rejection texts that mean a margin or buying-power problem; IB reports those
#: as 201 ("Order rejected - reason: ...") and DESIGN's ``margin`` kind trips the
#: breaker at once, which is what a margin problem calls for.
_MARGIN_TEXT: Final = re.compile(
    r"margin|equity with loan|available funds|buying power", re.IGNORECASE
)


def classify(code: int, message: str = "") -> FailureKind | None:
    """The breaker failure kind of IB error ``code`` (None: not a failure).

    Listed codes follow :data:`ERROR_CLASSES`; an order rejection whose text
    speaks of margin or buying power is ``margin``. Unknown codes from 2000 up
    are IB's warnings and notices (None); other unknown codes are errors of
    kind ``other``, so nothing IB calls an error is ever silently dropped.
    """
    if code in ERROR_CLASSES:
        kind = ERROR_CLASSES[code]
        if kind is F.ORDER_REJECTED and message and _MARGIN_TEXT.search(message):
            return F.MARGIN
        return kind
    if code >= 2000:
        return None
    return F.OTHER


def is_order_rejection(code: int, message: str = "") -> bool:
    """Did IB refuse (or kill) an order with this error, as opposed to confirming a cancel?"""
    return classify(code, message) in (F.ORDER_REJECTED, F.MARGIN, F.OTHER)

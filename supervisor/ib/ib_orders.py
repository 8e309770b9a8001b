"""The IB side of closing and kill orders: :class:`OrderPort` and :class:`KillPort` over ib_async.

What it turns into IB calls: an :class:`~supervisor.ib.exit_orders.OrderTicket`
into one limit order — on the position's own contract for one leg, on a BAG
combo of the legs' conIds for several (legs whose position id is not a conId
are qualified once and cached) — IB's open orders and executions into
:class:`BrokerOrder` / :class:`BrokerFill`, and a kill's cancel into
``reqGlobalCancel`` and ``reqAllOpenOrders``.

Threading: the IB loop thread only.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

from ib_async import IB, ComboLeg, Fill, LimitOrder, Trade
from ib_async import Contract as IbContract

from actors.messages import Contract
from supervisor.config import IbConfig
from supervisor.core.ports import OrderLeg
from supervisor.ib.exit_orders import (
    BrokerFill,
    BrokerOrder,
    OrderNotSent,
    OrderTicket,
    OrderUnplaceable,
)
from supervisor.ib.feed import Feed, ib_contract
from supervisor.ib.session import describe

__all__ = ["IbOrderPort", "broker_fill", "broker_order"]

log = logging.getLogger(__name__)


def broker_order(t: Trade) -> BrokerOrder:
    """An ib_async trade as the closing-order logic sees it."""
    c = t.contract
    if c is not None and c.secType == "BAG":
        con_ids = tuple(int(leg.conId) for leg in c.comboLegs or ())
    else:
        con_ids = (int(c.conId),) if c is not None else ()
    return BrokerOrder(
        order_id=int(t.order.orderId),
        client_id=int(t.order.clientId),
        order_ref=t.order.orderRef or "",
        con_ids=con_ids,
        status=t.orderStatus.status,
        action=t.order.action,
        qty=float(t.order.totalQuantity),
        filled=float(t.orderStatus.filled),
    )


def broker_fill(f: Fill) -> BrokerFill:
    """An ib_async fill as the closing-order logic sees it."""
    x = f.execution
    when = x.time.timestamp() if x.time is not None else math.nan
    return BrokerFill(
        exec_id=x.execId,
        order_id=int(x.orderId),
        client_id=int(x.clientId),
        order_ref=x.orderRef or "",
        con_id=int(f.contract.conId),
        time=when,
        side=x.side,
        shares=float(x.shares),
        price=float(x.price),
    )


class IbOrderPort:
    """Orders through the current session's ``IB``; ``ready`` says when they may go."""

    def __init__(self, feed: Feed, config: IbConfig, ready: Callable[[], bool]) -> None:
        self.feed = feed
        self.config = config
        self._ready = ready
        self.ib: IB | None = None
        self._foreign: list[BrokerOrder] = []  # other clients' orders, as IB last listed them
        self._con_ids: dict[Contract, int] = {}  # legs qualified once
        self._listing = asyncio.Lock()

    # ------------------------------------------------------------ OrderPort

    @property
    def client_id(self) -> int:
        return self.config.client_id

    def ready(self) -> bool:
        ib = self.ib
        return ib is not None and ib.isConnected() and self._ready()

    def held(self, position_id: str) -> float | None:
        return self.feed.held(position_id)

    def place(self, ticket: OrderTicket) -> int:
        ib = self.ib
        if ib is None or not ib.isConnected():
            raise OrderNotSent("IB is not connected")
        contract = self._contract(ticket)
        order = LimitOrder(
            ticket.action,
            ticket.qty,
            ticket.limit_price,
            tif=ticket.tif,
            orderRef=ticket.order_ref,
            account=self.config.account,
            transmit=True,
        )
        try:
            trade = ib.placeOrder(contract, order)
        except ConnectionError as exc:
            raise OrderNotSent(describe(exc)) from exc
        return int(trade.order.orderId)

    def open_orders(self) -> Sequence[BrokerOrder]:
        ib = self.ib
        if ib is None:
            return list(self._foreign)
        mine = self.client_id
        own = [broker_order(t) for t in ib.openTrades() if int(t.order.clientId) == mine]
        return own + [o for o in self._foreign if o.client_id != mine and o.working]

    def fills(self) -> Sequence[BrokerFill]:
        ib = self.ib
        return [] if ib is None else [broker_fill(f) for f in ib.fills()]

    # ------------------------------------------------------------- KillPort

    def global_cancel(self) -> None:
        """Cancel every open order of the account, every client's (``reqGlobalCancel``)."""
        ib = self.ib
        if ib is None or not ib.isConnected():
            raise ConnectionError("IB is not connected")
        cast(Any, ib).reqGlobalCancel()  # untyped in ib_async

    async def list_open_orders(self, timeout_s: float) -> Sequence[BrokerOrder]:
        """Ask IB for every open order of the account (``reqAllOpenOrders``); still working ones.

        One listing at a time: ib_async keeps one result list for them.
        """
        ib = self.ib
        if ib is None or not ib.isConnected():
            raise ConnectionError("IB is not connected")
        async with self._listing:
            trades = await asyncio.wait_for(ib.reqAllOpenOrdersAsync(), timeout_s)
        self.listed(trades)
        return [o for o in (broker_order(t) for t in trades) if o.working]

    def listed(self, trades: Iterable[Trade]) -> None:
        """Remember other clients' open orders from a ``reqAllOpenOrders`` answer."""
        mine = self.client_id
        self._foreign = [o for o in (broker_order(t) for t in trades) if o.client_id != mine]

    # ------------------------------------------------------------ contracts

    async def qualify(self, legs: Iterable[OrderLeg], timeout_s: float) -> None:
        """Find the conId of every leg that is not a held position's (cached)."""
        for leg in legs:
            if not leg.position_id.isdigit():
                await self.con_id(leg.contract, timeout_s)

    async def con_id(self, c: Contract, timeout_s: float) -> int | None:
        """IB's conId of a contract: a held position's, a cached one, or asked of IB once."""
        for pid in self.feed.held_ids():
            if pid.isdigit() and self.feed.contract(pid) == c:
                return int(pid)
        cached = self._con_ids.get(c)
        ib = self.ib
        if cached is not None or ib is None:
            return cached
        try:
            found = await asyncio.wait_for(ib.qualifyContractsAsync(ib_contract("", c)), timeout_s)
        except (TimeoutError, ConnectionError) as exc:
            log.warning("contract %s not qualified: %s", c, describe(exc))
            return None
        q = found[0] if found else None
        if isinstance(q, IbContract) and q.conId:
            self._con_ids[c] = int(q.conId)
        return self._con_ids.get(c)

    def _con_id(self, leg: OrderLeg) -> int:
        if leg.position_id.isdigit():
            return int(leg.position_id)
        con_id = self._con_ids.get(leg.contract)
        if con_id is None:
            raise OrderUnplaceable(f"leg {leg.position_id} has no IB conId (not qualified)")
        return con_id

    def _contract(self, ticket: OrderTicket) -> IbContract:
        if not ticket.combo:
            leg = ticket.legs[0]
            return self.feed.order_contract(leg.position_id, leg.contract)
        legs = [
            ComboLeg(conId=self._con_id(leg), ratio=leg.ratio, action=action, exchange="SMART")
            for leg, action in zip(ticket.legs, ticket.leg_actions, strict=True)
        ]
        return IbContract(
            secType="BAG",
            symbol=ticket.legs[0].contract.symbol,
            exchange="SMART",
            currency="USD",
            comboLegs=legs,
        )

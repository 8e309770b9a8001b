"""Closing orders (a stop's exit, a flatten): claim → place → record → reconcile.

Why one object: "never a second order for one key" is a property of the whole
sequence, across crashes, reconnects and restarts, and it can only be checked
where the whole sequence lives. :class:`ExitOrders` talks to IB through the
small :class:`OrderPort` (a session that is ready or not, what IB holds, one
``place`` call, IB's open orders and fills) and to the store through
:class:`ClaimStore`, so every crash point is unit-tested with a fake port and
a real SQLite file.

The sequence for one :class:`~supervisor.core.ports.ClosingOrder`:

1. **claim** its key in the store (durable, true exactly once across
   processes). Before the claim nothing is sent; a claim that fails because
   the store is down is retried, never skipped.
2. **place** it, only when the session is ready; otherwise it waits, in this
   process's memory, for the next session.
3. **record** the broker's order id under the key.
4. **reconcile** at every session start: a claim with no order recorded is
   settled by IB's open orders or fills carrying its orderRef; a claim this
   process made and knows it has not sent is sent; a claim from *before this
   process started* with no trace at IB is reported (journal and error log) for
   an operator — it may have been sent and rejected, so it is never re-sent.

Orders are matched to their key by orderRef (``rs-exit:<key>``) *and* by the
order id recorded for it: the gateway may echo an empty orderRef, and ib_async
copies it over the order's own.

Before the claim, IB's own evidence is consulted: a position with a working
``rs-exit:`` order, or whose latest execution is an ``rs-exit:`` fill that this
store knows nothing of (a previous incarnation that lost its store), gets no
second closing order — refused, journaled and logged.

Threading: one thread. In the daemon every method runs on the IB adapter's
event-loop thread (the adapter hops there); in tests, on the test's thread.
There are no locks because nothing here is shared.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from actors.messages import Contract, StopSnapshot
from supervisor.core.ports import ClosingOrder, OrderLeg
from supervisor.ib.errors import is_order_rejection
from supervisor.ib.journal import Journal
from supervisor.store.sqlite_store import StoreUnavailable

__all__ = [
    "DONE_STATUSES",
    "EXIT_REF_PREFIX",
    "BrokerFill",
    "BrokerOrder",
    "ClaimStore",
    "ClosingUpdate",
    "ExitOrders",
    "OrderNotSent",
    "OrderPort",
    "OrderTicket",
    "OrderUnplaceable",
    "OrderUpdate",
    "exit_limit_price",
    "exit_order_ref",
    "stop_exit",
]

log = logging.getLogger(__name__)

#: orderRef of our closing orders: the prefix, then the key (hashed when long).
EXIT_REF_PREFIX: Final = "rs-exit:"
#: IB keeps orderRef to about 40 characters in practice.
_MAX_ORDER_REF: Final = 40

#: IB order statuses after which an order no longer works.
DONE_STATUSES: Final = frozenset({"Filled", "Cancelled", "ApiCancelled", "Inactive"})
#: Statuses that mean IB accepted an order (a success for the breaker).
_ACCEPTED: Final = frozenset({"PreSubmitted", "Submitted"})

_JOURNAL_KIND: Final = "exit_order"


# ------------------------------------------------------------------ helpers


def exit_order_ref(key: str) -> str:
    """The orderRef of the closing order for ``key``: how it is found again at IB.

    ``rs-exit:<key>``, or ``rs-exit:<sha1 prefix>`` when that would be longer
    than IB keeps, so the mapping stays deterministic across restarts.
    """
    ref = EXIT_REF_PREFIX + key
    if len(ref) <= _MAX_ORDER_REF:
        return ref
    digest = hashlib.sha1(key.encode("utf-8")).hexdigest()
    return EXIT_REF_PREFIX + digest[: _MAX_ORDER_REF - len(EXIT_REF_PREFIX)]


def exit_limit_price(price: float, action: str, tick: float = 0.01) -> float:
    """``price`` on the tick grid, rounded toward a fill (down to sell, up to buy).

    The price is normally a quote and already on the grid; rounding only
    guards against float noise and against off-grid prices (a mid, a combo's
    net price, a flatten's slippage), which IB would refuse with error 110.
    Works for a combo's negative net price too.
    """
    steps = price / tick
    n = math.floor(steps + 1e-6) if action == "SELL" else math.ceil(steps - 1e-6)
    return round(n * tick, 8)


def stop_exit(
    key: str, position_id: str, contract: Contract, qty: float, price: float
) -> ClosingOrder:
    """The closing order of one position's stop: sell a long, buy back a short."""
    action = "SELL" if qty > 0 else "BUY"
    return ClosingOrder(
        key=key,
        legs=(OrderLeg(position_id, contract, 1, action),),
        qty=abs(qty),
        action=action,
        limit_price=price,
        reason="stop",
    )


def _flip(action: str) -> str:
    return "BUY" if action == "SELL" else "SELL"


# ------------------------------------------------------------------ values


@dataclass(frozen=True, slots=True)
class BrokerOrder:
    """An order as IB reports it; ``con_ids`` is its contract's, or a combo's legs'."""

    order_id: int
    client_id: int
    order_ref: str
    con_ids: tuple[int, ...]
    status: str
    action: str = ""
    qty: float = 0.0
    filled: float = 0.0

    @property
    def working(self) -> bool:
        return self.status not in DONE_STATUSES


@dataclass(frozen=True, slots=True)
class BrokerFill:
    """One execution as IB reports it (``time`` in epoch seconds)."""

    exec_id: str
    order_id: int
    client_id: int
    order_ref: str
    con_id: int
    time: float
    side: str  # "BOT" / "SLD"
    shares: float
    price: float


@dataclass(frozen=True, slots=True)
class OrderTicket:
    """A closing order checked against what IB holds: exactly what is sent.

    One leg: ``qty`` units of that contract with ``action``. Several legs: one
    combo (BAG) order for ``qty`` units with ``action``; ``leg_actions`` are
    the combo's leg actions *as written in the combo* (each leg's closing
    action, flipped when the combo is sold, so that the order closes every
    leg whatever its action).
    """

    key: str
    order_ref: str
    legs: tuple[OrderLeg, ...]
    qty: float
    action: str
    limit_price: float
    reason: str
    tif: str = "DAY"

    @property
    def combo(self) -> bool:
        return len(self.legs) > 1

    @property
    def leg_actions(self) -> tuple[str, ...]:
        if self.action == "BUY":
            return tuple(leg.action for leg in self.legs)
        return tuple(_flip(leg.action) for leg in self.legs)


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """A status of an order from IB (an orderStatus, or ib_async's cancel of a rejected one)."""

    order_id: int
    client_id: int
    order_ref: str
    status: str
    filled: float = 0.0
    remaining: float = 0.0
    avg_fill_price: float = 0.0
    error_code: int = 0
    error_text: str = ""


@dataclass(frozen=True, slots=True)
class ClosingUpdate:
    """A journaled step of one closing order, for whoever follows them (a kill's status)."""

    key: str
    status: str
    position_ids: tuple[str, ...]
    order_id: int | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


class OrderNotSent(ConnectionError):
    """``OrderPort.place`` could not send the order (no connection): nothing reached IB."""


class OrderUnplaceable(ValueError):
    """``OrderPort.place`` cannot express the order to IB (a leg without a conId...)."""


class OrderPort(Protocol):
    """The few IB calls closing orders need."""

    @property
    def client_id(self) -> int:
        """Our IB client id: order ids are only ours together with it."""
        ...

    def ready(self) -> bool:
        """A session is up and set up (positions and open orders known): orders may go."""
        ...

    def held(self, position_id: str) -> float | None:
        """IB's signed quantity of the position now; None when IB does not hold it."""
        ...

    def place(self, ticket: OrderTicket) -> int:
        """Send the order; its order id.

        Raises :class:`OrderNotSent` when it could not go now (sent again when
        the session is back), :class:`OrderUnplaceable` when it never can.
        """
        ...

    def open_orders(self) -> Sequence[BrokerOrder]:
        """Every order IB last reported open, of every client of the account."""
        ...

    def fills(self) -> Sequence[BrokerFill]:
        """The executions IB reported in this session (its current day's)."""
        ...


class ClaimStore(Protocol):
    """The exit-claim part of the store (see ``Store.claim_exit`` and friends)."""

    def claim_exit(self, trigger_id: str, position_id: str, t: float) -> bool: ...

    def record_exit_order(
        self, trigger_id: str, order_id: int, detail: Mapping[str, Any]
    ) -> None: ...

    def exit_for(self, trigger_id: str) -> dict[str, Any] | None: ...

    def pending_exits(self) -> list[dict[str, Any]]: ...


@dataclass(slots=True)
class _Tracked:
    """An order of ours at IB, followed until its final status is journaled."""

    key: str
    order_ref: str
    position_ids: tuple[str, ...]
    reason: str
    final: str | None = None
    stages: set[str] = field(default_factory=set)
    placed_here: bool = False


# ------------------------------------------------------------------ the object


class ExitOrders:
    """Every closing order of this process, from claim to final status.

    ``claims`` None: claims live in memory only (no store: no restart to
    survive). ``success`` is told of each order IB accepted and each fill (the
    breaker counts them); ``on_update`` of each journaled step.
    """

    def __init__(
        self,
        port: OrderPort,
        claims: ClaimStore | None,
        journal: Journal,
        clock: Callable[[], float],
        *,
        success: Callable[[str], None] | None = None,
        on_update: Callable[[ClosingUpdate], None] | None = None,
    ) -> None:
        self.port = port
        self.claims = claims
        self.journal = journal
        self.clock = clock
        self.success = success
        self.on_update = on_update
        self._memory_claims: set[str] = set()  # claims without a store
        self._claimed_here: set[str] = set()  # claims this process made
        self._waiting: dict[str, ClosingOrder] = {}  # claimed here, known not sent
        self._unclaimed: dict[str, ClosingOrder] = {}  # claim failed (store down): retried
        self._unrecorded: dict[str, tuple[int, dict[str, Any]]] = {}  # sent, not yet recorded
        self._orders: dict[int, _Tracked] = {}  # our order id -> what it carries out
        self._refs: dict[str, str] = {}  # orderRef -> key, for keys met in this process
        self._reported: set[str] = set()  # unplaced / unknown reports already made
        self._refused: dict[str, str] = {}  # key -> why, reported once per reason

    # ------------------------------------------------------------- submit

    def submit(self, order: ClosingOrder) -> None:
        """Claim ``order``'s key and place it (now, or when the session is ready)."""
        key = order.key
        self._refs[exit_order_ref(key)] = key
        problem = _invalid(order)
        if problem is not None:
            self._note(order, "failed", {"detail": problem}, level=logging.ERROR)
            return
        if key in self._unclaimed:
            self._unclaimed[key] = order  # still waiting for the store: the newest wins
            return
        if key in self._claimed_here:
            self._note(order, "already_claimed", {})
            return
        why = self.refusal(order)
        if why is not None:
            if self._refused.get(key) != why:
                self._refused[key] = why
                self._note(order, "refused", {"detail": why}, level=logging.ERROR)
            return
        self._claim_and_send(order)

    def _claim_and_send(self, order: ClosingOrder) -> None:
        key = order.key
        if order.claimed:
            self._send_claimed(order)
            return
        try:
            claimed = self._claim(order)
        except StoreUnavailable as exc:
            if key not in self._unclaimed:
                log.error("closing order %s not claimed (store unavailable, retried): %s", key, exc)
            self._unclaimed[key] = order
            return
        self._unclaimed.pop(key, None)
        if not claimed:
            log.info("closing order %s already claimed: no second order", key)
            self._note(order, "already_claimed", {})
            return
        self._claimed_here.add(key)
        self._send(order)

    def _send_claimed(self, order: ClosingOrder) -> None:
        """The claim was made with the decision (the TRIGGER's transaction): ours to send,
        unless an order is already recorded under its key (then it was sent)."""
        key = order.key
        if self.claims is not None:
            try:
                recorded = self.claims.exit_for(key)
            except StoreUnavailable as exc:
                if key not in self._unclaimed:
                    log.error("closing order %s waits for the store: %s", key, exc)
                self._unclaimed[key] = order
                return
            if recorded is not None and recorded.get("order_id") is not None:
                self._note(order, "already_claimed", {})
                return
        self._unclaimed.pop(key, None)
        self._claimed_here.add(key)
        self._send(order)

    def _claim(self, order: ClosingOrder) -> bool:
        key = order.key
        if self.claims is None:
            if key in self._memory_claims:
                return False
            self._memory_claims.add(key)
            return True
        return self.claims.claim_exit(key, _subject(order), self.clock())

    def _send(self, order: ClosingOrder) -> None:
        """Place a claimed order, or keep it for the next session (this process's claim)."""
        key = order.key
        if not self.port.ready():
            if key not in self._waiting:
                self._waiting[key] = order
                log.warning("closing order %s waits for the IB connection", key)
                self._note(order, "waiting_for_connection", {})
            return
        self._waiting.pop(key, None)
        why = self.refusal(order)  # claimed before IB's evidence was known (no session yet)
        if why is not None:
            self._resolve_without_order(order, "refused", why)
            return
        ticket, unplaced = self._ticket(order)
        if ticket is None:
            status, why = unplaced
            self._resolve_without_order(order, status, why)
            return
        try:
            order_id = self.port.place(ticket)
        except OrderNotSent as exc:
            self._waiting[key] = order
            log.error("closing order %s not sent (%s): sent when IB is back", key, exc)
            self._note(order, "waiting_for_connection", {"detail": str(exc)})
            return
        except OrderUnplaceable as exc:
            self._resolve_without_order(order, "failed", str(exc))
            return
        self._orders[order_id] = _Tracked(
            key, ticket.order_ref, _pids(order), order.reason, placed_here=True
        )
        detail = _placed_detail(ticket, order_id)
        log.warning(
            "closing order %d placed (%s, %s): %s %s x%g @ %s",
            order_id,
            order.reason,
            ticket.order_ref,
            ticket.action,
            ",".join(_pids(order)),
            ticket.qty,
            ticket.limit_price,
        )
        self._record(key, order_id, detail)
        self._note(order, "placed", detail, order_id=order_id)

    def _ticket(self, order: ClosingOrder) -> tuple[OrderTicket | None, tuple[str, str]]:
        """The order as IB may take it now, or (status, why) it is not placed.

        Closes what IB holds now, never more: a position that is gone, or that
        changed side since the decision, is not the one the order was meant to
        close, and "closing" it would open new risk.
        """
        held = {leg.position_id: self.port.held(leg.position_id) for leg in order.legs}
        if all(h is None for h in held.values()):
            return None, ("not_needed", "IB no longer reports the position")
        for leg in order.legs:
            h = held[leg.position_id]
            if h is None:
                return None, ("failed", f"IB no longer reports leg {leg.position_id}")
            if h == 0 or (h > 0) != (leg.action == "SELL"):
                why = f"position {leg.position_id} changed side since the decision (now {h:g})"
                return None, ("not_needed" if len(order.legs) == 1 else "failed", why)
        if len(order.legs) == 1:
            h1 = held[order.legs[0].position_id]
            assert h1 is not None
            qty = abs(h1)
        else:
            units = min(
                math.floor(abs(held[leg.position_id] or 0.0) / leg.ratio + 1e-9)
                for leg in order.legs
            )
            qty = float(min(order.qty, units))
            if qty <= 0:
                return None, ("failed", "IB holds less than one unit of the combo")
        limit = exit_limit_price(order.limit_price, order.action)
        ticket = OrderTicket(
            key=order.key,
            order_ref=exit_order_ref(order.key),
            legs=order.legs,
            qty=qty,
            action=order.action,
            limit_price=limit,
            reason=order.reason,
        )
        return ticket, ("", "")

    def _resolve_without_order(self, order: ClosingOrder, status: str, why: str) -> None:
        """Settle a claim with no order (nothing to close, or nothing safe to send)."""
        detail = {"detail": why}
        self._record(order.key, 0, {**_base(order), "status": status, **detail})
        level = logging.WARNING if status == "not_needed" else logging.ERROR
        self._note(order, status, detail, level=level)

    def _record(self, key: str, order_id: int, detail: dict[str, Any]) -> None:
        if self.claims is None:
            return
        try:
            self.claims.record_exit_order(key, order_id, detail)
        except StoreUnavailable as exc:
            log.critical(
                "closing order %d for %s sent but not recorded (retried): %s", order_id, key, exc
            )
            self._unrecorded[key] = (order_id, detail)
            return
        self._unrecorded.pop(key, None)

    # ----------------------------------------------------------- refusals

    def refusal(self, order: ClosingOrder) -> str | None:
        """Why IB's evidence forbids this closing order, if it does (see :meth:`refusal_for`)."""
        con_ids = {int(leg.position_id) for leg in order.legs if leg.position_id.isdigit()}
        return self.refusal_for(con_ids, order.key)

    def refusal_for(
        self, con_ids: Iterable[int], key: str | None = None, *, foreign_only: bool = False
    ) -> str | None:
        """Why no (further) closing order may be sent for these contracts, if IB says so.

        A working ``rs-exit:`` order on one of them (any key but ``key``; with
        ``foreign_only``, only of keys this store does not know), or a
        contract whose latest execution is an ``rs-exit:`` fill of a key this
        store does not know: a closing order from an incarnation that lost its
        store, which a new stop must not repeat.
        """
        wanted = set(con_ids)
        if not wanted:
            return None
        own_ref = None if key is None else exit_order_ref(key)
        mine = self.port.client_id
        for o in self.port.open_orders():
            if not o.working or not wanted.intersection(o.con_ids):
                continue
            tracked = self._orders.get(o.order_id) if o.client_id == mine else None
            ref = o.order_ref or (tracked.order_ref if tracked is not None else "")
            if not ref.startswith(EXIT_REF_PREFIX) or ref == own_ref:
                continue
            if foreign_only and (tracked is not None or self._key_of(ref) is not None):
                continue
            return (
                f"IB shows closing order {o.order_id} ({ref}, client {o.client_id}, {o.status}) "
                "still working on this position"
            )
        for con_id in sorted(wanted):
            fill = self._latest_fill(con_id)
            if fill is None or not fill.order_ref.startswith(EXIT_REF_PREFIX):
                continue
            if fill.order_ref == own_ref or self._key_of(fill.order_ref) is not None:
                continue
            return (
                f"IB's latest execution of {con_id} is a closing fill this store does not know "
                f"({fill.order_ref}, order {fill.order_id}, client {fill.client_id}, "
                f"{fill.side} {fill.shares:g} @ {fill.price:g}): the position was already exited"
            )
        return None

    def _latest_fill(self, con_id: int) -> BrokerFill | None:
        latest: BrokerFill | None = None
        for f in self.port.fills():
            if f.con_id == con_id and (latest is None or f.time >= latest.time):
                latest = f
        return latest

    def _key_of(self, ref: str) -> str | None:
        """The key behind an orderRef, when it is one of this store's."""
        key = self._refs.get(ref)
        if key is not None:
            return key
        if not ref.startswith(EXIT_REF_PREFIX):
            return None
        candidate = ref[len(EXIT_REF_PREFIX) :]
        if candidate in self._memory_claims:
            return candidate
        if self.claims is None:
            return None
        try:
            found = self.claims.exit_for(candidate)
        except StoreUnavailable:
            return candidate  # cannot tell: treat as ours rather than refuse on a guess
        return candidate if found is not None else None

    def report_refusals(self, position_ids: Iterable[str]) -> dict[str, str]:
        """At a session start: journal and log every held position IB shows exited by an
        order this store does not know (a lost store): no new exit will be placed for it."""
        out: dict[str, str] = {}
        for pid in position_ids:
            why = self.refusal_for([int(pid)], foreign_only=True) if pid.isdigit() else None
            if why is None:
                continue
            out[pid] = why
            if self._refused.get(f"position:{pid}") != why:
                self._refused[f"position:{pid}"] = why
                log.error("position %s: no exit will be placed for it: %s", pid, why)
                self._journal({"status": "not_rearmed", "detail": why}, pid)
        return out

    # ---------------------------------------------------------- reconcile

    def on_ready(self) -> None:
        """A session is set up: settle every claim without an order, send what waits.

        Claims are settled by IB's evidence (an open order or a fill with
        their orderRef); claims this process made and has not sent are sent;
        the rest — claimed before this process started, with no trace at IB,
        the position still held — are reported for an operator, once.
        """
        open_orders = self.port.open_orders()
        fills = self.port.fills()
        live = {o.order_ref: o for o in open_orders if o.order_ref.startswith(EXIT_REF_PREFIX)}
        filled: dict[str, list[BrokerFill]] = {}
        for f in fills:
            if f.order_ref.startswith(EXIT_REF_PREFIX):
                filled.setdefault(f.order_ref, []).append(f)
        pending: dict[str, tuple[str, ...]] = {}
        if self.claims is not None:
            try:
                for p in self.claims.pending_exits():
                    pending[str(p["trigger_id"])] = _split(p.get("position_id"))
            except StoreUnavailable as exc:
                log.error("cannot reconcile closing orders (store unavailable): %s", exc)
        for key, order in self._waiting.items():
            pending.setdefault(key, _pids(order))
        self._check_tracked(open_orders, fills)  # before this call sends anything
        for key, pids in pending.items():
            self._settle(key, pids, live, filled)

    def _settle(
        self,
        key: str,
        pids: tuple[str, ...],
        live: Mapping[str, BrokerOrder],
        filled: Mapping[str, list[BrokerFill]],
    ) -> None:
        ref = exit_order_ref(key)
        self._refs[ref] = key
        working = live.get(ref)
        evidence: BrokerOrder | BrokerFill | None = working
        status = "reconciled"
        if working is None and ref in filled:
            evidence = max(filled[ref], key=lambda f: f.time)
            status = "reconciled_filled"
        if evidence is not None:
            order_id = evidence.order_id
            waiting = self._waiting.pop(key, None)
            reason = waiting.reason if waiting is not None else ""
            self._orders.setdefault(order_id, _Tracked(key, ref, pids, reason))
            detail = {"status": status, "trigger_id": key, "order_ref": ref, "order_id": order_id}
            self._record(key, order_id, detail)
            self._journal(detail, _journal_pid(pids))
            self._update(key, status, pids, order_id, detail)
            return
        waiting_order = self._waiting.get(key)
        if waiting_order is not None:
            self._send(waiting_order)
            return
        if key in self._claimed_here:
            return  # sent or settled in this process; a record may still be retrying
        if pids and all(self.port.held(pid) is None for pid in pids):
            detail = {
                "status": "not_needed",
                "trigger_id": key,
                "order_ref": ref,
                "detail": "IB no longer reports the position",
            }
            self._record(key, 0, detail)
            self._journal(detail, _journal_pid(pids))
            self._update(key, "not_needed", pids, None, detail)
            return
        if key in self._reported:
            return
        self._reported.add(key)
        log.error(
            "closing order %s was claimed before this process started but IB has neither an "
            "open order nor a fill with orderRef %s: it may have been rejected, cancelled, or "
            "never sent; position %s is still held - an operator must decide",
            key,
            ref,
            ",".join(pids) or "?",
        )
        detail = {"status": "unplaced", "trigger_id": key, "order_ref": ref}
        self._journal(detail, _journal_pid(pids))
        self._update(key, "unplaced", pids, None, detail)

    def _check_tracked(
        self, open_orders: Sequence[BrokerOrder], fills: Sequence[BrokerFill]
    ) -> None:
        """Orders we follow that IB no longer shows open: filled while away, or lost."""
        mine = self.port.client_id
        open_ids = {o.order_id for o in open_orders if o.client_id == mine}
        open_refs = {o.order_ref for o in open_orders}
        fill_ids = {f.order_id for f in fills if f.client_id == mine}
        for order_id, tr in self._orders.items():
            if tr.final is not None or order_id in open_ids or tr.order_ref in open_refs:
                continue
            if order_id in fill_ids:
                continue  # its status arrives with the executions, or was already seen
            if not tr.placed_here or f"lost:{order_id}" in self._reported:
                continue
            self._reported.add(f"lost:{order_id}")
            log.error(
                "closing order %d (%s) was placed by this process but IB shows it neither open "
                "nor filled after a reconnect: it was cancelled while away or never reached IB; "
                "an operator must decide",
                order_id,
                tr.order_ref,
            )
            detail = {
                "status": "unknown",
                "trigger_id": tr.key,
                "order_ref": tr.order_ref,
                "order_id": order_id,
            }
            self._journal(detail, _journal_pid(tr.position_ids))
            self._update(tr.key, "unknown", tr.position_ids, order_id, detail)

    def unclaimed(self, stops: Iterable[StopSnapshot]) -> list[StopSnapshot]:
        """Triggered stops whose exit was never claimed (a crash between TRIGGER and claim)."""
        out = []
        for snap in stops:
            tid = snap.trigger_id
            if not snap.triggered or tid is None:
                continue
            if tid in self._claimed_here or tid in self._unclaimed or tid in self._memory_claims:
                continue
            if self.claims is not None:
                try:
                    if self.claims.exit_for(tid) is not None:
                        continue
                except StoreUnavailable as exc:
                    log.error("cannot look for unclaimed triggers (store unavailable): %s", exc)
                    return []
            out.append(snap)
        return out

    def follow(self, keys: Iterable[str]) -> None:
        """Follow the recorded orders of ``keys`` (after a restart): match them by order id too."""
        if self.claims is None:
            return
        for key in keys:
            self._refs[exit_order_ref(key)] = key
            try:
                row = self.claims.exit_for(key)
            except StoreUnavailable:
                return
            if row is None or not row.get("order_id"):
                continue
            order_id = int(row["order_id"])
            pids = _split(row.get("position_id"))
            self._orders.setdefault(order_id, _Tracked(key, exit_order_ref(key), pids, ""))

    # ------------------------------------------------------------ statuses

    def owns(self, order_id: int, client_id: int, order_ref: str) -> bool:
        """Is this order one of our closing orders (by orderRef or by recorded order id)?"""
        if order_ref.startswith(EXIT_REF_PREFIX):
            return True
        return client_id == self.port.client_id and order_id in self._orders

    def on_status(self, u: OrderUpdate) -> None:
        """An order status from IB: successes for the breaker, one journal row per final state."""
        tr = self._tracked(u.order_id, u.client_id, u.order_ref)
        if tr is None:
            return
        status = u.status
        stage = "accepted" if status in _ACCEPTED else "filled" if status == "Filled" else None
        if stage is not None and stage not in tr.stages:
            tr.stages.add(stage)
            if self.success is not None:
                self.success(f"closing order {u.order_id} ({tr.order_ref}) {status}")
        if status not in DONE_STATUSES or tr.final is not None:
            return
        final = status.lower()
        detail: dict[str, Any] = {
            "trigger_id": tr.key,
            "order_id": u.order_id,
            "order_ref": tr.order_ref,
            "filled": u.filled,
            "avg_fill_price": u.avg_fill_price,
        }
        if u.error_code and status != "Filled" and is_order_rejection(u.error_code, u.error_text):
            final = "rejected"
            detail.update(code=u.error_code, detail=u.error_text)
        self._final(u.order_id, tr, final, detail)

    def on_error(self, order_id: int, code: int, message: str) -> bool:
        """An IB error about an order (already counted as a failure); True if it was ours.

        One final state per order: when ib_async has already reported the
        order cancelled because of this error, the rejection was journaled
        then and this only logs.
        """
        tr = self._orders.get(order_id)
        if tr is None:
            return False
        log.error("closing order %d (%s): IB error %d: %s", order_id, tr.order_ref, code, message)
        if tr.final is None:
            detail = {
                "trigger_id": tr.key,
                "order_id": order_id,
                "order_ref": tr.order_ref,
                "code": code,
                "detail": message,
            }
            self._final(order_id, tr, "rejected", detail)
        return True

    def _tracked(self, order_id: int, client_id: int, ref: str) -> _Tracked | None:
        mine = client_id == self.port.client_id
        tr = self._orders.get(order_id) if mine else None
        if tr is not None:
            return tr
        key = self._refs.get(ref) if ref else None
        if key is None and ref.startswith(EXIT_REF_PREFIX):
            key = self._key_of(ref)
        if key is None or not mine:
            return None
        tr = _Tracked(key, ref, (), "")
        self._orders[order_id] = tr
        return tr

    def _final(self, order_id: int, tr: _Tracked, final: str, detail: dict[str, Any]) -> None:
        tr.final = final
        level = logging.INFO if final == "filled" else logging.WARNING
        log.log(level, "closing order %d (%s): %s", order_id, tr.order_ref, final)
        row = {"status": final, **detail}
        self._journal(row, _journal_pid(tr.position_ids))
        self._update(tr.key, final, tr.position_ids, order_id, row)

    # --------------------------------------------------------------- retry

    def tick(self) -> None:
        """Retry what the store refused: claims (then send) and records of sent orders."""
        for key, (order_id, detail) in list(self._unrecorded.items()):
            self._record(key, order_id, detail)
        for order in list(self._unclaimed.values()):
            self._claim_and_send(order)

    @property
    def waiting(self) -> list[str]:
        """Keys claimed by this process and not yet sent."""
        return sorted(self._waiting)

    # ------------------------------------------------------------- journal

    def _note(
        self,
        order: ClosingOrder,
        status: str,
        extra: Mapping[str, Any],
        *,
        order_id: int | None = None,
        level: int | None = None,
    ) -> None:
        row = {**_base(order), "status": status, **extra}
        if level is not None:
            log.log(level, "closing order %s: %s %s", order.key, status, extra.get("detail", ""))
        self._journal(row, _journal_pid(_pids(order)))
        self._update(order.key, status, _pids(order), order_id, row)

    def _journal(self, row: Mapping[str, Any], position_id: str | None) -> None:
        self.journal(_JOURNAL_KIND, row, position_id)

    def _update(
        self,
        key: str,
        status: str,
        pids: tuple[str, ...],
        order_id: int | None,
        detail: Mapping[str, Any],
    ) -> None:
        if self.on_update is None:
            return
        try:
            self.on_update(ClosingUpdate(key, status, pids, order_id, dict(detail)))
        except Exception:
            log.exception("a closing-order listener failed")


# ------------------------------------------------------------------ helpers


def _invalid(order: ClosingOrder) -> str | None:
    if not order.legs:
        return "no legs"
    if order.action not in ("BUY", "SELL"):
        return f"unknown action {order.action!r}"
    if not (math.isfinite(order.qty) and order.qty > 0):
        return f"quantity must be > 0, not {order.qty!r}"
    price = order.limit_price
    if not math.isfinite(price) or (len(order.legs) == 1 and price <= 0):
        return f"no usable limit price: {price!r}"
    for leg in order.legs:
        if leg.action not in ("BUY", "SELL") or leg.ratio < 1:
            return f"bad leg {leg.position_id}: {leg.action} x{leg.ratio}"
    if len({leg.position_id for leg in order.legs}) != len(order.legs):
        return "a position appears in two legs"
    return None


def _pids(order: ClosingOrder) -> tuple[str, ...]:
    return tuple(leg.position_id for leg in order.legs)


def _subject(order: ClosingOrder) -> str:
    return order.subject or ",".join(_pids(order))


def _split(text: object) -> tuple[str, ...]:
    if not isinstance(text, str) or not text:
        return ()
    return tuple(p for p in text.split(",") if p)


def _journal_pid(pids: Sequence[str]) -> str | None:
    return pids[0] if len(pids) == 1 else None


def _base(order: ClosingOrder) -> dict[str, Any]:
    out: dict[str, Any] = {
        "trigger_id": order.key,
        "key": order.key,
        "reason": order.reason,
        "order_ref": exit_order_ref(order.key),
        "action": order.action,
        "qty": order.qty,
    }
    if len(order.legs) > 1:
        out["positions"] = list(_pids(order))
    return out


def _placed_detail(ticket: OrderTicket, order_id: int) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "status": "placed",
        "trigger_id": ticket.key,
        "key": ticket.key,
        "reason": ticket.reason,
        "order_ref": ticket.order_ref,
        "order_id": order_id,
        "action": ticket.action,
        "qty": ticket.qty,
        "limit": ticket.limit_price,
        "tif": ticket.tif,
    }
    if ticket.combo:
        detail["sec_type"] = "BAG"
        detail["legs"] = [
            {"position_id": leg.position_id, "ratio": leg.ratio, "action": action}
            for leg, action in zip(ticket.legs, ticket.leg_actions, strict=True)
        ]
    else:
        leg = ticket.legs[0]
        detail["symbol"] = leg.contract.symbol
        detail["sec_type"] = leg.contract.sec_type.value
        detail["con_id"] = int(leg.position_id) if leg.position_id.isdigit() else None
    return detail

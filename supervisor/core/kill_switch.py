"""The kill switch's hands: after the breaker has halted, cancel and flatten (DESIGN §4.5).

The breaker actor decides a kill (an operator, the trader, or the dead-man
heartbeat) and goes OPEN, sticky, at once; the hub journals it and hands it
here. On a worker thread of its own — never an actor — the switch then:

* ``cancel``: IB global cancel, confirmed from IB's open orders (retried by
  the adapter); each step journaled; an order that will not cancel is an
  error in the journal and the log;
* ``flatten``: cancel, then one closing limit order per open position (a
  strategy's legs as one combo), each under the key ``kill:<id>:<position>``
  that the exit-orders object claims in the store before placing — so a
  restart in the middle resumes the same flatten without a second order.

A kill is never undone by a restart: the breaker's sticky OPEN is in its
saved state, and an unfinished flatten is resumed from the journal.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from actors.messages import Kill, KillMode
from supervisor.core.closing_orders import Held, flatten_orders
from supervisor.core.journal_writer import JournalWriter, Row
from supervisor.core.ports import BrokerPort
from supervisor.store.journal_kind import JournalKind
from supervisor.store.kill_record import KillRecord

log = logging.getLogger(__name__)


class ClosingUpdateLike(Protocol):
    @property
    def key(self) -> str: ...

    @property
    def status(self) -> str: ...


HeldNow = Callable[[], tuple[Sequence[Held], Sequence[tuple[str, Sequence[str]]]]]


@dataclass(slots=True)
class KillProgress:
    """What a kill has done so far, position by position (for ``/v1/state``)."""

    kill: Kill
    cancel: str = ""
    orders: dict[str, str] = field(default_factory=dict)  # position/strategy id -> status


class KillSwitch:
    def __init__(
        self,
        *,
        writer: JournalWriter,
        clock: Callable[[], float],
        broker: Callable[[], BrokerPort | None],
        held: HeldNow,
        slippage_pct: float,
        cancel_timeout_s: float = 10.0,
        connect_wait_s: float = 120.0,
        price_wait_s: float = 60.0,
        poll_s: float = 0.25,
    ) -> None:
        self.writer = writer
        self.clock = clock
        self.broker = broker
        self.held = held
        self.slippage_pct = slippage_pct
        self.cancel_timeout_s = cancel_timeout_s
        self.connect_wait_s = connect_wait_s
        self.price_wait_s = price_wait_s
        self.poll_s = poll_s
        self.progress: KillProgress | None = None
        self._lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def fired(self, kill: Kill, *, skip_cancel: bool = False) -> None:
        """A kill took effect (the breaker is OPEN): cancel/flatten on a worker thread."""
        with self._lock:
            self.progress = KillProgress(kill)
        if kill.mode is KillMode.HALT:
            return
        thread = threading.Thread(
            target=self._execute,
            args=(kill, skip_cancel),
            name=f"kill-{kill.kill_id}",
            daemon=True,
        )
        self.threads.append(thread)
        thread.start()

    def _step(self, kill: Kill, step: str, detail: str = "", **extra: object) -> None:
        payload: dict[str, object] = {
            "kill_id": kill.kill_id,
            "mode": kill.mode.value,
            "step": step,
            "detail": detail,
            **extra,
        }
        with self._lock:
            progress = self.progress
            state = {
                "step": step,
                "cancel": "" if progress is None else progress.cancel,
                "orders": {} if progress is None else dict(progress.orders),
            }
        record = KillRecord(
            kill.kill_id, kill.t, kill.mode.value, kill.cause.value, kill.operator, state
        )
        self.writer.write(Row(self.clock(), JournalKind.KILL, payload, kill=record))

    def _execute(self, kill: Kill, skip_cancel: bool) -> None:
        try:
            self._run(kill, skip_cancel)
        except Exception as exc:  # the kill's halt stands; say loudly what did not happen
            log.exception("kill %s: %s failed", kill.kill_id, kill.mode.value)
            self._step(kill, "error", f"{type(exc).__name__}: {exc}")

    def _run(self, kill: Kill, skip_cancel: bool) -> None:
        broker = self.broker()
        if broker is None:
            log.error("kill %s: no broker to %s through", kill.kill_id, kill.mode.value)
            self._step(kill, "error", "no broker connected: orders were not cancelled")
            self._set_cancel("error: no broker")
            return
        # After a restart the kill resumes as soon as the IB side attaches: wait
        # for its session (positions, open orders known) before acting on IB.
        deadline = time.monotonic() + self.connect_wait_s
        while broker.status() != "connected" and time.monotonic() < deadline:
            time.sleep(self.poll_s)
        if broker.status() != "connected":
            log.error("kill %s: IB not connected: cancel/flatten waits no longer", kill.kill_id)
            self._step(kill, "error", "IB was not connected in time")
            self._set_cancel("error: IB not connected")
            return
        if skip_cancel and kill.mode is KillMode.FLATTEN:
            # resumed after its cancel: cancelling again would cancel this very
            # flatten's orders, which their claims then forbid re-sending
            self._flatten(kill, broker)
            return
        self._step(kill, "cancel_requested")
        self._set_cancel("requested")
        result = broker.cancel_all(kill.kill_id, self.cancel_timeout_s)
        if result.confirmed:
            self._step(kill, "cancel_confirmed", result.detail)
            self._set_cancel("confirmed")
        else:
            log.error(
                "kill %s: %d order(s) would not cancel: %s",
                kill.kill_id,
                result.left,
                result.detail,
            )
            self._step(kill, "cancel_error", result.detail, left=result.left)
            self._set_cancel(f"error: {result.left} order(s) left")
        if kill.mode is KillMode.FLATTEN:
            self._flatten(kill, broker)

    def _flatten(self, kill: Kill, broker: BrokerPort) -> None:
        """One closing order per open position; a position without a quote yet is
        priced again until ``price_wait_s`` (after a restart quotes come back
        paced), then reported, never guessed."""
        placed: set[str] = set()
        deadline = time.monotonic() + self.price_wait_s
        while True:
            held, strategies = self.held()
            orders, unpriced = flatten_orders(kill.kill_id, held, strategies, self.slippage_pct)
            for order in orders:
                target = order.key.rsplit(":", 1)[-1]
                if target in placed:
                    continue
                placed.add(target)
                self._step(
                    kill,
                    "flatten_order",
                    "",
                    position=target,
                    action=order.action,
                    qty=order.qty,
                    limit=order.limit_price,
                )
                broker.place_closing(order)
                self._set_order(target, "placed")
            waiting = [u for u in unpriced if u.position_id not in placed]
            if not waiting or time.monotonic() >= deadline:
                break
            time.sleep(self.poll_s)
        for u in waiting:
            log.error("kill %s: %s not flattened: %s", kill.kill_id, u.position_id, u.detail)
            self._step(kill, "flatten_unpriced", u.detail, position=u.position_id)
            self._set_order(u.position_id, "error")
        if not placed and not waiting:
            self._step(kill, "flatten_done", "nothing was open")
            return
        self._step(kill, "flatten_done", f"{len(placed)} closing order(s) handed to IB")

    def _set_cancel(self, status: str) -> None:
        with self._lock:
            if self.progress is not None:
                self.progress.cancel = status

    def _set_order(self, target: str, status: str) -> None:
        with self._lock:
            if self.progress is not None:
                self.progress.orders[target] = status

    def resume(self, kill: Kill, last_step: str = "") -> None:
        """After a restart: finish an unfinished kill (the claims keep it to one order each).

        A flatten whose cancel was done goes straight to its closing orders.
        """
        after_cancel = last_step.startswith("cancel_") and last_step != "cancel_requested"
        self.fired(kill, skip_cancel=after_cancel or last_step.startswith("flatten"))

    def closing_update(self, update: ClosingUpdateLike) -> None:
        """A step of one of the kill's closing orders, as the IB side reports it."""
        with self._lock:
            progress = self.progress
            if progress is None:
                return
            prefix = f"kill:{progress.kill.kill_id}:"
            if update.key.startswith(prefix):
                progress.orders[update.key.removeprefix(prefix)] = update.status

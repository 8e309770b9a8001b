"""``risk-supervisor demo``: the whole daemon against the built-in IB gateway simulator.

Nothing to install or configure, and no IB account: a :class:`SimulatorThread`
serves a small book on loopback and moves its prices by a seeded random walk,
and the daemon runs exactly as ``run`` does — ``run_daemon`` with the real
ib_async client, the store, the metrics and the HTTP API — against it. A
scripted scenario plays the rest of the world on a seeded schedule:

* the gateway misbehaves now and then: a market-data farm break (2103, then
  2104), a burst of order rejections (201), a dropped socket that the adapter
  reconnects from — together enough to open the circuit breaker, which then
  goes half-open and closes again as the pretend trader's orders succeed;
* a pretend trader asks the pre-trade gate every second (a small order that
  passes, now and then one that breaks the delta limit) and reports its fills
  as successes;
* exit orders the supervisor places when a stop triggers are filled by the
  simulator a moment later, and the position is opened again a few seconds
  after, so stops keep arming and firing.

The view refreshes twice a second in a terminal; when stdout is not a
terminal it prints a plain frame every few seconds instead. Logs go to a file
beside the store, so they do not scribble over the view.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import math
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console
from rich.live import Live

from supervisor import config_toml
from supervisor.commands.live_view import read_frame, render_rich, render_text
from supervisor.commands.run import RunningDaemon, run_daemon
from supervisor.config import Config, parse
from supervisor.simulator import SimPosition, SimulatorThread

__all__ = ["BOOK", "demo_config", "main"]

log = logging.getLogger(__name__)

#: Client id the demo's daemon connects with.
DEMO_CLIENT_ID = 17
#: Simulated seconds per real second of the random walk: large enough that
#: trailing stops visibly arm, trail and fire within a minute.
WALK_SPEED = 4000.0
#: Seconds an exit order rests at the simulator before it is filled.
FILL_AFTER_S = 1.5
#: Seconds after an exit fills before the position is opened again.
REOPEN_AFTER_S = 5.0
#: Length of one fault cycle (farm break, rejections, socket drop).
CYCLE_S = 30.0
#: The demo's daily loss limit ($) and the market fall that reaches it.
LOSS_LIMIT = 8_000.0
CRASH_AT_S = 40.0
CRASH_PCT = 8.0


def _expiry(days: int) -> str:
    return (dt.date.today() + dt.timedelta(days=days)).isoformat()


@dataclass(frozen=True)
class _Holding:
    con_id: int
    symbol: str
    sec_type: str
    qty: float
    und_price: float
    vol: float
    right: str | None = None
    strike: float | None = None
    days: int = 0


#: The demo book: two stocks long, SPY puts short, NVDA calls long.
BOOK: tuple[_Holding, ...] = (
    _Holding(265598, "AAPL", "STK", 300, 190.0, 0.30),
    _Holding(272093, "MSFT", "STK", 100, 410.0, 0.28),
    _Holding(700001, "SPY", "OPT", -5, 500.0, 0.18, "P", 480.0, 45),
    _Holding(700002, "NVDA", "OPT", 10, 125.0, 0.50, "C", 130.0, 30),
)


def demo_config(port: int, store_path: str, record_dir: str | None = None) -> Config:
    """The demo's built-in configuration (validated like any config file)."""
    return parse(demo_document(port, store_path, record_dir))


def demo_document(port: int, store_path: str, record_dir: str | None = None) -> dict[str, Any]:
    """The demo's configuration as the TOML document it would be (stored with a recording)."""
    return dict(
        {
            "ib": {
                "host": "127.0.0.1",
                "port": port,
                "client_id": DEMO_CLIENT_ID,
                "exit_orders": True,
                "connect_timeout_s": 3.0,
                "reconnect_min_s": 0.5,
                "reconnect_max_s": 4.0,
                "probe_interval_s": 5.0,
            },
            "api": {"listen": "127.0.0.1:0"},
            "metrics": {"listen": "127.0.0.1:0"},
            "store": {"path": store_path},
            "trailing_stop": {
                "activation_pct": 0.6,
                "trailing_pct": 0.5,
                "min_move_pct": 0.1,
                "symbols": {
                    "SPY": {"activation_pct": 8.0, "trailing_pct": 6.0, "min_move_pct": 1.0},
                    "NVDA": {"activation_pct": 6.0, "trailing_pct": 5.0, "min_move_pct": 1.0},
                },
            },
            "limits": {
                "max_portfolio_delta": 2500.0,
                "max_portfolio_dollar_delta": 400_000.0,
                "max_portfolio_gamma": 80.0,
                "max_portfolio_vega": 800.0,
                "max_portfolio_theta": 600.0,
                "max_per_symbol_delta": 1500.0,
                "max_single_position_pct": 30.0,
                "max_correlated_pct": 40.0,
                "max_stress_loss": 80_000.0,
            },
            "groups": {"tech": ["AAPL", "MSFT", "NVDA"]},
            # order controls: the pretend trader now and then fat-fingers a
            # size, a price, or loops on one order (DESIGN §4.2)
            "orders": {
                "max_leg_contracts": 50,
                "max_leg_shares": 1000,
                "price_collar_pct": 2.0,
                "max_orders_per_window": 3,
                "order_window_s": 1.0,
            },
            # money: the market falls once a minute; the daily loss latches
            # the breaker until an operator resets it (DESIGN §4.3)
            "loss": {"max_daily_loss": LOSS_LIMIT, "max_pnl_age_s": 30.0},
            "kill": {"flatten_slippage_pct": 1.0},
            "breaker": {
                "failure_threshold": 5,
                "failure_window_s": 20,
                "open_timeout_s": 8,
                "half_open_max_tries": 2,
            },
            "record": {"enabled": record_dir is not None, "dir": record_dir or "recordings"},
        }
    )


def _sim_position(
    h: _Holding, und_price: float | None = None, avg_cost: float | None = None
) -> SimPosition:
    price = und_price if und_price is not None else h.und_price
    if h.sec_type == "STK":
        return SimPosition(h.con_id, h.symbol, "STK", h.qty, avg_cost or price, vol=h.vol)
    return SimPosition(
        h.con_id,
        h.symbol,
        "OPT",
        h.qty,
        avg_cost or 0.0,
        right=h.right,
        strike=h.strike,
        expiry=_expiry(h.days),
        und_price=price,
        vol=h.vol,
    )


def _open_book(sim: SimulatorThread) -> None:
    def setup() -> None:
        g = sim.sim
        for h in BOOK:
            if h.symbol not in g.market.underlyings:
                g.set_underlying(h.symbol, h.und_price, h.vol, push=False)
            pos = _sim_position(h)
            if h.sec_type == "OPT":
                inst = g.market.register(pos.instrument())
                pos.avg_cost = round(g.market.mark(inst) * 100, 2)
            g.add_position(pos)

    sim.call(setup)


class Scenario:
    """The world around the daemon, on a seeded schedule: faults, fills, a trader."""

    def __init__(self, sim: SimulatorThread, running: RunningDaemon, rng: random.Random) -> None:
        self.sim = sim
        self.running = running
        self.rng = rng
        self.t0 = time.monotonic()
        self.actions: list[tuple[float, str, Callable[[], object]]] = []
        self.closed_at: dict[int, float] = {}
        self.next_check = 1.0
        self.checks = 0
        self.cycle = 0
        self.notes: list[str] = []
        self._plan_cycle(0.0)

    # ------------------------------------------------------------- schedule

    def _plan_cycle(self, start: float) -> None:
        """One cycle: farm break, a burst of rejections, a socket drop, jittered by the seed."""
        r = self.rng
        g = self.sim.sim
        farm = start + 2.0 + r.uniform(0.0, 0.5)
        self.actions.append(
            (farm, "market data farm broken (2103)", lambda: self.sim.call(g.inject_error, 2103))
        )
        self.actions.append(
            (farm + 1.5, "market data farm OK (2104)", lambda: self.sim.call(g.inject_error, 2104))
        )
        burst = start + 4.0 + r.uniform(0.0, 0.5)
        for i in range(3):
            order_id = 90_000 + self.cycle * 10 + i
            self.actions.append(
                (
                    burst + 0.3 * i,
                    f"order {order_id} rejected (201)",
                    functools.partial(self.sim.call, g.inject_error, 201, None, order_id),
                )
            )
        drop = start + 6.0 + r.uniform(0.0, 0.5)
        self.actions.append(
            (drop, "gateway dropped every connection", lambda: self.sim.call(g.drop_connections))
        )
        if self.cycle == 1:
            self.actions.append(
                (
                    CRASH_AT_S,
                    f"the market falls {CRASH_PCT:g}% (daily loss limit ${LOSS_LIMIT:,.0f})",
                    self._crash,
                )
            )
        self.actions.sort(key=lambda a: a[0])
        self.cycle += 1
        self.next_cycle = start + CYCLE_S

    def step(self) -> None:
        """Run whatever is due now; never raises (a demo hiccup must not end the demo)."""
        now = time.monotonic() - self.t0
        try:
            while self.actions and self.actions[0][0] <= now:
                _, what, action = self.actions.pop(0)
                self._note(now, what)
                action()
            if now >= self.next_cycle:
                self._plan_cycle(self.next_cycle)
            self._fill_exits(now)
            self._reopen(now)
            if now >= self.next_check:
                self.next_check = now + 1.0
                self._trade()
        except Exception as exc:  # the simulator or daemon may be mid-restart
            log.warning("demo scenario step failed: %r", exc)

    def _crash(self) -> None:
        g = self.sim.sim
        for symbol in ("AAPL", "MSFT", "NVDA"):
            self.sim.call(g.crash, symbol, CRASH_PCT, 10.0)

    def _note(self, now: float, what: str) -> None:
        self.notes.append(f"t+{now:4.1f}s scenario: {what}")
        del self.notes[:-3]

    def _fill_exits(self, now: float) -> None:
        g = self.sim.sim

        def fill() -> list[int]:
            filled = []
            for o in g.open_orders():
                if o.order_ref.startswith("rs-exit:") and time.time() - o.t >= FILL_AFTER_S:
                    g.fill_order(o.order_id, client_id=o.client_id)
                    filled.append(o.con_id)
            return filled

        for con_id in self.sim.call(fill):
            self.closed_at.setdefault(con_id, now)
            self._note(now, f"exit order for {con_id} filled")

    def _reopen(self, now: float) -> None:
        due = [c for c, t in self.closed_at.items() if now - t >= REOPEN_AFTER_S]
        if not due:
            return
        g = self.sim.sim

        def reopen(con_ids: list[int]) -> None:
            for h in BOOK:
                if h.con_id in con_ids and h.con_id not in g.positions:
                    und = g.market.underlyings[h.symbol].price
                    pos = _sim_position(h, und)
                    inst = g.market.register(pos.instrument())
                    mark = g.market.mark(inst)
                    pos.avg_cost = round(mark * (100 if h.sec_type == "OPT" else 1), 2)
                    g.add_position(pos)

        self.sim.call(reopen, due)
        for c in due:
            del self.closed_at[c]
        self._note(now, f"trader reopened {len(due)} position(s)")

    def _trade(self) -> None:
        """The pretend trader: ask the gate, and report a fill of what was allowed."""
        self.checks += 1
        daemon = self.running.daemon
        g = self.sim.sim
        prices = self.sim.call(lambda: {s: u.price for s, u in g.market.underlyings.items()})
        if self.checks % 7 == 3:
            self._mistakes(prices)
            return
        if self.checks % 4 == 0:
            nvda = next(h for h in BOOK if h.symbol == "NVDA")
            leg: dict[str, Any] = {
                "symbol": "NVDA",
                "sec_type": "OPT",
                "qty": 30,
                "right": "C",
                "strike": nvda.strike,
                "expiry": _expiry(nvda.days),
                "multiplier": 100,
            }
        else:
            symbol = "AAPL" if self.checks % 2 else "MSFT"
            leg = {
                "symbol": symbol,
                "sec_type": "STK",
                "qty": 10,
                "price": round(prices[symbol], 2),
            }
        answer = daemon.check({"id": f"demo-{self.checks}", "legs": [leg]})
        if answer.allowed and self.rng.random() < 0.9:
            daemon.success(f"demo trader: order demo-{self.checks} filled")

    def _mistakes(self, prices: dict[str, float]) -> None:
        """What the order controls are for: a fat finger, a wrong price, a loop."""
        daemon = self.running.daemon
        kind = (self.checks // 7) % 3
        aapl = round(prices["AAPL"], 2)
        if kind == 0:
            legs = [{"symbol": "AAPL", "sec_type": "STK", "qty": 10_000, "price": aapl}]
            what = "10 000 shares (max_leg_shares)"
        elif kind == 1:
            wrong = round(aapl * 1.1, 2)
            legs = [{"symbol": "AAPL", "sec_type": "STK", "qty": 10, "price": wrong}]
            what = "a price 10 % through the market (price_collar_pct)"
        else:
            msft = round(prices["MSFT"], 2)
            legs = [{"symbol": "MSFT", "sec_type": "STK", "qty": 1, "price": msft}]
            what = "the same order in a loop (order_rate)"
            for i in range(4):
                daemon.check({"id": f"demo-{self.checks}-loop-{i}", "legs": legs})
        answer = daemon.check({"id": f"demo-{self.checks}-mistake", "legs": legs})
        codes = ", ".join(r.code.value for r in answer.reasons) or "allowed"
        self._note(time.monotonic() - self.t0, f"trader sent {what}: {codes}")


# ------------------------------------------------------------------ main


def _logging_to(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return handler


def main(*, duration: float | None, seed: int, store: str | None, record: str | None = None) -> int:
    """Run the demo until Ctrl-C, SIGTERM, or ``duration`` seconds; 0 on a clean stop."""
    console = Console()
    live_view = console.is_terminal
    workdir = Path(tempfile.mkdtemp(prefix="risk-supervisor-demo-"))
    store_path = store if store is not None else str(workdir / "demo.sqlite")
    log_path = Path(store + ".log") if store is not None else workdir / "demo.log"
    handler = _logging_to(log_path)
    sim = SimulatorThread(
        seed=seed,
        auto_walk=True,
        walk_speed=WALK_SPEED,
        tick_interval=0.25,
        net_liquidation=1_000_000.0,
    )
    stop = threading.Event()
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        # Ctrl-C and SIGTERM only ask for a stop: the shutdown is bounded, and
        # a second Ctrl-C during it must not leave a traceback or a temp dir.
        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    runner: threading.Thread | None = None
    code: list[int] = []
    try:
        port = sim.start()
        _open_book(sim)
        ready = threading.Event()
        holder: list[RunningDaemon] = []

        def on_ready(r: RunningDaemon) -> None:
            holder.append(r)
            ready.set()

        def run() -> None:
            doc = demo_document(port, store_path, record)
            code.append(
                run_daemon(
                    parse(doc),
                    install_signals=False,
                    ready=on_ready,
                    stop_event=stop,
                    config_text=config_toml.dumps(doc),
                )
            )
            ready.set()

        runner = threading.Thread(target=run, name="demo-daemon", daemon=True)
        runner.start()
        if not ready.wait(30.0) or not holder:
            print(f"demo: the daemon did not start (see the log: {log_path})", file=sys.stderr)
            return code[0] if code else 1
        running = holder[0]
        running.adapter.wait_status("connected", 10.0)
        console.print(
            f"[bold]risk-supervisor demo[/] (seed {seed}) — IB gateway simulator on "
            f"127.0.0.1:{port}",
            highlight=False,
        )
        console.print(
            f"  API      {running.api_url}   (try {running.api_url}/v1/state)", highlight=False
        )
        console.print(f"  metrics  {running.metrics_url}", highlight=False)
        console.print(
            f"  store    {store_path}   logs {log_path}"
            + ("" if store is not None else "   (removed at exit)"),
            highlight=False,
        )
        if record is not None:
            console.print(f"  recording every input event to {record}/", highlight=False)
        console.print(
            "  Ctrl-C to stop."
            if duration is None
            else f"  stopping by itself after {duration:g}s.",
            highlight=False,
        )
        _loop(running, sim, random.Random(seed), duration, stop, console, live_view)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        if runner is not None:
            runner.join(30.0)
        sim.stop()
        for signum, old in previous.items():
            signal.signal(signum, old)
        logging.getLogger().removeHandler(handler)
        handler.close()
        if store is None:
            shutil.rmtree(workdir, ignore_errors=True)
    if runner is not None and runner.is_alive():
        print("demo: the daemon did not stop in time", file=sys.stderr)
        return 1
    return code[0] if code else 0


def _loop(
    running: RunningDaemon,
    sim: SimulatorThread,
    rng: random.Random,
    duration: float | None,
    stop: threading.Event,
    console: Console,
    live_view: bool,
) -> None:
    scenario = Scenario(sim, running, rng)
    started = time.monotonic()
    wall0 = running.daemon.clock()
    deadline = math.inf if duration is None else started + duration
    adapter = running.adapter

    def frame_text() -> str:
        return render_text(
            read_frame(running.daemon, adapter.status, notes=scenario.notes), started=wall0
        )

    def done() -> bool:
        return stop.is_set() or time.monotonic() >= deadline or running.daemon.stopped.is_set()

    if live_view:
        with Live(console=console, refresh_per_second=4, transient=False) as live:
            while not done():
                scenario.step()
                frame = read_frame(running.daemon, adapter.status, notes=scenario.notes)
                live.update(render_rich(frame, title="risk-supervisor demo"))
                stop.wait(0.5)
        return
    next_print = started
    while not done():
        scenario.step()
        if time.monotonic() >= next_print:
            next_print += 3.0
            print(frame_text(), flush=True)
        stop.wait(0.25)
    with contextlib.suppress(Exception):
        print(frame_text(), flush=True)

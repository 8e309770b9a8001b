"""Prometheus metrics of the risk supervisor: what Grafana shows and what pages ops.

Every series the dashboard in ``grafana/`` draws and every alert rule there
evaluates is declared here, in one class, against an injected
:class:`prometheus_client.CollectorRegistry`. Nothing is registered on the
global default registry, so tests (and a daemon embedded in another process)
each get their own, and two ``Metrics`` never collide.

The daemon calls these methods from its own event handling, as the actors
publish events (``BreakerTransition``, ``FailureRecorded``, ``StopEvent``,
``CheckAnswer`` …). Nothing here asks an actor anything: reading metrics must
never put a message into a mailbox on the hot path of a pre-trade check or a
trailing stop.

Label sets are closed (breaker states, failure kinds, reasons, outcomes, actor
kinds, connection states) and every one of their series is created at start,
so a ``rate()`` or an alert sees a 0 from the first scrape instead of a series
that appears only when something first goes wrong. The one open label is
``position``, whose series are removed when the position closes, so a long
session does not accumulate dead series.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Final
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

from actors.messages import (
    LIMIT_CODES,
    BreakerState,
    BreakerTransition,
    CheckAnswer,
    FailureKind,
    FailureRecorded,
    ReasonCode,
    StopAction,
    StopEvent,
    StopSnapshot,
    TransitionReason,
)
from supervisor.version import package_version

__all__ = [
    "ACTOR_KINDS",
    "CHECK_DURATION_BUCKETS",
    "CHECK_STAGES",
    "CONTROL_REASONS",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "IB_STATES",
    "KILL_MODES",
    "LIMIT_KEYS",
    "MARGIN_KEYS",
    "METRIC_NAMES",
    "ORDER_CONTROL_KEYS",
    "ORDER_FLOW_CODES",
    "OUTCOMES",
    "PREFIX",
    "REJECTION_REASONS",
    "WHATIF_DURATION_BUCKETS",
    "WHATIF_FAILURES",
    "Metrics",
    "ServedMetrics",
]

log = logging.getLogger(__name__)

PREFIX: Final = "risk_supervisor_"

#: Where the exposition listens unless told otherwise; the example Prometheus
#: scrape config in ``grafana/prometheus/prometheus.yml`` points here.
DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 9108

#: The actor kinds whose mailboxes and restarts are reported.
ACTOR_KINDS: Final[tuple[str, ...]] = ("position", "portfolio", "breaker")

#: The states of the link to Interactive Brokers.
IB_STATES: Final[tuple[str, ...]] = ("connected", "connecting", "disconnected")

#: The two answers of a pre-trade check.
OUTCOMES: Final[tuple[str, ...]] = ("allowed", "denied")

#: The exposure limit on the beta-weighted delta of the portfolio (index shares).
BETA_LIMIT_KEY: Final = "max_beta_weighted_delta"

#: Per-order controls: the size of a leg, the order's notional and premium, and
#: how far its limit price may sit from the market.
ORDER_CONTROL_KEYS: Final[tuple[str, ...]] = (
    "max_leg_contracts",
    "max_leg_shares",
    "max_order_notional",
    "max_order_premium",
    "price_collar_pct",
)

#: Order-flow controls: too many orders, the same order twice, an order inside
#: the cool-down after a stop or a kill.
ORDER_FLOW_CODES: Final[tuple[str, ...]] = ("order_rate", "duplicate_order", "cooldown")

#: The margin gate: IB's what-if initial margin, and the excess liquidity left.
MARGIN_KEYS: Final[tuple[str, ...]] = ("max_init_margin_pct", "min_excess_liquidity")

#: The reason codes of this round's controls, in the order they are listed.
#: :class:`ReasonCode` gains them too; they are written out here so that the
#: rejection label set holds them whichever of the two lands first (duplicates
#: are dropped where they are combined).
CONTROL_REASONS: Final[tuple[str, ...]] = (
    BETA_LIMIT_KEY,
    *ORDER_CONTROL_KEYS,
    *ORDER_FLOW_CODES,
    *MARGIN_KEYS,
)

#: The keys of the risk limits, the label values of ``limit_utilization_ratio``.
LIMIT_KEYS: Final[tuple[str, ...]] = tuple(c.value for c in LIMIT_CODES)

#: Every reason a check can be denied for, in the order an answer lists them
#: (DESIGN §4): portfolio limits, order controls, cooldown, margin, then the
#: data, breaker and malformed-order codes.
REJECTION_REASONS: Final[tuple[str, ...]] = tuple(c.value for c in ReasonCode)

#: How an operator (or the heartbeat watchdog) can kill trading: ``halt`` stops
#: new entries, ``cancel`` also cancels working orders, ``flatten`` also closes
#: every position.
KILL_MODES: Final[tuple[str, ...]] = ("halt", "cancel", "flatten")

#: Why an IB what-if (margin preview) gave no usable answer: it did not come
#: back in time, IB answered with an error, or it came back with the margin
#: fields unset (IB's "no value" sentinel).
WHATIF_FAILURES: Final[tuple[str, ...]] = ("timeout", "error", "unset")

#: The stages of a pre-trade check, in the order a check goes through them:
#: parsing the request, waiting in the gate's queue, evaluating the limits and
#: controls, journalling the decision, sending the answer.
CHECK_STAGES: Final[tuple[str, ...]] = ("parse", "queue", "evaluate", "journal", "respond")

#: Buckets of the what-if latency histogram (seconds): from 1 ms to 10 s. A
#: what-if is a round trip to IB, typically tens to hundreds of milliseconds;
#: the gate gives up well before 10 s.
WHATIF_DURATION_BUCKETS: Final[tuple[float, ...]] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

#: What a configured limit key may look like: it becomes a label value, so it
#: is kept to the identifiers the configuration uses.
_LIMIT_VALUE_KEY = re.compile(r"[a-z][a-z0-9_]*\Z")

#: Buckets of the check latency histogram (seconds): from 5 µs, where an
#: in-memory check of a small portfolio lands, to 100 ms, far past anything a
#: healthy gate should take; slower answers fall into +Inf.
CHECK_DURATION_BUCKETS: Final[tuple[float, ...]] = (
    0.000005,
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
)

#: Every metric name as exposed (counters with their ``_total``), the contract
#: the dashboard and the alert rules are written against.
METRIC_NAMES: Final[tuple[str, ...]] = tuple(
    PREFIX + n
    for n in (
        "circuit_breaker_state",
        "circuit_breaker_transitions_total",
        "circuit_breaker_failures_total",
        "trailing_stops_active",
        "trailing_stop_price",
        "trailing_stop_extreme_price",
        "trailing_stop_triggers_total",
        "portfolio_delta",
        "portfolio_dollar_delta",
        "portfolio_gamma",
        "portfolio_vega",
        "portfolio_theta",
        "limit_utilization_ratio",
        "pretrade_checks_total",
        "pretrade_rejections_total",
        "pretrade_check_duration_seconds",
        "actor_mailbox_depth",
        "actor_restarts_total",
        "ib_connection_state",
        "ib_disconnects_total",
        "positions",
        "build_info",
        # money controls
        "daily_pnl",
        "net_liquidation_estimate",
        "net_liquidation_high_water",
        "net_liquidation_reported",
        "pnl_age_seconds",
        "loss_latched",
        "portfolio_beta_weighted_delta",
        "limit_value",
        # order controls, kill switch, heartbeat
        "kills_total",
        "heartbeat_age_seconds",
        "heartbeat_lost_total",
        # margin gate
        "whatif_duration_seconds",
        "whatif_failures_total",
        # recording, strategies, check stages
        "recording_lines_total",
        "recording_dropped_total",
        "strategies",
        "check_stage_duration_seconds",
    )
)


_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def _known(what: str, value: str, allowed: tuple[str, ...]) -> str | None:
    """``value`` if it is in the closed set ``allowed``; otherwise log it once and give None.

    An unknown value would create a series no panel or alert looks at (and an
    unbounded one would grow the series count without limit), so it is not
    recorded. It is not raised either: these methods run inside the daemon's
    event handling and crash recovery, and a metrics mistake must never stop
    a restart or a stop event. The warning names the caller's bug instead.
    """
    if value in allowed:
        return value
    with _warned_lock:
        first = (what, value) not in _warned
        _warned.add((what, value))
    if first:
        log.warning(
            "metrics: unknown %s %r not recorded; expected one of %s",
            what,
            value,
            ", ".join(allowed),
        )
    return None


class ServedMetrics:
    """A running HTTP exposition of one registry; ``close()`` stops it.

    ``port`` is the port actually bound, so ``Metrics.serve(port=0)`` (any free
    port, as tests use) can tell its caller where to scrape.
    """

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        self._closed = False
        self.host: str = str(server.server_address[0])
        self.port: int = int(server.server_address[1])

    @property
    def url(self) -> str:
        """The scrape URL, e.g. ``http://127.0.0.1:9108/metrics``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and release the port; calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5.0)

    def __enter__(self) -> ServedMetrics:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Metrics:
    """All the supervisor's metrics, on one registry, updated from its events.

    The methods keep a little state of their own (which positions are open,
    which of them have an armed stop) because ``positions`` and
    ``trailing_stops_active`` are derived from that state: counting them here
    keeps the gauges consistent with the per-position series, whatever order
    the events come in. A lock guards it, as events may be handled on more
    than one thread.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry: CollectorRegistry = (
            registry if registry is not None else CollectorRegistry(auto_describe=True)
        )
        self._lock = threading.Lock()
        self._positions: set[str] = set()
        self._active_stops: set[str] = set()
        # When the last daily P&L and the last heartbeat arrived (time.monotonic()):
        # their ages are computed at scrape time, so they keep growing even if
        # the code that would update them is stuck. Until the first one arrives
        # the age counts from this object's creation, i.e. the daemon's start.
        created = time.monotonic()
        self._pnl_at = created
        self._heartbeat_at = created
        self._limit_value_keys: set[str] = set()
        r = self.registry
        p = PREFIX

        # ------------------------------------------------------ circuit breaker
        self.breaker_state_gauge = Gauge(
            p + "circuit_breaker_state",
            "Circuit breaker state, one-hot: 1 for the current state, 0 for the others "
            "(boolean). closed: entries allowed; open: new entries halted; half_open: "
            "trial entries.",
            ["state"],
            registry=r,
        )
        self.breaker_transitions = Counter(
            p + "circuit_breaker_transitions",
            "Circuit breaker transitions, by the state entered (count of transitions).",
            ["to_state"],
            registry=r,
        )
        self.breaker_failures = Counter(
            p + "circuit_breaker_failures",
            "Systemic failures reported to the circuit breaker, by kind, whatever its "
            "state (count of failures).",
            ["kind"],
            registry=r,
        )

        # ------------------------------------------------------ trailing stops
        self.stops_active = Gauge(
            p + "trailing_stops_active",
            "Open positions whose trailing stop is armed (count of positions).",
            registry=r,
        )
        self.stop_price = Gauge(
            p + "trailing_stop_price",
            "Current trailing stop level of a position (price of one unit of the "
            "contract, in its quote currency, $).",
            ["position"],
            registry=r,
        )
        self.stop_extreme_price = Gauge(
            p + "trailing_stop_extreme_price",
            "Most favourable reference price of a position since its stop armed: the "
            "stop trails it (price of one unit of the contract, $).",
            ["position"],
            registry=r,
        )
        self.stop_triggers = Counter(
            p + "trailing_stop_triggers",
            "Trailing stops whose price was crossed, each asking for an exit (count of triggers).",
            registry=r,
        )

        # ------------------------------------------------------ portfolio
        self.portfolio_delta = Gauge(
            p + "portfolio_delta",
            "Portfolio delta: position deltas summed (share-equivalents of the underlyings).",
            registry=r,
        )
        self.portfolio_dollar_delta = Gauge(
            p + "portfolio_dollar_delta",
            "Portfolio dollar delta: position delta times underlying price, summed (dollars, $).",
            registry=r,
        )
        self.portfolio_gamma = Gauge(
            p + "portfolio_gamma",
            "Portfolio gamma: position gammas summed (share-equivalents of delta per $1 "
            "move of the underlying).",
            registry=r,
        )
        self.portfolio_vega = Gauge(
            p + "portfolio_vega",
            "Portfolio vega: position vegas summed ($ per volatility point).",
            registry=r,
        )
        self.portfolio_theta = Gauge(
            p + "portfolio_theta",
            "Portfolio theta: position thetas summed ($ per day).",
            registry=r,
        )
        self.limit_utilization = Gauge(
            p + "limit_utilization_ratio",
            "Use of a risk limit, |usage| / limit (ratio; 1.0 = at the limit, above 1 = breached).",
            ["limit"],
            registry=r,
        )

        # ------------------------------------------------------ pre-trade gate
        self.pretrade_checks = Counter(
            p + "pretrade_checks",
            "Pre-trade checks answered, by outcome (count of checks).",
            ["outcome"],
            registry=r,
        )
        self.pretrade_rejections = Counter(
            p + "pretrade_rejections",
            "Reasons given by denied pre-trade checks: one per distinct reason per "
            "denied check (count of reasons).",
            ["reason"],
            registry=r,
        )
        self.pretrade_duration = Histogram(
            p + "pretrade_check_duration_seconds",
            "Time from receiving a pre-trade check to answering it (seconds).",
            buckets=CHECK_DURATION_BUCKETS,
            registry=r,
        )

        # ------------------------------------------------------ actors, broker
        self.mailbox_depth_gauge = Gauge(
            p + "actor_mailbox_depth",
            "Messages waiting in the mailboxes of an actor kind, summed over the actors of "
            "that kind (count of messages).",
            ["actor_kind"],
            registry=r,
        )
        self.actor_restarts = Counter(
            p + "actor_restarts",
            "Actors restarted by the supervisor after a crash, by actor kind (count of restarts).",
            ["actor_kind"],
            registry=r,
        )
        self.ib_connection_state = Gauge(
            p + "ib_connection_state",
            "State of the link to Interactive Brokers, one-hot: 1 for the current state, "
            "0 for the others (boolean).",
            ["state"],
            registry=r,
        )
        self.ib_disconnects = Counter(
            p + "ib_disconnects",
            "Times the connection to Interactive Brokers was lost (count of disconnects).",
            registry=r,
        )
        self.quotes_coalesced = Counter(
            p + "quotes_coalesced",
            "Quotes folded into a newer one in an overloaded position mailbox, the peak and "
            "trough carried along (count of quotes). Growing means stops run behind the feed.",
            registry=r,
        )
        self.positions = Gauge(
            p + "positions",
            "Open positions the supervisor tracks (count of positions).",
            registry=r,
        )
        self.build_info = Gauge(
            p + "build_info",
            "Build of the running supervisor: always 1, the version is in the label (info).",
            ["version"],
            registry=r,
        )

        # ------------------------------------------------------ money controls
        self.daily_pnl_gauge = Gauge(
            p + "daily_pnl",
            "Daily profit and loss of the account as IB reports it (dollars, $); NaN until "
            "IB first reports it.",
            registry=r,
        )
        self.nlv_estimate_gauge = Gauge(
            p + "net_liquidation_estimate",
            "Net liquidation value as the supervisor estimates it between IB's reports "
            "(dollars, $); NaN until first estimated.",
            registry=r,
        )
        self.nlv_high_water_gauge = Gauge(
            p + "net_liquidation_high_water",
            "Highest net liquidation value seen, the reference of the drawdown limit "
            "(dollars, $); NaN until first estimated.",
            registry=r,
        )
        self.nlv_reported_gauge = Gauge(
            p + "net_liquidation_reported",
            "The last net liquidation value IB reported (dollars, $); NaN until IB first "
            "reports it.",
            registry=r,
        )
        self.pnl_age_gauge = Gauge(
            p + "pnl_age_seconds",
            "Age of the last daily P&L received from IB, measured at scrape time (seconds); "
            "counted from the supervisor's start until the first one arrives.",
            registry=r,
        )
        self.pnl_age_gauge.set_function(lambda: time.monotonic() - self._pnl_at)
        self.loss_latched_gauge = Gauge(
            p + "loss_latched",
            "1 while the circuit breaker is latched open by a loss_limit trip, which only "
            "an operator can clear; 0 otherwise (boolean).",
            registry=r,
        )
        self.beta_weighted_delta_gauge = Gauge(
            p + "portfolio_beta_weighted_delta",
            "Portfolio delta weighted by each underlying's beta to the reference index "
            "(index shares, share-equivalents of the index).",
            registry=r,
        )
        self.limit_value_gauge = Gauge(
            p + "limit_value",
            "Configured value of a limit, cap or control, by its configuration key (in the "
            "key's own unit: $, %, seconds, contracts, shares, index shares …); a limit "
            "that is not configured has no series.",
            ["limit"],
            registry=r,
        )

        # ------------------------------------------------------ order controls
        self.kills = Counter(
            p + "kills",
            "Kill switch uses, by mode: halt (no new entries), cancel (also cancel working "
            "orders), flatten (also close every position) (count of kills).",
            ["mode"],
            registry=r,
        )
        self.heartbeat_age_gauge = Gauge(
            p + "heartbeat_age_seconds",
            "Time since the trader's last heartbeat, measured at scrape time (seconds); "
            "counted from the supervisor's start until the first one arrives.",
            registry=r,
        )
        self.heartbeat_age_gauge.set_function(lambda: time.monotonic() - self._heartbeat_at)
        self.heartbeats_lost = Counter(
            p + "heartbeat_lost",
            "Times the trader's heartbeat was declared lost after heartbeat_timeout_s "
            "(count of losses).",
            registry=r,
        )

        # ------------------------------------------------------ margin gate
        self.whatif_duration = Histogram(
            p + "whatif_duration_seconds",
            "Time an IB what-if (margin preview) took, answered or not (seconds).",
            buckets=WHATIF_DURATION_BUCKETS,
            registry=r,
        )
        self.whatif_failures = Counter(
            p + "whatif_failures",
            "IB what-ifs that gave no usable margin, by reason: timeout, error, unset "
            "(count of what-ifs).",
            ["reason"],
            registry=r,
        )

        # ------------------------------------------------------ recording, strategies
        self.recording_lines = Counter(
            p + "recording_lines",
            "Lines written by the session recorder (count of lines).",
            registry=r,
        )
        self.recording_dropped = Counter(
            p + "recording_dropped",
            "Lines the session recorder dropped because its queue was full or its file "
            "could not be written (count of lines).",
            registry=r,
        )
        self.strategies_gauge = Gauge(
            p + "strategies",
            "Live strategy (spread) stops the supervisor watches (count of strategies).",
            registry=r,
        )
        self.check_stage_duration = Histogram(
            p + "check_stage_duration_seconds",
            "Time a pre-trade check spent in each stage: parse, queue, evaluate, journal, "
            "respond (seconds).",
            ["stage"],
            buckets=CHECK_DURATION_BUCKETS,
            registry=r,
        )

        self._preinitialise()

    def _preinitialise(self) -> None:
        """Create every series of every closed label set, so each exists from the start.

        The breaker starts closed (its state on a fresh start: the daemon calls
        :meth:`breaker_state` with the restored state before serving) and IB
        starts disconnected (nothing is connected before the client connects),
        so both one-hot gauges hold exactly one 1 at every scrape.
        ``limit_utilization_ratio`` is left empty until the portfolio first
        measures a limit: a 0 would claim a measurement that was not made, and
        a disabled limit should have no series at all.
        """
        for state in BreakerState:
            self.breaker_transitions.labels(to_state=state.value)
        for kind in FailureKind:
            self.breaker_failures.labels(kind=kind.value)
        for outcome in OUTCOMES:
            self.pretrade_checks.labels(outcome=outcome)
        for reason in REJECTION_REASONS:
            self.pretrade_rejections.labels(reason=reason)
        for actor_kind in ACTOR_KINDS:
            self.mailbox_depth_gauge.labels(actor_kind=actor_kind).set(0)
            self.actor_restarts.labels(actor_kind=actor_kind)
        self.breaker_state(BreakerState.CLOSED)
        self.ib_state("disconnected")
        self.stops_active.set(0)
        self.positions.set(0)
        self.build_info.labels(version=package_version()).set(1)
        # Money: NaN, not 0, until reported: a 0 would read as a flat day or an
        # empty account, and NaN compares false in every alert.
        for gauge in (
            self.daily_pnl_gauge,
            self.nlv_estimate_gauge,
            self.nlv_high_water_gauge,
            self.nlv_reported_gauge,
        ):
            gauge.set(math.nan)
        self.loss_latched_gauge.set(0)
        for mode in KILL_MODES:
            self.kills.labels(mode=mode)
        for reason in WHATIF_FAILURES:
            self.whatif_failures.labels(reason=reason)
        for stage in CHECK_STAGES:
            self.check_stage_duration.labels(stage=stage)
        self.strategies_gauge.set(0)

    # ---------------------------------------------------------- circuit breaker

    def breaker_state(self, state: BreakerState) -> None:
        """Set the one-hot state gauge without counting a transition (start, restore)."""
        for s in BreakerState:
            self.breaker_state_gauge.labels(state=s.value).set(1 if s is state else 0)

    def breaker_transition(self, msg: BreakerTransition) -> None:
        """Follow a transition: flip the one-hot state and count the state entered.

        A transition that only restores the state after a restart
        (``TransitionReason.RESTORED``) or that does not change the state is
        not counted: it is not the breaker tripping again, and counting it
        would make a restart look like flapping.
        """
        self.breaker_state(msg.to_state)
        if msg.cause.reason is TransitionReason.RESTORED or msg.from_state is msg.to_state:
            return
        self.breaker_transitions.labels(to_state=msg.to_state.value).inc()

    def failure(self, msg: FailureRecorded) -> None:
        """Count a failure the breaker received, by kind, in whatever state it was."""
        self.breaker_failures.labels(kind=msg.failure.kind.value).inc()

    # ---------------------------------------------------------- trailing stops

    def stop_event(self, msg: StopEvent) -> None:
        """Follow a trailing stop's decision.

        ACTIVATE arms the stop, UPDATE moves it (and arms it too, so a stop
        restored after a restart that reports an UPDATE first is still
        counted), TRIGGER counts a trigger and disarms it. Each one sets the
        position's stop and extreme gauges to the levels it carries; they stay
        until the position closes, so the panel shows where the stop was when
        it fired. A stop event for a position not yet seen opens it here: a
        position has a stop only while it is open.
        """
        with self._lock:
            self._positions.add(msg.id)
            if msg.action is StopAction.TRIGGER:
                self._active_stops.discard(msg.id)
            else:
                self._active_stops.add(msg.id)
            self._set_levels(msg.id, msg.stop, msg.extreme)
            self._sync_counts()
        if msg.action is StopAction.TRIGGER:
            self.stop_triggers.inc()

    def stop_levels(self, position_id: str, stop: float | None, extreme: float) -> None:
        """Set a position's stop and extreme prices; ``stop=None`` removes the stop series.

        Does not arm or disarm the stop: that follows the stop events (or
        :meth:`stop_activated` / :meth:`stop_deactivated`).
        """
        with self._lock:
            self._positions.add(position_id)
            self._set_levels(position_id, stop, extreme)
            self._sync_counts()

    def stop_activated(self, position_id: str) -> None:
        """Count a position's stop as armed (when its arming is learnt other than by event)."""
        with self._lock:
            self._positions.add(position_id)
            self._active_stops.add(position_id)
            self._sync_counts()

    def stop_deactivated(self, position_id: str) -> None:
        """Count a position's stop as no longer armed; its price series stay until close."""
        with self._lock:
            self._active_stops.discard(position_id)
            self._sync_counts()

    def stop_restored(self, snapshot: StopSnapshot) -> None:
        """Take a position's whole stop state as restored from the store after a restart.

        The stop counts as armed when the snapshot says it is active and has
        not triggered, which is what a live ACTIVATE/UPDATE/TRIGGER sequence
        would have left.
        """
        with self._lock:
            self._positions.add(snapshot.id)
            if snapshot.active and not snapshot.triggered:
                self._active_stops.add(snapshot.id)
            else:
                self._active_stops.discard(snapshot.id)
            self._set_levels(snapshot.id, snapshot.stop, snapshot.extreme)
            self._sync_counts()

    def position_opened(self, position_id: str) -> None:
        """Count an open position (opening one already counted changes nothing)."""
        with self._lock:
            self._positions.add(position_id)
            self._sync_counts()

    def position_closed(self, position_id: str) -> None:
        """Forget a position: drop its series, its stop, and its place in the counts."""
        with self._lock:
            self._positions.discard(position_id)
            self._active_stops.discard(position_id)
            self._remove_levels(position_id)
            self._sync_counts()

    def _set_levels(self, position_id: str, stop: float | None, extreme: float) -> None:
        if stop is None:
            with contextlib.suppress(KeyError):
                self.stop_price.remove(position_id)
        else:
            self.stop_price.labels(position=position_id).set(stop)
        self.stop_extreme_price.labels(position=position_id).set(extreme)

    def _remove_levels(self, position_id: str) -> None:
        # prometheus-client before 0.21 raises KeyError for a series never created.
        for gauge in (self.stop_price, self.stop_extreme_price):
            with contextlib.suppress(KeyError):
                gauge.remove(position_id)

    def _sync_counts(self) -> None:
        self.positions.set(len(self._positions))
        self.stops_active.set(len(self._active_stops))

    # ---------------------------------------------------------- portfolio

    def portfolio(
        self, delta: float, dollar_delta: float, gamma: float, vega: float, theta: float
    ) -> None:
        """Set the portfolio Greeks (position Greeks summed; units in each HELP)."""
        self.portfolio_delta.set(delta)
        self.portfolio_dollar_delta.set(dollar_delta)
        self.portfolio_gamma.set(gamma)
        self.portfolio_vega.set(vega)
        self.portfolio_theta.set(theta)

    def utilization(self, limit: str, ratio: float) -> None:
        """Set how much of a limit is used, |usage| / limit (1.0 = at the limit).

        ``limit`` is a limit key (``max_portfolio_vega`` …) or the matching
        :class:`ReasonCode`.
        """
        key = _known("limit", str(limit), LIMIT_KEYS)
        if key is not None:
            self.limit_utilization.labels(limit=key).set(ratio)

    def utilization_cleared(self, limit: str) -> None:
        """Drop a limit's utilization series, for a limit that was disabled."""
        key = _known("limit", str(limit), LIMIT_KEYS)
        if key is not None:
            with contextlib.suppress(KeyError):
                self.limit_utilization.remove(key)

    # ---------------------------------------------------------- pre-trade gate

    def check(self, answer: CheckAnswer, duration_s: float) -> None:
        """Count a pre-trade answer, its reasons if denied, and how long it took.

        A denied answer counts once under each distinct reason code it gives
        (two symbols over ``max_per_symbol_delta`` count one rejection for that
        reason), so the rejection rate by reason reads as "checks denied
        because of X". Reasons on an allowed answer are not rejections.
        """
        outcome = "allowed" if answer.allowed else "denied"
        self.pretrade_checks.labels(outcome=outcome).inc()
        if not answer.allowed:
            for code in dict.fromkeys(r.code.value for r in answer.reasons):
                self.pretrade_rejections.labels(reason=code).inc()
        self.pretrade_duration.observe(max(0.0, duration_s))

    # ---------------------------------------------------------- actors, broker

    def mailbox_depth(self, kind: str, depth: int) -> None:
        """Set the messages waiting in the mailboxes of an actor kind, summed over its actors."""
        known = _known("actor kind", kind, ACTOR_KINDS)
        if known is not None:
            self.mailbox_depth_gauge.labels(actor_kind=known).set(depth)

    def actor_restart(self, kind: str) -> None:
        """Count an actor restarted by the supervisor."""
        known = _known("actor kind", kind, ACTOR_KINDS)
        if known is not None:
            self.actor_restarts.labels(actor_kind=known).inc()

    def ib_state(self, state: str) -> None:
        """Set the one-hot IB connection state (connected, connecting, disconnected)."""
        known = _known("IB connection state", state, IB_STATES)
        if known is None:
            return
        for s in IB_STATES:
            self.ib_connection_state.labels(state=s).set(1 if s == known else 0)

    def ib_disconnect(self) -> None:
        """Count a lost IB connection (the state itself is set by :meth:`ib_state`)."""
        self.ib_disconnects.inc()

    def coalesced(self, total: int) -> None:
        """Bring the coalesced-quotes counter up to the dispatcher's running ``total``."""
        current = self.quotes_coalesced._value.get()
        if total > current:
            self.quotes_coalesced.inc(total - current)

    # ---------------------------------------------------------- money controls

    def daily_pnl(self, pnl: float, received_at: float | None = None) -> None:
        """Set IB's daily P&L ($) and restart its age from when it arrived.

        ``received_at`` is a :func:`time.monotonic` reading (default: now); pass
        it when the value is handled some time after it arrived, so
        ``pnl_age_seconds`` is the age the ``max_pnl_age_s`` control sees.
        """
        self.daily_pnl_gauge.set(pnl)
        self._pnl_at = time.monotonic() if received_at is None else received_at

    def net_liquidation(self, estimate: float, high_water: float) -> None:
        """Set the supervisor's NLV estimate and its high-water mark ($).

        Set together because the drawdown control compares the two: a panel
        that showed one updated and not the other would show a false drawdown.
        """
        self.nlv_estimate_gauge.set(estimate)
        self.nlv_high_water_gauge.set(high_water)

    def net_liquidation_reported(self, nlv: float) -> None:
        """Set the last net liquidation value IB reported ($), which the estimate follows."""
        self.nlv_reported_gauge.set(nlv)

    def loss_latch(self, latched: bool) -> None:
        """Set whether the breaker is latched open by a ``loss_limit`` trip.

        The alert LossLimitTripped pages on it. Call it with ``True`` on the
        trip and on a restart that restores a latched breaker, and with
        ``False`` when an operator clears the latch.
        """
        self.loss_latched_gauge.set(1 if latched else 0)

    def beta_weighted_delta(self, delta: float) -> None:
        """Set the portfolio's beta-weighted delta (index shares).

        Its use of ``max_beta_weighted_delta`` goes through :meth:`utilization`
        like the other limits.
        """
        self.beta_weighted_delta_gauge.set(delta)

    def limit_values(self, values: Mapping[str, float | None]) -> None:
        """Publish the configured value of every limit, cap and control, by its key.

        Called at start (and after a configuration reload) with the whole
        configuration: keys with ``None`` and keys not given any more lose
        their series, so a disabled limit shows no line on the dashboard and
        no alert compares against it. ``PnlFeedStale`` reads
        ``max_pnl_age_s`` here; the P&L panel draws ``-max_daily_loss``. Keys
        must be configuration identifiers (``[a-z][a-z0-9_]*``); another key
        is logged once and not recorded.
        """
        wanted: dict[str, float] = {}
        for key, value in values.items():
            if not _LIMIT_VALUE_KEY.match(key):
                _known("limit key", key, ("configuration keys matching [a-z][a-z0-9_]*",))
            elif value is not None:
                wanted[key] = float(value)
        with self._lock:
            for key in self._limit_value_keys - wanted.keys():
                with contextlib.suppress(KeyError):
                    self.limit_value_gauge.remove(key)
            for key, value in wanted.items():
                self.limit_value_gauge.labels(limit=key).set(value)
            self._limit_value_keys = set(wanted)

    # ---------------------------------------------------------- order controls

    def kill(self, mode: str) -> None:
        """Count a use of the kill switch: ``halt``, ``cancel`` or ``flatten``.

        The alert KillSwitchUsed pages on any use, so whoever is on call knows
        trading was stopped by hand or by the watchdog.
        """
        known = _known("kill mode", mode, KILL_MODES)
        if known is not None:
            self.kills.labels(mode=known).inc()

    def heartbeat(self, received_at: float | None = None) -> None:
        """Note a heartbeat from the trader: ``heartbeat_age_seconds`` restarts from it.

        ``received_at`` is a :func:`time.monotonic` reading (default: now).
        """
        self._heartbeat_at = time.monotonic() if received_at is None else received_at

    def heartbeat_lost(self) -> None:
        """Count a heartbeat declared lost after ``heartbeat_timeout_s`` (alert: HeartbeatLost)."""
        self.heartbeats_lost.inc()

    # ---------------------------------------------------------- margin gate

    def whatif(self, duration_s: float, failure: str | None = None) -> None:
        """Record an IB what-if: how long it took and, if it gave no usable margin, why.

        Every what-if is timed, failed ones included (a timeout is observed
        at the time waited), so the latency panel shows what the gate waited.
        ``failure`` is ``timeout``, ``error`` or ``unset`` (alert:
        MarginWhatIfFailing).
        """
        self.whatif_duration.observe(max(0.0, duration_s))
        if failure is not None:
            known = _known("what-if failure", failure, WHATIF_FAILURES)
            if known is not None:
                self.whatif_failures.labels(reason=known).inc()

    # ---------------------------------------------------------- recording, strategies

    def recorded(self, lines: int = 1) -> None:
        """Count lines the session recorder wrote."""
        if lines > 0:
            self.recording_lines.inc(lines)

    def recording_drop(self, lines: int = 1) -> None:
        """Count lines the session recorder dropped (alert: RecordingDropping)."""
        if lines > 0:
            self.recording_dropped.inc(lines)

    def strategies(self, live: int) -> None:
        """Set the number of live strategy (spread) stops."""
        self.strategies_gauge.set(live)

    def check_stage(self, stage: str, duration_s: float) -> None:
        """Observe the time a pre-trade check spent in one stage.

        ``stage`` is one of ``parse``, ``queue``, ``evaluate``, ``journal``,
        ``respond``; the stages of one check add up to about its
        ``pretrade_check_duration_seconds``, and the panel shows which one
        the time goes to.
        """
        known = _known("check stage", stage, CHECK_STAGES)
        if known is not None:
            self.check_stage_duration.labels(stage=known).observe(max(0.0, duration_s))

    # ---------------------------------------------------------- exposition

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format, as a scrape would get it."""
        return generate_latest(self.registry)

    def serve(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> ServedMetrics:
        """Serve ``/metrics`` over HTTP on a daemon thread; ``port=0`` binds any free port.

        Bound to loopback by default: the exposition is for a Prometheus on
        the same host (or a tunnel), and positions are in the labels.
        """
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        return ServedMetrics(server, thread)

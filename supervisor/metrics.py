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
import threading
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
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "IB_STATES",
    "LIMIT_KEYS",
    "METRIC_NAMES",
    "OUTCOMES",
    "PREFIX",
    "REJECTION_REASONS",
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

#: The keys of the risk limits, the label values of ``limit_utilization_ratio``.
LIMIT_KEYS: Final[tuple[str, ...]] = tuple(c.value for c in LIMIT_CODES)

#: Every reason a check can be denied for: the limit keys, then the others.
REJECTION_REASONS: Final[tuple[str, ...]] = LIMIT_KEYS + tuple(
    c.value for c in ReasonCode if not c.is_limit
)

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

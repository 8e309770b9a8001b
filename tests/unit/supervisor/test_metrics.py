"""The metrics contract: names, HELP with units, pre-initialised labels, and event handling.

Every test builds its own ``Metrics()`` on a fresh registry. The expected
names, types and label values are written out here from the design document
rather than imported from ``supervisor.metrics``, so a change there that
breaks the contract the dashboard and alerts rely on fails here.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from actors.messages import (
    BreakerState,
    BreakerTransition,
    CheckAnswer,
    Contract,
    Failure,
    FailureKind,
    FailureRecorded,
    Reason,
    ReasonCode,
    SecType,
    StopAction,
    StopEvent,
    StopSnapshot,
    TransitionCause,
    TransitionReason,
)
from supervisor.metrics import Metrics
from supervisor.version import package_version

P = "risk_supervisor_"

# name as exposed -> (type, a fragment of the unit its HELP must state)
CONTRACT: dict[str, tuple[str, str]] = {
    # beyond DESIGN §6: overload coalescing of quotes, which the performance work asks to count
    "quotes_coalesced_total": ("counter", "count"),
    "circuit_breaker_state": ("gauge", "boolean"),
    "circuit_breaker_transitions_total": ("counter", "count"),
    "circuit_breaker_failures_total": ("counter", "count"),
    "trailing_stops_active": ("gauge", "count"),
    "trailing_stop_price": ("gauge", "price"),
    "trailing_stop_extreme_price": ("gauge", "price"),
    "trailing_stop_triggers_total": ("counter", "count"),
    "portfolio_delta": ("gauge", "share-equivalents"),
    "portfolio_dollar_delta": ("gauge", "$"),
    "portfolio_gamma": ("gauge", "share-equivalents"),
    "portfolio_vega": ("gauge", "$ per volatility point"),
    "portfolio_theta": ("gauge", "$ per day"),
    "limit_utilization_ratio": ("gauge", "ratio"),
    "pretrade_checks_total": ("counter", "count"),
    "pretrade_rejections_total": ("counter", "count"),
    "pretrade_check_duration_seconds": ("histogram", "seconds"),
    "actor_mailbox_depth": ("gauge", "messages"),
    "actor_restarts_total": ("counter", "count"),
    "ib_connection_state": ("gauge", "boolean"),
    "ib_disconnects_total": ("counter", "count"),
    "positions": ("gauge", "count"),
    "build_info": ("gauge", "info"),
    # this round: money, order controls, margin, kill switch, strategies, recording
    "daily_pnl": ("gauge", "$"),
    "net_liquidation_estimate": ("gauge", "$"),
    "net_liquidation_high_water": ("gauge", "$"),
    "net_liquidation_reported": ("gauge", "$"),
    "pnl_age_seconds": ("gauge", "seconds"),
    "loss_latched": ("gauge", "1 while"),
    "portfolio_beta_weighted_delta": ("gauge", "index shares"),
    "limit_value": ("gauge", "unit"),
    "kills_total": ("counter", "count"),
    "heartbeat_age_seconds": ("gauge", "seconds"),
    "heartbeat_lost_total": ("counter", "count"),
    "whatif_duration_seconds": ("histogram", "seconds"),
    "whatif_failures_total": ("counter", "count"),
    "recording_lines_total": ("counter", "count"),
    "recording_dropped_total": ("counter", "count"),
    "strategies": ("gauge", "count"),
    "check_stage_duration_seconds": ("histogram", "seconds"),
}

LIMITS = (
    "max_portfolio_delta",
    "max_portfolio_dollar_delta",
    "max_portfolio_gamma",
    "max_portfolio_vega",
    "max_portfolio_theta",
    "max_per_symbol_delta",
    "max_beta_weighted_delta",
    "max_single_position_pct",
    "max_correlated_pct",
    "max_stress_loss",
)
PREINITIALISED: dict[str, tuple[str, tuple[str, ...]]] = {
    "circuit_breaker_state": ("state", ("closed", "open", "half_open")),
    "circuit_breaker_transitions_total": ("to_state", ("closed", "open", "half_open")),
    "circuit_breaker_failures_total": (
        "kind",
        (
            "order_rejected",
            "data_feed",
            "connectivity",
            "margin",
            "slippage",
            "other",
            "stop_guard",
            "loss_limit",
        ),
    ),
    "pretrade_checks_total": ("outcome", ("allowed", "denied")),
    "pretrade_rejections_total": (
        "reason",
        (
            *LIMITS,
            "max_leg_contracts",
            "max_leg_shares",
            "max_order_notional",
            "max_order_premium",
            "price_collar_pct",
            "order_rate",
            "duplicate_order",
            "cooldown",
            "max_init_margin_pct",
            "min_excess_liquidity",
            "breaker_open",
            "breaker_half_open_busy",
            "stale_data",
            "invalid_order",
        ),
    ),
    "actor_mailbox_depth": ("actor_kind", ("position", "portfolio", "breaker")),
    "actor_restarts_total": ("actor_kind", ("position", "portfolio", "breaker")),
    "ib_connection_state": ("state", ("connected", "connecting", "disconnected")),
}


def help_lines(m: Metrics) -> dict[str, str]:
    out = {}
    for line in m.exposition().decode().splitlines():
        if line.startswith("# HELP "):
            name, _, text = line[len("# HELP ") :].partition(" ")
            out[name] = text
    return out


def type_lines(m: Metrics) -> dict[str, str]:
    out = {}
    for line in m.exposition().decode().splitlines():
        if line.startswith("# TYPE "):
            name, _, kind = line[len("# TYPE ") :].partition(" ")
            out[name] = kind
    return out


def label_values(m: Metrics, sample_name: str, label: str) -> set[str]:
    values = set()
    for family in text_string_to_metric_families(m.exposition().decode()):
        for sample in family.samples:
            if sample.name == sample_name and label in sample.labels:
                values.add(sample.labels[label])
    return values


def strip_created(exposition: bytes) -> list[str]:
    """The exposition without what changes by itself between scrapes (creation times, ages)."""
    return [
        line
        for line in exposition.decode().splitlines()
        if "_created" not in line and "_age_seconds" not in line
    ]


def value(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(P + name, labels)


def transition(
    frm: BreakerState,
    to: BreakerState,
    reason: TransitionReason = TransitionReason.FAILURE_THRESHOLD,
) -> BreakerTransition:
    return BreakerTransition(t=1.0, from_state=frm, to_state=to, cause=TransitionCause(reason))


def stop(pid: str, action: StopAction, stop_price: float, extreme: float) -> StopEvent:
    return StopEvent(
        t=1.0, id=pid, action=action, stop=stop_price, ref_price=extreme, extreme=extreme
    )


def answer(allowed: bool, *codes: ReasonCode) -> CheckAnswer:
    return CheckAnswer(t=1.0, id="o1", allowed=allowed, reasons=tuple(Reason(c) for c in codes))


def promtool() -> str:
    """promtool's path; skip without it, except in CI where it is required."""
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is required when CI is set: apt-get install -y prometheus")
        pytest.skip("promtool not installed (apt-get install -y prometheus); CI requires it")
    return path


# ------------------------------------------------------------------ the contract


def test_every_contract_metric_is_exposed_with_its_type_and_a_help_stating_its_unit() -> None:
    m = Metrics()
    helps, types = help_lines(m), type_lines(m)
    for short, (kind, unit) in CONTRACT.items():
        name = P + short
        assert name in helps, f"{name} missing from the exposition"
        assert types[name] == kind, f"{name} is a {types[name]}, the contract says {kind}"
        assert unit in helps[name], f"HELP of {name} does not state its unit ({unit!r})"


def test_no_metric_outside_the_contract() -> None:
    m = Metrics()
    extra = {
        n for n in help_lines(m) if not n.endswith("_created") and n.removeprefix(P) not in CONTRACT
    }
    assert extra == set()


def test_closed_label_sets_are_preinitialised() -> None:
    m = Metrics()
    for short, (label, values) in PREINITIALISED.items():
        assert label_values(m, P + short, label) == set(values), short


def test_initial_values() -> None:
    m = Metrics()
    assert value(m, "circuit_breaker_state", state="closed") == 1
    assert value(m, "ib_connection_state", state="disconnected") == 1
    assert value(m, "positions") == 0
    assert value(m, "trailing_stops_active") == 0
    assert value(m, "build_info", version=package_version()) == 1
    # utilization appears only once a limit is measured
    assert label_values(m, P + "limit_utilization_ratio", "limit") == set()


def test_registries_are_independent() -> None:
    a, b = Metrics(), Metrics()
    a.ib_disconnect()
    assert value(a, "ib_disconnects_total") == 1
    assert value(b, "ib_disconnects_total") == 0


# ------------------------------------------------------------------ circuit breaker


def one_hot(m: Metrics) -> dict[str, float | None]:
    return {s.value: value(m, "circuit_breaker_state", state=s.value) for s in BreakerState}


def test_breaker_transitions_flip_the_one_hot_state_and_count_the_state_entered() -> None:
    m = Metrics()
    m.breaker_transition(transition(BreakerState.CLOSED, BreakerState.OPEN))
    assert one_hot(m) == {"closed": 0, "open": 1, "half_open": 0}
    m.breaker_transition(
        transition(BreakerState.OPEN, BreakerState.HALF_OPEN, TransitionReason.OPEN_TIMEOUT)
    )
    assert one_hot(m) == {"closed": 0, "open": 0, "half_open": 1}
    m.breaker_transition(
        transition(BreakerState.HALF_OPEN, BreakerState.OPEN, TransitionReason.HALF_OPEN_FAILURE)
    )
    m.breaker_transition(
        transition(BreakerState.OPEN, BreakerState.CLOSED, TransitionReason.OPERATOR_RESET)
    )
    assert one_hot(m) == {"closed": 1, "open": 0, "half_open": 0}
    assert value(m, "circuit_breaker_transitions_total", to_state="open") == 2
    assert value(m, "circuit_breaker_transitions_total", to_state="half_open") == 1
    assert value(m, "circuit_breaker_transitions_total", to_state="closed") == 1


def test_restore_sets_the_state_without_counting_a_transition() -> None:
    m = Metrics()
    m.breaker_state(BreakerState.OPEN)
    assert one_hot(m) == {"closed": 0, "open": 1, "half_open": 0}
    m.breaker_transition(
        transition(BreakerState.CLOSED, BreakerState.OPEN, TransitionReason.RESTORED)
    )
    assert one_hot(m) == {"closed": 0, "open": 1, "half_open": 0}
    assert value(m, "circuit_breaker_transitions_total", to_state="open") == 0


def test_failures_are_counted_by_kind_in_any_state() -> None:
    m = Metrics()
    for kind, state in (
        (FailureKind.DATA_FEED, BreakerState.CLOSED),
        (FailureKind.DATA_FEED, BreakerState.OPEN),
        (FailureKind.MARGIN, BreakerState.HALF_OPEN),
    ):
        m.failure(FailureRecorded(failure=Failure(t=1.0, kind=kind), state=state))
    assert value(m, "circuit_breaker_failures_total", kind="data_feed") == 2
    assert value(m, "circuit_breaker_failures_total", kind="margin") == 1
    assert value(m, "circuit_breaker_failures_total", kind="other") == 0


# ------------------------------------------------------------------ trailing stops


def test_stop_events_keep_active_count_and_levels() -> None:
    m = Metrics()
    m.position_opened("p1")
    m.position_opened("p2")
    m.position_opened("p2")  # idempotent
    assert value(m, "positions") == 2
    assert value(m, "trailing_stops_active") == 0

    m.stop_event(stop("p1", StopAction.ACTIVATE, 9.0, 10.0))
    assert value(m, "trailing_stops_active") == 1
    assert value(m, "trailing_stop_price", position="p1") == 9.0
    assert value(m, "trailing_stop_extreme_price", position="p1") == 10.0

    m.stop_event(stop("p1", StopAction.UPDATE, 9.9, 11.0))
    assert value(m, "trailing_stops_active") == 1
    assert value(m, "trailing_stop_price", position="p1") == 9.9
    assert value(m, "trailing_stop_extreme_price", position="p1") == 11.0

    m.stop_event(stop("p2", StopAction.ACTIVATE, 4.0, 5.0))
    assert value(m, "trailing_stops_active") == 2

    m.stop_event(stop("p1", StopAction.TRIGGER, 9.9, 11.0))
    assert value(m, "trailing_stops_active") == 1
    assert value(m, "trailing_stop_triggers_total") == 1
    # the levels stay until the position closes
    assert value(m, "trailing_stop_price", position="p1") == 9.9


def test_closing_a_position_removes_its_series_and_counts() -> None:
    m = Metrics()
    m.position_opened("p1")
    m.stop_event(stop("p1", StopAction.ACTIVATE, 9.0, 10.0))
    m.stop_event(stop("p2", StopAction.ACTIVATE, 4.0, 5.0))  # implies p2 is open
    assert value(m, "positions") == 2

    m.position_closed("p1")
    assert value(m, "trailing_stop_price", position="p1") is None
    assert value(m, "trailing_stop_extreme_price", position="p1") is None
    assert label_values(m, P + "trailing_stop_price", "position") == {"p2"}
    assert value(m, "positions") == 1
    assert value(m, "trailing_stops_active") == 1

    m.position_closed("p2")
    m.position_closed("p2")  # closing twice, or an unknown id, is harmless
    m.position_closed("never-seen")
    assert value(m, "positions") == 0
    assert value(m, "trailing_stops_active") == 0
    assert label_values(m, P + "trailing_stop_extreme_price", "position") == set()


def test_stop_levels_without_a_stop_drop_only_the_stop_series() -> None:
    m = Metrics()
    m.stop_levels("p1", 9.0, 10.0)
    m.stop_levels("p1", None, 10.5)
    assert value(m, "trailing_stop_price", position="p1") is None
    assert value(m, "trailing_stop_extreme_price", position="p1") == 10.5
    assert value(m, "positions") == 1
    assert value(m, "trailing_stops_active") == 0
    m.stop_activated("p1")
    assert value(m, "trailing_stops_active") == 1
    m.stop_deactivated("p1")
    assert value(m, "trailing_stops_active") == 0


def test_restored_stops_count_as_armed_only_when_active_and_not_triggered() -> None:
    m = Metrics()
    contract = Contract(symbol="SPY", sec_type=SecType.STK)

    def snap(pid: str, active: bool, triggered: bool, stop_price: float | None) -> StopSnapshot:
        return StopSnapshot(
            id=pid,
            contract=contract,
            qty=1,
            entry_price=10.0,
            opened_t=0.0,
            active=active,
            extreme=12.0,
            stop=stop_price,
            breaches=0,
            triggered=triggered,
            ignored_quotes=0,
        )

    m.stop_restored(snap("armed", True, False, 11.0))
    m.stop_restored(snap("fired", True, True, 11.0))
    m.stop_restored(snap("waiting", False, False, None))
    assert value(m, "positions") == 3
    assert value(m, "trailing_stops_active") == 1
    assert value(m, "trailing_stop_price", position="armed") == 11.0
    assert value(m, "trailing_stop_price", position="waiting") is None
    assert value(m, "trailing_stop_extreme_price", position="waiting") == 12.0


# ------------------------------------------------------------------ gate, portfolio


def test_checks_count_outcomes_and_each_reason_of_a_denial() -> None:
    m = Metrics()
    m.check(answer(True), 0.00002)
    m.check(answer(False, ReasonCode.MAX_PORTFOLIO_VEGA, ReasonCode.BREAKER_OPEN), 0.0001)
    # two symbols over max_per_symbol_delta: one rejection for that reason
    m.check(answer(False, ReasonCode.MAX_PER_SYMBOL_DELTA, ReasonCode.MAX_PER_SYMBOL_DELTA), 0.0003)
    m.check(answer(False, ReasonCode.BREAKER_OPEN), 0.00004)
    # reasons on an allowed (risk-reducing) answer are not rejections
    m.check(answer(True, ReasonCode.MAX_PORTFOLIO_DELTA), 0.00001)

    assert value(m, "pretrade_checks_total", outcome="allowed") == 2
    assert value(m, "pretrade_checks_total", outcome="denied") == 3
    assert value(m, "pretrade_rejections_total", reason="breaker_open") == 2
    assert value(m, "pretrade_rejections_total", reason="max_portfolio_vega") == 1
    assert value(m, "pretrade_rejections_total", reason="max_per_symbol_delta") == 1
    assert value(m, "pretrade_rejections_total", reason="max_portfolio_delta") == 0
    assert value(m, "pretrade_check_duration_seconds_count") == 5
    assert value(m, "pretrade_check_duration_seconds_bucket", le="5e-06") == 0
    assert value(m, "pretrade_check_duration_seconds_bucket", le="2.5e-05") == 2
    assert value(m, "pretrade_check_duration_seconds_bucket", le="0.1") == 5


def test_histogram_buckets_span_microseconds_to_100ms() -> None:
    m = Metrics()
    les = label_values(m, P + "pretrade_check_duration_seconds_bucket", "le")
    bounds = sorted(float(le) for le in les if le != "+Inf")
    assert bounds[0] <= 1e-5
    assert bounds[-1] == pytest.approx(0.1)
    assert len(bounds) >= 10


def test_portfolio_and_utilization() -> None:
    m = Metrics()
    m.portfolio(delta=120.0, dollar_delta=54_000.0, gamma=3.5, vega=-800.0, theta=-45.0)
    assert value(m, "portfolio_delta") == 120.0
    assert value(m, "portfolio_dollar_delta") == 54_000.0
    assert value(m, "portfolio_gamma") == 3.5
    assert value(m, "portfolio_vega") == -800.0
    assert value(m, "portfolio_theta") == -45.0

    m.utilization("max_portfolio_vega", 0.93)
    m.utilization(ReasonCode.MAX_STRESS_LOSS, 1.2)
    assert value(m, "limit_utilization_ratio", limit="max_portfolio_vega") == 0.93
    assert value(m, "limit_utilization_ratio", limit="max_stress_loss") == 1.2
    m.utilization_cleared("max_stress_loss")
    assert value(m, "limit_utilization_ratio", limit="max_stress_loss") is None
    m.utilization("stale_data", 0.5)  # not a limit: dropped (and logged, see below)
    assert label_values(m, P + "limit_utilization_ratio", "limit") == {"max_portfolio_vega"}


# ------------------------------------------------------------------ actors, broker


def test_actor_metrics_and_unknown_kinds() -> None:
    m = Metrics()
    m.mailbox_depth("position", 17)
    m.actor_restart("breaker")
    m.actor_restart("breaker")
    assert value(m, "actor_mailbox_depth", actor_kind="position") == 17
    assert value(m, "actor_restarts_total", actor_kind="breaker") == 2


def test_unknown_label_values_are_logged_once_and_dropped_never_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A metrics mistake must not break the caller (e.g. the restart of a crashed actor)."""
    m = Metrics()
    before = m.exposition()
    with caplog.at_level(logging.WARNING, logger="supervisor.metrics"):
        m.actor_restart("gatekeeper")
        m.actor_restart("gatekeeper")
        m.mailbox_depth("gatekeeper", 1)
        m.ib_state("up")
        m.utilization("max_everything", 0.5)
        m.utilization_cleared("max_everything")
    assert strip_created(m.exposition()) == strip_created(before)
    unknown = [r.getMessage() for r in caplog.records if "not recorded" in r.getMessage()]
    assert any("'gatekeeper'" in msg for msg in unknown)
    assert any("'up'" in msg for msg in unknown)
    assert any("'max_everything'" in msg for msg in unknown)
    assert sum("'gatekeeper'" in msg for msg in unknown) == 1  # once per value


def test_ib_state_is_one_hot_and_disconnects_count() -> None:
    m = Metrics()
    m.ib_state("connecting")
    m.ib_state("connected")
    states = {
        s: value(m, "ib_connection_state", state=s)
        for s in ("connected", "connecting", "disconnected")
    }
    assert states == {"connected": 1, "connecting": 0, "disconnected": 0}
    m.ib_disconnect()
    m.ib_state("disconnected")
    assert value(m, "ib_disconnects_total") == 1
    assert value(m, "ib_connection_state", state="connected") == 0


# ------------------------------------------------------------------ exposition


def exercised() -> Metrics:
    """A Metrics with every method called, so every metric has samples."""
    m = Metrics()
    m.breaker_transition(transition(BreakerState.CLOSED, BreakerState.OPEN))
    m.failure(FailureRecorded(Failure(t=1.0, kind=FailureKind.SLIPPAGE), BreakerState.OPEN))
    m.position_opened("p1")
    m.stop_event(stop("p1", StopAction.ACTIVATE, 9.0, 10.0))
    m.stop_event(stop("p1", StopAction.TRIGGER, 9.0, 10.0))
    m.position_opened('p 2/"quoted"')  # label values are escaped, not trusted
    m.stop_levels('p 2/"quoted"', 1.5, 2.0)
    m.portfolio(1.0, 2.0, 3.0, 4.0, 5.0)
    for limit in LIMITS:
        m.utilization(limit, 0.5)
    m.check(answer(False, ReasonCode.STALE_DATA), 0.001)
    m.mailbox_depth("portfolio", 3)
    m.actor_restart("position")
    m.ib_state("connected")
    m.ib_disconnect()
    return m


def test_exposition_passes_promtool_check_metrics() -> None:
    tool = promtool()
    for m in (Metrics(), exercised()):
        run = subprocess.run(
            [tool, "check", "metrics"],
            input=m.exposition(),
            capture_output=True,
            timeout=60,
        )
        assert run.returncode == 0, (run.stdout + run.stderr).decode()


def test_serve_binds_loopback_reports_its_port_and_closes() -> None:
    m = exercised()
    served = m.serve(port=0)
    try:
        assert served.host == "127.0.0.1"
        assert served.port > 0
        with urllib.request.urlopen(served.url, timeout=5) as response:
            body = response.read().decode()
        assert 'risk_supervisor_circuit_breaker_state{state="open"} 1.0' in body
    finally:
        served.close()
    served.close()  # a second close is harmless
    with socket.socket() as s, pytest.raises(OSError):
        s.settimeout(2)
        s.connect(("127.0.0.1", served.port))


def test_serve_as_context_manager() -> None:
    with (
        Metrics().serve("127.0.0.1", 0) as served,
        urllib.request.urlopen(served.url, timeout=5) as response,
    ):
        assert response.status == 200

"""The risk supervisor's alerts: one definition each, for Prometheus and for Grafana.

Each :class:`Alert` below is the only place its PromQL, ``for`` duration,
severity and texts are written. ``rule_files.py`` renders them as a
Prometheus rule file and as Grafana-managed alert rules (file provisioning),
both with the very same expression string, so the two cannot drift apart;
``tests/test_grafana.py`` checks that they did not.

The expressions are Prometheus alert expressions: filters that return a series
for every instance that should alert and nothing otherwise.

Annotation templates write ``$VALUE`` for the alert's value; it becomes
``$value`` for Prometheus and ``$values.A.Value`` for Grafana.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "ALERTS",
    "DATASOURCE_UID",
    "FOLDER",
    "GROUP",
    "JOB",
    "RUNBOOK_BASE",
    "Alert",
]

#: The scrape job the example Prometheus config gives the daemon.
JOB = "risk-supervisor"
#: Rule group name, in both files.
GROUP = "risk-supervisor"
#: Grafana folder that holds the dashboard and the alert rules.
FOLDER = "Risk Supervisor"
#: uid of the Prometheus datasource the Grafana rules query (the provisioned one).
DATASOURCE_UID = "risk-supervisor-prometheus"
#: Where ``runbook_url`` points: the runbooks' path in this repository, unless
#: the builder is given ``--runbook-base`` (e.g. the repository's web URL).
RUNBOOK_BASE = "grafana/runbooks"


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert, as both Prometheus and Grafana will evaluate it."""

    name: str
    expr: str
    for_: str
    severity: str  # "page" wakes someone up; "warning" goes to the team channel
    summary: str
    description: str
    panel: str | None = None  # key of the dashboard panel it belongs to

    @property
    def uid(self) -> str:
        """A stable Grafana rule uid (at most 40 characters)."""
        kebab = re.sub(r"(?<!^)(?=[A-Z][a-z])", "-", self.name).lower()
        return ("rs-" + kebab)[:40]


ALERTS: tuple[Alert, ...] = (
    Alert(
        name="BreakerOpen",
        expr='risk_supervisor_circuit_breaker_state{state="open"} == 1',
        for_="1m",
        severity="page",
        summary="Circuit breaker open on {{ $labels.instance }}: new entries are halted",
        description=(
            "The risk supervisor's circuit breaker on {{ $labels.instance }} has been open "
            "for more than 1 minute. New entries are refused; risk-reducing orders and "
            "trailing-stop exits still go through. Find the failures that tripped it, fix "
            "the cause, then reset the breaker."
        ),
        panel="breaker_timeline",
    ),
    Alert(
        name="BreakerFlapping",
        expr=(
            'increase(risk_supervisor_circuit_breaker_transitions_total{to_state="open"}[15m]) >= 3'
        ),
        for_="0s",
        severity="warning",
        summary="Circuit breaker on {{ $labels.instance }} keeps re-opening",
        description=(
            'The circuit breaker on {{ $labels.instance }} opened {{ printf "%.0f" $VALUE }} '
            "times in the last 15 minutes: its half-open trials keep failing, so trading "
            "halts and resumes over and over. The cause of the failures is still there."
        ),
        panel="breaker_transitions",
    ),
    Alert(
        name="GreekLimitNearlyBreached",
        expr="risk_supervisor_limit_utilization_ratio > 0.9",
        for_="5m",
        severity="warning",
        summary=(
            "{{ $labels.limit }} at {{ $VALUE | humanizePercentage }} of its limit "
            "on {{ $labels.instance }}"
        ),
        description=(
            "The portfolio has used more than 90% of the {{ $labels.limit }} limit for 5 "
            "minutes (now {{ $VALUE | humanizePercentage }}). At 100% the pre-trade gate "
            "denies every order that adds to it; only risk-reducing orders pass."
        ),
        panel="limit_utilization",
    ),
    Alert(
        name="IBDisconnected",
        expr='risk_supervisor_ib_connection_state{state="connected"} == 0',
        for_="2m",
        severity="page",
        summary="Risk supervisor on {{ $labels.instance }} is not connected to Interactive Brokers",
        description=(
            "The risk supervisor on {{ $labels.instance }} has had no connection to "
            "Interactive Brokers for 2 minutes. It gets no quotes, so trailing stops cannot "
            "see prices and cannot send exits, and pre-trade checks see stale data."
        ),
        panel="ib_timeline",
    ),
    Alert(
        name="ActorRestarting",
        expr="increase(risk_supervisor_actor_restarts_total[10m]) > 0",
        for_="0s",
        severity="warning",
        summary="{{ $labels.actor_kind }} actor restarted on {{ $labels.instance }}",
        description=(
            "A {{ $labels.actor_kind }} actor of the risk supervisor on {{ $labels.instance }} "
            'crashed and was restarted {{ printf "%.0f" $VALUE }} time(s) in the last 10 '
            "minutes. Its state was restored from the store; a crash loop means a bug or "
            "bad input that the logs will show."
        ),
        panel="actor_restarts",
    ),
    Alert(
        name="LossLimitTripped",
        expr="risk_supervisor_loss_latched == 1",
        for_="0s",
        severity="page",
        summary="Daily loss limit tripped on {{ $labels.instance }}: trading is latched off",
        description=(
            "The daily loss on {{ $labels.instance }} reached max_daily_loss (or the drawdown "
            "from the high-water mark reached max_drawdown_pct): the circuit breaker tripped "
            "with loss_limit and is latched open. New entries are refused until an operator "
            "clears the latch; it does not close by itself."
        ),
        panel="loss_latch",
    ),
    Alert(
        name="KillSwitchUsed",
        expr="increase(risk_supervisor_kills_total[10m]) > 0",
        for_="0s",
        # A page, not a warning: a kill stops trading and a flatten closes every
        # position at market, so someone must confirm it was meant, whoever (or
        # whichever watchdog) pulled it, and see a flatten through to flat.
        severity="page",
        summary="Kill switch used on {{ $labels.instance }}: {{ $labels.mode }}",
        description=(
            "The kill switch of the risk supervisor on {{ $labels.instance }} was used in "
            'mode {{ $labels.mode }} {{ printf "%.0f" $VALUE }} time(s) in the last 10 '
            "minutes. halt refuses new entries; cancel also cancels working orders; flatten "
            "also closes every position. Confirm who or what pulled it and that it was meant."
        ),
        panel="kills",
    ),
    Alert(
        name="HeartbeatLost",
        expr="increase(risk_supervisor_heartbeat_lost_total[10m]) > 0",
        for_="0s",
        severity="page",
        summary="Trader heartbeat lost on {{ $labels.instance }}",
        description=(
            "The risk supervisor on {{ $labels.instance }} stopped hearing the trader's "
            'heartbeat {{ printf "%.0f" $VALUE }} time(s) in the last 10 minutes and its '
            "watchdog killed trading. The trader may be down, hung or cut off from the "
            "supervisor."
        ),
        panel="heartbeat_age",
    ),
    Alert(
        name="PnlFeedStale",
        expr=(
            "risk_supervisor_pnl_age_seconds > ignoring(limit) "
            'risk_supervisor_limit_value{limit="max_pnl_age_s"}'
        ),
        for_="2m",
        severity="warning",
        summary="Daily P&L from IB is stale on {{ $labels.instance }}",
        description=(
            "The last daily P&L IB sent the risk supervisor on {{ $labels.instance }} is "
            "{{ $VALUE | humanizeDuration }} old, older than max_pnl_age_s, and has been for "
            "2 minutes. The loss limit cannot see today's losses; the gate denies entries "
            "that need a fresh P&L."
        ),
        panel="pnl_age",
    ),
    Alert(
        name="MarginWhatIfFailing",
        expr="60 * sum without (reason) (rate(risk_supervisor_whatif_failures_total[5m])) > 0",
        for_="5m",
        severity="warning",
        summary="IB margin what-ifs keep failing on {{ $labels.instance }}",
        description=(
            "IB what-ifs (margin previews) of the risk supervisor on {{ $labels.instance }} "
            "have been failing for 5 minutes ({{ $VALUE | humanize }} per minute): timeouts, "
            "errors or unset margin. The margin gate cannot check max_init_margin_pct or "
            "min_excess_liquidity, so it denies the orders that need a what-if."
        ),
        panel="whatif_failures",
    ),
    Alert(
        name="RecordingDropping",
        expr="increase(risk_supervisor_recording_dropped_total[5m]) > 0",
        for_="0s",
        severity="warning",
        summary="Session recorder dropping lines on {{ $labels.instance }}",
        description=(
            "The session recorder of the risk supervisor on {{ $labels.instance }} dropped "
            '{{ printf "%.0f" $VALUE }} line(s) in the last 5 minutes: its queue was full or '
            "its file could not be written. The recording has gaps, so a replay of this "
            "session will not match what happened."
        ),
        panel="recording",
    ),
    Alert(
        name="RiskSupervisorDown",
        expr=f'up{{job="{JOB}"}} == 0 or absent(up{{job="{JOB}"}})',
        for_="2m",
        severity="page",
        summary="Risk supervisor is down or not scraped",
        description=(
            "Prometheus has not scraped the risk supervisor"
            "{{ with $labels.instance }} at {{ . }}{{ end }} for 2 minutes. While it is down "
            "no trailing stop is watched and no pre-trade check is answered."
        ),
        panel=None,
    ),
)

"""The risk supervisor's alerts: one definition each, rendered for Prometheus and for Grafana.

Each :class:`Alert` below is the only place its PromQL, ``for`` duration,
severity and texts are written. :func:`prometheus_rules` renders them as a
Prometheus rule file and :func:`grafana_rules` as Grafana-managed alert rules
(file provisioning), both with the very same expression string, so the two
cannot drift apart; ``tests/test_grafana.py`` checks that they did not.

The expressions are Prometheus alert expressions: filters that return a series
for every instance that should alert and nothing otherwise. Grafana evaluates
them the way its own Prometheus-rule import does: the query (refId ``A``,
instant), then a math expression that is 1 for every series ``A`` returned,
whatever its value (``B``), then a threshold on it (``C``, the condition).
A plain threshold on ``A``'s value could not express ``… == 0`` filters, and
a reduce on an instant query is a no-op, so this is the faithful translation.
An empty result is therefore normal (``noDataState: OK``); absence of the
scrape itself is caught by ``RiskSupervisorDown``'s ``absent()``.

Annotation templates write ``$VALUE`` for the alert's value; it becomes
``$value`` for Prometheus and ``$values.A.Value`` for Grafana.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ALERTS",
    "DATASOURCE_UID",
    "FOLDER",
    "GROUP",
    "JOB",
    "RUNBOOK_BASE",
    "Alert",
    "grafana_rules",
    "prometheus_rules",
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


def _render(template: str, value_ref: str) -> str:
    return template.replace("$VALUE", value_ref)


def _runbook(alert: Alert, runbook_base: str) -> str:
    return f"{runbook_base.rstrip('/')}/{alert.name}.md"


def prometheus_rules(runbook_base: str = RUNBOOK_BASE) -> dict[str, Any]:
    """The alerts as a Prometheus rule file (``groups:`` document).

    The group sets no ``interval``: rules are evaluated at Prometheus' global
    ``evaluation_interval``, so a test can run them fast by templating only
    ``prometheus.yml``.
    """
    rules = [
        {
            "alert": a.name,
            "expr": a.expr,
            "for": a.for_,
            "labels": {"severity": a.severity},
            "annotations": {
                "summary": _render(a.summary, "$value"),
                "description": _render(a.description, "$value"),
                "runbook_url": _runbook(a, runbook_base),
            },
        }
        for a in ALERTS
    ]
    return {"groups": [{"name": GROUP, "rules": rules}]}


def grafana_rules(
    dashboard_uid: str,
    panel_ids: dict[str, int],
    datasource_uid: str = DATASOURCE_UID,
    runbook_base: str = RUNBOOK_BASE,
) -> dict[str, Any]:
    """The alerts as Grafana-managed rules in Grafana's file-provisioning format.

    Each rule is linked to its dashboard panel, so Grafana draws its state
    there and the alert links back to the graph.
    """
    rules = []
    for a in ALERTS:
        rule: dict[str, Any] = {
            "uid": a.uid,
            "title": a.name,
            "condition": "C",
            "data": [
                {
                    "refId": "A",
                    "relativeTimeRange": {"from": 900, "to": 0},
                    "datasourceUid": datasource_uid,
                    "model": {
                        "refId": "A",
                        "datasource": {"type": "prometheus", "uid": datasource_uid},
                        "editorMode": "code",
                        "expr": a.expr,
                        "instant": True,
                        "range": False,
                        "legendFormat": "__auto",
                        "intervalMs": 15000,
                        "maxDataPoints": 43200,
                    },
                },
                {
                    "refId": "B",
                    "datasourceUid": "__expr__",
                    "model": {
                        "refId": "B",
                        "datasource": {"type": "__expr__", "uid": "__expr__"},
                        "type": "math",
                        "expression": "is_number($A) || is_nan($A) || is_inf($A)",
                    },
                },
                {
                    "refId": "C",
                    "datasourceUid": "__expr__",
                    "model": {
                        "refId": "C",
                        "datasource": {"type": "__expr__", "uid": "__expr__"},
                        "type": "threshold",
                        "expression": "B",
                        "conditions": [
                            {
                                "type": "query",
                                "evaluator": {"type": "gt", "params": [0]},
                                "operator": {"type": "and"},
                                "query": {"params": ["C"]},
                                "reducer": {"type": "last", "params": []},
                            }
                        ],
                    },
                },
            ],
        }
        if a.panel is not None:
            rule["dashboardUid"] = dashboard_uid
            rule["panelId"] = panel_ids[a.panel]
        rule.update(
            {
                "noDataState": "OK",
                "execErrState": "Error",
                "for": a.for_,
                "annotations": {
                    "summary": _render(a.summary, "$values.A.Value"),
                    "description": _render(a.description, "$values.A.Value"),
                    "runbook_url": _runbook(a, runbook_base),
                },
                "labels": {"severity": a.severity},
                "isPaused": False,
            }
        )
        rules.append(rule)
    return {
        "apiVersion": 1,
        "groups": [
            {
                "orgId": 1,
                "name": GROUP,
                "folder": FOLDER,
                "interval": "30s",
                "rules": rules,
            }
        ],
    }

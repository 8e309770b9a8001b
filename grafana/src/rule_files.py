"""Render the alert definitions of ``alert_rules.py`` for Prometheus and for Grafana.

Prometheus gets a plain rule file (``groups:`` document), its own format.

Grafana gets Grafana-managed alert rules built with the foundation SDK's
typed ``alerting`` builders, then written in Grafana's *file provisioning*
format. The SDK models the HTTP provisioning API, whose rule carries its
folder, group and organisation on every rule and links its panel through the
``__dashboardUid__`` / ``__panelId__`` annotations; the file format names the
group once (``orgId``, ``name``, ``folder``, ``interval``) and the panel link
as ``dashboardUid`` / ``panelId``. :func:`_file_rule` and
:func:`grafana_rules` do that renaming and nothing else, so each rule's
content is what the typed builders made.

Grafana evaluates each expression the way its own Prometheus-rule import
does: the query (refId ``A``, instant), then a math expression that is 1 for
every series ``A`` returned, whatever its value (``B``), then a threshold on
it (``C``, the condition). A plain threshold on ``A``'s value could not
express ``… == 0`` filters, and a reduce on an instant query is a no-op, so
this is the faithful translation. An empty result is therefore normal
(``noDataState: OK``); absence of the scrape itself is caught by
``RiskSupervisorDown``'s ``absent()``.
"""

from __future__ import annotations

import json
from typing import Any

from alert_rules import ALERTS, DATASOURCE_UID, FOLDER, GROUP, RUNBOOK_BASE, Alert
from grafana_foundation_sdk.builders import alerting, expr, prometheus
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import alerting as am
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm

__all__ = ["EVALUATION_INTERVAL_S", "grafana_rules", "prometheus_rules"]

#: How often Grafana evaluates the group (seconds).
EVALUATION_INTERVAL_S = 30
#: The time range of the query (seconds before now). The expressions are
#: instant queries whose own ``[…]`` windows say how far back they look; this
#: only has to cover the longest of them.
QUERY_RANGE_S = 900

_EXPR_DS = dm.DataSourceRef(type_val="__expr__", uid="__expr__")
_DASHBOARD_UID = "__dashboardUid__"
_PANEL_ID = "__panelId__"


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


def _rule(
    alert: Alert,
    dashboard_uid: str,
    panel_ids: dict[str, int],
    datasource_uid: str,
    runbook_base: str,
) -> alerting.Rule:
    """One alert as a Grafana-managed rule, built with the SDK's typed builders."""
    query = (
        prometheus.Dataquery()
        .ref_id("A")
        .datasource(dm.DataSourceRef(type_val="prometheus", uid=datasource_uid))
        .editor_mode(pm.QueryEditorMode.CODE)
        .expr(alert.expr)
        .instant()
        .legend_format("__auto")
    )
    every_series = (
        expr.TypeMath()
        .ref_id("B")
        .datasource(_EXPR_DS)
        .expression("is_number($A) || is_nan($A) || is_inf($A)")
    )
    condition = (
        expr.TypeThreshold()
        .ref_id("C")
        .datasource(_EXPR_DS)
        .expression("B")
        .conditions(
            [
                expr.ExprTypeThresholdConditions().evaluator(
                    expr.ExprTypeThresholdConditionsEvaluator().type("gt").params([0])
                )
            ]
        )
    )
    annotations = {
        "summary": _render(alert.summary, "$values.A.Value"),
        "description": _render(alert.description, "$values.A.Value"),
        "runbook_url": _runbook(alert, runbook_base),
    }
    if alert.panel is not None:
        annotations[_DASHBOARD_UID] = dashboard_uid
        annotations[_PANEL_ID] = str(panel_ids[alert.panel])
    return (
        alerting.Rule(alert.name)
        .uid(alert.uid)
        .rule_group(GROUP)
        .org_id(1)
        .condition("C")
        .queries(
            [
                alerting.Query("A")
                .datasource_uid(datasource_uid)
                .relative_time_range(am.RelativeTimeRange(from_val=QUERY_RANGE_S, to=0))
                .model(query),
                alerting.Query("B").datasource_uid("__expr__").model(every_series),
                alerting.Query("C").datasource_uid("__expr__").model(condition),
            ]
        )
        .no_data_state("OK")
        .exec_err_state("Error")
        .for_val(alert.for_)
        .annotations(annotations)
        .labels({"severity": alert.severity})
        .is_paused(False)
    )


def _as_json(model: object) -> Any:
    """An SDK model as plain JSON data (dicts, lists, scalars)."""
    return json.loads(json.dumps(model, cls=JSONEncoder))


def _file_rule(rule: am.Rule) -> dict[str, Any]:
    """An API-shaped rule as a rule of Grafana's file-provisioning format."""
    api = _as_json(rule)
    annotations = dict(api["annotations"])
    out: dict[str, Any] = {
        "uid": api["uid"],
        "title": api["title"],
        "condition": api["condition"],
        "data": api["data"],
    }
    if _DASHBOARD_UID in annotations:
        out["dashboardUid"] = annotations.pop(_DASHBOARD_UID)
        out["panelId"] = int(annotations.pop(_PANEL_ID))
    out.update(
        {
            "noDataState": api["noDataState"],
            "execErrState": api["execErrState"],
            "for": api["for"],
            "annotations": annotations,
            "labels": api["labels"],
            "isPaused": api["isPaused"],
        }
    )
    return out


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
    group = (
        alerting.RuleGroup(GROUP)
        .interval(EVALUATION_INTERVAL_S)
        .rules([_rule(a, dashboard_uid, panel_ids, datasource_uid, runbook_base) for a in ALERTS])
        .build()
    )
    return {
        "apiVersion": 1,
        "groups": [
            {
                "orgId": 1,
                "name": group.title,
                "folder": FOLDER,
                "interval": f"{group.interval}s",
                "rules": [_file_rule(r) for r in group.rules or []],
            }
        ],
    }

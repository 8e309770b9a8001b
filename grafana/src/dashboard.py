"""The risk supervisor's Grafana dashboard, as plain data (Grafana 11 dashboard JSON).

Written as Python rather than kept as hand-edited JSON so that panels share
one style, the grid is computed instead of typed, and the alert rules can
point at the panels they belong to by key. No dashboard SDK is used: the
output is ordinary JSON and the builder needs nothing beyond the standard
library.

Every query filters on ``instance=~"$instance"`` so one dashboard serves any
number of supervisors, and goes through the ``${datasource}`` variable so it
works with whatever Prometheus datasource the Grafana has.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DASHBOARD_UID", "dashboard"]

DASHBOARD_UID = "risk-supervisor"

DS: dict[str, str] = {"type": "prometheus", "uid": "${datasource}"}
INST = 'instance=~"$instance"'  # the filter every query carries

# Colours of the state encodings used by the state panels.
_BREAKER_STATES = (("closed", "green"), ("half_open", "orange"), ("open", "red"))
_IB_STATES = (("connected", "green"), ("connecting", "orange"), ("disconnected", "red"))


def _encoded_state(metric: str, states: tuple[tuple[str, str], ...]) -> str:
    """One number per instance from a one-hot gauge: 0 for the first state, 1, 2 ….

    A single series per instance is what a state timeline draws as one lane
    whose colour is the state.
    """
    terms = []
    for n, (state, _) in enumerate(states):
        if n == 0:
            continue
        term = f'max by (instance) ({metric}{{{INST}, state="{state}"}})'
        terms.append(term if n == 1 else f"{n} * {term}")
    return " + ".join(terms)


def _state_mappings(states: tuple[tuple[str, str], ...]) -> list[dict[str, Any]]:
    return [
        {
            "type": "value",
            "options": {
                str(n): {"text": state, "color": color, "index": n}
                for n, (state, color) in enumerate(states)
            },
        }
    ]


def _target(
    expr: str, legend: str = "__auto", ref: str = "A", instant: bool = False
) -> dict[str, Any]:
    return {
        "datasource": DS,
        "editorMode": "code",
        "expr": expr,
        "legendFormat": legend,
        "range": not instant,
        "instant": instant,
        "refId": ref,
    }


def _thresholds(*steps: tuple[str, float | None]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in steps]}


_GREEN_ONLY = _thresholds(("green", None))


def _color_override(name: str, color: str) -> dict[str, Any]:
    return {
        "matcher": {"id": "byName", "options": name},
        "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": color}}],
    }


def _panel(
    kind: str,
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    unit: str = "short",
    custom: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    defaults: dict[str, Any] | None = None,
    overrides: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    field_defaults: dict[str, Any] = {
        "unit": unit,
        "color": {"mode": "palette-classic"},
        "mappings": [],
        "thresholds": _GREEN_ONLY,
    }
    if custom is not None:
        field_defaults["custom"] = custom
    field_defaults.update(defaults or {})
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": field_defaults, "overrides": overrides or []},
        "options": options or {},
    }


def _legend_tooltip(calcs: list[str] | None = None) -> dict[str, Any]:
    return {
        "legend": {
            "showLegend": True,
            "displayMode": "table" if calcs else "list",
            "placement": "bottom",
            "calcs": calcs or [],
        },
        "tooltip": {"mode": "multi", "sort": "desc"},
    }


def _timeseries(
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    unit: str = "short",
    bars: bool = False,
    defaults: dict[str, Any] | None = None,
    overrides: list[dict[str, Any]] | None = None,
    thresholds_style: str = "off",
    calcs: list[str] | None = None,
    soft_max: float | None = None,
) -> dict[str, Any]:
    custom = {
        "drawStyle": "bars" if bars else "line",
        "lineWidth": 1,
        "fillOpacity": 80 if bars else 10,
        "gradientMode": "none",
        "showPoints": "never",
        "spanNulls": False,
        "axisPlacement": "auto",
        "axisSoftMin": 0 if bars else None,
        "axisSoftMax": soft_max,
        "stacking": {"mode": "normal" if bars else "none", "group": "A"},
        "thresholdsStyle": {"mode": thresholds_style},
    }
    custom = {k: v for k, v in custom.items() if v is not None}
    return _panel(
        "timeseries",
        title,
        description,
        targets,
        unit=unit,
        custom=custom,
        options=_legend_tooltip(calcs),
        defaults=defaults,
        overrides=overrides,
    )


def _stat(
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    unit: str = "short",
    defaults: dict[str, Any] | None = None,
    text_mode: str = "value",
    color_mode: str = "background",
) -> dict[str, Any]:
    return _panel(
        "stat",
        title,
        description,
        targets,
        unit=unit,
        options={
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "orientation": "auto",
            "textMode": text_mode,
            "colorMode": color_mode,
            "graphMode": "none",
            "justifyMode": "auto",
            "wideLayout": True,
            "showPercentChange": False,
        },
        defaults={"color": {"mode": "thresholds"}, **(defaults or {})},
    )


def _state_timeline(
    title: str, description: str, expr: str, states: tuple[tuple[str, str], ...]
) -> dict[str, Any]:
    return _panel(
        "state-timeline",
        title,
        description,
        [_target(expr, "{{instance}}")],
        custom={"lineWidth": 0, "fillOpacity": 80},
        options={
            "mergeValues": True,
            "showValue": "auto",
            "alignValue": "left",
            "rowHeight": 0.9,
            "legend": {"showLegend": True, "displayMode": "list", "placement": "bottom"},
            "tooltip": {"mode": "single", "sort": "none"},
        },
        defaults={"color": {"mode": "thresholds"}, "mappings": _state_mappings(states)},
    )


def _row(title: str) -> dict[str, Any]:
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


# ------------------------------------------------------------------- the panels

_BREAKER_EXPR = _encoded_state("risk_supervisor_circuit_breaker_state", _BREAKER_STATES)
_IB_EXPR = _encoded_state("risk_supervisor_ib_connection_state", _IB_STATES)
_UTIL_THRESHOLDS = _thresholds(("green", None), ("orange", 0.9), ("red", 1.0))


def _quantile(q: str) -> str:
    return (
        f"histogram_quantile({q}, sum by (instance, le) (rate("
        f"risk_supervisor_pretrade_check_duration_seconds_bucket{{{INST}}}[$__rate_interval])))"
    )


def _greek(metric: str, title: str, unit: str, what: str) -> dict[str, Any]:
    return _timeseries(
        title,
        f"{what} Position Greeks summed over the portfolio, as the supervisor computes them "
        "for its limits.",
        [_target(f"risk_supervisor_{metric}{{{INST}}}", "{{instance}}")],
        unit=unit,
    )


# Each entry: (key, width, height, panel). A key of None is a row; keys name
# panels the alert rules link to.
Layout = list[tuple[str | None, int, int, dict[str, Any]]]


def _layout() -> Layout:
    return [
        (None, 24, 1, _row("Overview")),
        (
            "breaker_now",
            5,
            4,
            _stat(
                "Circuit breaker",
                "Current breaker state per supervisor. open: new entries halted (risk-"
                "reducing orders still allowed); half_open: a few trial entries allowed.",
                [_target(_BREAKER_EXPR, "{{instance}}", instant=True)],
                defaults={"mappings": _state_mappings(_BREAKER_STATES)},
            ),
        ),
        (
            "ib_now",
            5,
            4,
            _stat(
                "IB connection",
                "Current state of the link to Interactive Brokers per supervisor.",
                [_target(_IB_EXPR, "{{instance}}", instant=True)],
                defaults={"mappings": _state_mappings(_IB_STATES)},
            ),
        ),
        (
            "positions_now",
            3,
            4,
            _stat(
                "Open positions",
                "Positions the supervisor tracks.",
                [_target(f"sum(risk_supervisor_positions{{{INST}}})", "positions", instant=True)],
                defaults={"thresholds": _thresholds(("blue", None))},
            ),
        ),
        (
            "stops_now",
            3,
            4,
            _stat(
                "Armed stops",
                "Open positions whose trailing stop has armed.",
                [
                    _target(
                        f"sum(risk_supervisor_trailing_stops_active{{{INST}}})",
                        "stops",
                        instant=True,
                    )
                ],
                defaults={"thresholds": _thresholds(("blue", None))},
            ),
        ),
        (
            "denied_now",
            4,
            4,
            _stat(
                "Checks denied (time range)",
                "Pre-trade checks denied over the dashboard's time range.",
                [
                    _target(
                        "sum(increase(risk_supervisor_pretrade_checks_total"
                        f'{{{INST}, outcome="denied"}}[$__range]))',
                        "denied",
                        instant=True,
                    )
                ],
                defaults={
                    "decimals": 0,
                    "thresholds": _thresholds(("green", None), ("orange", 1)),
                },
            ),
        ),
        (
            "version",
            4,
            4,
            _stat(
                "Version",
                "Version of the running supervisor build(s), from risk_supervisor_build_info.",
                [_target(f"risk_supervisor_build_info{{{INST}}}", "{{version}}", instant=True)],
                text_mode="name",
                color_mode="none",
            ),
        ),
        (None, 24, 1, _row("Circuit breaker")),
        (
            "breaker_timeline",
            24,
            5,
            _state_timeline(
                "Circuit breaker state",
                "Breaker state over time, one lane per supervisor. Red (open) halts new "
                "entries; orange (half_open) lets a few trial entries through.",
                _BREAKER_EXPR,
                _BREAKER_STATES,
            ),
        ),
        (
            "breaker_transitions",
            12,
            8,
            _timeseries(
                "Breaker transitions",
                "Transitions of the breaker, by the state entered (count per interval). "
                "Repeated transitions to open mean half-open trials keep failing.",
                [
                    _target(
                        "sum by (to_state) (increase("
                        f"risk_supervisor_circuit_breaker_transitions_total{{{INST}}}"
                        "[$__rate_interval]))",
                        "to {{to_state}}",
                    )
                ],
                bars=True,
                defaults={"decimals": 0},
                overrides=[
                    _color_override("to open", "red"),
                    _color_override("to half_open", "orange"),
                    _color_override("to closed", "green"),
                ],
            ),
        ),
        (
            "breaker_failures",
            12,
            8,
            _timeseries(
                "Failures by kind",
                "Systemic failures reported to the breaker, by kind (failures per minute). "
                "These are what trip it.",
                [
                    _target(
                        "sum by (kind) (rate("
                        f"risk_supervisor_circuit_breaker_failures_total{{{INST}}}"
                        "[$__rate_interval])) * 60",
                        "{{kind}}",
                    )
                ],
                unit="opm",
            ),
        ),
        (None, 24, 1, _row("Pre-trade gate")),
        (
            "checks",
            8,
            8,
            _timeseries(
                "Pre-trade checks",
                "Pre-trade checks answered, allowed vs denied (checks per second).",
                [
                    _target(
                        "sum by (outcome) (rate("
                        f"risk_supervisor_pretrade_checks_total{{{INST}}}[$__rate_interval]))",
                        "{{outcome}}",
                    )
                ],
                unit="ops",
                overrides=[
                    _color_override("allowed", "green"),
                    _color_override("denied", "red"),
                ],
            ),
        ),
        (
            "rejections",
            8,
            8,
            _timeseries(
                "Rejections by reason",
                "Reasons given by denied checks, one per distinct reason per check (reasons "
                "per second). Limit keys are the risk limits; breaker_open, "
                "breaker_half_open_busy, stale_data and invalid_order are the others.",
                [
                    _target(
                        "sum by (reason) (rate("
                        f"risk_supervisor_pretrade_rejections_total{{{INST}}}"
                        "[$__rate_interval])) > 0",
                        "{{reason}}",
                    )
                ],
                unit="ops",
            ),
        ),
        (
            "check_latency",
            8,
            8,
            _timeseries(
                "Check latency",
                "Time to answer a pre-trade check, p50 and p99, from the histogram "
                "(seconds; buckets from 5 µs to 100 ms).",
                [
                    _target(_quantile("0.5"), "p50 {{instance}}", ref="A"),
                    _target(_quantile("0.99"), "p99 {{instance}}", ref="B"),
                ],
                unit="s",
            ),
        ),
        (None, 24, 1, _row("Portfolio Greeks")),
        (
            "delta",
            5,
            7,
            _greek("portfolio_delta", "Delta (share-equivalents)", "short", "Delta."),
        ),
        (
            "dollar_delta",
            5,
            7,
            _greek("portfolio_dollar_delta", "Dollar delta ($)", "currencyUSD", "Dollar delta."),
        ),
        ("gamma", 5, 7, _greek("portfolio_gamma", "Gamma", "short", "Gamma.")),
        (
            "vega",
            5,
            7,
            _greek("portfolio_vega", "Vega ($ per vol point)", "currencyUSD", "Vega."),
        ),
        (
            "theta",
            4,
            7,
            _greek("portfolio_theta", "Theta ($ per day)", "currencyUSD", "Theta."),
        ),
        (None, 24, 1, _row("Limits")),
        (
            "limit_now",
            8,
            9,
            _panel(
                "bargauge",
                "Limit utilization now",
                "|usage| / limit per risk limit. Orange from 90%, red at 100%: at the limit "
                "the gate denies orders that add to it.",
                [
                    _target(
                        f"max by (limit) (risk_supervisor_limit_utilization_ratio{{{INST}}})",
                        "{{limit}}",
                        instant=True,
                    )
                ],
                unit="percentunit",
                options={
                    "displayMode": "gradient",
                    "orientation": "horizontal",
                    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "showUnfilled": True,
                    "valueMode": "color",
                    "namePlacement": "auto",
                    "sizing": "auto",
                    "minVizHeight": 16,
                    "minVizWidth": 8,
                    "maxVizHeight": 300,
                },
                defaults={
                    "color": {"mode": "thresholds"},
                    "min": 0,
                    "max": 1.2,
                    "thresholds": _UTIL_THRESHOLDS,
                },
            ),
        ),
        (
            "limit_utilization",
            16,
            9,
            _timeseries(
                "Limit utilization",
                "|usage| / limit per risk limit over time (ratio; 100% = at the limit). "
                "The dashed lines are the 90% warning and the 100% limit.",
                [
                    _target(
                        f"max by (limit) (risk_supervisor_limit_utilization_ratio{{{INST}}})",
                        "{{limit}}",
                    )
                ],
                unit="percentunit",
                defaults={"min": 0, "thresholds": _UTIL_THRESHOLDS},
                thresholds_style="dashed",
                soft_max=1.1,
            ),
        ),
        (None, 24, 1, _row("Trailing stops")),
        (
            "stops",
            6,
            9,
            _timeseries(
                "Armed stops and positions",
                "Open positions, and those whose trailing stop has armed (count).",
                [
                    _target(f"sum(risk_supervisor_positions{{{INST}}})", "positions", ref="A"),
                    _target(
                        f"sum(risk_supervisor_trailing_stops_active{{{INST}}})",
                        "armed stops",
                        ref="B",
                    ),
                ],
                defaults={"decimals": 0},
            ),
        ),
        (
            "stop_triggers",
            6,
            9,
            _timeseries(
                "Stop triggers",
                "Trailing stops whose price was crossed, each asking for an exit (count per "
                "interval).",
                [
                    _target(
                        "sum(increase("
                        f"risk_supervisor_trailing_stop_triggers_total{{{INST}}}[$__rate_interval]))",
                        "triggers",
                    )
                ],
                bars=True,
                defaults={"decimals": 0},
            ),
        ),
        (
            "stop_levels",
            12,
            9,
            _timeseries(
                "Stop vs extreme price",
                "Per position: the trailing stop (solid) and the most favourable price since "
                "it armed (dashed), which the stop trails. Series end when the position "
                "closes. Pick positions with the position variable.",
                [
                    _target(
                        f'risk_supervisor_trailing_stop_price{{{INST}, position=~"$position"}}',
                        "stop {{position}}",
                        ref="A",
                    ),
                    _target(
                        "risk_supervisor_trailing_stop_extreme_price"
                        f'{{{INST}, position=~"$position"}}',
                        "extreme {{position}}",
                        ref="B",
                    ),
                ],
                unit="currencyUSD",
                overrides=[
                    {
                        "matcher": {"id": "byRegexp", "options": "^extreme .*"},
                        "properties": [
                            {
                                "id": "custom.lineStyle",
                                "value": {"fill": "dash", "dash": [10, 10]},
                            }
                        ],
                    }
                ],
            ),
        ),
        (None, 24, 1, _row("Broker connection and actors")),
        (
            "ib_timeline",
            12,
            5,
            _state_timeline(
                "IB connection state",
                "State of the link to Interactive Brokers over time. While it is down no "
                "quotes arrive: stops cannot see prices or send exits.",
                _IB_EXPR,
                _IB_STATES,
            ),
        ),
        (
            "ib_disconnects",
            12,
            5,
            _timeseries(
                "IB disconnects",
                "Times the connection to Interactive Brokers was lost (count per interval).",
                [
                    _target(
                        "sum by (instance) (increase("
                        f"risk_supervisor_ib_disconnects_total{{{INST}}}[$__rate_interval]))",
                        "{{instance}}",
                    )
                ],
                bars=True,
                defaults={"decimals": 0},
            ),
        ),
        (
            "mailbox_depth",
            12,
            8,
            _timeseries(
                "Actor mailbox depth",
                "Messages waiting in the mailboxes of each actor kind, summed over its actors "
                "(count). A growing queue means the actors cannot keep up and decisions lag "
                "the market.",
                [
                    _target(
                        f"max by (actor_kind) (risk_supervisor_actor_mailbox_depth{{{INST}}})",
                        "{{actor_kind}}",
                    )
                ],
            ),
        ),
        (
            "actor_restarts",
            12,
            8,
            _timeseries(
                "Actor restarts",
                "Actors restarted after a crash, by kind (count per interval).",
                [
                    _target(
                        "sum by (actor_kind) (increase("
                        f"risk_supervisor_actor_restarts_total{{{INST}}}[$__rate_interval]))",
                        "{{actor_kind}}",
                    )
                ],
                bars=True,
                defaults={"decimals": 0},
            ),
        ),
    ]


def _place(layout: Layout) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Give each panel an id and a grid position, filling rows left to right."""
    panels: list[dict[str, Any]] = []
    ids: dict[str, int] = {}
    x = y = row_height = 0
    for n, (key, w, h, panel) in enumerate(layout, start=1):
        if x + w > 24:
            x, y, row_height = 0, y + row_height, 0
        placed = {"id": n, "gridPos": {"h": h, "w": w, "x": x, "y": y}, **panel}
        panels.append(placed)
        if key is not None:
            ids[key] = n
        x += w
        row_height = max(row_height, h)
        if x >= 24:
            x, y, row_height = 0, y + row_height, 0
    return panels, ids


def _variables() -> list[dict[str, Any]]:
    def query_var(name: str, label: str, query: str) -> dict[str, Any]:
        return {
            "name": name,
            "label": label,
            "type": "query",
            "datasource": DS,
            "query": query,
            "definition": query,
            "refresh": 2,
            "regex": "",
            "sort": 1,
            "multi": True,
            "includeAll": True,
            "allValue": ".*",
            "current": {},
            "options": [],
            "hide": 0,
        }

    return [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "regex": "",
            "current": {},
            "options": [],
            "refresh": 1,
            "hide": 0,
            "multi": False,
            "includeAll": False,
        },
        query_var("instance", "Instance", "label_values(risk_supervisor_build_info, instance)"),
        query_var(
            "position",
            "Position",
            'label_values(risk_supervisor_trailing_stop_extreme_price{instance=~"$instance"}, '
            "position)",
        ),
    ]


def _annotations() -> list[dict[str, Any]]:
    def prom(name: str, color: str, expr: str, title: str) -> dict[str, Any]:
        return {
            "name": name,
            "datasource": DS,
            "enable": True,
            "hide": False,
            "iconColor": color,
            "expr": expr,
            "step": "30s",
            "titleFormat": title,
            "textFormat": "{{instance}}",
            "tagKeys": "instance",
            "useValueForTime": False,
        }

    return [
        {
            "builtIn": 1,
            "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True,
            "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts",
            "type": "dashboard",
        },
        prom(
            "Breaker open",
            "red",
            f'risk_supervisor_circuit_breaker_state{{{INST}, state="open"}} == 1',
            "Circuit breaker open",
        ),
        prom(
            "IB not connected",
            "orange",
            f'risk_supervisor_ib_connection_state{{{INST}, state="connected"}} == 0',
            "Not connected to Interactive Brokers",
        ),
    ]


def dashboard() -> tuple[dict[str, Any], dict[str, int]]:
    """The dashboard JSON model, and the panel ids by key (for linking alert rules)."""
    panels, ids = _place(_layout())
    model: dict[str, Any] = {
        "uid": DASHBOARD_UID,
        "title": "Risk Supervisor",
        "description": (
            "Circuit breaker, pre-trade gate, portfolio Greeks and limits, trailing stops, "
            "broker connection and actor health of the risk supervisor. Generated by "
            "grafana/src/build.py: edit the builder, not this file."
        ),
        "tags": ["risk-supervisor", "trading"],
        "editable": True,
        "graphTooltip": 1,
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "links": [],
        "id": None,
        "annotations": {"list": _annotations()},
        "templating": {"list": _variables()},
        "panels": panels,
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "weekStart": "",
    }
    return model, ids

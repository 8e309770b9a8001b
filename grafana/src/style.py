"""The dashboard's house style: queries and panels built with Grafana's own SDK.

Every panel of the dashboard is made by one of the factories below, so the
panels share one look (legends, tooltips, line and bar styles, colours) and
one way of querying: through the ``${datasource}`` variable, filtered on
``instance=~"$instance"`` so one dashboard serves any number of supervisors.

The factories return the SDK's typed builders (``grafana_foundation_sdk``,
generated from Grafana's own schemas), so a misspelt option or a value of the
wrong type is a type error under ``mypy --strict``, not a panel that Grafana
silently ignores. The row modules in ``rows/`` only say what each panel shows.
"""

from __future__ import annotations

from dataclasses import dataclass

from grafana_foundation_sdk.builders import bargauge, common, prometheus, stat, statetimeline
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import timeseries as ts
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm

__all__ = [
    "DS",
    "INST",
    "Cell",
    "PanelBuilder",
    "Row",
    "bargauge_panel",
    "color",
    "dashed",
    "encoded_state",
    "quantile",
    "stat_panel",
    "state_mappings",
    "state_timeline",
    "target",
    "thresholds",
    "timeseries",
]

#: Every panel and query goes through the dashboard's datasource variable.
DS = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
#: The filter every query carries.
INST = 'instance=~"$instance"'

#: The SDK panel builders the dashboard uses; each has ``id()`` and builds a ``Panel``.
PanelBuilder = ts.Panel | stat.Panel | statetimeline.Panel | bargauge.Panel


@dataclass(frozen=True, slots=True)
class Cell:
    """One panel of a row; ``key`` names it for the alert rules that link to it."""

    key: str
    panel: PanelBuilder


@dataclass(frozen=True, slots=True)
class Row:
    """A dashboard row: its title and its panels, laid out left to right.

    Each line of panels should add up to the grid's 24 columns: the SDK's
    layout starts a new line only once a line is full.
    """

    title: str
    cells: tuple[Cell, ...]


# ------------------------------------------------------------------ queries


def target(
    expr: str, legend: str = "__auto", ref: str = "A", instant: bool = False
) -> prometheus.Dataquery:
    """A PromQL query through the datasource variable (a range query unless ``instant``)."""
    query = (
        prometheus.Dataquery()
        .datasource(DS)
        .editor_mode(pm.QueryEditorMode.CODE)
        .expr(expr)
        .legend_format(legend)
        .ref_id(ref)
    )
    return query.instant() if instant else query.range()


def quantile(q: str, metric: str, by: str = "instance") -> str:
    """The ``q`` quantile of a histogram over the rate interval, per ``by`` (PromQL)."""
    return (
        f"histogram_quantile({q}, sum by ({by}, le) (rate("
        f"{metric}_bucket{{{INST}}}[$__rate_interval])))"
    )


def encoded_state(metric: str, states: tuple[tuple[str, str], ...]) -> str:
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


# ------------------------------------------------------------------ field config


def thresholds(*steps: tuple[str, float | None]) -> dash.ThresholdsConfig:
    """Absolute thresholds, from ``(colour, None)`` for the base up."""
    return (
        dash.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=v, color=c) for c, v in steps])
    )


def state_mappings(states: tuple[tuple[str, str], ...]) -> list[dm.ValueMapping]:
    """Value mappings 0, 1, 2 … → the state's name in its colour."""
    return [
        dm.ValueMap(
            options={
                str(n): dm.ValueMappingResult(text=state, color=colour, index=n)
                for n, (state, colour) in enumerate(states)
            }
        )
    ]


def color(name: str) -> list[dm.DynamicConfigValue]:
    """Override properties: draw the series in a fixed colour."""
    return [dm.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": name})]


def dashed(name: str | None = None) -> list[dm.DynamicConfigValue]:
    """Override properties: a dashed line (a limit or a reference), optionally coloured."""
    style = [
        dm.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]})
    ]
    return style + (color(name) if name else [])


def _palette() -> dash.FieldColor:
    return dash.FieldColor().mode(dm.FieldColorModeId.PALETTE_CLASSIC)


def _by_threshold() -> dash.FieldColor:
    return dash.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS)


# ------------------------------------------------------------------ panels


def timeseries(
    title: str,
    description: str,
    targets: list[prometheus.Dataquery],
    *,
    w: int,
    h: int,
    unit: str = "short",
    bars: bool = False,
    decimals: int | None = None,
    minimum: float | None = None,
    soft_max: float | None = None,
    threshold_steps: dash.ThresholdsConfig | None = None,
    thresholds_style: cm.GraphThresholdsStyleMode = cm.GraphThresholdsStyleMode.OFF,
    calcs: list[str] | None = None,
    hide_zero_tooltips: bool = False,
) -> ts.Panel:
    """A time series: lines, or stacked bars for counts per interval."""
    panel = (
        ts.Panel()
        .title(title)
        .description(description)
        .datasource(DS)
        .targets(list(targets))
        .span(w)
        .height(h)
        .unit(unit)
        .color_scheme(_palette())
        .thresholds(threshold_steps or thresholds(("green", None)))
        .draw_style(cm.GraphDrawStyle.BARS if bars else cm.GraphDrawStyle.LINE)
        .line_width(1)
        .fill_opacity(80 if bars else 10)
        .gradient_mode(cm.GraphGradientMode.NONE)
        .show_points(cm.VisibilityMode.NEVER)
        .span_nulls(False)
        .axis_placement(cm.AxisPlacement.AUTO)
        .stacking(
            common.StackingConfig()
            .mode(cm.StackingMode.NORMAL if bars else cm.StackingMode.NONE)
            .group("A")
        )
        .thresholds_style(common.GraphThresholdsStyleConfig().mode(thresholds_style))
        .legend(
            common.VizLegendOptions()
            .show_legend(True)
            .display_mode(cm.LegendDisplayMode.TABLE if calcs else cm.LegendDisplayMode.LIST)
            .placement(cm.LegendPlacement.BOTTOM)
            .calcs(calcs or [])
        )
    )
    tooltip = (
        common.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING)
    )
    panel = panel.tooltip(tooltip.hide_zeros(True) if hide_zero_tooltips else tooltip)
    if bars:
        panel = panel.axis_soft_min(0)
    if decimals is not None:
        panel = panel.decimals(decimals)
    if minimum is not None:
        panel = panel.min(minimum)
    if soft_max is not None:
        panel = panel.axis_soft_max(soft_max)
    return panel


def stat_panel(
    title: str,
    description: str,
    targets: list[prometheus.Dataquery],
    *,
    w: int,
    h: int,
    unit: str = "short",
    mappings: list[dm.ValueMapping] | None = None,
    threshold_steps: dash.ThresholdsConfig | None = None,
    decimals: int | None = None,
    text_mode: cm.BigValueTextMode = cm.BigValueTextMode.VALUE,
    color_mode: cm.BigValueColorMode = cm.BigValueColorMode.BACKGROUND,
) -> stat.Panel:
    """A single big value per series: the last one, coloured by its thresholds."""
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DS)
        .targets(list(targets))
        .span(w)
        .height(h)
        .unit(unit)
        .color_scheme(_by_threshold())
        .thresholds(threshold_steps or thresholds(("green", None)))
        .mappings(mappings or [])
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False))
        .orientation(cm.VizOrientation.AUTO)
        .text_mode(text_mode)
        .color_mode(color_mode)
        .graph_mode(cm.BigValueGraphMode.NONE)
        .justify_mode(cm.BigValueJustifyMode.AUTO)
        .wide_layout(True)
        .show_percent_change(False)
    )
    if decimals is not None:
        panel = panel.decimals(decimals)
    return panel


def state_timeline(
    title: str,
    description: str,
    expr: str,
    states: tuple[tuple[str, str], ...],
    *,
    w: int,
    h: int,
) -> statetimeline.Panel:
    """One lane per instance whose colour is the state (see :func:`encoded_state`)."""
    return (
        statetimeline.Panel()
        .title(title)
        .description(description)
        .datasource(DS)
        .targets([target(expr, "{{instance}}")])
        .span(w)
        .height(h)
        .color_scheme(_by_threshold())
        .thresholds(thresholds(("green", None)))
        .mappings(state_mappings(states))
        .line_width(0)
        .fill_opacity(80)
        .merge_values(True)
        .show_value(cm.VisibilityMode.AUTO)
        .align_value(cm.TimelineValueAlignment.LEFT)
        .row_height(0.9)
        .legend(
            common.VizLegendOptions()
            .show_legend(True)
            .display_mode(cm.LegendDisplayMode.LIST)
            .placement(cm.LegendPlacement.BOTTOM)
        )
        .tooltip(
            common.VizTooltipOptions().mode(cm.TooltipDisplayMode.SINGLE).sort(cm.SortOrder.NONE)
        )
    )


def bargauge_panel(
    title: str,
    description: str,
    targets: list[prometheus.Dataquery],
    *,
    w: int,
    h: int,
    unit: str,
    minimum: float,
    maximum: float,
    threshold_steps: dash.ThresholdsConfig,
) -> bargauge.Panel:
    """Horizontal gradient bars, one per series, coloured by the thresholds."""
    return (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(DS)
        .targets(list(targets))
        .span(w)
        .height(h)
        .unit(unit)
        .min(minimum)
        .max(maximum)
        .color_scheme(_by_threshold())
        .thresholds(threshold_steps)
        .display_mode(cm.BarGaugeDisplayMode.GRADIENT)
        .orientation(cm.VizOrientation.HORIZONTAL)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False))
        .show_unfilled(True)
        .value_mode(cm.BarGaugeValueMode.COLOR)
        .name_placement(cm.BarGaugeNamePlacement.AUTO)
        .sizing(cm.BarGaugeSizing.AUTO)
        .min_viz_height(16)
        .min_viz_width(8)
        .max_viz_height(300)
    )

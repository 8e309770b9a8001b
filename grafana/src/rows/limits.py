"""Row *Limits*: how much of each risk limit the portfolio uses."""

from __future__ import annotations

from grafana_foundation_sdk.models import common as cm
from style import INST, Cell, Row, bargauge_panel, target, thresholds, timeseries

#: Orange from 90% of a limit (GreekLimitNearlyBreached), red at 100%.
UTILIZATION_STEPS = (("green", None), ("orange", 0.9), ("red", 1.0))

_UTIL = f"max by (limit) (risk_supervisor_limit_utilization_ratio{{{INST}}})"


def row() -> Row:
    """Utilization now (bars) and over time, with the 90% and 100% lines."""
    return Row(
        "Limits",
        (
            Cell(
                "limit_now",
                bargauge_panel(
                    "Limit utilization now",
                    "|usage| / limit per risk limit. Orange from 90%, red at 100%: at the "
                    "limit the gate denies orders that add to it.",
                    [target(_UTIL, "{{limit}}", instant=True)],
                    w=8,
                    h=9,
                    unit="percentunit",
                    minimum=0,
                    maximum=1.2,
                    threshold_steps=thresholds(*UTILIZATION_STEPS),
                ),
            ),
            Cell(
                "limit_utilization",
                timeseries(
                    "Limit utilization",
                    "|usage| / limit per risk limit over time (ratio; 100% = at the limit). "
                    "The dashed lines are the 90% warning and the 100% limit.",
                    [target(_UTIL, "{{limit}}")],
                    w=16,
                    h=9,
                    unit="percentunit",
                    minimum=0,
                    soft_max=1.1,
                    threshold_steps=thresholds(*UTILIZATION_STEPS),
                    thresholds_style=cm.GraphThresholdsStyleMode.DASHED,
                ),
            ),
        ),
    )

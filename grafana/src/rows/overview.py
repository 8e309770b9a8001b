"""Row *Overview*: the state of every supervisor at a glance."""

from __future__ import annotations

from grafana_foundation_sdk.models import common as cm
from style import (
    INST,
    Cell,
    Row,
    encoded_state,
    stat_panel,
    state_mappings,
    target,
    thresholds,
)

#: States of the one-hot gauges, in the order of their encoding, with their colours.
BREAKER_STATES = (("closed", "green"), ("half_open", "orange"), ("open", "red"))
IB_STATES = (("connected", "green"), ("connecting", "orange"), ("disconnected", "red"))

BREAKER_EXPR = encoded_state("risk_supervisor_circuit_breaker_state", BREAKER_STATES)
IB_EXPR = encoded_state("risk_supervisor_ib_connection_state", IB_STATES)


def row() -> Row:
    """Breaker and IB state, open positions, armed stops, denials, version."""
    return Row(
        "Overview",
        (
            Cell(
                "breaker_now",
                stat_panel(
                    "Circuit breaker",
                    "Current breaker state per supervisor. open: new entries halted (risk-"
                    "reducing orders still allowed); half_open: a few trial entries allowed.",
                    [target(BREAKER_EXPR, "{{instance}}", instant=True)],
                    w=5,
                    h=4,
                    mappings=state_mappings(BREAKER_STATES),
                ),
            ),
            Cell(
                "ib_now",
                stat_panel(
                    "IB connection",
                    "Current state of the link to Interactive Brokers per supervisor.",
                    [target(IB_EXPR, "{{instance}}", instant=True)],
                    w=5,
                    h=4,
                    mappings=state_mappings(IB_STATES),
                ),
            ),
            Cell(
                "positions_now",
                stat_panel(
                    "Open positions",
                    "Positions the supervisor tracks.",
                    [
                        target(
                            f"sum(risk_supervisor_positions{{{INST}}})", "positions", instant=True
                        )
                    ],
                    w=3,
                    h=4,
                    threshold_steps=thresholds(("blue", None)),
                ),
            ),
            Cell(
                "stops_now",
                stat_panel(
                    "Armed stops",
                    "Open positions whose trailing stop has armed.",
                    [
                        target(
                            f"sum(risk_supervisor_trailing_stops_active{{{INST}}})",
                            "stops",
                            instant=True,
                        )
                    ],
                    w=3,
                    h=4,
                    threshold_steps=thresholds(("blue", None)),
                ),
            ),
            Cell(
                "denied_now",
                stat_panel(
                    "Checks denied (time range)",
                    "Pre-trade checks denied over the dashboard's time range.",
                    [
                        target(
                            "sum(increase(risk_supervisor_pretrade_checks_total"
                            f'{{{INST}, outcome="denied"}}[$__range]))',
                            "denied",
                            instant=True,
                        )
                    ],
                    w=4,
                    h=4,
                    decimals=0,
                    threshold_steps=thresholds(("green", None), ("orange", 1)),
                ),
            ),
            Cell(
                "version",
                stat_panel(
                    "Version",
                    "Version of the running supervisor build(s), from risk_supervisor_build_info.",
                    [target(f"risk_supervisor_build_info{{{INST}}}", "{{version}}", instant=True)],
                    w=4,
                    h=4,
                    text_mode=cm.BigValueTextMode.NAME,
                    color_mode=cm.BigValueColorMode.NONE,
                ),
            ),
        ),
    )

"""Row *Circuit breaker*: its state over time, its transitions, and what trips it."""

from __future__ import annotations

from style import INST, Cell, Row, color, state_timeline, target, timeseries

from rows.overview import BREAKER_EXPR, BREAKER_STATES


def row() -> Row:
    """The breaker's state lane, transitions by state entered, failures by kind."""
    return Row(
        "Circuit breaker",
        (
            Cell(
                "breaker_timeline",
                state_timeline(
                    "Circuit breaker state",
                    "Breaker state over time, one lane per supervisor. Red (open) halts new "
                    "entries; orange (half_open) lets a few trial entries through.",
                    BREAKER_EXPR,
                    BREAKER_STATES,
                    w=24,
                    h=5,
                ),
            ),
            Cell(
                "breaker_transitions",
                timeseries(
                    "Breaker transitions",
                    "Transitions of the breaker, by the state entered (count per interval). "
                    "Repeated transitions to open mean half-open trials keep failing.",
                    [
                        target(
                            "sum by (to_state) (increase("
                            f"risk_supervisor_circuit_breaker_transitions_total{{{INST}}}"
                            "[$__rate_interval]))",
                            "to {{to_state}}",
                        )
                    ],
                    w=12,
                    h=8,
                    bars=True,
                    decimals=0,
                )
                .override_by_name("to open", color("red"))
                .override_by_name("to half_open", color("orange"))
                .override_by_name("to closed", color("green")),
            ),
            Cell(
                "breaker_failures",
                timeseries(
                    "Failures by kind",
                    "Systemic failures reported to the breaker, by kind (failures per "
                    "minute). These are what trip it.",
                    [
                        target(
                            "sum by (kind) (rate("
                            f"risk_supervisor_circuit_breaker_failures_total{{{INST}}}"
                            "[$__rate_interval])) * 60",
                            "{{kind}}",
                        )
                    ],
                    w=12,
                    h=8,
                    unit="opm",
                ),
            ),
        ),
    )

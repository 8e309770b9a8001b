"""Row *Pre-trade gate*: answers, reasons for denials, and how fast they come."""

from __future__ import annotations

from style import INST, Cell, Row, color, quantile, target, timeseries


def row() -> Row:
    """Checks by outcome, rejections by reason, check latency p50/p99."""
    latency = "risk_supervisor_pretrade_check_duration_seconds"
    return Row(
        "Pre-trade gate",
        (
            Cell(
                "checks",
                timeseries(
                    "Pre-trade checks",
                    "Pre-trade checks answered, allowed vs denied (checks per second).",
                    [
                        target(
                            "sum by (outcome) (rate("
                            f"risk_supervisor_pretrade_checks_total{{{INST}}}[$__rate_interval]))",
                            "{{outcome}}",
                        )
                    ],
                    w=8,
                    h=8,
                    unit="ops",
                )
                .override_by_name("allowed", color("green"))
                .override_by_name("denied", color("red")),
            ),
            Cell(
                "rejections",
                timeseries(
                    "Rejections by reason",
                    "Reasons given by denied checks, one per distinct reason per check "
                    "(reasons per second), every reason code: the risk limits, the order, "
                    "exposure and margin controls (also in row Order controls), "
                    "breaker_open, breaker_half_open_busy, stale_data and invalid_order.",
                    [
                        target(
                            "sum by (reason) (rate("
                            f"risk_supervisor_pretrade_rejections_total{{{INST}}}"
                            "[$__rate_interval])) > 0",
                            "{{reason}}",
                        )
                    ],
                    w=8,
                    h=8,
                    unit="ops",
                ),
            ),
            Cell(
                "check_latency",
                timeseries(
                    "Check latency",
                    "Time to answer a pre-trade check, p50 and p99, from the histogram "
                    "(seconds; buckets from 5 µs to 100 ms). Row Strategies, recording and "
                    "check stages splits it by stage.",
                    [
                        target(quantile("0.5", latency), "p50 {{instance}}", ref="A"),
                        target(quantile("0.99", latency), "p99 {{instance}}", ref="B"),
                    ],
                    w=8,
                    h=8,
                    unit="s",
                ),
            ),
        ),
    )

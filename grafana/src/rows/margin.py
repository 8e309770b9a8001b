"""Row *Margin gate*: IB what-if (margin preview) latency and failures."""

from __future__ import annotations

from style import INST, Cell, Row, color, quantile, target, timeseries


def row() -> Row:
    """What-if latency p50/p99 and what-if failures by reason."""
    latency = "risk_supervisor_whatif_duration_seconds"
    return Row(
        "Margin gate",
        (
            Cell(
                "whatif_latency",
                timeseries(
                    "What-if latency",
                    "Time an IB what-if took, p50 and p99, from the histogram (seconds; "
                    "buckets from 1 ms to 10 s). The margin gate waits this long on every "
                    "order it checks; timeouts count at the time waited.",
                    [
                        target(quantile("0.5", latency), "p50 {{instance}}", ref="A"),
                        target(quantile("0.99", latency), "p99 {{instance}}", ref="B"),
                    ],
                    w=12,
                    h=8,
                    unit="s",
                ),
            ),
            Cell(
                "whatif_failures",
                timeseries(
                    "What-if failures by reason",
                    "What-ifs that gave no usable margin (count per interval): timeout, error "
                    "from IB, or margin fields left unset. Failing continuously for 5 minutes "
                    "raises MarginWhatIfFailing.",
                    [
                        target(
                            "sum by (reason) (increase("
                            f"risk_supervisor_whatif_failures_total{{{INST}}}[$__rate_interval]))",
                            "{{reason}}",
                        )
                    ],
                    w=12,
                    h=8,
                    bars=True,
                    decimals=0,
                )
                .override_by_name("timeout", color("orange"))
                .override_by_name("error", color("red"))
                .override_by_name("unset", color("yellow")),
            ),
        ),
    )

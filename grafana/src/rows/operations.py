"""Row *Strategies, recording and check stages*: the supervisor's own workings."""

from __future__ import annotations

from style import INST, Cell, Row, color, dashed, target, timeseries

_STAGE = "risk_supervisor_check_stage_duration_seconds"


def _stage_quantile(q: str) -> str:
    return (
        f"histogram_quantile({q}, sum by (stage, le) (rate("
        f"{_STAGE}_bucket{{{INST}}}[$__rate_interval])))"
    )


def row() -> Row:
    """Live strategy stops, recorder lines and drops, check latency by stage."""
    return Row(
        "Strategies, recording and check stages",
        (
            Cell(
                "strategies",
                timeseries(
                    "Strategies",
                    "Live strategy (spread) stops the supervisor watches (count).",
                    [
                        target(
                            f"sum by (instance) (risk_supervisor_strategies{{{INST}}})",
                            "{{instance}}",
                        )
                    ],
                    w=6,
                    h=8,
                    decimals=0,
                ),
            ),
            Cell(
                "recording",
                timeseries(
                    "Recording lines and drops",
                    "Lines the session recorder wrote and dropped (lines per second). Any "
                    "drop leaves a gap in the recording (alert RecordingDropping).",
                    [
                        target(
                            "sum by (instance) (rate("
                            f"risk_supervisor_recording_lines_total{{{INST}}}[$__rate_interval]))",
                            "written {{instance}}",
                            ref="A",
                        ),
                        target(
                            "sum by (instance) (rate(risk_supervisor_recording_dropped_total"
                            f"{{{INST}}}[$__rate_interval]))",
                            "dropped {{instance}}",
                            ref="B",
                        ),
                    ],
                    w=8,
                    h=8,
                    unit="suffix: lines/s",
                ).override_by_regexp("^dropped .*", color("red")),
            ),
            Cell(
                "check_stages",
                timeseries(
                    "Check latency by stage",
                    "Where a pre-trade check spends its time: p99 (solid) and p50 (dashed) "
                    "of each stage — parse, queue, evaluate, journal, respond — from the "
                    "histogram (seconds; buckets from 5 µs to 100 ms).",
                    [
                        target(_stage_quantile("0.99"), "p99 {{stage}}", ref="A"),
                        target(_stage_quantile("0.5"), "p50 {{stage}}", ref="B"),
                    ],
                    w=10,
                    h=8,
                    unit="s",
                ).override_by_regexp("^p50 .*", dashed()),
            ),
        ),
    )

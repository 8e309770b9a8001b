"""Row *Trailing stops*: armed stops, triggers, and each stop against its extreme."""

from __future__ import annotations

from style import INST, Cell, Row, dashed, target, timeseries


def row() -> Row:
    """Armed stops and positions, stop triggers, stop vs extreme price per position."""
    return Row(
        "Trailing stops",
        (
            Cell(
                "stops",
                timeseries(
                    "Armed stops and positions",
                    "Open positions, and those whose trailing stop has armed (count).",
                    [
                        target(f"sum(risk_supervisor_positions{{{INST}}})", "positions", ref="A"),
                        target(
                            f"sum(risk_supervisor_trailing_stops_active{{{INST}}})",
                            "armed stops",
                            ref="B",
                        ),
                    ],
                    w=6,
                    h=9,
                    decimals=0,
                ),
            ),
            Cell(
                "stop_triggers",
                timeseries(
                    "Stop triggers",
                    "Trailing stops whose price was crossed, each asking for an exit (count "
                    "per interval).",
                    [
                        target(
                            "sum(increase(risk_supervisor_trailing_stop_triggers_total"
                            f"{{{INST}}}[$__rate_interval]))",
                            "triggers",
                        )
                    ],
                    w=6,
                    h=9,
                    bars=True,
                    decimals=0,
                ),
            ),
            Cell(
                "stop_levels",
                timeseries(
                    "Stop vs extreme price",
                    "Per position: the trailing stop (solid) and the most favourable price "
                    "since it armed (dashed), which the stop trails. Series end when the "
                    "position closes. Pick positions with the position variable.",
                    [
                        target(
                            f'risk_supervisor_trailing_stop_price{{{INST}, position=~"$position"}}',
                            "stop {{position}}",
                            ref="A",
                        ),
                        target(
                            "risk_supervisor_trailing_stop_extreme_price"
                            f'{{{INST}, position=~"$position"}}',
                            "extreme {{position}}",
                            ref="B",
                        ),
                    ],
                    w=12,
                    h=9,
                    unit="currencyUSD",
                ).override_by_regexp("^extreme .*", dashed()),
            ),
        ),
    )

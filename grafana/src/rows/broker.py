"""Row *Broker connection and actors*: the IB link, and the health of the actors."""

from __future__ import annotations

from style import INST, Cell, Row, state_timeline, target, timeseries

from rows.overview import IB_EXPR, IB_STATES


def row() -> Row:
    """IB state and disconnects, actor mailbox depth and restarts."""
    return Row(
        "Broker connection and actors",
        (
            Cell(
                "ib_timeline",
                state_timeline(
                    "IB connection state",
                    "State of the link to Interactive Brokers over time. While it is down no "
                    "quotes arrive: stops cannot see prices or send exits.",
                    IB_EXPR,
                    IB_STATES,
                    w=12,
                    h=5,
                ),
            ),
            Cell(
                "ib_disconnects",
                timeseries(
                    "IB disconnects",
                    "Times the connection to Interactive Brokers was lost (count per interval).",
                    [
                        target(
                            "sum by (instance) (increase("
                            f"risk_supervisor_ib_disconnects_total{{{INST}}}[$__rate_interval]))",
                            "{{instance}}",
                        )
                    ],
                    w=12,
                    h=5,
                    bars=True,
                    decimals=0,
                ),
            ),
            Cell(
                "mailbox_depth",
                timeseries(
                    "Actor mailbox depth",
                    "Messages waiting in the mailboxes of each actor kind, summed over its "
                    "actors (count). A growing queue means the actors cannot keep up and "
                    "decisions lag the market.",
                    [
                        target(
                            f"max by (actor_kind) (risk_supervisor_actor_mailbox_depth{{{INST}}})",
                            "{{actor_kind}}",
                        )
                    ],
                    w=12,
                    h=8,
                ),
            ),
            Cell(
                "actor_restarts",
                timeseries(
                    "Actor restarts",
                    "Actors restarted after a crash, by kind (count per interval).",
                    [
                        target(
                            "sum by (actor_kind) (increase("
                            f"risk_supervisor_actor_restarts_total{{{INST}}}[$__rate_interval]))",
                            "{{actor_kind}}",
                        )
                    ],
                    w=12,
                    h=8,
                    bars=True,
                    decimals=0,
                ),
            ),
        ),
    )

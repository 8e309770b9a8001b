"""Row *Money controls*: daily P&L, net liquidation value, the loss latch, kills, heartbeat.

Each limit is drawn from ``risk_supervisor_limit_value``, the value the daemon
is configured with, rather than typed into the dashboard, so the line moves
when the configuration does and a disabled limit draws no line.
"""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as dm
from style import INST, Cell, Row, color, dashed, stat_panel, target, thresholds, timeseries


def limit(key: str) -> str:
    """The configured value of a limit, one series per instance (PromQL)."""
    return f'max by (instance) (risk_supervisor_limit_value{{{INST}, limit="{key}"}})'


def row() -> Row:
    """P&L vs its floor, NLV vs high-water vs reported, latch, P&L age, heartbeat, kills."""
    return Row(
        "Money controls",
        (
            Cell(
                "daily_pnl",
                timeseries(
                    "Daily P&L vs loss limit",
                    "The account's daily profit and loss as IB reports it ($), against "
                    "−max_daily_loss (dashed red). Reaching the line trips the breaker with "
                    "loss_limit and latches it open (alert LossLimitTripped).",
                    [
                        target(f"risk_supervisor_daily_pnl{{{INST}}}", "P&L {{instance}}", ref="A"),
                        target(
                            f"-{limit('max_daily_loss')}", "−max_daily_loss {{instance}}", ref="B"
                        ),
                    ],
                    w=10,
                    h=8,
                    unit="currencyUSD",
                ).override_by_regexp("^−max_daily_loss .*", dashed("red")),
            ),
            Cell(
                "nlv",
                timeseries(
                    "Net liquidation value",
                    "The supervisor's NLV estimate between IB's reports (solid), its "
                    "high-water mark (dashed), from which max_drawdown_pct is measured, and "
                    "the NLV IB last reported (points; IB reports it every few minutes) ($).",
                    [
                        target(
                            f"risk_supervisor_net_liquidation_estimate{{{INST}}}",
                            "estimate {{instance}}",
                            ref="A",
                        ),
                        target(
                            f"risk_supervisor_net_liquidation_high_water{{{INST}}}",
                            "high-water {{instance}}",
                            ref="B",
                        ),
                        target(
                            f"risk_supervisor_net_liquidation_reported{{{INST}}}",
                            "reported {{instance}}",
                            ref="C",
                        ),
                    ],
                    w=10,
                    h=8,
                    unit="currencyUSD",
                )
                .override_by_regexp("^high-water .*", dashed())
                .override_by_regexp(
                    "^reported .*",
                    [
                        dm.DynamicConfigValue(id_val="custom.drawStyle", value="points"),
                        dm.DynamicConfigValue(id_val="custom.pointSize", value=6),
                    ],
                ),
            ),
            Cell(
                "loss_latch",
                stat_panel(
                    "Loss latch",
                    "LATCHED: the breaker is held open by a loss_limit trip; only an operator "
                    "clears it (runbook LossLimitTripped).",
                    [
                        target(
                            f"max by (instance) (risk_supervisor_loss_latched{{{INST}}})",
                            "{{instance}}",
                            instant=True,
                        )
                    ],
                    w=4,
                    h=8,
                    mappings=[
                        dm.ValueMap(
                            options={
                                "0": dm.ValueMappingResult(text="clear", color="green", index=0),
                                "1": dm.ValueMappingResult(text="LATCHED", color="red", index=1),
                            }
                        )
                    ],
                ),
            ),
            Cell(
                "pnl_age",
                timeseries(
                    "P&L feed age",
                    "Age of the last daily P&L from IB (seconds), against max_pnl_age_s "
                    "(dashed red). Older than that, money controls work on stale P&L "
                    "(alert PnlFeedStale).",
                    [
                        target(
                            f"max by (instance) (risk_supervisor_pnl_age_seconds{{{INST}}})",
                            "age {{instance}}",
                            ref="A",
                        ),
                        target(limit("max_pnl_age_s"), "max_pnl_age_s {{instance}}", ref="B"),
                    ],
                    w=8,
                    h=7,
                    unit="s",
                    minimum=0,
                ).override_by_regexp("^max_pnl_age_s .*", dashed("red")),
            ),
            Cell(
                "heartbeat_age",
                timeseries(
                    "Trader heartbeat age",
                    "Time since the trader's last heartbeat (seconds), against "
                    "heartbeat_timeout_s (dashed red). Past it the heartbeat is declared "
                    "lost and the watchdog kills (alert HeartbeatLost).",
                    [
                        target(
                            f"max by (instance) (risk_supervisor_heartbeat_age_seconds{{{INST}}})",
                            "age {{instance}}",
                            ref="A",
                        ),
                        target(
                            limit("heartbeat_timeout_s"),
                            "heartbeat_timeout_s {{instance}}",
                            ref="B",
                        ),
                        target(
                            "sum by (instance) (increase("
                            f"risk_supervisor_heartbeat_lost_total{{{INST}}}[$__rate_interval]))",
                            "lost {{instance}}",
                            ref="C",
                        ),
                    ],
                    w=8,
                    h=7,
                    unit="s",
                    minimum=0,
                )
                .override_by_regexp("^heartbeat_timeout_s .*", dashed("red"))
                .override_by_regexp(
                    "^lost .*",
                    [
                        dm.DynamicConfigValue(id_val="custom.drawStyle", value="bars"),
                        dm.DynamicConfigValue(id_val="custom.axisPlacement", value="right"),
                        dm.DynamicConfigValue(id_val="unit", value="short"),
                        dm.DynamicConfigValue(id_val="decimals", value=0),
                        *color("red"),
                    ],
                ),
            ),
            Cell(
                "kills",
                timeseries(
                    "Kills by mode",
                    "Kill switch uses by mode (count per interval): halt stops new entries, "
                    "cancel also cancels working orders, flatten also closes every position "
                    "(alert KillSwitchUsed).",
                    [
                        target(
                            "sum by (mode) (increase("
                            f"risk_supervisor_kills_total{{{INST}}}[$__rate_interval]))",
                            "{{mode}}",
                        )
                    ],
                    w=8,
                    h=7,
                    bars=True,
                    decimals=0,
                    threshold_steps=thresholds(("green", None)),
                )
                .override_by_name("halt", color("orange"))
                .override_by_name("cancel", color("red"))
                .override_by_name("flatten", color("purple")),
            ),
        ),
    )

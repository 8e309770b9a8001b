"""Row *Order controls*: what the per-order and exposure controls refuse, and why."""

from __future__ import annotations

from style import INST, Cell, Row, dashed, target, timeseries

from rows.money import limit

#: The reason codes of the order, exposure and margin controls, as
#: ``supervisor.metrics.CONTROL_REASONS`` lists them (a test keeps the two equal).
CONTROL_REASONS: tuple[str, ...] = (
    "max_beta_weighted_delta",
    "max_leg_contracts",
    "max_leg_shares",
    "max_order_notional",
    "max_order_premium",
    "price_collar_pct",
    "order_rate",
    "duplicate_order",
    "cooldown",
    "max_init_margin_pct",
    "min_excess_liquidity",
)


def row() -> Row:
    """Rejections by control, and the beta-weighted delta against its limit."""
    reasons = "|".join(CONTROL_REASONS)
    return Row(
        "Order controls",
        (
            Cell(
                "control_rejections",
                timeseries(
                    "Order-control rejections by reason",
                    "Checks denied by the order, exposure and margin controls, by reason "
                    "(reasons per second): leg size, order notional and premium, price "
                    "collar, order rate, duplicates, cool-down, beta-weighted delta, "
                    "initial margin and excess liquidity.",
                    [
                        target(
                            "sum by (reason) (rate(risk_supervisor_pretrade_rejections_total"
                            f'{{{INST}, reason=~"{reasons}"}}[$__rate_interval]))',
                            "{{reason}}",
                        )
                    ],
                    w=12,
                    h=8,
                    unit="ops",
                    # Every reason is pre-initialised, so the panel always has
                    # data (0 for a control that refused nothing); the tooltip
                    # lists only the reasons that did refuse something.
                    hide_zero_tooltips=True,
                ),
            ),
            Cell(
                "beta_weighted_delta",
                timeseries(
                    "Beta-weighted delta vs limit",
                    "Portfolio delta weighted by each underlying's beta to the index (index "
                    "shares), between ±max_beta_weighted_delta (dashed red). Orders that "
                    "push it past the limit are denied.",
                    [
                        target(
                            f"risk_supervisor_portfolio_beta_weighted_delta{{{INST}}}",
                            "β-weighted delta {{instance}}",
                            ref="A",
                        ),
                        target(
                            limit("max_beta_weighted_delta"),
                            "+max_beta_weighted_delta {{instance}}",
                            ref="B",
                        ),
                        target(
                            f"-{limit('max_beta_weighted_delta')}",
                            "−max_beta_weighted_delta {{instance}}",
                            ref="C",
                        ),
                    ],
                    w=12,
                    h=8,
                ).override_by_regexp("^[+−]max_beta_weighted_delta .*", dashed("red")),
            ),
        ),
    )

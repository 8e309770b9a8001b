"""Row *Portfolio Greeks*: the summed position Greeks the limits are measured on."""

from __future__ import annotations

from style import INST, Cell, Row, target, timeseries


def _greek(key: str, metric: str, title: str, unit: str, what: str, w: int) -> Cell:
    return Cell(
        key,
        timeseries(
            title,
            f"{what} Position Greeks summed over the portfolio, as the supervisor computes "
            "them for its limits.",
            [target(f"risk_supervisor_{metric}{{{INST}}}", "{{instance}}")],
            w=w,
            h=7,
            unit=unit,
        ),
    )


def row() -> Row:
    """Delta, dollar delta, gamma, vega, theta."""
    return Row(
        "Portfolio Greeks",
        (
            _greek("delta", "portfolio_delta", "Delta (share-equivalents)", "short", "Delta.", 5),
            _greek(
                "dollar_delta",
                "portfolio_dollar_delta",
                "Dollar delta ($)",
                "currencyUSD",
                "Dollar delta.",
                5,
            ),
            _greek("gamma", "portfolio_gamma", "Gamma", "short", "Gamma.", 5),
            _greek("vega", "portfolio_vega", "Vega ($ per vol point)", "currencyUSD", "Vega.", 5),
            _greek("theta", "portfolio_theta", "Theta ($ per day)", "currencyUSD", "Theta.", 4),
        ),
    )

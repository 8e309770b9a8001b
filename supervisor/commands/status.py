"""``risk-supervisor status``: a running daemon's state, as tables, for a human.

Reads ``GET /v1/state`` (open without a token) and prints the breaker, the
portfolio's Greeks against their limits, and each position's trailing stop.
It only reads, so it is safe to run against a live daemon at any time. An
unreachable daemon is one line on stderr and exit code 2, so scripts and
humans can tell "down" from "up and denying".
"""

from __future__ import annotations

import datetime as dt
import math
import sys
import time
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from supervisor.client import DEFAULT_URL, RiskClient, RiskClientError

__all__ = ["EXIT_UNREACHABLE", "run_status"]

EXIT_UNREACHABLE = 2

_GREEKS = (
    ("delta", "delta", "max_portfolio_delta"),
    ("$ delta", "dollar_delta", "max_portfolio_dollar_delta"),
    ("gamma", "gamma", "max_portfolio_gamma"),
    ("vega", "vega", "max_portfolio_vega"),
    ("theta", "theta", "max_portfolio_theta"),
)
_STATE_STYLE = {"closed": "green", "half_open": "yellow", "open": "bold red"}


def _num(v: Any, digits: int = 2) -> str:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return "—"
    if not math.isfinite(v):
        return str(v)
    return f"{v:,.{digits}f}"


def _when(t: Any, now: float) -> str:
    if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t):
        return "—"
    stamp = dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    delta = t - now
    rel = f"in {delta:,.0f}s" if delta >= 0 else f"{-delta:,.0f}s ago"
    return f"{stamp} ({rel})"


def _utilization(u: Any) -> str:
    if isinstance(u, bool) or not isinstance(u, int | float) or not math.isfinite(u):
        return "—"
    style = "red" if u > 1 else "yellow" if u >= 0.8 else "green"
    return f"[{style}]{u * 100:.1f}%[/]"


def breaker_table(breaker: dict[str, Any], now: float) -> Table:
    snap = breaker.get("snapshot") or {}
    state = str(breaker.get("state", "?"))
    table = Table(title="Circuit breaker", show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_row("state", f"[{_STATE_STYLE.get(state, 'white')}]{state}[/]")
    table.add_row("since", _when(snap.get("opened_at"), now) if state != "closed" else "—")
    table.add_row("trips", f"{snap.get('trips', '—')} (today {snap.get('day_trips', '—')})")
    due = snap.get("due")
    table.add_row("due", _when(due, now) if due is not None else "—")
    flags = [name for name in ("forced", "latched") if snap.get(name)]
    table.add_row("flags", ", ".join(flags) or "—")
    window = snap.get("window") or []
    table.add_row("failures in window", str(len(window)))
    return table


def portfolio_table(portfolio: dict[str, Any]) -> Table:
    limits: dict[str, dict[str, Any]] = {
        str(x.get("limit")): x for x in portfolio.get("limits") or [] if isinstance(x, dict)
    }
    table = Table(title="Portfolio vs limits", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("limit", justify="right")
    table.add_column("utilization", justify="right")
    shown: set[str] = set()
    for label, measure, limit_key in _GREEKS:
        lim = limits.get(limit_key) or {}
        shown.add(limit_key)
        table.add_row(
            label,
            _num(portfolio.get(measure)),
            _num(lim.get("value")),
            _utilization(lim.get("utilization")),
        )
    for name, lim in limits.items():
        if name not in shown:
            table.add_row(
                name, _num(lim.get("usage")), _num(lim.get("value")),
                _utilization(lim.get("utilization")),
            )  # fmt: skip
    caption = f"NLV {_num(portfolio.get('net_liquidation'))}"
    problem = portfolio.get("data_problem")
    if problem:
        caption += f" · [red]data problem: {problem}[/] (checks deny stale_data)"
    table.caption = caption
    return table


def _contract(p: dict[str, Any]) -> str:
    if p.get("sec_type") == "OPT":
        return f"{p.get('symbol')} {p.get('expiry')} {_num(p.get('strike'))} {p.get('right')}"
    return str(p.get("symbol"))


def positions_table(positions: list[dict[str, Any]]) -> Table:
    table = Table(title="Positions and trailing stops", title_justify="left")
    for name, justify in (
        ("id", "left"), ("contract", "left"), ("qty", "right"), ("entry", "right"),
        ("extreme", "right"), ("stop", "right"), ("state", "left"), ("breaches", "right"),
        ("ignored", "right"),
    ):  # fmt: skip
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for p in positions:
        if p.get("triggered"):
            stop_state = "[bold red]TRIGGERED[/]"
        elif p.get("active"):
            stop_state = "[green]active[/]"
        else:
            stop_state = "[dim]waiting[/]"
        table.add_row(
            str(p.get("id")), _contract(p), _num(p.get("qty"), 0), _num(p.get("entry_price")),
            _num(p.get("extreme")), _num(p.get("stop")), stop_state, str(p.get("breaches", "—")),
            str(p.get("ignored_quotes", "—")),
        )  # fmt: skip
    if not positions:
        table.caption = "no open positions"
    return table


def run_status(url: str = DEFAULT_URL, token: str | None = None, out: TextIO = sys.stdout) -> int:
    """Print a running daemon's state as tables; 0, or 2 if it cannot be read."""
    try:
        with RiskClient(url, token=token, timeout=3.0) as client:
            state = client.state()
    except RiskClientError as exc:
        print(f"risk-supervisor status: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    now = state.get("t")
    now = float(now) if isinstance(now, int | float) else time.time()
    console = Console(file=out, width=None if out.isatty() else 120, soft_wrap=False)
    console.print(breaker_table(state.get("breaker") or {}, now))
    console.print(portfolio_table(state.get("portfolio") or {}))
    console.print(positions_table(state.get("positions") or []))
    return 0

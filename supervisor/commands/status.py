"""``risk-supervisor status``: a running daemon's state, as tables, for a human.

Reads ``GET /v1/state`` (open without a token) and prints the breaker, the
portfolio's Greeks and beta-weighted delta against their limits, the money
(daily P&L, estimated NLV, high-water mark, loss latch), the dead-man switch,
the last kill and its flatten orders, each strategy's stop on its net price
and each position's trailing stop. It only reads, so it is safe to run
against a live daemon at any time. An unreachable daemon is one line on
stderr and exit code 2, so scripts and humans can tell "down" from "up and
denying".
"""

from __future__ import annotations

import datetime as dt
import math
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from supervisor.api.token_file import TokenError, client_token, default_token_file
from supervisor.client import DEFAULT_URL, RiskClient, RiskClientError

__all__ = ["EXIT_UNREACHABLE", "api_token", "kill_table", "run_status", "run_status_command"]

EXIT_UNREACHABLE = 2

_GREEKS = (
    ("delta", "delta", "max_portfolio_delta"),
    ("$ delta", "dollar_delta", "max_portfolio_dollar_delta"),
    ("gamma", "gamma", "max_portfolio_gamma"),
    ("vega", "vega", "max_portfolio_vega"),
    ("theta", "theta", "max_portfolio_theta"),
    ("β-wtd delta", "beta_weighted_delta", "max_beta_weighted_delta"),
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


def money_table(money: dict[str, Any]) -> Table:
    table = Table(title="Money", show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value")
    daily = money.get("daily_pnl")
    style = "red" if isinstance(daily, int | float) and daily < 0 else "green"
    table.add_row("daily P&L", f"[{style}]{_num(daily)}[/]" if _is_num(daily) else "—")
    table.add_row("NLV estimate", _num(money.get("nlv_estimate")))
    table.add_row("NLV reported", _num(money.get("nlv_reported")))
    hwm, est = _float(money.get("high_water")), _float(money.get("nlv_estimate"))
    drawdown = (
        f" (drawdown {(hwm - est) / hwm * 100:.2f}%)"
        if hwm is not None and est is not None and hwm > 0
        else ""
    )
    table.add_row("high-water mark", _num(hwm) + drawdown)
    latched = money.get("loss_latched")
    table.add_row("loss latch", "[bold red]LATCHED[/] (reset to clear)" if latched else "—")
    return table


def heartbeat_table(hb: dict[str, Any], now: float) -> Table:
    table = Table(title="Heartbeat (dead-man switch)", show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value")
    timeout = hb.get("timeout_s")
    table.add_row("timeout", f"{_num(timeout, 1)} s" if _is_num(timeout) else "off")
    table.add_row("last", _when(hb.get("last_t"), now))
    age = hb.get("age_s")
    table.add_row("age", f"{_num(age, 1)} s" if _is_num(age) else "—")
    table.add_row("deadline", _when(hb.get("deadline"), now))
    table.add_row("fired", "[bold red]yes[/]" if hb.get("fired") else "no")
    return table


def kill_table(kill: dict[str, Any], now: float) -> Table:
    """The last kill and its flatten orders (one row per position)."""
    mode = str(kill.get("mode", "?"))
    table = Table(
        title=f"Kill {kill.get('kill_id', '?')}: [bold red]{mode}[/] by "
        f"{kill.get('operator', '?')} ({kill.get('cause', '?')}) at {_when(kill.get('t'), now)}",
        title_justify="left",
    )
    for name in ("position", "status", "order id", "detail"):
        table.add_column(name)
    orders = [o for o in kill.get("orders") or [] if isinstance(o, dict)]
    for o in orders:
        status = str(o.get("status", "?"))
        style = "green" if status == "filled" else "red" if status in ("error", "rejected") else ""
        table.add_row(
            str(o.get("position_id")),
            f"[{style}]{status}[/]" if style else status,
            "—" if o.get("order_id") is None else str(o.get("order_id")),
            str(o.get("detail") or ""),
        )
    cancel = kill.get("cancel") or "—"
    table.caption = f"breaker {kill.get('breaker', '?')} · cancel {cancel}" + (
        "" if orders else " · no flatten orders"
    )
    return table


def _leg(leg: dict[str, Any]) -> str:
    ratio = leg.get("ratio")
    sign = f"{ratio:+d}" if isinstance(ratio, int) else "?"
    what = _contract(leg) if leg.get("symbol") else "?"
    return f"{sign}×{what}"


def strategies_table(strategies: list[dict[str, Any]]) -> Table:
    table = Table(title="Strategies (one stop on the net price)", title_justify="left")
    for name, justify in (
        ("id", "left"), ("symbol", "left"), ("legs", "left"), ("state", "left"),
        ("entry", "right"), ("net price", "right"), ("extreme", "right"), ("stop", "right"),
    ):  # fmt: skip
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for s in strategies:
        state = str(s.get("state", "?"))
        if state == "triggered":
            state = "[bold red]TRIGGERED[/]"
        elif s.get("active"):
            state = f"[green]{state}, active[/]"
        if s.get("credit"):
            state += " (credit)"
        legs = ", ".join(_leg(x) for x in s.get("legs") or [] if isinstance(x, dict))
        table.add_row(
            str(s.get("id")), str(s.get("symbol")), legs, state, _num(s.get("entry")),
            _num(s.get("net_price")), _num(s.get("extreme")), _num(s.get("stop")),
        )  # fmt: skip
    return table


def _is_num(v: Any) -> bool:
    return _float(v) is not None


def _float(v: Any) -> float | None:
    ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    return float(v) if ok else None


def api_token(token_env: str | None, token_file: str | Path | None) -> str | None:
    """The CLI's token: the variable ``token_env``, else the token file (default path)."""
    path = Path(token_file) if token_file else default_token_file()
    return client_token(token_env or None, path)


def run_status_command(url: str, token_env: str | None, token_file: str | Path | None) -> int:
    """``risk-supervisor status``: :func:`run_status` with a token only when one is named.

    The state is open to reads, so by default no token is read (a token file
    the operator may not read must not stop them seeing the state); a named
    ``--token-env`` or ``--token-file`` must work.
    """
    if not token_env and not token_file:
        return run_status(url, None)
    try:
        token = api_token(token_env, token_file)
    except TokenError as exc:
        print(f"risk-supervisor status: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    return run_status(url, token)


def run_status(url: str = DEFAULT_URL, token: str | None = None, out: TextIO | None = None) -> int:
    """Print a running daemon's state as tables; 0, or 2 if it cannot be read."""
    try:
        with RiskClient(url, token=token, timeout=3.0) as client:
            state = client.state()
    except RiskClientError as exc:
        print(f"risk-supervisor status: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    out = out or sys.stdout
    now = state.get("t")
    now = float(now) if isinstance(now, int | float) else time.time()
    console = Console(file=out, width=None if out.isatty() else 120, soft_wrap=False)
    console.print(breaker_table(state.get("breaker") or {}, now))
    kill = state.get("kill")
    if isinstance(kill, dict):
        console.print(kill_table(kill, now))
    console.print(money_table(state.get("money") or {}))
    console.print(heartbeat_table(state.get("heartbeat") or {}, now))
    console.print(portfolio_table(state.get("portfolio") or {}))
    strategies = state.get("strategies") or []
    if strategies:
        console.print(strategies_table(strategies))
    console.print(positions_table(state.get("positions") or []))
    return 0

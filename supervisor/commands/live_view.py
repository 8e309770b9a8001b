"""What the daemon is doing, for a person at a terminal: the demo's live view.

A :class:`Frame` is one snapshot read through the daemon's facade (portfolio,
stops, breaker), the adapter's connection state and the journal's latest
events. It is rendered either as a ``rich`` layout for a live terminal, or as
a few plain lines when stdout is not a terminal (CI logs, pipes), where
cursor movement would only make noise.

Reading a frame asks the actors (the same questions ``GET /v1/state``
asks), so frames are taken a couple of times a second, never per quote.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group, JustifyMethod, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from actors.messages import StopSnapshot
from supervisor.core.daemon import Daemon
from supervisor.core.facade import JournalEntry
from supervisor.store.sqlite_store import StoreUnavailable

__all__ = ["Frame", "PositionLine", "read_frame", "render_rich", "render_text"]

_GREEKS: tuple[tuple[str, str, str], ...] = (
    ("delta", "delta", "max_portfolio_delta"),
    ("$ delta", "dollar_delta", "max_portfolio_dollar_delta"),
    ("gamma", "gamma", "max_portfolio_gamma"),
    ("vega", "vega", "max_portfolio_vega"),
    ("theta", "theta", "max_portfolio_theta"),
)
_BREAKER_STYLE = {"closed": "bold green", "half_open": "bold yellow", "open": "bold red"}
_IB_STYLE = {"connected": "green", "connecting": "yellow", "disconnected": "bold red"}
#: Journal kinds worth a line in the view (stop UPDATEs and allowed checks are too chatty).
_EVENT_KINDS = frozenset({"stop", "breaker", "failure", "exit_order", "check", "admin", "restart"})


@dataclass(frozen=True)
class PositionLine:
    """One position as shown: its contract, its last price and its stop."""

    id: str
    label: str
    qty: float
    price: float | None
    entry: float
    stop: float | None
    extreme: float
    state: str  # idle | active | TRIGGERED


@dataclass(frozen=True)
class Frame:
    t: float
    positions: tuple[PositionLine, ...]
    greeks: dict[str, float]
    net_liquidation: float | None
    limits: dict[str, tuple[float, float | None, float | None]]  # key → (limit, usage, ratio)
    data_problem: str | None
    breaker: str
    breaker_detail: str
    ib: str
    events: tuple[str, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)
    daily_pnl: float | None = None
    loss_latched: bool = False
    strategies: tuple[str, ...] = ()  # one line each: id, state, net price, stop


def _label(s: StopSnapshot) -> str:
    c = s.contract
    if c.is_option and c.right is not None:
        return f"{c.symbol} {c.expiry} {c.strike:g}{c.right.value}"
    return f"{c.symbol} STK"


def _state(s: StopSnapshot) -> str:
    if s.triggered:
        return "TRIGGERED"
    return "active" if s.active else "idle"


def _event_line(row: JournalEntry, now: float) -> str | None:
    p = row.payload
    kind = row.kind
    ago = f"{max(0.0, now - row.t):5.1f}s ago" if math.isfinite(row.t) else "        "
    if kind == "stop":
        if p.get("action") == "UPDATE":
            return None
        return (
            f"{ago}  stop {p.get('action')} {row.position_id}: ref {_num(p.get('ref_price'))} "
            f"stop {_num(p.get('stop'))}"
        )
    if kind == "breaker":
        cause = p.get("cause") or {}
        return f"{ago}  breaker {p.get('from')} → {p.get('to')} ({cause.get('reason')})"
    if kind == "failure":
        code = p.get("code")
        return (
            f"{ago}  failure {p.get('kind')}{'' if code is None else f' {code}'}: "
            f"{str(p.get('detail') or '')[:60]}"
        )
    if kind == "exit_order":
        extra = f" #{p['order_id']}" if p.get("order_id") else ""
        side = (
            f" {p['action']} {_num(p.get('qty'), 0)} @ {_num(p.get('limit'))}"
            if p.get("action") and p.get("limit")
            else ""
        )
        return f"{ago}  exit {p.get('status')}{extra}{side} {row.position_id or ''}".rstrip()
    if kind == "check":
        if p.get("allowed"):
            return None
        reasons = ",".join(str(r.get("code")) for r in p.get("reasons") or [])
        return f"{ago}  check {p.get('id')} denied: {reasons}"
    if kind == "admin":
        return f"{ago}  admin {p.get('action')}"
    if kind == "restart":
        return f"{ago}  daemon started ({p.get('positions')} stops restored)"
    return None


def _events(daemon: Daemon, now: float, n: int) -> tuple[str, ...]:
    try:
        rows = daemon.journal(newest=True, limit=200)
    except LookupError:
        return ()
    except StoreUnavailable as exc:
        return (f"journal unavailable: {exc}",)
    lines = [
        line
        for row in rows
        if row.kind in _EVENT_KINDS and (line := _event_line(row, now)) is not None
    ]
    return tuple(lines[-n:])


def read_frame(
    daemon: Daemon,
    ib_status: Callable[[], str] | None = None,
    *,
    events: int = 8,
    notes: Iterable[str] = (),
) -> Frame:
    """One snapshot of the daemon, through its facade and its journal."""
    now = daemon.clock()
    view = daemon.portfolio_view()
    prices = {str(r["id"]): r.get("price") for r in view.rows}
    lines = tuple(
        PositionLine(
            s.id, _label(s), s.qty, prices.get(s.id), s.entry_price, s.stop, s.extreme, _state(s)
        )
        for s in sorted(daemon.stop_snapshots(), key=lambda s: (s.contract.symbol, s.id))
    )
    breaker = daemon.breaker_view()
    snap = breaker.snapshot
    window = snap.get("window") or []
    detail = f"failures in window {len(window)}, trips {snap.get('trips', 0)}"
    due = snap.get("due")
    if isinstance(due, int | float) and breaker.state.value == "open":
        detail += f", half-open in {max(0.0, due - now):.0f}s"
    loss_latched = bool(
        breaker.state.value == "open"
        and snap.get("latched")
        and any(e.get("kind") == "loss_limit" for e in window)
    )
    if loss_latched:
        detail += ", LOSS LIMIT: latched until an operator resets"
    elif snap.get("forced") or snap.get("latched"):
        detail += ", held open until reset"
    state = daemon.state()
    strategies = tuple(
        f"{st.id} {st.state}: net {_num(st.net_price)} stop {_num(st.stop)} "
        f"extreme {_num(st.extreme)}{' (credit)' if st.credit else ''}"
        for st in state.strategies
    )
    limits = {k: (v, view.usage.get(k), view.utilization.get(k)) for k, v in view.limits.items()}
    return Frame(
        t=now,
        positions=lines,
        greeks={
            "delta": view.delta,
            "dollar_delta": view.dollar_delta,
            "gamma": view.gamma,
            "vega": view.vega,
            "theta": view.theta,
        },
        net_liquidation=view.net_liquidation,
        limits=limits,
        data_problem=view.data_problem,
        breaker=breaker.state.value,
        breaker_detail=detail,
        ib=ib_status() if ib_status is not None else "unknown",
        events=_events(daemon, now, events),
        notes=tuple(notes),
        daily_pnl=state.money.daily_pnl,
        loss_latched=loss_latched,
        strategies=strategies,
    )


# ------------------------------------------------------------------ render


def _num(v: Any, digits: int = 2) -> str:
    if v is None or isinstance(v, bool) or not isinstance(v, int | float):
        return "—"
    if not math.isfinite(v):
        return "—"
    return f"{v:,.{digits}f}"


def _pct(ratio: float | None) -> str:
    return "—" if ratio is None or not math.isfinite(ratio) else f"{ratio * 100:.0f}%"


def _ratio_style(ratio: float | None) -> str:
    if ratio is None:
        return "dim"
    return "bold red" if ratio > 1 else "yellow" if ratio >= 0.8 else "green"


def render_rich(frame: Frame, title: str = "risk-supervisor") -> RenderableType:
    """The frame as a ``rich`` renderable (for ``rich.live.Live``)."""
    head = Text.assemble(
        (f"{title}  ", "bold"),
        ("IB ", "dim"),
        (frame.ib, _IB_STYLE.get(frame.ib, "")),
        ("   breaker ", "dim"),
        (frame.breaker.upper(), _BREAKER_STYLE.get(frame.breaker, "")),
        (f" ({frame.breaker_detail})", "dim"),
        ("   NLV ", "dim"),
        (_num(frame.net_liquidation, 0), ""),
        ("   daily P&L ", "dim"),
        (_num(frame.daily_pnl, 0), "bold red" if frame.loss_latched else ""),
    )

    pos = Table(title="positions and trailing stops", expand=True, title_justify="left")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("position", "left"),
        ("qty", "right"),
        ("price", "right"),
        ("entry", "right"),
        ("stop", "right"),
        ("extreme", "right"),
        ("state", "left"),
    )
    for col, justify in columns:
        pos.add_column(col, justify=justify)
    for p in frame.positions:
        style = {"TRIGGERED": "bold red", "active": "cyan"}.get(p.state, "dim")
        pos.add_row(
            p.label,
            _num(p.qty, 0),
            _num(p.price),
            _num(p.entry),
            _num(p.stop),
            _num(p.extreme),
            Text(p.state, style=style),
        )
    if not frame.positions:
        pos.add_row("(no positions)", "", "", "", "", "", "")

    risk = Table(title="portfolio vs limits", expand=True, title_justify="left")
    for col in ("measure", "value", "limit", "utilization"):
        risk.add_column(col, justify="left" if col == "measure" else "right")
    for name, attr, key in _GREEKS:
        limit, _, ratio = frame.limits.get(key, (None, None, None))
        risk.add_row(
            name,
            _num(frame.greeks.get(attr)),
            _num(limit),
            Text(_pct(ratio), style=_ratio_style(ratio)),
        )
    for key, (limit, usage, ratio) in frame.limits.items():
        if key in {k for _, _, k in _GREEKS}:
            continue
        risk.add_row(
            key.removeprefix("max_"),
            _num(usage),
            _num(limit),
            Text(_pct(ratio), style=_ratio_style(ratio)),
        )
    if frame.data_problem:
        risk.caption = f"data: {frame.data_problem}"

    events = Text(
        "\n".join(frame.events) if frame.events else "(nothing yet)",
        no_wrap=True,
        overflow="ellipsis",
    )
    parts: list[RenderableType] = [head, pos, risk, Panel(events, title="latest events")]
    if frame.notes:
        parts.append(Text("\n".join(frame.notes), style="dim"))
    return Group(*parts)


def render_text(frame: Frame, started: float | None = None) -> str:
    """The frame as a few plain lines (no colour, no cursor moves) for logs and pipes."""
    stamp = time.strftime("%H:%M:%S", time.localtime(frame.t))
    since = f" t+{frame.t - started:.0f}s" if started is not None else ""
    out = [
        f"--- {stamp}{since}  IB {frame.ib}  breaker {frame.breaker.upper()} "
        f"({frame.breaker_detail})  NLV {_num(frame.net_liquidation, 0)}  "
        f"daily P&L {_num(frame.daily_pnl, 0)}"
    ]
    out += [f"  strategy {line}" for line in frame.strategies]
    for p in frame.positions:
        out.append(
            f"  {p.label:<24} qty {p.qty:>7,.0f}  price {_num(p.price):>10}  "
            f"stop {_num(p.stop):>10}  extreme {_num(p.extreme):>10}  {p.state}"
        )
    if not frame.positions:
        out.append("  (no positions)")
    greeks = "  ".join(f"{name} {_num(frame.greeks.get(attr))}" for name, attr, _ in _GREEKS)
    out.append(f"  greeks: {greeks}")
    if frame.limits:
        used = "  ".join(
            f"{k.removeprefix('max_')} {_pct(r)}" for k, (_, _, r) in frame.limits.items()
        )
        out.append(f"  limits: {used}")
    out.extend(f"  | {e}" for e in frame.events[-4:])
    return "\n".join(out)

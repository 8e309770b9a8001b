"""The one-page HTML report of a tuning run: inline SVG, no script, no network.

Three parts: the frontier of mean giveback against whipsaws per 100 triggers
(every set a dot, the sets no other set beats on both a line), the best sets
table, and one price path with the chosen set's stop drawn on it. The page
must open offline years later, so everything is in the file.
"""

from __future__ import annotations

import datetime as dt
import html
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

F64 = npt.NDArray[np.float64]

PRICE = "#1f77b4"
STOP = "#d62728"
FRONTIER = "#2ca02c"
CHOSEN = "#ff7f0e"
OTHER = "#9a9a9a"
HORIZON = "#f3e3c3"


@dataclass(frozen=True, slots=True)
class PricePath:
    """One stop life's prices and the chosen set's stop decisions on it.

    A position's reference price, or a strategy's price in its stop's units
    (the net price of a debit, the cost to close, −net, of a credit).
    """

    id: str
    symbol: str
    long: bool
    times: F64
    prices: F64
    decisions: Sequence[tuple[float, str, float]]  # (t, action, stop)
    end_t: float
    horizon_s: float
    kind: str = "position"  # or "strategy"
    price_label: str = "reference price"


@dataclass(frozen=True, slots=True)
class ReportInput:
    title: str
    objective: str
    horizon_s: float
    keys: Sequence[str]
    best: pl.DataFrame  # the ALL rows, ranked
    per_symbol: pl.DataFrame  # the chosen set's rows per symbol
    path: PricePath | None
    facts: Mapping[str, str]
    top: int = 10


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        return f"{v:.{digits}f}".rstrip("0").rstrip(".") if abs(v) < 1e6 else f"{v:.4g}"
    return html.escape(str(v))


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


class _Axes:
    def __init__(
        self, w: int, h: int, x: tuple[float, float], y: tuple[float, float], pad: int = 56
    ) -> None:
        self.w, self.h, self.pad = w, h, pad
        x0, x1 = x
        y0, y1 = y
        if x1 <= x0:
            x0, x1 = x0 - 1, x1 + 1
        if y1 <= y0:
            y0, y1 = y0 - 1, y1 + 1
        mx, my = (x1 - x0) * 0.04, (y1 - y0) * 0.06
        self.x0, self.x1, self.y0, self.y1 = x0 - mx, x1 + mx, y0 - my, y1 + my

    def px(self, x: float) -> float:
        return self.pad + (x - self.x0) / (self.x1 - self.x0) * (self.w - self.pad - 16)

    def py(self, y: float) -> float:
        return (
            self.h - self.pad + 10 - (y - self.y0) / (self.y1 - self.y0) * (self.h - self.pad - 6)
        )

    def frame(self, xlabel: str, ylabel: str, xfmt: Any = None) -> str:
        xfmt = xfmt or (lambda v: _fmt(v, 2))
        out = [
            f'<rect x="{self.pad}" y="4" width="{self.w - self.pad - 16}" '
            f'height="{self.h - self.pad + 6}" fill="#ffffff" stroke="#cccccc"/>'
        ]
        for t in _ticks(self.x0, self.x1):
            x = self.px(t)
            out.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="4" y2="{self.h - self.pad + 10}" '
                'stroke="#eeeeee"/>'
                f'<text x="{x:.1f}" y="{self.h - self.pad + 26}" text-anchor="middle">'
                f"{xfmt(t)}</text>"
            )
        for t in _ticks(self.y0, self.y1):
            y = self.py(t)
            out.append(
                f'<line x1="{self.pad}" x2="{self.w - 16}" y1="{y:.1f}" y2="{y:.1f}" '
                'stroke="#eeeeee"/>'
                f'<text x="{self.pad - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(t, 3)}</text>'
            )
        out.append(
            f'<text x="{(self.w + self.pad) / 2:.0f}" y="{self.h - 6}" text-anchor="middle" '
            f'class="axis">{html.escape(xlabel)}</text>'
            f'<text transform="translate(14,{(self.h - self.pad) / 2:.0f}) rotate(-90)" '
            f'text-anchor="middle" class="axis">{html.escape(ylabel)}</text>'
        )
        return "".join(out)


def frontier_svg(best: pl.DataFrame, w: int = 560, h: int = 380) -> str:
    rows = best.filter(pl.col("triggers") > 0).select(
        "set", "whipsaws_per_100", "mean_giveback_pct", "rank"
    )
    if rows.height == 0:
        return f'<svg width="{w}" height="{h}"><text x="20" y="40">no set triggered</text></svg>'
    xs = rows["whipsaws_per_100"].to_list()
    ys = rows["mean_giveback_pct"].to_list()
    sets = rows["set"].to_list()
    ax = _Axes(w, h, (min(xs), max(xs)), (min(ys), max(ys)))
    # the frontier: no other set has both fewer whipsaws and less giveback
    order = sorted(range(len(xs)), key=lambda i: (xs[i], ys[i]))
    front: list[int] = []
    lowest = math.inf
    for i in order:
        if ys[i] < lowest:
            front.append(i)
            lowest = ys[i]
    chosen = int(best["set"][0])
    parts = [ax.frame("whipsaws per 100 triggers", "mean giveback %")]
    parts.append(
        '<polyline fill="none" stroke="{}" stroke-width="3" points="{}"/>'.format(
            FRONTIER, " ".join(f"{ax.px(xs[i]):.1f},{ax.py(ys[i]):.1f}" for i in front)
        )
    )
    on_front = {(xs[i], ys[i]) for i in front}
    # the others first, so a frontier dot is never hidden under a set with the same figures
    for i in sorted(range(len(xs)), key=lambda i: (xs[i], ys[i]) in on_front):
        color = FRONTIER if (xs[i], ys[i]) in on_front else OTHER
        parts.append(
            f'<circle cx="{ax.px(xs[i]):.1f}" cy="{ax.py(ys[i]):.1f}" r="5" fill="{color}">'
            f"<title>set {sets[i]}: {xs[i]:.1f} whipsaws/100, {ys[i]:.3f} % giveback</title>"
            "</circle>"
        )
    if chosen in sets:
        i = sets.index(chosen)
        parts.append(
            f'<circle cx="{ax.px(xs[i]):.1f}" cy="{ax.py(ys[i]):.1f}" r="9" fill="none" '
            f'stroke="{CHOSEN}" stroke-width="3"/>'
        )
    return f'<svg id="frontier" width="{w}" height="{h}" role="img">{"".join(parts)}</svg>'


def _downsample(t: F64, p: F64, buckets: int) -> tuple[F64, F64]:
    """Min and max of each time bucket, in time order: every spike stays visible."""
    if len(t) <= 2 * buckets:
        return t, p
    edges = np.linspace(0, len(t), buckets + 1).astype(int)
    keep: list[int] = []
    for a, b in itertools.pairwise(edges):
        if b <= a:
            continue
        lo = a + int(np.argmin(p[a:b]))
        hi = a + int(np.argmax(p[a:b]))
        keep.extend(sorted({lo, hi}))
    ix = np.asarray(keep)
    return t[ix], p[ix]


def path_svg(path: PricePath, w: int = 1080, h: int = 400) -> str:
    t0 = float(path.times[0])
    stops = [(t, a, s) for t, a, s in path.decisions]
    lo = (
        min(float(path.prices.min()), *(s for _, _, s in stops))
        if stops
        else float(path.prices.min())
    )
    hi = (
        max(float(path.prices.max()), *(s for _, _, s in stops))
        if stops
        else float(path.prices.max())
    )
    ax = _Axes(w, h, (0.0, float(path.times[-1]) - t0), (lo, hi))

    def clock(v: float) -> str:
        return dt.datetime.fromtimestamp(t0 + v, tz=dt.UTC).strftime("%H:%M:%S")

    parts = [ax.frame("time (UTC)", f"{path.symbol} {path.price_label}", clock)]
    for t, action, _ in stops:
        if action == "TRIGGER":
            x0 = ax.px(t - t0)
            x1 = ax.px(min(t + path.horizon_s, float(path.times[-1])) - t0)
            parts.append(
                f'<rect x="{x0:.1f}" y="5" width="{max(0.0, x1 - x0):.1f}" '
                f'height="{h - ax.pad + 4}" fill="{HORIZON}"><title>horizon</title></rect>'
            )
    ts, ps = _downsample(path.times - t0, path.prices, (w - ax.pad) // 2)
    parts.append(
        f'<polyline fill="none" stroke="{PRICE}" stroke-width="2" points="'
        + " ".join(f"{ax.px(a):.1f},{ax.py(b):.1f}" for a, b in zip(ts, ps, strict=True))
        + '"/>'
    )
    if stops:
        pts = []
        end = float(path.times[-1])
        for j, (t, _action, s) in enumerate(stops):
            nxt = stops[j + 1][0] if j + 1 < len(stops) else end
            if stops[j][1] == "TRIGGER":
                nxt = t
            pts.append(f"{ax.px(t - t0):.1f},{ax.py(s):.1f} {ax.px(nxt - t0):.1f},{ax.py(s):.1f}")
        parts.append(
            f'<polyline fill="none" stroke="{STOP}" stroke-width="3" points="{" ".join(pts)}"/>'
        )
        for t, action, s in stops:
            if action != "UPDATE":
                parts.append(
                    f'<circle cx="{ax.px(t - t0):.1f}" cy="{ax.py(s):.1f}" r="6" '
                    f'fill="{STOP if action == "TRIGGER" else "#ffffff"}" stroke="{STOP}" '
                    f'stroke-width="2"><title>{action} at {s:.6g}</title></circle>'
                )
    return f'<svg id="path" width="{w}" height="{h}" role="img">{"".join(parts)}</svg>'


_TABLE_COLS = (
    "triggers",
    "whipsaws",
    "whipsaws_per_100",
    "mean_giveback_pct",
    "median_giveback_pct",
    "mean_saved_pct",
    "saved",
    "cut",
    "feasible",
)


_LABELS = {
    "whipsaws_per_100": "whipsaws /100",
    "mean_giveback_pct": "giveback % mean",
    "median_giveback_pct": "giveback % median",
    "mean_saved_pct": "saved % mean",
    "saved": "saved (money)",
    "activation_pct": "activation %",
    "trailing_pct": "trailing %",
    "min_move_pct": "min move %",
    "confirm_quotes": "confirm",
    "max_spread_pct": "max spread %",
    "min_trail_abs": "min trail",
    "price_source": "price",
}


def _table(frame: pl.DataFrame, first: Sequence[str], skip: Sequence[str] = ()) -> str:
    cols = [c for c in (*first, *_TABLE_COLS) if c in frame.columns and c not in skip]
    head = "".join(f"<th>{html.escape(_LABELS.get(c, c))}</th>" for c in cols)
    body = []
    for row in frame.select(cols).iter_rows():
        body.append("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>")
    rows = "".join(body)
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    return f'<div class="scroll">{table}</div>'


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;
color:#222;background:#fafafa;max-width:1180px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.facts{color:#555}.row{display:flex;gap:24px;flex-wrap:wrap;align-items:flex-start}
svg{background:#fff;border:1px solid #ddd}svg text{font-size:11px;fill:#444}
svg text.axis{font-size:12px;fill:#222}
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #ddd;padding:3px 7px;
text-align:right}th{background:#f0f0f0}.best tr:first-child td{font-weight:600}
.scroll{overflow-x:auto;max-width:100%}th{font-weight:600;font-size:12px}
.legend span{display:inline-block;margin-right:14px}
.sw{display:inline-block;width:18px;height:4px;vertical-align:middle;margin-right:5px;
opacity:.8}
"""


def render(report: ReportInput) -> str:
    facts = "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in report.facts.items())
    keys = ["rank", "set", *report.keys]
    top = report.best
    path = ""
    if report.path is not None:
        p = report.path
        legend = (
            '<p class="legend">'
            f'<span><i class="sw" style="background:{PRICE}"></i>{html.escape(p.price_label)}'
            "</span>"
            f'<span><i class="sw" style="background:{STOP}"></i>stop of set #1</span>'
            f'<span><i class="sw" style="background:{HORIZON}"></i>horizon after the TRIGGER</span>'
            "</p>"
        )
        if p.kind == "strategy":
            what = f"strategy {html.escape(p.id)} ({'debit' if p.long else 'credit'})"
        else:
            what = f"{html.escape(p.id)} ({'long' if p.long else 'short'})"
        path = f"<h2>Price path of {what} with the stop of set #1</h2>{legend}{path_svg(p)}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(report.title)}</title><style>{_CSS}</style></head>
<body>
<h1>{html.escape(report.title)}</h1>
<p class="facts">Ranked by: {html.escape(report.objective)}. Horizon {report.horizon_s:g} s.</p>
<ul class="facts">{facts}</ul>
<h2>Frontier: giveback against whipsaws</h2>
<p class="legend"><span><i class="sw" style="background:{FRONTIER}"></i>no set beats these on
both</span><span><i class="sw" style="background:{CHOSEN}"></i>set #1</span></p>
{frontier_svg(top)}
{path}
<h2>Best sets</h2>
<div class="best">{_table(top.head(report.top), keys)}</div>
<h2>Set #1 per symbol</h2>
{_table(report.per_symbol, ["symbol"], ["feasible"])}
</body></html>
"""

"""The tune report renders in a real browser: headless Chromium draws its charts offline.

Needs Debian's ``chromium``: skipped when it is missing, unless ``CI`` is set
(then the test fails, since CI installs it). The screenshot is decoded with a
tiny PNG reader and the pixels of each series' colour are counted: a blank
or broken page (no SVG drawn, a script or network dependency) has none.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from png_pixels import read_png

from supervisor.tune.grid import Grid, Objective
from supervisor.tune.report_html import FRONTIER, PRICE, STOP
from supervisor.tune.tuning import report, tune

pytestmark = pytest.mark.e2e

T0 = 1796601600.0


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path is not None:
            return path
    why = "chromium is not installed (apt-get install -y chromium)"
    if os.environ.get("CI"):
        pytest.fail(f"{why}, and CI is set: this test must run in CI")
    pytest.skip(f"{why}; CI requires it")


def recording() -> list[str]:
    import json

    lines = [json.dumps({"t": T0, "type": "position", "id": "L", "symbol": "SPY",
                         "sec_type": "STK", "qty": 10, "entry_price": 100.0})]  # fmt: skip
    for k in range(1, 800):
        bid = round(100 + math.sin(k / 30) * 5 + k / 80, 2)
        lines.append(json.dumps({"t": T0 + k, "type": "quote", "id": "L", "bid": bid,
                                 "ask": bid + 0.02, "last": None}))  # fmt: skip
    return lines


def count(img: np.ndarray, hex_color: str) -> tuple[int, float]:
    """Pixels of exactly this colour, and the mean row they are on.

    The legend swatches are drawn translucent, so exact colours come from the charts alone.
    """
    rgb = [int(hex_color[i : i + 2], 16) for i in (1, 3, 5)]
    hit = np.all(img[:, :, :3] == rgb, axis=2)
    rows = np.flatnonzero(hit.any(axis=1))
    return int(hit.sum()), float(rows.mean()) if len(rows) else math.nan


def test_the_report_draws_its_charts_in_headless_chromium(tmp_path: Path) -> None:
    exe = chromium()
    grid = Grid(
        {"activation_pct": (1.0, 2.0), "trailing_pct": (0.5, 1.0, 2.0)},
        Objective("min_mean_giveback"),
        horizon_s=120,
    )
    result = tune({}, grid, recording(), workers=1)
    assert int(result.table["triggers"].max()) > 0
    page = tmp_path / "report.html"
    page.write_text(report(result, "e2e", {"recording": "synthetic"}), encoding="utf-8")
    shot = tmp_path / "shot.png"
    cmd = [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}",
        "--window-size=1200,1600",
        page.as_uri(),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert shot.exists(), f"no screenshot (exit {res.returncode}): {res.stderr[-2000:]}"
    img = read_png(shot)
    assert img.shape[:2] == (1600, 1200)
    frontier, frontier_row = count(img, FRONTIER)
    price, price_row = count(img, PRICE)
    stop, _ = count(img, STOP)
    assert frontier >= 30, "the frontier chart is not drawn"
    assert price >= 300, "the price path is not drawn"
    assert stop >= 100, "the stop line is not drawn"
    # the frontier is above the price path on the page
    assert frontier_row < price_row
    background = np.all(img[:, :, :3] == img[0, 0, :3], axis=2).mean()
    assert background < 0.95, "the page is almost blank"

"""``risk-supervisor demo`` end to end: a subprocess, no IB, bounded, exit code 0.

The demo starts the gateway simulator, runs the daemon through ib_async
against it and, with stdout a pipe (not a terminal), prints plain frames. The
test reads those frames: the book's positions, the breaker and IB states.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest


@pytest.mark.e2e
def test_demo_runs_and_stops_by_itself() -> None:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "supervisor", "demo", "--duration", "8", "--seed", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert elapsed < 40
    frames = [line for line in out.splitlines() if line.startswith("--- ")]
    assert len(frames) >= 3, out
    assert all(re.search(r"breaker (CLOSED|OPEN|HALF_OPEN)", f) for f in frames)
    assert any("IB connected" in f for f in frames)
    for label in ("AAPL STK", "MSFT STK", "SPY ", "NVDA "):
        assert label in out, f"{label!r} not shown:\n{out}"
    assert "http://127.0.0.1:" in out  # the API and metrics URLs are printed
    assert "greeks: delta" in out and "limits: portfolio_delta" in out

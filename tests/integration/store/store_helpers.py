"""What the store's tests share: contracts, a stop snapshot builder, a child-process runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from actors.messages import Contract, Right, SecType, StopSnapshot
from supervisor.store.sqlite_store import Store

REPO = Path(__file__).resolve().parents[3]

SPY = Contract("SPY", SecType.STK)
SPY_PUT = Contract("SPY", SecType.OPT, Right.PUT, 450.0, "2025-06-20", 100.0)
QQQ_CALL = Contract("QQQ", SecType.OPT, Right.CALL, 380.5, "2025-01-17", 100.0)


def snap(id_: str = "p1", **kw: Any) -> StopSnapshot:
    base: dict[str, Any] = {
        "id": id_,
        "contract": SPY,
        "qty": 10.0,
        "entry_price": 100.0,
        "opened_t": 1_700_000_000.0,
        "active": True,
        "extreme": 110.0,
        "stop": 104.5,
        "breaches": 0,
        "triggered": False,
        "ignored_quotes": 0,
        "trigger_id": None,
    }
    base.update(kw)
    return StopSnapshot(**base)


def run_child(
    code: str, *args: str, prefix: list[str] | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[bytes]:
    """Run ``code`` in a fresh interpreter on this checkout: a signal kills it, not pytest."""
    return subprocess.run(
        [*(prefix or []), sys.executable, "-c", code, *args],
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=REPO,
        timeout=timeout,
    )


def fill(store: Store) -> list[int]:
    """Six journal rows of three kinds and two positions, t = 100 … 105."""
    rows: list[tuple[float, str, str | None, dict[str, Any]]] = [
        (100.0, "stop", "p1", {"action": "ACTIVATE", "stop": 95.0}),
        (101.0, "check", None, {"allowed": True}),
        (102.0, "stop", "p2", {"action": "UPDATE", "stop": 96.0}),
        (103.0, "stop", "p1", {"action": "UPDATE", "stop": 97.0}),
        (104.0, "breaker", None, {"from_state": "closed", "to_state": "open"}),
        (105.0, "stop", "p1", {"action": "TRIGGER", "stop": 97.0}),
    ]
    return [store.append(t=t, kind=k, payload=p, position_id=pid) for t, k, pid, p in rows]

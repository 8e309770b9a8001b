"""The simulator fixture of the IB adapter's integration tests (see ib_rig)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ib_rig import book

from supervisor.simulator import SimulatorThread


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    s = SimulatorThread(seed=3, call_timeout=5.0)
    s.start()
    try:
        book(s)
        yield s
    finally:
        s.stop()

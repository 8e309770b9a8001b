"""Fixtures of the API's tests: the same requests against a fake and the real daemon.

``api`` is parametrised ``fake`` / ``real``. A test that needs port methods
marks them with ``@pytest.mark.needs("kill", ...)``: on the real daemon it is
xfail while the Daemon lacks one of them (named in the reason), and runs —
able to fail — as soon as the core adds them (see ``real_daemon_port``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "support"))

from api_harness import TOKEN, Harness, ServerPool, harness
from real_daemon_port import missing


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "needs(*methods): daemon port methods the test calls beyond the adapted ones"
    )


def _needs(request: pytest.FixtureRequest) -> tuple[str, ...]:
    marker = request.node.get_closest_marker("needs")
    return () if marker is None else tuple(marker.args)


def _xfail_if_missing(request: pytest.FixtureRequest, kind: str) -> None:
    if kind != "real":
        return
    absent = missing(*_needs(request))
    if absent:
        pytest.xfail(
            f"Daemon.{', Daemon.'.join(absent)}: not in the core yet "
            "(this test runs against the real daemon as soon as it is)"
        )


@pytest.fixture(scope="session")
def servers() -> Iterator[ServerPool]:
    pool = ServerPool()
    yield pool
    pool.close()


@pytest.fixture(params=["fake", "real"])
def api(request: pytest.FixtureRequest, tmp_path: Path, servers: ServerPool) -> Iterator[Harness]:
    """The API without a token, over a fresh fake or real daemon."""
    _xfail_if_missing(request, request.param)
    with harness(request.param, tmp_path, pool=servers) as h:
        yield h


@pytest.fixture(params=["fake", "real"])
def guarded(
    request: pytest.FixtureRequest, tmp_path: Path, servers: ServerPool
) -> Iterator[Harness]:
    """The API with a token, over a fresh fake or real daemon."""
    _xfail_if_missing(request, request.param)
    with harness(request.param, tmp_path, token=TOKEN, pool=servers) as h:
        yield h


@pytest.fixture
def fake_api(tmp_path: Path, servers: ServerPool) -> Iterator[Harness]:
    """The API over a fresh fake daemon only (for what only the fake can stage)."""
    with harness("fake", tmp_path, pool=servers) as h:
        yield h

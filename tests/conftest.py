"""Shared fixtures for the pure-logic tests (trailing stop, breaker, limits)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator

import pytest

from actors.book import Book
from actors.circuit_breaker import BreakerParams, CircuitBreaker
from actors.gate.assessment import Assessor
from actors.gate.params import GateParams
from actors.trailing_stop import StopParams


@pytest.fixture
def default_stop_params() -> StopParams:
    """DESIGN §3 defaults: activation 2.0 %, trailing 1.5 %, min move 0.5 %, confirm 1."""
    return StopParams()


@pytest.fixture
def breaker() -> CircuitBreaker:
    """A breaker with DESIGN §5 defaults (threshold 5, window 60 s, open 300 s, 3 tries)."""
    return CircuitBreaker(BreakerParams())


@pytest.fixture
def make_book() -> Callable[[GateParams], Book]:
    """A Book wired the way the portfolio wires it for the given gate params."""

    def _make(params: GateParams) -> Book:
        return Book(Assessor.needs_of(params), params.groups, params.pricing)

    return _make


@pytest.fixture(autouse=True, scope="session")
def _private_config_home() -> Iterator[None]:
    """Daemons started by tests keep their API token files out of the user's ~/.config."""
    old = os.environ.get("XDG_CONFIG_HOME")
    with tempfile.TemporaryDirectory(prefix="rs-test-config-") as home:
        os.environ["XDG_CONFIG_HOME"] = home
        yield
    if old is None:
        os.environ.pop("XDG_CONFIG_HOME", None)
    else:
        os.environ["XDG_CONFIG_HOME"] = old

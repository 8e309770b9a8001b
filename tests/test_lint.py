"""The code stays ruff- and mypy-clean: checked on every test run, not promised."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PATHS = ["actors", "supervisor", "tests", "bench", "grafana"]


def tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: install the dev extras (pip install -e '.[dev]')")
    return found


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_check() -> None:
    res = run(tool("ruff"), "check", *PATHS)
    assert res.returncode == 0, res.stdout + res.stderr


def test_ruff_format() -> None:
    res = run(tool("ruff"), "format", "--check", *PATHS)
    assert res.returncode == 0, res.stdout + res.stderr


def test_mypy_strict() -> None:
    res = run(tool("mypy"))  # packages and strictness from pyproject.toml
    assert res.returncode == 0, res.stdout + res.stderr

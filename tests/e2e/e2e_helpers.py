"""Shared pieces of the end-to-end tests: the daemon as a real process, a real Prometheus.

``python -m supervisor run --config FILE`` is started exactly as systemd would
start it, in its own process group, with its log in a file; the test finds the
API and metrics URLs in its start-up line (the config binds port 0, so there
is no port to race for). Every wait is bounded, and every process is stopped
(its whole group killed if need be) by ``close()``, which tests call in
``finally``.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]

T = TypeVar("T")

#: The daemon's start-up line (supervisor/run.py), with the URLs it actually bound.
_RUNNING = re.compile(r"risk-supervisor running: .*?API (http://[^,\s]+), metrics (\S+), store")


def until(
    pred: Callable[[], T | None],
    timeout: float,
    what: str,
    *,
    interval: float = 0.05,
    diagnose: Callable[[], str] | None = None,
) -> T:
    """Poll ``pred`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = f"\n{diagnose()}" if diagnose is not None else ""
            raise AssertionError(f"{what}: not within {timeout:g}s{extra}")
        time.sleep(interval)


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago (for servers that cannot report port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_binary(name: str) -> str:
    """The path of ``name``; skip when it is missing, unless CI is set (then fail)."""
    path = shutil.which(name)
    if path is None:
        why = f"{name} is not installed (apt-get install -y prometheus)"
        if os.environ.get("CI"):
            pytest.fail(f"{why}, and CI is set: this test must run in CI")
        pytest.skip(f"{why}; CI requires it")
    return path


def tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"({path} unreadable)"
    return "\n".join(text.splitlines()[-lines:])


def _kill_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


# ------------------------------------------------------------------ the daemon


class DaemonProcess:
    """``python -m supervisor run --config FILE`` in its own process group.

    Each start writes a new log file (``daemon-<n>.log``) in ``log_dir``.
    """

    def __init__(self, config: Path, log_dir: Path) -> None:
        self.config = config
        self.log_dir = log_dir
        self.starts = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self.api_url = ""
        self.metrics_url = ""

    def start(self, ready_timeout: float = 30.0) -> None:
        """Start the process and wait until it serves (its start-up line is logged)."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        self.log_path = self.log_dir / f"daemon-{self.starts}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "supervisor", "run", "--config", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.log_dir,
                start_new_session=True,
                # the API token file the daemon creates lives here (docs/api-security.md)
                env={**os.environ, "XDG_CONFIG_HOME": str(self.log_dir)},
            )
        match = until(
            self._started,
            ready_timeout,
            f"daemon start #{self.starts} (its 'risk-supervisor running' line)",
            interval=0.05,
            diagnose=self.diagnose,
        )
        self.api_url, self.metrics_url = match.group(1), match.group(2)

    def _started(self) -> re.Match[str] | None:
        assert self.proc is not None and self.log_path is not None
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        found = _RUNNING.search(text)
        if found is None and self.proc.poll() is not None:
            raise AssertionError(
                f"daemon exited with {self.proc.returncode} before serving:\n{self.diagnose()}"
            )
        return found

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self, timeout: float = 10.0) -> None:
        """SIGKILL the daemon (its whole process group) and reap it."""
        assert self.proc is not None
        _kill_group(self.proc, signal.SIGKILL)
        self.proc.wait(timeout)
        assert self.proc.returncode == -signal.SIGKILL, self.proc.returncode

    def terminate(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait for a clean exit; SIGKILL the group if it does not come."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill_group(self.proc, signal.SIGKILL)
            self.proc.wait(10.0)
            raise AssertionError(
                f"daemon did not stop within {timeout:g}s of SIGTERM:\n{self.diagnose()}"
            ) from None

    def close(self) -> None:
        """Whatever state it is in: nothing of it keeps running."""
        if self.proc is not None and self.proc.poll() is None:
            _kill_group(self.proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10.0)

    def diagnose(self) -> str:
        if self.log_path is None:
            return "(daemon never started)"
        return f"--- {self.log_path.name} (last lines) ---\n{tail(self.log_path)}"

    # -------------------------------------------------------------- the API

    def get(self, path: str, timeout: float = 10.0) -> Any:
        r = httpx.get(self.api_url + path, timeout=timeout)
        r.raise_for_status()
        return r.json()

    @property
    def token(self) -> str:
        """The bearer token the daemon wrote on first start (0600, per user)."""
        return (self.log_dir / "risk-supervisor" / "api-token").read_text().strip()

    def post(self, path: str, body: dict[str, Any] | None = None, timeout: float = 10.0) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        r = httpx.post(self.api_url + path, json=body or {}, headers=headers, timeout=timeout)
        assert r.status_code < 300, f"POST {path}: {r.status_code} {r.text}"
        return r.json()

    def wait_connected(self, timeout: float = 30.0) -> None:
        """Until /healthz says IB is connected."""

        def connected() -> bool:
            try:
                return bool(self.get("/healthz", timeout=5.0)["ib"] == "connected")
            except httpx.HTTPError:
                return False

        until(connected, timeout, "daemon connected to IB", interval=0.1, diagnose=self.diagnose)


# -------------------------------------------------------------- Prometheus


class PrometheusProcess:
    """A real Prometheus on 127.0.0.1 with its own storage under ``workdir``."""

    def __init__(self, binary: str, config: Path, workdir: Path) -> None:
        self.binary = binary
        self.config = config
        self.workdir = workdir
        self.log_path = workdir / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.client = httpx.Client(timeout=10.0)

    def start(self, ready_timeout: float = 40.0) -> None:
        """Start on a free port (a few tries: another process may take it first)."""
        for _ in range(3):
            port = free_port()
            with self.log_path.open("ab") as log:
                self.proc = subprocess.Popen(
                    [
                        self.binary,
                        f"--config.file={self.config}",
                        f"--storage.tsdb.path={self.workdir / 'data'}",
                        f"--web.listen-address=127.0.0.1:{port}",
                        "--log.level=info",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.workdir,
                    start_new_session=True,
                )
            self.url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + ready_timeout
            while self.proc.poll() is None and time.monotonic() < deadline:
                try:
                    if self.client.get(self.url + "/-/ready", timeout=2.0).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            if self.proc.poll() is None:
                break  # running but never ready: not a port clash
        self.close()
        raise AssertionError(f"prometheus did not become ready:\n{tail(self.log_path)}")

    def close(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10.0)
            except subprocess.TimeoutExpired:
                _kill_group(proc, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(10.0)
        self.client.close()

    def diagnose(self) -> str:
        return f"--- prometheus.log (last lines) ---\n{tail(self.log_path, 30)}"

    def api(self, path: str, **params: Any) -> Any:
        r = self.client.get(self.url + path, params=params)
        body = r.json()
        assert r.status_code == 200 and body.get("status") == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's vector (or a scalar as a one-sample vector)."""
        data = self.api("/api/v1/query", query=expr)
        if data["resultType"] == "vector":
            return list(data["result"])
        return [{"metric": {}, "value": data["result"]}]

    def query_range(self, expr: str, seconds: float, step: str = "1s") -> list[dict[str, Any]]:
        end = time.time()
        data = self.api("/api/v1/query_range", query=expr, start=end - seconds, end=end, step=step)
        return list(data["result"])

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.api("/api/v1/alerts")["alerts"])


def finite_values(result: list[dict[str, Any]]) -> list[float]:
    """Every finite sample value of an instant or range query result."""
    out: list[float] = []
    for series in result:
        samples = series.get("values") or ([series["value"]] if "value" in series else [])
        for _, text in samples:
            v = float(text)
            if math.isfinite(v):
                out.append(v)
    return out

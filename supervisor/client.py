"""A small client of the risk supervisor's HTTP API, for the trader to import.

The trader asks :meth:`RiskClient.check` before every order and reports what
went wrong (:meth:`RiskClient.report_failure`) or right
(:meth:`RiskClient.report_success`) so the circuit breaker can act. It
declares its spreads (:meth:`RiskClient.strategy`) so each gets one stop on
its net price, keeps the dead-man switch armed
(:meth:`RiskClient.start_heartbeat`, a background thread), and can pull the
kill switch (:meth:`RiskClient.kill`).

The token: pass ``token``, or ``token_file`` (the file the daemon writes,
see :mod:`supervisor.api.token_file`).

Fail closed: every problem — the daemon unreachable, a timeout, an error
answer, an answer that is not a well-formed verdict — raises
:class:`RiskClientError`. :meth:`RiskClient.check` returns only a verdict the
daemon actually gave, and ``allowed`` is True only if the daemon said so. The
trader must treat an exception from ``check`` as a denial.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import logging
import math
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import quote

import httpx
import msgspec

from actors.messages import Contract, FailureKind, KillMode, Leg, SecType
from supervisor.api.token_file import read_token_file

__all__ = [
    "DEFAULT_URL",
    "CheckReason",
    "CheckResult",
    "RiskClient",
    "RiskClientError",
    "StrategyLegLike",
]

log = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:8780"


class RiskClientError(RuntimeError):
    """The daemon could not be asked, or refused; ``status`` is the HTTP status if it answered.

    From :meth:`RiskClient.check` this means: do not trade.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class CheckReason:
    """Why a check was denied: a reason code, and for limits the projected usage and limit."""

    code: str
    value: float | None = None
    limit: float | None = None


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The gate's verdict on one proposed order; ``raw`` is the daemon's JSON answer."""

    allowed: bool
    reasons: tuple[CheckReason, ...]
    risk_reducing: bool
    breaker_state: str | None
    raw: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.raw.get("id", ""))

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(r.code for r in self.reasons)


def _plain(v: Any) -> Any:
    if isinstance(v, enum.Enum):
        return v.value
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: _plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, msgspec.Struct):
        return {name: _plain(getattr(v, name)) for name in v.__struct_fields__}
    return v


def leg_json(leg: Leg | Mapping[str, Any]) -> dict[str, Any]:
    """A leg as the API takes it; a :class:`Leg` loses its unset (None) fields."""
    if isinstance(leg, Leg):
        return {k: v for k, v in _plain(leg).items() if v is not None}
    return dict(leg)


class StrategyLegLike(Protocol):
    """A strategy leg as :class:`supervisor.core.facade.StrategyLegSpec` has it."""

    @property
    def ratio(self) -> int: ...

    @property
    def con_id(self) -> int | None: ...

    @property
    def contract(self) -> Contract | None: ...


def strategy_leg_json(leg: StrategyLegLike | Mapping[str, Any]) -> dict[str, Any]:
    """A strategy leg as ``PUT /v1/strategies/{id}`` takes it: by conId, or by contract."""
    if isinstance(leg, Mapping):
        return dict(leg)
    if leg.con_id is not None:
        return {"con_id": leg.con_id, "ratio": leg.ratio}
    c = leg.contract
    if c is None:
        raise ValueError("a strategy leg needs a con_id or a contract")
    out: dict[str, Any] = {"symbol": c.symbol, "sec_type": c.sec_type.value, "ratio": leg.ratio}
    if c.sec_type is SecType.OPT:
        out |= {
            "right": None if c.right is None else c.right.value,
            "strike": c.strike,
            "expiry": c.expiry,
            "multiplier": c.multiplier,
        }
    return out


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _result(body: Any) -> CheckResult:
    """A verdict from the daemon's answer, refusing anything that is not clearly one."""
    if not isinstance(body, dict) or not isinstance(body.get("allowed"), bool):
        raise RiskClientError(f"malformed answer from the risk supervisor: {body!r:.200}")
    reasons = tuple(
        CheckReason(str(r.get("code")), _number(r.get("value")), _number(r.get("limit")))
        for r in body.get("reasons") or ()
        if isinstance(r, dict)
    )
    state = body.get("breaker_state")
    return CheckResult(
        allowed=body["allowed"] is True and not reasons,
        reasons=reasons,
        risk_reducing=body.get("risk_reducing") is True,
        breaker_state=state if isinstance(state, str) else None,
        raw=body,
    )


class RiskClient:
    """The API of one risk supervisor daemon. Thread-safe (one httpx.Client).

    ``token_file`` is read when no ``token`` is given (a missing file: no
    token); a token file that cannot be read raises ``ValueError``.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        token: str | None = None,
        timeout: float = 2.0,
        *,
        token_file: Path | str | None = None,
    ) -> None:
        if token is None and token_file is not None:
            token = read_token_file(Path(token_file))
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)
        self._beat_lock = threading.Lock()
        self._beat_stop: threading.Event | None = None
        self._beat_thread: threading.Thread | None = None
        #: Consecutive failed background heartbeats (0 after a success).
        self.heartbeat_failures = 0
        #: The daemon's answer to the last successful background heartbeat.
        self.last_heartbeat: dict[str, Any] | None = None

    # ------------------------------------------------------------ transport

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        try:
            response = self._http.request(method, path, json=json, params=params)
        except httpx.HTTPError as exc:
            raise RiskClientError(
                f"risk supervisor unreachable at {self.base_url}: {exc or type(exc).__name__}"
            ) from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_error:
            detail = body.get("detail") if isinstance(body, dict) else None
            raise RiskClientError(
                f"risk supervisor answered {response.status_code}: "
                f"{detail or response.text[:200] or response.reason_phrase}",
                response.status_code,
            )
        if body is None:
            raise RiskClientError(f"risk supervisor answered non-JSON: {response.text[:200]!r}")
        return body

    # ------------------------------------------------------------------- gate

    def check(self, legs: Sequence[Leg | Mapping[str, Any]], id: str | None = None) -> CheckResult:
        """Ask the pre-trade gate about a proposed order.

        Raises RiskClientError if the daemon cannot be reached or does not
        give a verdict: the caller must then NOT send the order (fail closed).
        ``id`` defaults to a fresh uuid; it is echoed and journaled.
        """
        body = {"id": id or uuid.uuid4().hex, "legs": [leg_json(x) for x in legs]}
        return _result(self._request("POST", "/v1/checks", json=body))

    # ---------------------------------------------------------------- breaker

    def report_failure(
        self, kind: FailureKind | str, code: int | None = None, detail: str = ""
    ) -> None:
        """Report a systemic failure (order rejected, data feed, connectivity, margin, …)."""
        kind_value = kind.value if isinstance(kind, FailureKind) else kind
        self._request(
            "POST", "/v1/failures", json={"kind": kind_value, "code": code, "detail": detail}
        )

    def report_success(self, detail: str = "") -> None:
        """Report a success (an order that went through): what closes a half-open breaker."""
        self._request("POST", "/v1/successes", json={"detail": detail})

    def force_open(self, operator: str | None = None) -> str:
        """Force the breaker open until reset; the resulting state."""
        return self._admin("/v1/breaker/force-open", operator)

    def reset(self, operator: str | None = None) -> str:
        """Reset the breaker to closed and clear its history; the resulting state."""
        return self._admin("/v1/breaker/reset", operator)

    def _admin(self, path: str, operator: str | None) -> str:
        # Always a JSON body: the API refuses a POST that is not application/json.
        body = self._request("POST", path, json={"operator": operator} if operator else {})
        return str(body["state"]) if isinstance(body, dict) and "state" in body else str(body)

    # ------------------------------------------------------------- kill switch

    def kill(
        self, mode: KillMode | str = KillMode.HALT, operator: str | None = None
    ) -> dict[str, Any]:
        """The kill switch: ``halt``, ``cancel`` or ``flatten`` (DESIGN §4.5); the kill's status.

        When this returns the breaker is open and sticky; cancelling and
        flattening go on in the daemon (follow them in :meth:`state`).
        """
        mode_value = mode.value if isinstance(mode, KillMode) else mode
        body: dict[str, Any] = {"mode": mode_value}
        if operator:
            body["operator"] = operator
        result: dict[str, Any] = self._request("POST", "/v1/kill", json=body)
        return result

    def heartbeat(self) -> dict[str, Any]:
        """Tell the daemon the trader is alive (re-arms the dead-man switch); its status."""
        result: dict[str, Any] = self._request("POST", "/v1/heartbeat", json={})
        return result

    def start_heartbeat(self, interval_s: float = 5.0) -> None:
        """Send :meth:`heartbeat` every ``interval_s`` from a background (daemon) thread.

        Opt-in. Choose ``interval_s`` well under the daemon's
        ``heartbeat_timeout_s`` (a third of it leaves room for two misses). A
        failed heartbeat is logged — the first of a run as a warning, then
        every tenth — and counted in :attr:`heartbeat_failures`; the thread
        never dies of it. Raises RuntimeError if one is already running.
        """
        if not (math.isfinite(interval_s) and interval_s > 0):
            raise ValueError(f"interval_s must be a positive number of seconds, not {interval_s}")
        with self._beat_lock:
            if self._beat_thread is not None and self._beat_thread.is_alive():
                raise RuntimeError("a heartbeat thread is already running")
            stop = threading.Event()
            thread = threading.Thread(
                target=self._beat, args=(interval_s, stop), name="risk-heartbeat", daemon=True
            )
            self._beat_stop, self._beat_thread = stop, thread
            thread.start()

    def stop_heartbeat(self, timeout_s: float | None = None) -> bool:
        """Stop the heartbeat thread; True once it has ended (also when none was running).

        Waits at most ``timeout_s`` (default: the client's request timeout
        plus a second, the longest a heartbeat in flight can take).
        """
        with self._beat_lock:
            stop, thread = self._beat_stop, self._beat_thread
            self._beat_stop = self._beat_thread = None
        if stop is None or thread is None:
            return True
        stop.set()
        if timeout_s is None:
            timeout_s = self._request_timeout() + 1.0
        thread.join(timeout_s)
        return not thread.is_alive()

    @contextlib.contextmanager
    def heartbeating(self, interval_s: float = 5.0) -> Iterator[RiskClient]:
        """``with client.heartbeating(5.0): trade()`` — heartbeats for the block's duration."""
        self.start_heartbeat(interval_s)
        try:
            yield self
        finally:
            self.stop_heartbeat()

    def _request_timeout(self) -> float:
        t = self._http.timeout
        parts = [x for x in (t.connect, t.read, t.write, t.pool) if x is not None]
        return sum(parts) if parts else 5.0

    def _beat(self, interval_s: float, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.last_heartbeat = self.heartbeat()
                if self.heartbeat_failures:
                    log.info("heartbeat to %s ok again", self.base_url)
                self.heartbeat_failures = 0
            except Exception as exc:  # never let the thread die: the daemon would kill
                self.heartbeat_failures += 1
                if self.heartbeat_failures % 10 == 1:
                    log.warning(
                        "heartbeat to %s failed (%d in a row): %s",
                        self.base_url,
                        self.heartbeat_failures,
                        exc,
                    )
            stop.wait(interval_s)

    # -------------------------------------------------------------- strategies

    def strategies(self) -> list[dict[str, Any]]:
        """Every declared strategy and its stop (net price, stop, extreme)."""
        result: list[dict[str, Any]] = self._request("GET", "/v1/strategies")
        return result

    def strategy(
        self, id: str, legs: Sequence[StrategyLegLike | Mapping[str, Any]]
    ) -> dict[str, Any]:
        """Declare (or redeclare) strategy ``id`` with its legs; the daemon's view of it.

        Each leg is ``{"con_id", "ratio"}`` or contract fields and ``ratio`` (a
        signed whole number); a refusal (two underlyings, a zero entry, an id
        that is a position's) raises RiskClientError with status 422.
        """
        body = {"legs": [strategy_leg_json(x) for x in legs]}
        result: dict[str, Any] = self._request(
            "PUT", f"/v1/strategies/{quote(id, safe='')}", json=body
        )
        return result

    def delete_strategy(self, id: str) -> bool:
        """Dissolve strategy ``id`` (its legs get their own stops back); False if unknown."""
        try:
            self._request("DELETE", f"/v1/strategies/{quote(id, safe='')}")
        except RiskClientError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    # ---------------------------------------------------------------- reading

    def health(self) -> dict[str, Any]:
        body: dict[str, Any] = self._request("GET", "/healthz")
        return body

    def state(self) -> dict[str, Any]:
        """Breaker, portfolio and positions, as ``GET /v1/state`` gives them."""
        body: dict[str, Any] = self._request("GET", "/v1/state")
        return body

    def journal(self, **filters: Any) -> list[dict[str, Any]]:
        """Journal rows; filters ``since`` (seq), ``limit``, ``type``, ``position``."""
        params = {k: v for k, v in filters.items() if v is not None}
        body: list[dict[str, Any]] = self._request("GET", "/v1/journal", params=params)
        return body

    # -------------------------------------------------------------- lifetime

    def close(self) -> None:
        """Stop the heartbeat thread, if any, and the connection pool."""
        self.stop_heartbeat()
        self._http.close()

    def __enter__(self) -> RiskClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

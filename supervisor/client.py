"""A small client of the risk supervisor's HTTP API, for the trader to import.

The trader asks :meth:`RiskClient.check` before every order and reports what
went wrong (:meth:`RiskClient.report_failure`) or right
(:meth:`RiskClient.report_success`) so the circuit breaker can act.

Fail closed: every problem — the daemon unreachable, a timeout, an error
answer, an answer that is not a well-formed verdict — raises
:class:`RiskClientError`. :meth:`RiskClient.check` returns only a verdict the
daemon actually gave, and ``allowed`` is True only if the daemon said so. The
trader must treat an exception from ``check`` as a denial.
"""

from __future__ import annotations

import dataclasses
import enum
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from actors.messages import FailureKind, Leg

__all__ = ["DEFAULT_URL", "CheckReason", "CheckResult", "RiskClient", "RiskClientError"]

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
    return v


def leg_json(leg: Leg | Mapping[str, Any]) -> dict[str, Any]:
    """A leg as the API takes it; a :class:`Leg` loses its unset (None) fields."""
    if isinstance(leg, Leg):
        return {k: v for k, v in _plain(leg).items() if v is not None}
    return dict(leg)


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
    """The API of one risk supervisor daemon. Thread-safe (one httpx.Client)."""

    def __init__(
        self, base_url: str = DEFAULT_URL, token: str | None = None, timeout: float = 2.0
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

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
        body = self._request("POST", path, json={"operator": operator} if operator else None)
        return str(body["state"]) if isinstance(body, dict) and "state" in body else str(body)

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

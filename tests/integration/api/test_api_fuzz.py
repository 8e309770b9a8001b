"""Schemathesis over the app's own OpenAPI document, against the fake and the real daemon.

No 5xx; every response conforms to the documented schema, status codes and
content type; schema-valid input is accepted and invalid input refused —
except in ``/v1/checks``, where a malformed *order* is the gate's 200
``invalid_order`` answer (DESIGN §4), and ``PUT /v1/strategies``, where the
daemon may refuse a well-formed strategy (422 with its reason). Bounded:
a fixed number of generated requests per operation and mode.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from api_harness import TOKEN, harness, stock
from hypothesis import HealthCheck, Phase, given, settings
from real_daemon_port import missing

pytestmark = pytest.mark.e2e

GATE_TIMEOUT = "the gate did not answer in time"  # Daemon.check's answer when it hears nothing

# Requests generated per operation: (positive, negative). Operations without
# inputs have nothing to vary (one request each) and nothing to negate.
_FUZZ: dict[str, tuple[int, int]] = {
    "POST /v1/checks": (150, 60),
    "POST /v1/failures": (60, 60),
    "POST /v1/successes": (40, 40),
    "POST /v1/breaker/force-open": (30, 30),
    "POST /v1/breaker/reset": (30, 30),
    "POST /v1/kill": (40, 40),
    "POST /v1/heartbeat": (10, 20),
    "GET /v1/strategies": (1, 0),
    "PUT /v1/strategies/{id}": (100, 60),
    "DELETE /v1/strategies/{id}": (20, 20),
    "GET /v1/journal": (80, 80),
    "GET /healthz": (1, 0),
    "GET /v1/state": (1, 0),
}
# The daemon port methods each operation needs beyond the adapted ones.
_NEEDS: dict[str, tuple[str, ...]] = {
    "POST /v1/kill": ("kill",),
    "POST /v1/heartbeat": ("heartbeat",),
    "GET /v1/strategies": ("strategies",),
    "PUT /v1/strategies/{id}": ("put_strategy",),
    "DELETE /v1/strategies/{id}": ("delete_strategy",),
}
# Where a schema-valid request may be refused by the daemon (not the API).
_DAEMON_MAY_REFUSE = {"PUT /v1/strategies/{id}"}


def _fuzz(
    op: Any,
    mode: Any,
    examples: int,
    checks: list[Any],
    url: str,
    auth: dict[str, str],
    session: requests.Session,
) -> int:
    """Run up to ``examples`` generated requests against one operation; how many ran."""
    ran = 0

    @given(case=op.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        nonlocal ran
        ran += 1
        response = case.call(base_url=url, session=session, headers=auth)
        assert response.status_code < 500, response.text
        if op.path == "/v1/checks" and response.status_code == 200:
            assert response.json()["detail"] != GATE_TIMEOUT, case.body  # the gate died
        case.validate_response(
            response, checks=checks, headers=auth, transport_kwargs={"session": session}
        )

    run()
    return ran


@pytest.mark.parametrize("kind", ["fake", "real"])
def test_fuzz_openapi_no_5xx_and_responses_conform(kind: str, tmp_path: Path) -> None:
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.core.result import Err
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        ignored_auth,
        negative_data_rejection,
        positive_data_acceptance,
        response_schema_conformance,
        status_code_conformance,
    )

    base = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    with harness(kind, tmp_path, token=TOKEN) as api:
        doc = httpx.get(api.url + "/openapi.json").json()
        schema = schemathesis.openapi.from_dict(doc)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        session = requests.Session()
        counts: dict[str, int] = {}
        seen: set[str] = set()
        for result in schema.get_all_operations():
            if isinstance(result, Err):
                raise result.err()
            op = result.ok()
            seen.add(op.label)
            if kind == "real" and missing(*_NEEDS.get(op.label, ())):
                continue  # not in the core yet: the fake's run covers the API meanwhile
            positive, negative = _FUZZ[op.label]
            for mode, examples in (
                (GenerationMode.POSITIVE, positive),
                (GenerationMode.NEGATIVE, negative),
            ):
                if not examples:
                    continue
                checks = list(base)
                if mode is GenerationMode.POSITIVE:
                    if op.label not in _DAEMON_MAY_REFUSE:
                        checks.append(positive_data_acceptance)
                    if op.method.upper() != "GET":
                        checks.append(ignored_auth)  # resends without the token: must be 401
                elif op.path != "/v1/checks":
                    # In /v1/checks a schema-invalid *order* is answered 200 invalid_order.
                    checks.append(negative_data_rejection)
                key = f"{op.label} {mode.value}"
                counts[key] = _fuzz(op, mode, examples, checks, api.url, auth, session)
        assert seen == set(_FUZZ)
        total = sum(counts.values())
        print(f"\nfuzzed {total} requests ({kind}): {json.dumps(counts)}")
        assert total >= 500, counts
        # The daemon survived all of it and still answers sensibly.
        with httpx.Client(base_url=api.url, headers=auth) as c:
            assert c.get("/healthz").json()["store"] == "ok"
            c.post("/v1/breaker/reset", json={})
            after = c.post("/v1/checks", json={"id": "after", "legs": [stock(1)]})
            assert after.status_code == 200
        if kind == "real":
            assert api.daemon.exit_code is None and not api.daemon.stopped.is_set()

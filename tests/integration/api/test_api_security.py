"""The API against a hostile web page and hostile clients (see docs/api-security.md).

Each test here failed on the API before this round: a ``text/plain`` POST from
any page reset a tripped breaker, ``Host`` and ``Origin`` were not looked at
(DNS rebinding read the state), and a body of any size was read and parsed.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from api_harness import TOKEN, Harness, stock
from real_daemon_port import missing

pytestmark = pytest.mark.e2e

WRITES = [
    ("POST", "/v1/checks", {"id": "x", "legs": [stock(1)]}),
    ("POST", "/v1/failures", {"kind": "other"}),
    ("POST", "/v1/successes", {}),
    ("POST", "/v1/breaker/force-open", {}),
    ("POST", "/v1/breaker/reset", {}),
    ("POST", "/v1/kill", {"mode": "halt"}),
    ("POST", "/v1/heartbeat", {}),
    ("PUT", "/v1/strategies/s1", {"legs": [{"con_id": 5, "ratio": 1}]}),
]
READS = ["/healthz", "/v1/state", "/v1/journal", "/v1/strategies", "/openapi.json"]


def _tripped(api: Harness) -> None:
    assert api.post("/v1/breaker/force-open", {"operator": "risk"}).json() == {"state": "open"}


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "text/plain"},
        {"Content-Type": "application/x-www-form-urlencoded"},
        {"Content-Type": "multipart/form-data; boundary=x"},
        {},  # fetch(url, {method: "POST", mode: "no-cors"}) sends no body and no type
    ],
)
def test_a_simple_cross_site_post_cannot_reset_a_tripped_breaker(
    api: Harness, headers: dict[str, str]
) -> None:
    """A form or no-cors fetch from any page needs no CORS preflight: it must be refused."""
    _tripped(api)
    content = b"" if not headers else b"{}"
    r = api.http.post("/v1/breaker/reset", content=content, headers=headers)
    assert r.status_code == 415, r.text
    assert r.json()["detail"].startswith("content-type")
    assert api.breaker_state() == "open"


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_every_write_needs_application_json(
    api: Harness, method: str, path: str, body: object
) -> None:
    import json

    r = api.http.request(
        method, path, content=json.dumps(body).encode(), headers={"Content-Type": "text/plain"}
    )
    assert r.status_code == 415, r.text
    ok = api.http.request(
        method,
        path,
        content=json.dumps(body).encode(),
        headers={"Content-Type": "Application/JSON; charset=utf-8"},
    )
    assert ok.status_code != 415


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_every_write_needs_a_json_object_even_when_it_says_nothing(
    api: Harness, method: str, path: str, body: object
) -> None:
    for content in (b"", b" \r\n", b"null", b"[]"):
        r = api.http.request(
            method, path, content=content, headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 422 and r.json()["detail"].startswith("body"), (content, r.text)
    assert api.breaker_state() == "closed"


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "null", "http://127.0.0.1.evil.example", "file://"]
)
def test_a_foreign_origin_is_refused(api: Harness, origin: str) -> None:
    _tripped(api)
    r = api.post("/v1/breaker/reset", {}, headers={"Origin": origin})
    assert r.status_code == 403 and r.json()["detail"].startswith("origin"), r.text
    assert api.breaker_state() == "open"
    assert api.http.get("/v1/state", headers={"Origin": origin}).status_code == 403


def test_a_cross_site_fetch_is_refused_even_without_origin(api: Harness) -> None:
    r = api.http.get("/v1/state", headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    assert api.http.get("/v1/state", headers={"Sec-Fetch-Site": "same-origin"}).status_code == 200


def test_a_loopback_origin_of_the_bound_port_is_accepted(api: Harness) -> None:
    port = api.served.port
    for origin in (f"http://127.0.0.1:{port}", f"http://localhost:{port}", f"http://[::1]:{port}"):
        r = api.post("/v1/heartbeat" if api.kind == "fake" else "/v1/successes", {},
                     headers={"Origin": origin})  # fmt: skip
        assert r.status_code in (200, 202), (origin, r.text)
    other = f"http://127.0.0.1:{port + 1 if port < 65535 else port - 1}"
    assert api.post("/v1/successes", {}, headers={"Origin": other}).status_code == 403


@pytest.mark.parametrize(
    "host",
    ["evil.example:{port}", "evil.example", "127.0.0.1:{other}", "localhost.evil.example:{port}",
     "", "127.0.0.1:{port}:{port}", "[::1:{port}"],
)  # fmt: skip
def test_a_foreign_host_is_refused_dns_rebinding(api: Harness, host: str) -> None:
    port = api.served.port
    other = port + 1 if port < 65535 else port - 1
    value = host.format(port=port, other=other)
    r = api.http.get("/v1/state", headers={"Host": value})
    assert r.status_code in (400, 421), (value, r.status_code, r.text)
    r = api.post("/v1/breaker/force-open", {}, headers={"Host": value})
    assert r.status_code in (400, 421)
    assert api.breaker_state() == "closed"


def test_ip_literal_and_localhost_hosts_are_accepted(api: Harness) -> None:
    port = api.served.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}", f"[::1]:{port}"):
        assert api.http.get("/v1/state", headers={"Host": host}).status_code == 200, host


def test_a_body_over_64_kib_is_413_before_it_is_read(api: Harness) -> None:
    big = {"id": "big", "legs": [stock(1)], "pad": "x" * (64 * 1024)}
    r = api.post("/v1/checks", big)
    assert r.status_code == 413 and r.json()["detail"].startswith("body")
    r = api.post("/v1/breaker/force-open", {"operator": "o" * (10 * 1024 * 1024)})
    assert r.status_code == 413
    assert api.breaker_state() == "closed"
    assert api.http.get("/v1/journal", params={"type": "check"}).json() == []


def test_a_streamed_body_over_64_kib_is_413_and_the_api_keeps_serving(api: Harness) -> None:
    """Chunked: no Content-Length to judge, so the bytes are counted as they arrive."""

    def chunks() -> Iterator[bytes]:
        yield b'{"id": "streamed", "legs": [], "pad": "'
        for _ in range(100):
            yield b"x" * 1024
        yield b'"}'

    r = api.http.post("/v1/checks", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    assert api.http.get("/v1/journal", params={"type": "check"}).json() == []
    assert api.http.get("/healthz").status_code == 200
    small = api.post("/v1/checks", {"id": "small", "legs": [stock(1)]})
    assert small.status_code == 200


def test_a_body_just_under_the_cap_is_read(api: Harness) -> None:
    body = {"id": "padded", "legs": [stock(1)], "pad": "x" * (60 * 1024)}
    assert api.post("/v1/checks", body).status_code == 200


def test_the_token_guards_every_write_but_not_reads(guarded: Harness) -> None:
    with httpx.Client(base_url=guarded.url) as anon:
        for method, path, body in [*WRITES, ("DELETE", "/v1/strategies/s1", None)]:
            r = anon.request(method, path, json=body)
            assert r.status_code == 401, (path, r.text)
            assert "Bearer" in r.json()["detail"] and r.headers["www-authenticate"] == "Bearer"
            wrong = anon.request(method, path, json=body, headers={"Authorization": "Bearer no"})
            assert wrong.status_code == 401
        latin = anon.post(
            "/v1/successes",
            json={},
            headers=[(b"Authorization", b"Bearer \xff\xfe")],
        )
        assert latin.status_code == 401
        for path in READS:
            if path == "/v1/strategies" and guarded.kind == "real" and missing("strategies"):
                continue  # not in the core yet: the fake covers it meanwhile
            assert anon.get(path).status_code == 200, path
    assert guarded.breaker_state() == "closed"
    ok = httpx.post(
        guarded.url + "/v1/successes", json={}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert ok.status_code == 202

"""The Host/Origin/content-type/size rules of ``supervisor.api.security``, without a server."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervisor.api.security import HostPolicy, RequestGuard, split_host

PORT = 8780
POLICY = HostPolicy.of(PORT)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:8780", ("127.0.0.1", 8780)),
        ("LocalHost:8780", ("localhost", 8780)),
        ("localhost", ("localhost", None)),
        ("[::1]:8780", ("::1", 8780)),
        ("[::1]", ("::1", None)),
        ("::1", None),
        ("[::1", None),
        ("[::1]x", None),
        ("host:", None),
        ("host:0", None),
        ("host:65536", None),
        ("host:80a", None),
        ("host:٨٠", None),
        (":8780", None),
        ("", None),
        ("a:1:2", None),
    ],
)
def test_split_host(value: str, expected: tuple[str, int | None] | None) -> None:
    assert split_host(value) == expected


def test_loopback_names_and_ip_literals_on_the_bound_port_pass() -> None:
    for host in ("127.0.0.1:8780", "localhost:8780", "[::1]:8780", "10.1.2.3:8780"):
        assert POLICY.host_ok(host), host
    for host in ("127.0.0.1:8781", "localhost", "evil.example:8780", None, "127.0.0.1.nip.io:8780"):
        assert not POLICY.host_ok(host), host
    assert HostPolicy.of(80).host_ok("localhost")  # no port: 80


def test_nothing_passes_before_the_port_is_known() -> None:
    unbound = HostPolicy.of(None)
    assert not unbound.host_ok("127.0.0.1:8780") and not unbound.origin_ok("http://127.0.0.1")
    assert unbound.origin_ok(None)


def test_allowed_hosts_are_names_too() -> None:
    policy = HostPolicy.of(PORT, ["Risk.Example", " [::1] ", ""])
    assert policy.host_ok("risk.example:8780") and policy.origin_ok("https://risk.example:8780")
    assert not policy.host_ok("other.example:8780")


_LABEL = st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True)


@given(st.lists(_LABEL, min_size=1, max_size=4), st.integers(1, 65535))
def test_a_dns_name_is_never_a_host_unless_allowed(labels: list[str], port: int) -> None:
    """DNS rebinding needs a name: every name but localhost is refused, whatever the port."""
    name = ".".join(labels)
    if name == "localhost":
        return
    assert not HostPolicy.of(port).host_ok(f"{name}:{port}")
    assert HostPolicy.of(port, [name]).host_ok(f"{name}:{port}")


@given(st.ip_addresses(), st.integers(1, 65535), st.integers(1, 65535))
def test_an_ip_literal_passes_on_the_bound_port_only(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address, bound: int, port: int
) -> None:
    host = f"[{ip}]" if ip.version == 6 else str(ip)
    assert HostPolicy.of(bound).host_ok(f"{host}:{port}") is (port == bound)


@pytest.mark.parametrize(
    ("origin", "ok"),
    [
        (None, True),
        ("http://127.0.0.1:8780", True),
        ("http://localhost:8780", True),
        ("http://[::1]:8780", True),
        ("https://127.0.0.1:8780", True),
        ("http://127.0.0.1:8780/", True),
        ("http://127.0.0.1", False),
        ("http://127.0.0.1:9999", False),
        ("http://evil.example:8780", False),
        ("null", False),
        ("file://", False),
        ("chrome-extension://abc", False),
        ("http://127.0.0.1:8780/path", False),
        ("http://[::1:8780", False),
        ("http://127.0.0.1:99999", False),
    ],
)
def test_origins(origin: str | None, ok: bool) -> None:
    assert POLICY.origin_ok(origin) is ok


def _headers(**h: str) -> list[tuple[bytes, bytes]]:
    return [(k.replace("_", "-").encode(), v.encode("latin-1")) for k, v in h.items()]


def _guard() -> RequestGuard:
    g = RequestGuard(max_body_bytes=1000)
    g.bind(PORT)
    return g


@pytest.mark.parametrize(
    ("method", "headers", "status"),
    [
        ("GET", {"host": "127.0.0.1:8780"}, None),
        ("GET", {}, 421),
        ("GET", {"host": "evil:8780"}, 421),
        ("GET", {"host": "127.0.0.1:8780", "origin": "http://evil"}, 403),
        ("GET", {"host": "127.0.0.1:8780", "sec_fetch_site": "Cross-Site"}, 403),
        ("GET", {"host": "127.0.0.1:8780", "sec_fetch_site": "same-site"}, None),
        ("POST", {"host": "127.0.0.1:8780"}, 415),
        ("POST", {"host": "127.0.0.1:8780", "content_type": "text/plain"}, 415),
        ("POST", {"host": "127.0.0.1:8780", "content_type": "application/jsonx"}, 415),
        ("POST", {"host": "127.0.0.1:8780", "content_type": "APPLICATION/JSON; q=1"}, None),
        ("PUT", {"host": "127.0.0.1:8780", "content_type": "application/json"}, None),
        ("DELETE", {"host": "127.0.0.1:8780"}, None),
        ("POST", {"host": "127.0.0.1:8780", "content_type": "application/json",
                  "content_length": "1001"}, 413),
        ("POST", {"host": "127.0.0.1:8780", "content_type": "application/json",
                  "content_length": "1000"}, None),
        ("POST", {"host": "127.0.0.1:8780", "content_type": "application/json",
                  "content_length": "-1"}, 400),
        ("GET", {"host": "127.0.0.1:8780", "content_length": "5000"}, 413),
    ],
)  # fmt: skip
def test_request_guard_refusals(method: str, headers: dict[str, str], status: int | None) -> None:
    problem = _guard().refusal(method, _headers(**headers))
    assert (None if problem is None else problem.status) == status

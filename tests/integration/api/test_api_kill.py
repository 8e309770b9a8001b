"""``POST /v1/kill`` and ``POST /v1/heartbeat`` (DESIGN §4.5), over HTTP, fake and real."""

from __future__ import annotations

from pathlib import Path

import pytest
from api_harness import Harness, harness, stock
from fake_daemon import FakeClock, FakeDaemon

pytestmark = pytest.mark.e2e


@pytest.mark.needs("kill")
@pytest.mark.parametrize("mode", ["halt", "cancel", "flatten"])
def test_kill_opens_the_breaker_sticky_and_is_in_state_and_journal(api: Harness, mode: str) -> None:
    r = api.post("/v1/kill", {"mode": mode, "operator": "alice"})
    assert r.status_code == 200, r.text
    kill = r.json()
    assert kill["mode"] == mode and kill["operator"] == "alice" and kill["cause"] == "kill"
    assert kill["breaker"] == "open" and isinstance(kill["kill_id"], str) and kill["kill_id"]
    assert kill["cancel"] == ("" if mode == "halt" else kill["cancel"])
    # The answer means it: the next entry is denied, a risk-reducing order is not asked about.
    denied = api.post("/v1/checks", {"id": "after-kill", "legs": [stock(1)]}).json()
    assert denied["allowed"] is False and denied["breaker_state"] == "open"
    state = api.http.get("/v1/state").json()
    assert state["breaker"]["state"] == "open"
    assert state["kill"]["kill_id"] == kill["kill_id"] and state["kill"]["mode"] == mode
    journal = api.http.get("/v1/journal", params={"type": "kill"}).json()
    assert journal and journal[0]["kind"] == "kill"


@pytest.mark.needs("kill")
@pytest.mark.parametrize("body", [{}, {"mode": None}, {"operator": None}])
def test_kill_without_a_mode_is_halt(api: Harness, body: dict[str, object]) -> None:
    kill = api.post("/v1/kill", body).json()
    assert kill["mode"] == "halt" and kill["operator"] == "api"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"mode": "nuke"}, "mode"),
        ({"mode": "HALT"}, "mode"),
        ({"mode": 1}, "mode"),
        ({"mode": ["halt"]}, "mode"),
        ({"mdoe": "flatten"}, "mdoe"),  # a typo never silently halts instead of flattening
        ({"mode": "flatten", "operator": ""}, "operator"),
        ({"mode": "flatten", "operator": "x" * 201}, "operator"),
    ],
)
def test_bad_kill_bodies_are_422_and_kill_nothing(
    api: Harness, body: dict[str, object], field: str
) -> None:
    r = api.post("/v1/kill", body)
    assert r.status_code == 422 and r.json()["detail"].startswith(field), r.text
    assert api.breaker_state() == "closed"
    if api.kind == "fake":
        assert [name for name, _ in api.fake.calls if name == "kill"] == []


def test_flatten_answers_one_order_per_position_and_state_follows_them(
    fake_api: Harness,
) -> None:
    fake_api.hold("MSFT-STK", "MSFT", 10.0, 400.0)
    fake_api.hold("AAPL-STK", "AAPL", -20.0, 150.0)
    kill = fake_api.post("/v1/kill", {"mode": "flatten", "operator": "bob"}).json()
    assert kill["cancel"] == "requested"
    assert kill["orders"] == [
        {"position_id": "AAPL-STK", "status": "claimed", "order_id": None, "detail": ""},
        {"position_id": "MSFT-STK", "status": "claimed", "order_id": None, "detail": ""},
    ]
    assert fake_api.fake.calls[-1][0] == "kill"
    assert fake_api.http.get("/v1/state").json()["kill"]["orders"] == kill["orders"]


@pytest.mark.needs("heartbeat")
def test_heartbeat_answers_the_dead_man_switch(api: Harness) -> None:
    r = api.post("/v1/heartbeat")
    assert r.status_code == 200, r.text
    hb = r.json()
    assert set(hb) == {"timeout_s", "last_t", "deadline", "fired", "age_s"}
    assert isinstance(hb["last_t"], float) and hb["fired"] is False
    assert api.http.get("/v1/state").json()["heartbeat"]["last_t"] == hb["last_t"]


def test_heartbeat_deadline_and_age_in_state(tmp_path: Path) -> None:
    clock = FakeClock()
    fake = FakeDaemon(clock=clock, heartbeat_timeout_s=10.0)
    with harness("fake", tmp_path, fake=fake) as api:
        before = api.http.get("/v1/state").json()["heartbeat"]
        assert before == {
            "timeout_s": 10.0, "last_t": None, "deadline": None, "fired": False, "age_s": None,
        }  # fmt: skip
        hb = api.post("/v1/heartbeat").json()
        assert hb == {
            "timeout_s": 10.0, "last_t": clock.t, "deadline": clock.t + 10.0, "fired": False,
            "age_s": 0.0,
        }  # fmt: skip
        clock.advance(4.0)
        later = api.http.get("/v1/state").json()["heartbeat"]
        assert later["age_s"] == 4.0 and later["deadline"] == hb["deadline"]
        clock.advance(6.0)
        assert api.http.get("/v1/state").json()["heartbeat"]["fired"] is True


@pytest.mark.parametrize("body", [{"t": 1}, {"alive": True}])
def test_heartbeat_refuses_fields(api: Harness, body: dict[str, object]) -> None:
    r = api.post("/v1/heartbeat", body)
    assert r.status_code == 422 and r.json()["detail"].startswith(next(iter(body)))

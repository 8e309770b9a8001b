"""The metrics through a real Prometheus scrape (DESIGN: metrics by a real scrape in an e2e test).

One test, everything real and on loopback: the gateway simulator (in this
process) holds a small book; ``python -m supervisor run`` connects to it
through ib_async and serves its API and metrics on ports it picks itself; a
real ``prometheus`` scrapes it every second and evaluates
``grafana/prometheus/alerts.yml`` every second, with BreakerOpen's ``for``
shortened (by rewriting the parsed YAML) so that the alert fires within
seconds. The test then

1. waits for ``up{job="risk-supervisor"} == 1``;
2. sends traffic through the API: allowed and denied checks, an invalid one,
   failures, and a price move that arms a trailing stop;
3. forces the breaker open through the API and watches BreakerOpen go
   pending, then firing, with its labels and rendered annotations;
4. runs every PromQL expression of the dashboard
   (``grafana/dashboards/risk-supervisor.json``, variables substituted as
   Grafana would) against the live Prometheus, each as the panel runs it
   (instant or range), and requires a finite value from each, and checks the
   dashboard's variable queries find this instance and its positions;
5. resets the breaker through the API and sees the state series flip back
   and the alert leave.

Needs Debian's ``prometheus``: skipped when it is missing, unless ``CI`` is
set, in which case the test fails.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_helpers import (
    ROOT,
    DaemonProcess,
    PrometheusProcess,
    finite_values,
    require_binary,
    until,
)

from supervisor.simulator import SimPosition, SimulatorThread

pytestmark = pytest.mark.e2e

ALERTS = ROOT / "grafana" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "grafana" / "dashboards" / "risk-supervisor.json"
BUILD = ROOT / "grafana" / "src" / "build.py"

#: The ``for`` of the alerts this test waits for, shortened from what ops run.
SHORT_FOR = {"BreakerOpen": ("1m", "5s")}
SHORT_FOR_S = 5.0

#: Dashboard expressions that may return nothing here, with the reason.
#: Empty: with the traffic below, every panel of the dashboard has data.
NO_DATA_BY_DESIGN: dict[str, str] = {}

EXPIRY = (dt.date.today() + dt.timedelta(days=60)).isoformat()
AAPL, SPY_PUT, MSFT = 1001, 2001, 3001


# ------------------------------------------------------------------ pieces


def shorten_alerts(src: Path, dst: Path) -> dict[str, Any]:
    """Copy the alert rules with the ``for`` of SHORT_FOR replaced; the rules as written."""
    doc = yaml.safe_load(src.read_text(encoding="utf-8"))
    rules = {r["alert"]: r for g in doc["groups"] for r in g["rules"]}
    original = json.loads(json.dumps(rules))
    for name, (old, new) in SHORT_FOR.items():
        assert rules[name]["for"] == old, f"{name}: for is {rules[name]['for']!r}, not {old!r}"
        rules[name]["for"] = new
    dst.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    # The rewrite happened, and changed nothing else.
    again = {r["alert"]: r for g in yaml.safe_load(dst.read_text())["groups"] for r in g["rules"]}
    for name, rule in again.items():
        want = dict(original[name])
        if name in SHORT_FOR:
            want["for"] = SHORT_FOR[name][1]
        assert rule == want, f"{name} changed beyond its for: {rule} != {want}"
    assert again["BreakerOpen"]["for"] == "5s"
    return original


def prometheus_yml(target: str, rule_file: Path) -> str:
    """The test server's config, from the project's own builder."""
    out = subprocess.run(
        [
            sys.executable,
            str(BUILD),
            "--prometheus-config",
            "--target",
            target,
            "--interval",
            "1s",
            "--rule-file",
            str(rule_file),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    config = yaml.safe_load(out)
    assert config["global"] == {"scrape_interval": "1s", "evaluation_interval": "1s"}
    assert config["scrape_configs"][0]["job_name"] == "risk-supervisor"
    return out


def dashboard_targets() -> list[tuple[str, str, str, bool]]:
    """(panel title, refId, expr, instant) of every target of every panel, rows included."""

    def panels(node: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for p in node:
            out.append(p)
            out.extend(panels(p.get("panels", [])))
        return out

    model = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    found = []
    for p in panels(model["panels"]):
        for t in p.get("targets", []):
            if "expr" in t:
                instant = bool(t.get("instant")) and not t.get("range")
                found.append((str(p.get("title")), str(t.get("refId")), t["expr"], instant))
    return found


def dashboard_variables() -> list[dict[str, Any]]:
    model = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return list(model["templating"]["list"])


def substitute(expr: str, values: dict[str, str]) -> str:
    """Grafana's variables replaced; an unknown one fails the test."""

    def one(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        assert name in values, f"unknown dashboard variable ${name} in {expr}"
        return values[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", one, expr)


def book(sim: SimulatorThread) -> None:
    """AAPL long 100 at 100, MSFT short 40 at 410, two short SPY 480 puts."""

    def setup() -> None:
        g = sim.sim
        g.set_underlying("AAPL", 100.0, vol=0.25, push=False)
        g.set_underlying("MSFT", 410.0, vol=0.25, push=False)
        g.set_underlying("SPY", 500.0, vol=0.2, push=False)
        g.add_position(SimPosition(AAPL, "AAPL", "STK", 100, 100.0))
        g.add_position(SimPosition(MSFT, "MSFT", "STK", -40, 410.0))
        g.add_position(
            SimPosition(SPY_PUT, "SPY", "OPT", -2, 350.0, right="P", strike=480.0, expiry=EXPIRY)
        )

    sim.call(setup)


def daemon_toml(sim_port: int, store: Path) -> str:
    return f"""
[ib]
host = "127.0.0.1"
port = {sim_port}
client_id = 41
exit_orders = false
connect_timeout_s = 5.0
reconnect_min_s = 0.1
reconnect_max_s = 0.5
probe_interval_s = 5.0

[api]
listen = "127.0.0.1:0"
heartbeat_timeout_s = 3600

[metrics]
listen = "127.0.0.1:0"

[store]
path = "{store}"

[record]
dir = "{store.parent / "recordings"}"

[limits]
max_portfolio_delta = 1000
max_beta_weighted_delta = 1000000

[beta]
index = "SPY"
default = 1.0

[loss]
max_daily_loss = 1000000

[margin]
max_init_margin_pct = 1000

[breaker]
failure_threshold = 50
"""


def check(d: DaemonProcess, ident: str, qty: float) -> dict[str, Any]:
    answer: dict[str, Any] = d.post(
        "/v1/checks",
        {"id": ident, "legs": [{"symbol": "AAPL", "sec_type": "STK", "qty": qty, "price": 100.0}]},
    )
    return answer


# ------------------------------------------------------------------ the test


def test_live_scrape_alert_and_every_dashboard_query(tmp_path: Path) -> None:
    prometheus = require_binary("prometheus")
    alerts_copy = tmp_path / "alerts.yml"
    written = shorten_alerts(ALERTS, alerts_copy)["BreakerOpen"]

    sim = SimulatorThread(seed=11, call_timeout=10.0, auto_walk=True, tick_interval=0.25)
    config = tmp_path / "daemon.toml"
    daemon = DaemonProcess(config, tmp_path)
    prom: PrometheusProcess | None = None
    sim.start()
    try:
        book(sim)
        config.write_text(daemon_toml(sim.port, tmp_path / "state.sqlite"), encoding="utf-8")
        daemon.start()
        daemon.wait_connected()
        until(
            lambda: len(daemon.get("/v1/state")["positions"]) == 3,
            20.0,
            "three positions in the daemon",
            diagnose=daemon.diagnose,
        )
        instance = daemon.metrics_url.removeprefix("http://").removesuffix("/metrics")
        assert re.fullmatch(r"127\.0\.0\.1:\d+", instance), daemon.metrics_url

        # AAPL up 3 % arms its stop, so the stop and extreme price series exist.
        sim.call(sim.sim.set_underlying, "AAPL", 103.0, 0.25)

        def aapl_armed() -> bool:
            rows = {p["id"]: p for p in daemon.get("/v1/state")["positions"]}
            return bool(rows[str(AAPL)]["active"])

        until(aapl_armed, 20.0, "AAPL stop armed", diagnose=daemon.diagnose)

        prom_dir = tmp_path / "prometheus"
        prom_dir.mkdir()
        prom_config = prom_dir / "prometheus.yml"
        prom_config.write_text(prometheus_yml(instance, alerts_copy), encoding="utf-8")
        prom = PrometheusProcess(prometheus, prom_config, prom_dir)
        prom.start()
        p = prom

        # The rules Prometheus loaded are the rewritten ones.
        groups = p.api("/api/v1/rules")["groups"]
        loaded = {r["name"]: r for g in groups for r in g["rules"]}
        assert loaded["BreakerOpen"]["duration"] == SHORT_FOR_S
        assert set(loaded) >= {"BreakerOpen", "RiskSupervisorDown", "IBDisconnected"}

        # 1. Scraped.
        until(
            lambda: p.query('up{job="risk-supervisor"} == 1'),
            30.0,
            "Prometheus scraping the daemon",
            interval=0.2,
            diagnose=p.diagnose,
        )
        up = p.query('up{job="risk-supervisor"}')
        assert [s["metric"]["instance"] for s in up] == [instance]

        # 2. Traffic: allowed, denied (limit), invalid; failures below the threshold.
        for i in range(3):
            assert check(daemon, f"ok-{i}", 10)["allowed"] is True
        for i in range(2):
            answer = check(daemon, f"big-{i}", 5000)
            assert answer["allowed"] is False
            assert [r["code"] for r in answer["reasons"]] == ["max_portfolio_delta"]
        bad = daemon.post("/v1/checks", {"id": "bad", "legs": []})
        assert bad["allowed"] is False and bad["reasons"][0]["code"] == "invalid_order"
        for code in (2103, 2105):
            daemon.post("/v1/failures", {"kind": "data_feed", "code": code, "detail": "e2e"})
        until(
            lambda: p.query(
                'risk_supervisor_pretrade_checks_total{outcome="denied"} >= 3'
                ' and on() risk_supervisor_circuit_breaker_failures_total{kind="data_feed"} >= 2'
            ),
            20.0,
            "the traffic scraped",
            interval=0.2,
            diagnose=p.diagnose,
        )

        # 3. BreakerOpen: pending, then firing, with its labels and annotations.
        assert daemon.post("/v1/breaker/force-open", {"operator": "e2e"}) == {"state": "open"}
        for i in range(2):
            answer = check(daemon, f"while-open-{i}", 10)
            assert answer["allowed"] is False
            assert "breaker_open" in [r["code"] for r in answer["reasons"]]

        seen: list[str] = []

        def breaker_alert() -> dict[str, Any] | None:
            mine = [a for a in p.alerts() if a["labels"].get("alertname") == "BreakerOpen"]
            assert len(mine) <= 1, mine
            if mine and (not seen or seen[-1] != mine[0]["state"]):
                seen.append(mine[0]["state"])
            return mine[0] if mine and mine[0]["state"] == "firing" else None

        opened = time.monotonic()
        firing = until(breaker_alert, 40.0, "BreakerOpen firing", interval=0.1, diagnose=p.diagnose)
        assert seen == ["pending", "firing"], seen
        assert time.monotonic() - opened >= SHORT_FOR_S - 1.5  # not before its `for`
        assert firing["labels"] == {
            "alertname": "BreakerOpen",
            "severity": "page",
            "instance": instance,
            "job": "risk-supervisor",
            "state": "open",
        }
        notes = firing["annotations"]
        assert notes["summary"] == f"Circuit breaker open on {instance}: new entries are halted"
        assert notes["runbook_url"] == written["annotations"]["runbook_url"]
        assert (ROOT / "grafana" / notes["runbook_url"].removeprefix("grafana/")).is_file()
        assert instance in notes["description"]
        assert float(firing["value"]) == 1.0
        assert p.query('ALERTS{alertname="BreakerOpen", alertstate="firing"}')

        # 4. Every dashboard query has data from the live Prometheus.
        values = {
            "__rate_interval": "1m",
            "__interval": "1s",
            "__range": "5m",
            "instance": instance,  # as Grafana puts one selected value
            "position": ".*",
            "datasource": "prometheus",
        }
        targets = dashboard_targets()
        assert len(targets) >= 25, "the dashboard lost panels?"
        pending = {
            f"{title} [{ref}]": (substitute(expr, values), instant)
            for title, ref, expr, instant in targets
        }
        for name in NO_DATA_BY_DESIGN:
            pending.pop(name)
        results: dict[str, list[dict[str, Any]]] = {}

        def all_have_data() -> bool:
            for name, (expr, instant) in list(pending.items()):
                result = p.query(expr) if instant else p.query_range(expr, 60.0)
                results[name] = result
                if finite_values(result):
                    del pending[name]
            return not pending

        until(
            all_have_data,
            30.0,
            "every dashboard query returning data",
            interval=0.5,
            diagnose=lambda: "\n".join(
                f"{n}: {e!r} -> {results.get(n)}" for n, (e, _) in pending.items()
            ),
        )
        # A few values the traffic above pins down.
        assert p.query("risk_supervisor_positions == 3")
        assert p.query("risk_supervisor_trailing_stops_active >= 1")
        (breaker_expr,) = [e for title, _, e, _ in targets if title == "Circuit breaker"]
        state_now = p.query(substitute(breaker_expr, values))
        assert float(state_now[0]["value"][1]) == 2.0  # the stat's encoding of "open"
        denied = p.query(
            'sum(increase(risk_supervisor_pretrade_checks_total{outcome="denied"}[5m]))'
        )
        assert float(denied[0]["value"][1]) >= 3.0
        reasons = p.query("risk_supervisor_pretrade_rejections_total > 0")
        assert {s["metric"]["reason"] for s in reasons} >= {
            "max_portfolio_delta",
            "invalid_order",
            "breaker_open",
        }

        # The variables' queries (label_values) find this daemon and its positions.
        for var in dashboard_variables():
            if var["type"] != "query":
                continue
            m = re.fullmatch(r"label_values\((.*), (\w+)\)", var["query"])
            assert m is not None, var["query"]
            selector, label = substitute(m.group(1), values), m.group(2)
            found = set(p.api(f"/api/v1/label/{label}/values", **{"match[]": selector}))
            want = {instance} if label == "instance" else {str(AAPL)}
            assert want <= found, (var["name"], selector, found)

        # 5. Reset: the state series flips back and the alert leaves.
        assert daemon.post("/v1/breaker/reset", {"operator": "e2e"}) == {"state": "closed"}
        until(
            lambda: p.query(
                'risk_supervisor_circuit_breaker_state{state="closed"} == 1'
                ' and on(instance) risk_supervisor_circuit_breaker_state{state="open"} == 0'
            ),
            20.0,
            "closed == 1 and open == 0 scraped after the reset",
            interval=0.2,
            diagnose=p.diagnose,
        )
        until(
            lambda: not [a for a in p.alerts() if a["labels"].get("alertname") == "BreakerOpen"],
            20.0,
            "BreakerOpen resolved",
            interval=0.2,
            diagnose=p.diagnose,
        )
        assert daemon.terminate() == 0
    except BaseException:
        print(daemon.diagnose())
        if prom is not None:
            print(prom.diagnose())
        raise
    finally:
        if prom is not None:
            prom.close()
        daemon.close()
        sim.stop()

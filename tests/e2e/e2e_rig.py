"""The pieces the scenario tests share: a simulated account, a daemon process on it, readers.

Each scenario test (``test_e2e_*.py``) builds a small book in the gateway
simulator (in the test's process), writes a config for
``python -m supervisor run`` with :func:`daemon_doc`, starts it with
:class:`~e2e_helpers.DaemonProcess` and reads what it did three ways: the HTTP
API, the Prometheus text of ``/metrics`` (:func:`scrape`), and the SQLite
journal, read-only (:func:`journal_rows`) — plus what the simulator received
(:func:`sim_orders`). Everything is bounded and stopped in ``finally``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
from e2e_helpers import DaemonProcess, until
from prometheus_client.parser import text_string_to_metric_families

from supervisor import config_toml
from supervisor.simulator import SimOrder, SimPosition, SimulatorThread

EXPIRY = (dt.date.today() + dt.timedelta(days=60)).isoformat()
PREFIX = "risk_supervisor_"


def merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``extra`` laid over ``base`` table by table (a new dict)."""
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def daemon_doc(sim_port: int, store: Path, client_id: int, **sections: Any) -> dict[str, Any]:
    """A config for the daemon against the simulator: fast reconnects, ports picked by the OS.

    ``sections`` are laid over the defaults (``ib={"exit_orders": True}``).
    Recording is off unless a test asks for it.
    """
    doc: dict[str, Any] = {
        "ib": {
            "host": "127.0.0.1",
            "port": sim_port,
            "client_id": client_id,
            "exit_orders": False,
            "connect_timeout_s": 5.0,
            "reconnect_min_s": 0.05,
            "reconnect_max_s": 0.3,
            "probe_interval_s": 5.0,
        },
        "api": {"listen": "127.0.0.1:0"},
        "metrics": {"listen": "127.0.0.1:0"},
        "store": {"path": str(store)},
        "record": {"enabled": False},
        "breaker": {"failure_threshold": 1000},
    }
    return merge(doc, sections)


def write_config(path: Path, doc: Mapping[str, Any]) -> Path:
    path.write_text(config_toml.dumps(doc), encoding="utf-8")
    return path


@contextlib.contextmanager
def simulator(**kwargs: Any) -> Iterator[SimulatorThread]:
    """A started gateway simulator (in this process), stopped at the end."""
    sim = SimulatorThread(call_timeout=10.0, **kwargs)
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


def hold(sim: SimulatorThread, *positions: SimPosition, und: Mapping[str, float]) -> None:
    """Set the underlyings' prices, then hold ``positions`` (options at their price now)."""
    g = sim.sim

    def setup() -> None:
        for symbol, price in und.items():
            g.set_underlying(symbol, price, 0.25, push=False)
        for pos in positions:
            g.add_position(pos)
            if pos.sec_type == "OPT" and pos.avg_cost == 0.0:
                pos.avg_cost = round(g.market.mark(pos.instrument()) * pos.multiplier, 2)
                g.add_position(pos)

    sim.call(setup)


def option(
    con_id: int, symbol: str, qty: float, right: str, strike: float, expiry: str = EXPIRY
) -> SimPosition:
    """An option position whose cost is its price when held (see :func:`hold`)."""
    return SimPosition(con_id, symbol, "OPT", qty, 0.0, right=right, strike=strike, expiry=expiry)


def start(daemon: DaemonProcess, positions: int, timeout: float = 20.0) -> None:
    """Start the daemon and wait until it is connected and holds ``positions``."""
    daemon.start()
    daemon.wait_connected()
    until(
        lambda: len(daemon.get("/v1/state")["positions"]) >= positions,
        timeout,
        f"{positions} positions in the daemon",
        diagnose=daemon.diagnose,
    )


def quoted(daemon: DaemonProcess) -> dict[str, dict[str, Any]]:
    """Holdings by position id that have a bid and an ask in the daemon's book."""
    rows = daemon.get("/v1/state")["portfolio"]["holdings"]
    return {str(r["id"]): r for r in rows if r.get("bid") is not None and r.get("ask") is not None}


def wait_quoted(daemon: DaemonProcess, ids: list[str], timeout: float = 10.0) -> None:
    """Until every position in ``ids`` has a two-sided quote in the daemon."""
    until(
        lambda: set(ids) <= set(quoted(daemon)),
        timeout,
        f"quotes for {ids}",
        diagnose=daemon.diagnose,
    )


# ------------------------------------------------------------------ reading


def scrape(daemon: DaemonProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``: (name without the prefix, sorted labels) -> value."""
    text = httpx.get(daemon.metrics_url, timeout=5.0).text
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            name = s.name.removeprefix(PREFIX)
            out[(name, tuple(sorted(s.labels.items())))] = float(s.value)
    return out


def metric(daemon: DaemonProcess, name: str, **labels: str) -> float | None:
    return scrape(daemon).get((name, tuple(sorted(labels.items()))))


def journal_rows(store: Path, kind: str | None = None) -> list[dict[str, Any]]:
    """The journal, read-only, in seq order: ``{seq, t, wall_t, kind, position_id, payload}``.

    ``t`` is the decision's event time; ``wall_t`` when the row was written.
    """
    con = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5.0)
    try:
        sql = "SELECT seq, t, wall_t, kind, position_id, payload FROM journal"
        args: tuple[str, ...] = ()
        if kind is not None:
            sql += " WHERE kind = ?"
            args = (kind,)
        rows = con.execute(sql + " ORDER BY seq", args).fetchall()
    finally:
        con.close()
    return [
        {"seq": s, "t": t, "wall_t": w, "kind": k, "position_id": p, "payload": json.loads(body)}
        for s, t, w, k, p, body in rows
    ]


def sim_orders(sim: SimulatorThread) -> list[SimOrder]:
    """Every order the simulator received (latest records and replaced ones), in order."""
    g = sim.sim
    return sim.call(lambda: list(g.orders))


def positions_held(sim: SimulatorThread) -> dict[int, float]:
    g = sim.sim
    return sim.call(lambda: {c: p.qty for c, p in g.positions.items() if p.qty != 0})


def check(
    daemon: DaemonProcess, ident: str, legs: list[dict[str, Any]], timeout: float = 15.0
) -> dict[str, Any]:
    answer: dict[str, Any] = daemon.post("/v1/checks", {"id": ident, "legs": legs}, timeout)
    return answer


def codes(answer: Mapping[str, Any]) -> list[str]:
    return [r["code"] for r in answer["reasons"]]

"""Random replay scenarios (config + event lines) for comparing the project with the oracle.

Each scenario is drawn with Hypothesis around a small plausible market: three
underlyings (AAPL, MSFT and the index SPY) whose spot and volatility random-walk,
options on them priced by BSM, positions and strategies opened, updated and
closed, quotes (sometimes NaN, null, zero, crossed or wide), market lines,
checks (entries, closing orders, spreads, malformed orders, with and without
Greeks and what-ifs), failures, successes, operator actions, heartbeats, P&L
and NLV updates, and now and then a bad line.

`focus` chooses which parts of the contract a scenario leans on, so a failing
comparison points at one area: "stops", "strategies", "breaker", "gate",
"controls", "money" or "mixed"; "core_stops", "core_breaker" and "core_gate"
use only the older core of the contract (see CORE_FOCUSES).

The streams avoid the corners AMBIGUITIES.md lists as open readings where it
is cheap to (strategy ids are never reused, a position never changes
contract, a leg never moves between strategies, quantities are whole), so that
a mismatch is more likely a bug than a reading.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from oracle import bsm

T0 = 1767225600.0  # 2026-01-01 00:00 UTC
EXPIRY = "2026-03-20"
SPOTS = {"AAPL": 190.0, "MSFT": 400.0, "SPY": 500.0}
STRIKES = {
    "AAPL": [180.0, 185.0, 190.0, 195.0, 200.0],
    "MSFT": [380.0, 390.0, 400.0, 410.0, 420.0],
    "SPY": [480.0, 490.0, 500.0, 510.0, 520.0],
}
RATE = 0.03
FOCUSES = ("stops", "strategies", "breaker", "gate", "controls", "money", "mixed")
#: Foci restricted to the contract's older core (no [orders], [cooldown], [stop_guard],
#: [loss], [margin], [api], [beta], strategies, market/pnl/heartbeat lines, kill): they
#: isolate the stop, the breaker and the limits from the newer sections.
CORE_FOCUSES = ("core_stops", "core_breaker", "core_gate")
DBL_MAX = 1.7976931348623157e308

Contract = tuple[Any, ...]


def dumps(obj: dict[str, Any]) -> str:
    """One JSON line (NaN and Infinity as Python's json writes them)."""
    return json.dumps(obj)


@dataclass
class GenPosition:
    """The generator's view of an open position."""

    contract: Contract
    qty: int
    entry: float
    strategy: str | None = None


@dataclass
class Gen:
    """Draws one scenario; `lines` is the event file, `config` the TOML text."""

    draw: st.DrawFn
    focus: str
    core: bool = False
    t: float = T0
    lines: list[str] = field(default_factory=list)
    spot: dict[str, float] = field(default_factory=lambda: dict(SPOTS))
    vol: dict[str, float] = field(default_factory=lambda: {s: 0.25 for s in SPOTS})
    positions: dict[str, GenPosition] = field(default_factory=dict)
    strategies: dict[str, list[str]] = field(default_factory=dict)
    n_pos: int = 0
    n_strat: int = 0
    n_check: int = 0
    config: str = ""
    margin: bool = False
    quoted: list[Contract] = field(default_factory=list)

    # -- drawing helpers --------------------------------------------------------

    def pick(self, options: list[Any] | tuple[Any, ...]) -> Any:
        """One of the options."""
        return self.draw(st.sampled_from(list(options)))

    def chance(self, percent: int) -> bool:
        """True with the given probability in percent."""
        return bool(self.draw(st.integers(0, 99)) < percent)

    def integer(self, lo: int, hi: int) -> int:
        """An integer in [lo, hi]."""
        return int(self.draw(st.integers(lo, hi)))

    # -- the market ---------------------------------------------------------------

    def advance(self) -> None:
        """Move time and the market a little (the gate's scenarios mostly keep data fresh)."""
        if self.focus in ("gate", "controls", "money", "core_gate"):
            steps = [0.0, 0.25, 0.5, 1.0, 1.0, 2.0, 2.0, 5.0, 5.0, 10.0, 30.0, 61.0]
        else:
            steps = [0.0, 0.0, 0.25, 0.5, 1.0, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 61.0, 300.0]
        self.t += self.pick(steps)
        for sym in self.spot:
            step = self.integer(-4, 4)
            self.spot[sym] = round(self.spot[sym] * (1 + step * 0.0025), 2)
            self.vol[sym] = min(0.6, max(0.1, self.vol[sym] + self.integer(-1, 1) * 0.01))

    def option_contract(self, symbol: str | None = None) -> Contract:
        """A random option contract."""
        sym = symbol or self.pick(list(SPOTS))
        return ("OPT", sym, self.pick(["C", "P"]), self.pick(STRIKES[sym]), EXPIRY, 100)

    def fair(self, contract: Contract) -> float:
        """The model price of a contract now."""
        sym = contract[1]
        if contract[0] == "STK":
            return self.spot[sym]
        years = bsm.years_to_expiry(EXPIRY, self.t)
        value = bsm.price(contract[2], self.spot[sym], contract[3], years, RATE, 0.0, self.vol[sym])
        return max(round(value, 2), 0.05)

    def model_greeks(self, contract: Contract) -> dict[str, Any]:
        """IB-like model Greeks of an option now."""
        sym = contract[1]
        years = bsm.years_to_expiry(EXPIRY, self.t)
        g: dict[str, Any] = dict(
            bsm.greeks(contract[2], self.spot[sym], contract[3], years, RATE, 0.0, self.vol[sym])
        )
        g = {k: round(v, 5) for k, v in g.items()}
        g["iv"] = round(self.vol[sym], 4)
        g["und_price"] = self.spot[sym]
        return g

    @staticmethod
    def contract_fields(contract: Contract) -> dict[str, Any]:
        """The JSON fields of a contract."""
        if contract[0] == "STK":
            return {"symbol": contract[1], "sec_type": "STK"}
        return {
            "symbol": contract[1],
            "sec_type": "OPT",
            "right": contract[2],
            "strike": contract[3],
            "expiry": contract[4],
            "multiplier": contract[5],
        }

    def emit(self, obj: dict[str, Any]) -> None:
        """Append an event at the current time."""
        self.lines.append(dumps({"t": self.t, **obj}))

    # -- events -------------------------------------------------------------------

    def quote_fields(self, contract: Contract, long: bool) -> dict[str, Any]:
        """bid/ask/last around the fair price, sometimes broken."""
        fair = self.fair(contract)
        half = (
            self.pick([0.01, 0.02, 0.05, 0.1])
            if contract[0] == "STK"
            else self.pick([0.025, 0.05, 0.1])
        )
        bid: Any = round(max(fair - half, 0.01), 2)
        ask: Any = round(fair + half, 2)
        last: Any = round(fair + self.pick([-half, 0.0, half]), 2)
        anomaly = self.integer(0, 99)
        if anomaly < 4:
            bid = math.nan
        elif anomaly < 7:
            ask = None
        elif anomaly < 10:
            bid, ask = ask, bid  # crossed
        elif anomaly < 12:
            bid = 0.0
        elif anomaly < 15:
            last = None
        elif anomaly < 17:
            ask = round(fair * 1.2, 2)  # wide
        elif anomaly < 18:
            last = math.inf
        return {"bid": bid, "ask": ask, "last": last}

    def quote(self, pid: str, clean: bool = False) -> None:
        """A quote for an open position (a clean one is valid and carries full Greeks)."""
        pos = self.positions[pid]
        obj: dict[str, Any] = {"type": "quote", "id": pid}
        if clean:
            fair = self.fair(pos.contract)
            obj.update({"bid": round(fair - 0.01, 2), "ask": round(fair + 0.01, 2), "last": fair})
        else:
            obj.update(self.quote_fields(pos.contract, pos.qty > 0))
        if pos.contract[0] == "OPT" and (clean or self.chance(75)):
            g = self.model_greeks(pos.contract)
            if not clean and self.chance(8):
                g[self.pick(list(g))] = self.pick([None, math.nan])
            obj["greeks"] = g
        self.emit(obj)

    def refresh(self) -> None:
        """Clean quotes for every open position (the gate's scenarios keep data fresh often)."""
        if self.focus in ("gate", "controls", "money", "mixed", "core_gate") and self.chance(65):
            for pid in sorted(self.positions):
                self.quote(pid, clean=True)

    def open_position(self, contract: Contract | None = None, strategy: str | None = None) -> str:
        """A new position on a contract no open position holds."""
        held = {p.contract for p in self.positions.values()}
        if contract is None:
            for _ in range(10):
                contract = (
                    ("STK", self.pick(list(SPOTS))) if self.chance(45) else self.option_contract()
                )
                if contract not in held:
                    break
        assert contract is not None
        if contract in held:
            return ""
        pid = f"P{self.n_pos}"
        self.n_pos += 1
        if contract[0] == "STK":
            qty = self.pick([10, 50, 100, 200, 300]) * self.pick([1, -1])
        else:
            qty = self.pick([1, 2, 3, 5, 10]) * self.pick([1, -1])
        entry = round(self.fair(contract) * (1 + self.integer(-3, 3) * 0.01), 2)
        entry = max(entry, 0.05)
        self.positions[pid] = GenPosition(contract, qty, entry, strategy)
        obj: dict[str, Any] = {"type": "position", "id": pid, **self.contract_fields(contract)}
        obj.update({"qty": qty, "entry_price": entry})
        if strategy is not None:
            obj["strategy"] = strategy
            self.strategies.setdefault(strategy, []).append(pid)
        self.emit(obj)
        return pid

    def update_position(self, pid: str) -> None:
        """A new quantity or entry price for an open position (rarely a sign flip)."""
        pos = self.positions[pid]
        roll = self.integer(0, 9)
        if roll < 4:
            pos.qty = pos.qty + (1 if pos.qty > 0 else -1) * self.pick([1, 2, 10])
        elif roll < 7:
            pos.entry = round(max(pos.entry * (1 + self.integer(-2, 2) * 0.01), 0.05), 2)
        elif roll < 8 and pos.strategy is None:
            pos.qty = -pos.qty
        obj: dict[str, Any] = {"type": "position", "id": pid, **self.contract_fields(pos.contract)}
        obj.update({"qty": pos.qty, "entry_price": pos.entry})
        if pos.strategy is not None and self.chance(30):
            obj["strategy"] = pos.strategy
        self.emit(obj)

    def close_position(self, pid: str) -> None:
        """A `close` line, a qty-0 position line, or (for a leg) `"strategy": null`."""
        pos = self.positions[pid]
        roll = self.integer(0, 9)
        if pos.strategy is not None and roll < 2:
            obj: dict[str, Any] = {
                "type": "position",
                "id": pid,
                **self.contract_fields(pos.contract),
                "qty": pos.qty,
                "entry_price": pos.entry,
                "strategy": None,
            }
            self.emit(obj)
            self.end_strategy(pos.strategy)
            return
        if roll < 6:
            self.emit({"type": "close", "id": pid})
        else:
            obj = {"type": "position", "id": pid, **self.contract_fields(pos.contract)}
            obj.update({"qty": 0, "entry_price": pos.entry})
            self.emit(obj)
        del self.positions[pid]
        if pos.strategy is not None:
            self.end_strategy(pos.strategy)

    def end_strategy(self, sid: str) -> None:
        """The generator never names an ended strategy again (its id is spent)."""
        for leg in self.strategies.pop(sid, []):
            if leg in self.positions:
                self.positions[leg].strategy = None

    def open_strategy(self) -> None:
        """2-4 legs on one symbol: a vertical, a condor, a covered call, a ratio."""
        sym = self.pick(list(SPOTS))
        sid = f"S{self.n_strat}"
        self.n_strat += 1
        held = {p.contract for p in self.positions.values()}
        kind = self.pick(["vertical", "condor", "covered", "ratio"])
        strikes = STRIKES[sym]
        legs: list[tuple[Contract, int]]
        if kind == "vertical":
            right = self.pick(["C", "P"])
            i, j = sorted(
                self.draw(st.lists(st.integers(0, 4), min_size=2, max_size=2, unique=True))
            )
            n = self.pick([1, 2, 5])
            sign = self.pick([1, -1])
            legs = [
                (("OPT", sym, right, strikes[i], EXPIRY, 100), sign * n),
                (("OPT", sym, right, strikes[j], EXPIRY, 100), -sign * n),
            ]
        elif kind == "condor":
            n = self.pick([1, 2, 3])
            legs = [
                (("OPT", sym, "P", strikes[0], EXPIRY, 100), n),
                (("OPT", sym, "P", strikes[1], EXPIRY, 100), -n),
                (("OPT", sym, "C", strikes[3], EXPIRY, 100), -n),
                (("OPT", sym, "C", strikes[4], EXPIRY, 100), n),
            ]
        elif kind == "covered":
            n = self.pick([1, 2])
            legs = [
                (("STK", sym), 100 * n),
                (("OPT", sym, "C", strikes[self.integer(2, 4)], EXPIRY, 100), -n),
            ]
        else:
            right = self.pick(["C", "P"])
            legs = [
                (("OPT", sym, right, strikes[1], EXPIRY, 100), 2),
                (("OPT", sym, right, strikes[3], EXPIRY, 100), -4),
            ]
        for contract, qty in legs:
            if contract in held:
                continue
            pid = f"P{self.n_pos}"
            self.n_pos += 1
            entry = max(round(self.fair(contract) * (1 + self.integer(-4, 4) * 0.01), 2), 0.05)
            self.positions[pid] = GenPosition(contract, qty, entry, sid)
            self.strategies.setdefault(sid, []).append(pid)
            obj: dict[str, Any] = {"type": "position", "id": pid, **self.contract_fields(contract)}
            obj.update({"qty": qty, "entry_price": entry, "strategy": sid})
            self.emit(obj)
            if self.chance(20):
                self.advance()

    def join_strategy(self) -> None:
        """A new leg joins a live strategy later (it restarts the stop, unless triggered)."""
        if not self.strategies:
            self.open_strategy()
            return
        sid = self.pick(sorted(self.strategies))
        legs = [self.positions[p] for p in self.strategies[sid] if p in self.positions]
        if not legs:
            return
        symbol = legs[0].contract[1]
        contract = ("STK", symbol) if self.chance(30) else self.option_contract(symbol)
        self.open_position(contract, strategy=sid)

    def market(self) -> None:
        """A market line: mostly the index stock or a contract someone might trade."""
        contract: Contract = (
            ("STK", "SPY")
            if self.chance(40)
            else self.pick([("STK", "AAPL"), self.option_contract()])
        )
        self.market_line(contract)

    def market_line(self, contract: Contract) -> None:
        """A market line of one contract."""
        if contract not in self.quoted:
            self.quoted.append(contract)
        obj: dict[str, Any] = {"type": "market", **self.contract_fields(contract)}
        obj.update(self.quote_fields(contract, True))
        self.emit(obj)

    def some_option(self) -> Contract:
        """An option contract, in the controls' scenarios mostly one with a recent quote."""
        known = [c for c in self.quoted if c[0] == "OPT"]
        known += [p.contract for p in self.positions.values() if p.contract[0] == "OPT"]
        if self.focus == "controls":
            if known and self.chance(70):
                chosen: Contract = self.pick(sorted(known))
                return chosen
            c = self.option_contract()
            if self.chance(60):
                self.market_line(c)
            return c
        return self.option_contract()

    def leg(self, contract: Contract, qty: int, greeks: bool) -> dict[str, Any]:
        """One order leg at about the fair price (sometimes off it)."""
        fair = self.fair(contract)
        skew = self.pick([0.0, 0.0, 0.0, 0.01, -0.01, 0.05, -0.05])
        price = max(round(fair * (1 + skew), 2), 0.01)
        out: dict[str, Any] = {**self.contract_fields(contract), "qty": qty, "price": price}
        if contract[0] == "OPT" and greeks:
            g = self.model_greeks(contract)
            if self.chance(20):
                del g[self.pick(list(g))]
            out["greeks"] = g
        return out

    def check(self) -> None:
        """A check: an entry, a closing order, a spread, a stock, or a malformed order."""
        self.refresh()
        self.n_check += 1
        cid = f"c{self.n_check}"
        legs: list[dict[str, Any]]
        roll = self.integer(0, 99)
        with_greeks = self.chance(50)
        if roll < 25 and self.positions:
            pid = self.pick(sorted(self.positions))
            pos = self.positions[pid]
            part = self.pick([1.0, 0.5]) if abs(pos.qty) > 1 else 1.0
            qty = -int(pos.qty * part) or -pos.qty
            legs = [self.leg(pos.contract, qty, with_greeks)]
        elif roll < 45:
            sym = self.pick(list(SPOTS))
            if self.focus == "controls" and self.chance(60):
                self.market_line(("STK", sym))
            legs = [
                self.leg(("STK", sym), self.pick([10, 50, 100, 500]) * self.pick([1, -1]), False)
            ]
        elif roll < 70:
            c = self.some_option()
            legs = [self.leg(c, self.pick([1, 2, 5, 20]) * self.pick([1, -1]), with_greeks)]
        elif roll < 92:
            sym = self.pick(list(SPOTS))
            right = self.pick(["C", "P"])
            i, j = sorted(
                self.draw(st.lists(st.integers(0, 4), min_size=2, max_size=2, unique=True))
            )
            n = self.pick([1, 2, 5])
            legs = [
                self.leg(("OPT", sym, right, STRIKES[sym][i], EXPIRY, 100), n, with_greeks),
                self.leg(("OPT", sym, right, STRIKES[sym][j], EXPIRY, 100), -n, with_greeks),
            ]
        else:
            broken = self.pick(["no_legs", "qty0", "no_expiry", "nan_price"])
            c = self.option_contract()
            leg = self.leg(c, 1, False)
            if broken == "no_legs":
                legs = []
            elif broken == "qty0":
                leg["qty"] = 0
                legs = [leg]
            elif broken == "no_expiry":
                del leg["expiry"]
                legs = [leg]
            else:
                leg["price"] = math.nan
                legs = [leg]
        obj: dict[str, Any] = {"type": "check", "id": cid, "legs": legs}
        if self.margin and self.chance(85):
            obj["whatif"] = self.whatif()
        self.emit(obj)
        if self.focus == "controls" and legs and self.chance(30):
            # the same order again, soon: order_rate and duplicate_order
            self.t += self.pick([0.0, 0.25, 0.5, 1.0, 2.0])
            self.n_check += 1
            self.emit({**obj, "id": f"c{self.n_check}"})

    def whatif(self) -> dict[str, Any]:
        """IB's what-if numbers, sometimes with an unset field."""
        init_before = float(self.integer(100, 300) * 1000)
        init_after = init_before + self.integer(-20, 80) * 1000
        maint_before = init_before * 0.8
        maint_after = init_after * 0.8
        ewl_before = float(self.integer(900, 1100) * 1000)
        ewl_after = ewl_before - self.integer(0, 20) * 1000
        w: dict[str, Any] = {
            "init_margin_before": init_before,
            "init_margin_after": init_after,
            "maint_margin_before": maint_before,
            "maint_margin_after": maint_after,
            "equity_with_loan_before": ewl_before,
            "equity_with_loan_after": ewl_after,
        }
        if self.chance(12):
            w[self.pick(list(w))] = self.pick([None, math.nan, DBL_MAX])
        return w

    def failure(self) -> None:
        """A failure of a line kind."""
        kind = self.pick(
            ["order_rejected", "data_feed", "connectivity", "slippage", "other", "margin"]
        )
        obj: dict[str, Any] = {"type": "failure", "kind": kind}
        if self.chance(50):
            obj["code"] = self.pick([201, 1100, 2103, 10197])
        self.emit(obj)

    def bad_line(self) -> None:
        """A line the replay must refuse (and that changes nothing)."""
        roll = self.integer(0, 3 if self.core else 6)
        if roll == 0:
            self.lines.append("this is not json")
        elif roll == 1:
            self.emit({"type": "bogus"})
        elif roll == 2:
            kind = "success" if self.core else "heartbeat"
            self.lines.append(dumps({"t": self.t - 5.0, "type": kind}))
        elif roll == 3:
            self.emit(
                {"type": "position", "id": "Pbad", "sec_type": "STK", "qty": 1, "entry_price": 1.0}
            )
        elif roll == 4:
            self.emit({"type": "failure", "kind": self.pick(["stop_guard", "loss_limit", "nope"])})
        elif roll == 5:
            self.emit({"type": "admin", "action": "kill", "mode": "nuke"})
        else:
            self.emit({"type": "account", "net_liquidation": math.nan})

    def money_event(self, pnl: list[float], nlv: list[float]) -> None:
        """A pnl or account line (the P&L random-walks; NLV near 1e6)."""
        if self.chance(65):
            pnl[0] += self.integer(-8, 6) * 500.0
            daily: Any = pnl[0]
            if self.chance(10):
                daily = self.pick([None, math.nan, DBL_MAX])
            self.emit({"type": "pnl", "daily": daily, "unrealized": 0.0, "realized": 0.0})
        else:
            nlv[0] = nlv[0] + self.integer(-10, 10) * 1000.0
            self.emit({"type": "account", "net_liquidation": nlv[0]})


# -- configs ---------------------------------------------------------------------


def toml_value(value: Any) -> str:
    """A TOML literal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return repr(value)


def render(sections: dict[str, dict[str, Any]]) -> str:
    """TOML text from section name -> keys."""
    parts: list[str] = []
    for name, keys in sections.items():
        if not keys:
            continue
        parts.append(f"[{name}]")
        parts.extend(f"{k} = {toml_value(v)}" for k, v in keys.items())
        parts.append("")
    return "\n".join(parts)


def draw_config(g: Gen) -> dict[str, dict[str, Any]]:
    """A config leaning on the scenario's focus."""
    if g.core:
        return draw_core_config(g)
    focus = g.focus
    mixed = focus == "mixed"
    cfg: dict[str, dict[str, Any]] = {}
    if g.chance(75) or focus in ("gate", "money"):
        cfg["account"] = {"net_liquidation": 1000000.0}
    draw_trailing_stop(g, cfg, focus in ("stops", "strategies", "mixed") or g.chance(30))
    if cfg["trailing_stop"] and g.chance(30):
        cfg["trailing_stop.symbols.SPY"] = {
            "confirm_quotes": g.pick([1, 2]),
            "trailing_pct": g.pick([0.5, 2.0]),
        }
    limits = draw_limits(
        g,
        cfg,
        focus in ("gate", "breaker", "controls", "money") or mixed,
        60 if focus == "gate" else 25,
        LIMIT_CHOICES,
    )
    if "max_beta_weighted_delta" in limits:
        beta: dict[str, Any] = {"index": "SPY"}
        if g.chance(70):
            beta["default"] = g.pick([1.0, 0.8])
        cfg["beta"] = beta
        if g.chance(70):
            cfg["beta.values"] = {"AAPL": 1.2, "MSFT": g.pick([1.1, -0.3])}
    orders: dict[str, Any] = {}
    if focus == "controls" or (mixed and g.chance(50)):
        options: dict[str, list[Any]] = {
            "max_leg_contracts": [4.0, 10.0],
            "max_leg_shares": [100.0, 300.0],
            "max_order_notional": [50000.0, 200000.0],
            "max_order_premium": [2000.0, 10000.0],
            "price_collar_pct": [0.5, 1.0, 5.0],
            "max_orders_per_window": [1, 2, 3],
            "duplicate_window_s": [2.0, 60.0],
        }
        for key, values in options.items():
            if g.chance(55):
                orders[key] = g.pick(values)
        if "max_orders_per_window" in orders and g.chance(60):
            orders["order_window_s"] = g.pick([0.5, 2.0, 10.0])
    cfg["orders"] = orders
    if focus in ("controls", "stops", "strategies") or mixed:
        if g.chance(50):
            cfg["cooldown"] = {"after_trigger_s": g.pick([5.0, 60.0, 600.0])}
        if g.chance(50):
            cfg["stop_guard"] = {
                "max_triggers": g.pick([1, 2, 3]),
                "window_s": g.pick([10.0, 300.0]),
            }
    if focus == "money" or (mixed and g.chance(50)):
        loss: dict[str, Any] = {}
        if g.chance(70):
            loss["max_daily_loss"] = g.pick([2000.0, 5000.0, 10000.0])
        if g.chance(60):
            loss["max_drawdown_pct"] = g.pick([0.5, 1.0, 2.0])
        if loss and g.chance(50):
            loss["max_pnl_age_s"] = limits.get("max_data_age_s", 60.0) if g.chance(70) else 15.0
        cfg["loss"] = loss
        margin: dict[str, Any] = {}
        if g.chance(60):
            margin["max_init_margin_pct"] = g.pick([20.0, 25.0, 30.0])
            cfg["account"] = {"net_liquidation": 1000000.0}
        if g.chance(60):
            margin["min_excess_liquidity"] = g.pick([700000.0, 800000.0])
        cfg["margin"] = margin
        g.margin = bool(margin)
    if focus in ("breaker", "money") or (mixed and g.chance(50)) or g.chance(20):
        cfg["api"] = {"heartbeat_timeout_s": g.pick([5.0, 30.0, 60.0])}
    draw_breaker(g, cfg, focus == "breaker" or mixed or g.chance(30))
    if g.chance(30):
        cfg["breaker.kinds.stop_guard"] = {"trip": False, "weight": 2.0}
    return cfg


def draw_core_config(g: Gen) -> dict[str, dict[str, Any]]:
    """A config of the older sections only: account, trailing_stop, limits, groups, breaker."""
    cfg: dict[str, dict[str, Any]] = {}
    if g.chance(80):
        cfg["account"] = {"net_liquidation": 1000000.0}
    draw_trailing_stop(g, cfg, g.focus == "core_stops" or g.chance(30))
    if cfg["trailing_stop"] and g.chance(30):
        cfg["trailing_stop.symbols.SPY"] = {"confirm_quotes": 2, "trailing_pct": 0.5}
    core_choices = {k: v for k, v in LIMIT_CHOICES.items() if k != "max_beta_weighted_delta"}
    share = 50 if g.focus == "core_gate" else 25
    draw_limits(g, cfg, g.focus in ("core_gate", "core_breaker"), share, core_choices)
    draw_breaker(g, cfg, g.focus == "core_breaker" or g.chance(30))
    return cfg


LIMIT_CHOICES: dict[str, list[float]] = {
    "max_portfolio_delta": [200.0, 500.0, 1000.0, 2000.0],
    "max_portfolio_dollar_delta": [50000.0, 100000.0, 300000.0],
    "max_portfolio_gamma": [5.0, 20.0, 50.0],
    "max_portfolio_vega": [100.0, 300.0, 1000.0],
    "max_portfolio_theta": [10.0, 30.0, 100.0],
    "max_per_symbol_delta": [200.0, 500.0, 1000.0],
    "max_beta_weighted_delta": [100.0, 300.0, 1000.0],
    "max_single_position_pct": [5.0, 10.0, 20.0, 40.0],
    "max_correlated_pct": [20.0, 50.0, 100.0],
    "max_stress_loss": [5000.0, 20000.0, 50000.0],
}


def draw_trailing_stop(g: Gen, cfg: dict[str, dict[str, Any]], on: bool) -> None:
    ts: dict[str, Any] = {}
    if on:
        ts["activation_pct"] = g.pick([0.0, 0.5, 1.0, 2.0, 5.0])
        ts["trailing_pct"] = g.pick([0.5, 1.0, 1.5, 3.0, 10.0])
        ts["min_move_pct"] = g.pick([0.0, 0.2, 0.5, 2.0])
        ts["confirm_quotes"] = g.pick([1, 1, 2, 3])
        if g.chance(25):
            ts["max_spread_pct"] = g.pick([0.5, 2.0, 10.0])
        if g.chance(25):
            ts["min_trail_abs"] = g.pick([0.05, 0.5, 2.0])
        ts["price_source"] = g.pick(["exit", "mid", "last"])
    cfg["trailing_stop"] = ts


def draw_limits(
    g: Gen,
    cfg: dict[str, dict[str, Any]],
    on: bool,
    share: int,
    choices: dict[str, list[float]],
) -> dict[str, Any]:
    """``[limits]`` and what they lean on: groups, stress scenarios, pricing."""
    limits: dict[str, Any] = {}
    if on:
        for key, values in choices.items():
            if g.chance(share):
                limits[key] = g.pick(values)
        if limits and g.chance(50):
            limits["max_data_age_s"] = g.pick([30.0, 60.0, 120.0])
    cfg["limits"] = limits
    if "max_correlated_pct" in limits or g.chance(20):
        cfg["groups"] = {"tech": ["AAPL", "MSFT"], "index": ["SPY"]}
    if "max_stress_loss" in limits and g.chance(30):
        cfg["stress"] = {"spot_shocks_pct": [-10.0, 0.0, 10.0], "vol_shocks_pts": [-5.0, 0.0, 5.0]}
    if limits and g.chance(60):
        cfg["pricing"] = {"rate": g.pick([0.0, 0.03, 0.05])}
        if g.chance(50):
            cfg["pricing.dividend_yield"] = {"AAPL": 0.005}
    return limits


def draw_breaker(g: Gen, cfg: dict[str, dict[str, Any]], on: bool) -> None:
    br: dict[str, Any] = {}
    if on:
        br = {
            "failure_threshold": g.pick([1.0, 2.0, 3.0, 5.0]),
            "failure_window_s": g.pick([10.0, 60.0]),
            "open_timeout_s": g.pick([5.0, 10.0, 30.0, 300.0]),
            "half_open_max_tries": g.pick([1, 2, 3]),
            "backoff_multiplier": g.pick([1.0, 2.0]),
            "max_open_timeout_s": g.pick([20.0, 3600.0]),
        }
        if g.chance(40):
            br["max_trips_per_day"] = g.pick([2, 3])
    cfg["breaker"] = br
    if br and g.chance(40):
        cfg["breaker.kinds.slippage"] = {"weight": 0.5}


# -- scenarios -------------------------------------------------------------------

WEIGHTS: dict[str, dict[str, int]] = {
    "core_stops": {"open": 12, "quote": 60, "update": 8, "close": 6, "check": 2, "bad": 2},
    "core_breaker": {
        "failure": 25,
        "success": 15,
        "check": 20,
        "admin": 6,
        "quote": 8,
        "open": 3,
        "bad": 2,
    },
    "core_gate": {
        "open": 10,
        "quote": 25,
        "check": 30,
        "account": 4,
        "update": 4,
        "close": 3,
        "failure": 3,
        "bad": 1,
    },
    "stops": {"open": 12, "quote": 55, "update": 8, "close": 6, "check": 2, "failure": 2, "bad": 2},
    "strategies": {
        "strategy": 10,
        "join": 3,
        "open": 4,
        "quote": 60,
        "update": 8,
        "close": 6,
        "check": 2,
        "bad": 2,
    },
    "breaker": {
        "failure": 25,
        "success": 15,
        "check": 20,
        "admin": 6,
        "heartbeat": 12,
        "quote": 8,
        "open": 3,
        "bad": 2,
    },
    "gate": {
        "open": 10,
        "quote": 25,
        "market": 8,
        "check": 30,
        "account": 4,
        "update": 4,
        "close": 3,
        "failure": 3,
        "bad": 1,
    },
    "controls": {"open": 8, "quote": 25, "market": 15, "check": 35, "failure": 3, "bad": 1},
    "money": {
        "open": 6,
        "quote": 15,
        "money": 30,
        "check": 25,
        "admin": 6,
        "heartbeat": 6,
        "failure": 4,
        "bad": 1,
    },
    "mixed": {
        "open": 8,
        "strategy": 4,
        "join": 1,
        "quote": 30,
        "market": 6,
        "update": 4,
        "close": 4,
        "check": 18,
        "failure": 6,
        "success": 4,
        "admin": 3,
        "heartbeat": 4,
        "money": 6,
        "bad": 2,
    },
}


@st.composite
def scenarios(draw: st.DrawFn, focus: str) -> tuple[str, list[str]]:
    """One random scenario: (config TOML text, event lines)."""
    g = Gen(draw, focus, core=focus.startswith("core_"))
    g.config = render(draw_config(g))
    weights = WEIGHTS[focus]
    menu = [name for name, w in weights.items() for _ in range(w)]
    pnl = [0.0]
    nlv = [1000000.0]
    n_events = g.integer(10, 45)
    if focus in ("gate", "controls", "money", "mixed", "core_gate"):
        for _ in range(g.integer(1, 3)):
            pid = g.open_position()
            if pid:
                g.quote(pid)
    while len(g.lines) < n_events:
        g.advance()
        what = g.pick(menu)
        if what == "open" or (what in ("quote", "update", "close") and not g.positions):
            g.open_position()
        elif what == "strategy":
            g.open_strategy()
        elif what == "join":
            g.join_strategy()
        elif what == "quote":
            pid = g.pick(sorted(g.positions))
            for _ in range(g.integer(1, 3)):
                g.quote(pid)
                if g.chance(50):
                    g.t += g.pick([0.0, 0.5, 1.0])
        elif what == "update":
            g.update_position(g.pick(sorted(g.positions)))
        elif what == "close":
            g.close_position(g.pick(sorted(g.positions)))
        elif what == "market":
            g.market()
        elif what == "check":
            g.check()
        elif what == "failure":
            g.failure()
        elif what == "success":
            g.emit({"type": "success"})
        elif what == "admin":
            action = g.pick(["force_open", "reset", "reset"] + ([] if g.core else ["kill"]))
            obj: dict[str, Any] = {"type": "admin", "action": action}
            if action == "kill" and g.chance(60):
                obj["mode"] = g.pick(["halt", "cancel", "flatten"])
            g.emit(obj)
        elif what == "heartbeat":
            g.emit({"type": "heartbeat"})
        elif what == "account":
            nlv[0] = nlv[0] + g.integer(-10, 10) * 10000.0
            g.emit({"type": "account", "net_liquidation": nlv[0]})
        elif what == "money":
            g.money_event(pnl, nlv)
        elif what == "bad":
            g.bad_line()
    return g.config, g.lines

"""A stop-heavy recording in the replay format, made deterministically from a seed.

Replay's cost is in its quotes, so this is mostly quotes: ``positions``
positions (half stocks, half options whose quotes carry IB's Greeks), each
priced by a random walk with enough swing that stops activate, trail and
trigger all day; a triggered position is closed and opened again now and
then, so there is always a stop to move. A few ``check`` lines (the gate
reads the whole book), ``market`` lines (the collar) and ``pnl`` lines fill
in what a real session records.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

T0 = 1_767_225_600.0

# Limits that need the book's Greeks and prices, so each quote's mark does the
# work a live configuration makes it do.
CONFIG: dict[str, object] = {
    "limits": {
        "max_portfolio_delta": 1e12,
        "max_portfolio_vega": 1e12,
        "max_per_symbol_delta": 1e12,
    },
    "trailing_stop": {"activation_pct": 1.0, "trailing_pct": 1.0, "min_move_pct": 0.2},
}


def _position(t: float, i: int, price: float) -> dict[str, object]:
    line: dict[str, object] = {"t": t, "type": "position", "id": f"P{i}", "symbol": f"S{i % 40}"}
    if i % 2:
        line |= {"sec_type": "STK", "qty": 100 if i % 4 == 1 else -100, "entry_price": price}
    else:
        line |= {
            "sec_type": "OPT",
            "qty": 5 if i % 4 == 0 else -5,
            "entry_price": price,
            "right": "C" if i % 8 < 4 else "P",
            "strike": 100.0 + (i % 10),
            "expiry": "2027-06-18",
            "multiplier": 100,
        }
    return line


def lines(positions: int = 200, quotes: int = 1_000_000, seed: int = 7) -> Iterator[str]:
    """The recording, one JSON line at a time: ``positions`` opens, then ``quotes`` quotes
    with about one check per 20 000 events and a market and pnl line per 5 000."""
    rnd = random.Random(seed)
    t = T0
    prices = [100.0 if i % 2 else 5.0 for i in range(positions)]
    for i in range(positions):
        yield json.dumps(_position(t, i, prices[i]))
    sent = 0
    while sent < quotes:
        t = round(t + 0.001, 3)
        roll = rnd.random()
        if roll < 0.00005:
            yield json.dumps(
                {
                    "t": t,
                    "type": "check",
                    "id": f"c{sent}",
                    "legs": [
                        {
                            "symbol": f"S{rnd.randrange(40)}",
                            "sec_type": "STK",
                            "qty": 10,
                            "price": 100.0,
                        }
                    ],
                }
            )
            continue
        if roll < 0.00025:
            s = rnd.randrange(40)
            p = round(100 + rnd.gauss(0, 2), 2)
            yield json.dumps(
                {
                    "t": t,
                    "type": "market",
                    "symbol": f"S{s}",
                    "sec_type": "STK",
                    "bid": p,
                    "ask": round(p + 0.01, 2),
                    "last": p,
                }
            )
            continue
        if roll < 0.00045:
            yield json.dumps({"t": t, "type": "pnl", "daily": round(rnd.gauss(0, 1000), 2)})
            continue
        if roll < 0.00075:
            i = rnd.randrange(positions)
            yield json.dumps({"t": t, "type": "close", "id": f"P{i}"})
            prices[i] = 100.0 if i % 2 else 5.0
            yield json.dumps(_position(t, i, prices[i]))
            continue
        i = rnd.randrange(positions)
        stock = bool(i % 2)
        p = prices[i] = max(0.05, prices[i] * (1 + rnd.gauss(0, 0.004)))
        spread = 0.01 if stock else 0.05
        bid = round(p, 2)
        quote: dict[str, object] = {
            "t": t,
            "type": "quote",
            "id": f"P{i}",
            "bid": bid,
            "ask": round(bid + spread, 2),
            "last": round(p + spread / 2, 3),
        }
        if not stock:
            quote["greeks"] = {
                "delta": round(0.5 + rnd.gauss(0, 0.05), 4),
                "gamma": 0.02,
                "vega": round(0.15 + rnd.gauss(0, 0.01), 4),
                "theta": -0.03,
                "iv": round(0.25 + rnd.gauss(0, 0.01), 4),
                "und_price": round(100 + rnd.gauss(0, 1), 2),
            }
        yield json.dumps(quote)
        sent += 1


def write(path: Path, positions: int = 200, quotes: int = 1_000_000, seed: int = 7) -> Path:
    """Write the recording to ``path`` unless it is already there (same arguments)."""
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        with tmp.open("w") as f:
            for line in lines(positions, quotes, seed):
                f.write(line + "\n")
        tmp.rename(path)
    return path

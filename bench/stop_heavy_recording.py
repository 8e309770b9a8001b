"""A synthetic, stop-heavy recording for ``bench_tune.py``: many positions, trends that reverse.

Each position (long or short, stock or option) walks in regimes: a drift
that lasts a few hundred quotes, then flips, with noise, so trailing stops
activate, ratchet and trigger under most parameter sets, and whipsaws
happen. Every tick quotes every open position; a few quotes are bad (NaN,
crossed, missing side) as live data is. Positions open and close in waves,
so the recording has many stop lives. Written with the recorder's own line
encoder, zstd-compressed, so ``tune`` reads what the daemon writes.

Run: ``python bench/stop_heavy_recording.py OUT.jsonl.zst [--quotes N] [--seed S]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from supervisor.record.event_line import encode

T0 = 1796601600.0  # 2026-12-07 00:00 UTC


def generate(path: Path, quotes: int = 1_000_000, positions: int = 200, seed: int = 7) -> int:
    """Write the recording; returns the number of quote lines."""
    rng = np.random.default_rng(seed)
    lives = 5  # each slot opens, runs and closes this many positions in turn
    per_life = max(1, quotes // (positions * lives))
    n = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    cctx = zstandard.ZstdCompressor(level=3)
    with open(path, "wb") as raw, cctx.stream_writer(raw) as out:
        t = T0
        for life in range(lives):
            ids = [f"P{slot}-{life}" for slot in range(positions)]
            longs = rng.random(positions) < 0.6
            entry = np.round(rng.uniform(5, 500, positions), 2)
            option = rng.random(positions) < 0.4
            for i, pid in enumerate(ids):
                qty = (1 if longs[i] else -1) * int(rng.integers(1, 20)) * (1 if option[i] else 10)
                ev: dict[str, object] = {
                    "t": t,
                    "type": "position",
                    "id": pid,
                    "symbol": f"S{i % 25}",
                    "sec_type": "OPT" if option[i] else "STK",
                    "qty": qty,
                    "entry_price": float(entry[i]),
                }
                if option[i]:
                    ev.update(right="C", strike=100.0, expiry="2027-03-19", multiplier=100)
                out.write(encode(ev))
            # regime drifts: ±0.05 % a quote for 100–600 quotes, then another
            steps = np.empty((positions, per_life))
            for i in range(positions):
                k = 0
                while k < per_life:
                    length = int(rng.integers(100, 600))
                    drift = rng.choice([-1, 1]) * rng.uniform(0.0002, 0.0008)
                    steps[i, k : k + length] = drift
                    k += length
            steps += rng.normal(0, 0.002, (positions, per_life))
            mids = entry[:, None] * np.exp(np.cumsum(steps, axis=1))
            half = np.maximum(0.005, mids * 0.0005)
            bids = np.round(mids - half, 4)
            asks = np.round(mids + half, 4)
            bad = rng.random((positions, per_life)) < 0.002
            for k in range(per_life):
                for i in range(positions):
                    b, a = float(bids[i, k]), float(asks[i, k])
                    if bad[i, k]:
                        b, a = (float("nan"), a) if k % 2 else (a + 0.5, b)
                    out.write(
                        encode(
                            {
                                "t": t,
                                "type": "quote",
                                "id": ids[i],
                                "bid": b,
                                "ask": a,
                                "last": round((b + a) / 2, 4) if b == b else None,
                            }
                        )
                    )
                    n += 1
                t += 0.25
            for pid in ids:
                out.write(encode({"t": t, "type": "close", "id": pid}))
            t += 60.0
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--quotes", type=int, default=1_000_000)
    ap.add_argument("--positions", type=int, default=200)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    n = generate(a.out, a.quotes, a.positions, a.seed)
    print(f"{a.out}: {n:,} quotes, {a.out.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()

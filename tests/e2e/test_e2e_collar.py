"""The price collar on a contract the daemon does not hold, end to end (DESIGN §4.2).

``[orders] price_collar_pct = 5``, ``quote_wait_s = 2``. The account holds
only AAPL stock; the simulator prices any option on its underlyings, SPY
included. A check on a SPY call nobody holds makes the daemon subscribe to it
over the wire and wait for its first quote (well within ``quote_wait_s``);
the order is then collared against that quote: a limit far above the ask is
denied ``price_collar_pct`` with the leg's price as the value, one at the mid
passes, a limit just outside the band on the bid side is denied too. The
legs carry the trader's Greeks: nothing held prices SPY for BSM. The
subscription is one market-data line at the simulator, reused by later checks.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import DaemonProcess
from e2e_rig import EXPIRY, check, codes, daemon_doc, hold, simulator, start, write_config

from supervisor.simulator import Instrument, SimPosition

pytestmark = pytest.mark.e2e

PCT = 5.0
WAIT_S = 5.0  # generous: a loaded CI machine must not turn a slow first quote into stale_data
CLIENT = 66


def _leg(price: float) -> list[dict[str, Any]]:
    return [
        {
            "symbol": "SPY",
            "sec_type": "OPT",
            "right": "C",
            "strike": 520.0,
            "expiry": EXPIRY,
            "multiplier": 100,
            "qty": 1,
            "price": price,
            # The trader's own Greeks: with SPY not held, no price of it may
            # feed BSM (DESIGN §8: a market line never does), so a leg without
            # them would be stale_data whatever its price.
            "greeks": {
                "delta": 0.4,
                "gamma": 0.01,
                "vega": 0.5,
                "theta": -0.1,
                "iv": 0.2,
                "und_price": 500.0,
            },
        }
    ]


def test_a_check_on_an_unheld_option_subscribes_and_is_collared(tmp_path: Path) -> None:
    store = tmp_path / "state.sqlite"
    with simulator(seed=61) as sim:
        g = sim.sim
        hold(sim, SimPosition(1001, "AAPL", "STK", 100, 100.0), und={"AAPL": 100.0, "SPY": 500.0})
        config = write_config(
            tmp_path / "daemon.toml",
            daemon_doc(
                sim.port,
                store,
                CLIENT,
                orders={"price_collar_pct": PCT, "quote_wait_s": WAIT_S},
            ),
        )
        d = DaemonProcess(config, tmp_path)
        try:
            start(d, 1)
            lines_before = sim.call(g.market_data_lines, CLIENT)

            def quote() -> tuple[float, float]:
                inst = g.market.resolve(
                    con_id=0,
                    symbol="SPY",
                    sec_type="OPT",
                    expiry=EXPIRY,
                    strike=520.0,
                    right="C",
                    multiplier=100,
                )
                assert isinstance(inst, Instrument)
                q = g.market.quote(inst)
                return q.bid, q.ask

            bid, ask = sim.call(quote)
            mid = (bid + ask) / 2
            assert bid > 0 and ask > bid
            far = round(ask * 3, 2)

            started = time.monotonic()
            first = check(d, "far", _leg(far))
            waited = time.monotonic() - started
            assert first["allowed"] is False, first
            assert codes(first) == ["price_collar_pct"], first
            reason = first["reasons"][0]
            assert reason["value"] == pytest.approx(far) and reason["limit"] == PCT, reason
            # The quote came over the wire well within quote_wait_s (not a timeout).
            assert waited < WAIT_S, f"the first check took {waited:.2f}s"
            assert sim.call(g.market_data_lines, CLIENT) == lines_before + 1

            inside = check(d, "mid", _leg(round(mid, 2)))
            assert inside["allowed"] is True, inside
            edge = round(ask + mid * PCT / 100 - 0.01, 2)
            assert check(d, "edge-in", _leg(edge))["allowed"] is True
            low = round(bid - mid * PCT / 100 - 0.02, 2)
            below = check(d, "low", _leg(low))
            assert codes(below) == ["price_collar_pct"], below
            assert below["reasons"][0]["value"] == pytest.approx(low)
            # Later checks reuse the one line.
            assert sim.call(g.market_data_lines, CLIENT) == lines_before + 1
            assert d.terminate() == 0
        except BaseException:
            print(d.diagnose())
            raise
        finally:
            d.close()

# ruff: noqa: E501  (event lines are kept verbatim, one JSON object a line)
"""Small scenarios with bad lines, which the shipped examples cannot hold.

The project's golden test wants the examples to replay without a bad line,
so the bad-line rules (DESIGN §6 and §3.1's strategy rules) are exercised
here instead: each entry is (config TOML, event lines, the bad line numbers
the contract implies, the output lines).  `tests/oracle/test_oracle_rules.py`
checks the oracle against them; the comparison test runs the project on them.
"""

from __future__ import annotations

from typing import Any

#: Strategy namespace and symbol rules, spent ids, and malformed lines of every type.
#: Bad: 3 strategy = an open position id; 4 position id = a strategy id; 5 a second
#: symbol for S; 6 a leg of S naming T; 7 a strategy named after the line's own id;
#: 9 the spent S (L2 closed alone at line 8); 11 a market line without strike;
#: 12 pnl without daily; 14/15 failure kinds the supervisor raises itself; 16 an
#: unknown kill mode; 17 a NaN NLV; 18 back in time; 19 a check without id.
#: Not bad: 13 pnl with null daily; 20 an empty order (invalid_order); 21-23 quote,
#: close and qty-0 position of an unknown id.
BAD_LINES: tuple[str, list[str], set[int], list[dict[str, Any]]] = (
    "",
    [
        '{"t": 1767225600.0, "type": "position", "id": "L1", "symbol": "AAPL", "sec_type": "OPT", "qty": 1, "entry_price": 8.0, "right": "C", "strike": 190.0, "expiry": "2026-06-19", "multiplier": 100, "strategy": "S"}',
        '{"t": 1767225600.0, "type": "position", "id": "L2", "symbol": "AAPL", "sec_type": "OPT", "qty": -1, "entry_price": 4.0, "right": "C", "strike": 200.0, "expiry": "2026-06-19", "multiplier": 100, "strategy": "S"}',
        '{"t": 1767225601.0, "type": "position", "id": "X", "symbol": "AAPL", "sec_type": "STK", "qty": 100, "entry_price": 190.0, "strategy": "L1"}',
        '{"t": 1767225602.0, "type": "position", "id": "S", "symbol": "AAPL", "sec_type": "STK", "qty": 100, "entry_price": 190.0}',
        '{"t": 1767225603.0, "type": "position", "id": "L3", "symbol": "MSFT", "sec_type": "STK", "qty": 100, "entry_price": 400.0, "strategy": "S"}',
        '{"t": 1767225604.0, "type": "position", "id": "L1", "symbol": "AAPL", "sec_type": "OPT", "qty": 1, "entry_price": 8.0, "right": "C", "strike": 190.0, "expiry": "2026-06-19", "multiplier": 100, "strategy": "T"}',
        '{"t": 1767225605.0, "type": "position", "id": "Y", "symbol": "AAPL", "sec_type": "STK", "qty": 100, "entry_price": 190.0, "strategy": "Y"}',
        '{"t": 1767225606.0, "type": "close", "id": "L2"}',
        '{"t": 1767225607.0, "type": "position", "id": "L4", "symbol": "AAPL", "sec_type": "OPT", "qty": 1, "entry_price": 3.0, "right": "P", "strike": 180.0, "expiry": "2026-06-19", "multiplier": 100, "strategy": "S"}',
        '{"t": 1767225608.0, "type": "position", "id": "L1", "symbol": "AAPL", "sec_type": "OPT", "qty": 2, "entry_price": 8.0, "right": "C", "strike": 190.0, "expiry": "2026-06-19", "multiplier": 100}',
        '{"t": 1767225609.0, "type": "market", "symbol": "AAPL", "sec_type": "OPT", "right": "C", "expiry": "2026-06-19", "multiplier": 100, "bid": 1.0, "ask": 1.1}',
        '{"t": 1767225610.0, "type": "pnl", "unrealized": 0.0}',
        '{"t": 1767225611.0, "type": "pnl", "daily": null}',
        '{"t": 1767225612.0, "type": "failure", "kind": "loss_limit"}',
        '{"t": 1767225613.0, "type": "failure", "kind": "stop_guard"}',
        '{"t": 1767225614.0, "type": "admin", "action": "kill", "mode": "nuke"}',
        '{"t": 1767225615.0, "type": "account", "net_liquidation": NaN}',
        '{"t": 1767225610.0, "type": "heartbeat"}',
        '{"t": 1767225616.0, "type": "check", "legs": []}',
        '{"t": 1767225617.0, "type": "check", "id": "empty", "legs": []}',
        '{"t": 1767225618.0, "type": "quote", "id": "nobody", "bid": 1.0, "ask": 1.1, "last": 1.05}',
        '{"t": 1767225619.0, "type": "close", "id": "nobody"}',
        '{"t": 1767225620.0, "type": "position", "id": "nobody", "symbol": "AAPL", "sec_type": "STK", "qty": 0, "entry_price": 1.0}',
    ],
    {3, 4, 5, 6, 7, 9, 11, 12, 14, 15, 16, 17, 18, 19},
    [
        {
            "t": 1767225617.0,
            "type": "check",
            "id": "empty",
            "allowed": False,
            "reasons": [{"code": "invalid_order", "value": None, "limit": None}],
        }
    ],
)

INLINE: dict[str, tuple[str, list[str], set[int], list[dict[str, Any]]]] = {
    "bad_lines": BAD_LINES,
}

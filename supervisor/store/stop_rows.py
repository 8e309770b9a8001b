"""A stop state (position or strategy) as a row of ``stops``, and back.

A strategy's stop (DESIGN §3.1) is saved in the same table under the
strategy's id, with what a :class:`StopSnapshot` cannot hold (its legs, u,
the weights, E) in the opaque JSON column ``extra``. The extra comes from
the ``extra`` argument of the store's calls, or from an ``extra`` attribute
of the snapshot when it has one; it comes back from ``load_stop_extras()``,
and in the snapshot's own ``extra`` field when ``StopSnapshot`` has one. A
save without an extra keeps the one saved before, so a caller that knows
nothing of strategies (``save_stops`` after a store outage, say) cannot wipe
a strategy's legs; deleting the stop deletes its extra.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields
from typing import Any, Final

from actors.messages import Contract, Right, SecType, StopSnapshot
from supervisor.store.payload_codec import decode_state, encode_state

__all__ = [
    "SAVE_STOP",
    "STOP_COLUMNS",
    "extra_of",
    "stop_from_row",
    "stop_params",
]

STOP_COLUMNS: Final = (
    "id, symbol, sec_type, opt_right, strike, expiry, multiplier, qty, entry_price, opened_t, "
    "active, extreme, stop, breaches, triggered, ignored_quotes, trigger_id, extra"
)
SAVE_STOP: Final = (
    f"INSERT INTO stops ({STOP_COLUMNS}, updated_wall_t) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(id) DO UPDATE SET symbol = excluded.symbol, sec_type = excluded.sec_type, "
    "opt_right = excluded.opt_right, strike = excluded.strike, expiry = excluded.expiry, "
    "multiplier = excluded.multiplier, qty = excluded.qty, entry_price = excluded.entry_price, "
    "opened_t = excluded.opened_t, active = excluded.active, extreme = excluded.extreme, "
    "stop = excluded.stop, breaches = excluded.breaches, triggered = excluded.triggered, "
    "ignored_quotes = excluded.ignored_quotes, trigger_id = excluded.trigger_id, "
    "extra = COALESCE(excluded.extra, stops.extra), updated_wall_t = excluded.updated_wall_t"
)

_HAS_EXTRA_FIELD: Final = any(f.name == "extra" for f in fields(StopSnapshot))


def extra_of(snap: StopSnapshot, extra: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The extra to save: the argument, else the snapshot's own ``extra`` if it has one."""
    if extra is not None:
        return extra
    own = getattr(snap, "extra", None)
    return own if isinstance(own, Mapping) else None


def stop_params(
    snap: StopSnapshot, wall_t: float, extra: Mapping[str, Any] | None = None
) -> tuple[Any, ...]:
    c = snap.contract
    saved_extra = extra_of(snap, extra)
    return (
        snap.id,
        c.symbol,
        c.sec_type.value,
        None if c.right is None else c.right.value,
        c.strike,
        c.expiry,
        c.multiplier,
        snap.qty,
        snap.entry_price,
        snap.opened_t,
        int(snap.active),
        snap.extreme,
        snap.stop,
        snap.breaches,
        int(snap.triggered),
        snap.ignored_quotes,
        snap.trigger_id,
        None if saved_extra is None else encode_state(saved_extra),
        wall_t,
    )


def _f(v: Any) -> float:
    """A float field back from SQLite: NULL can only have been NaN."""
    return math.nan if v is None else float(v)


def stop_from_row(row: tuple[Any, ...]) -> StopSnapshot:
    """A ``SELECT {STOP_COLUMNS}`` row; ValueError/TypeError when it cannot be decoded."""
    (id_, symbol, sec_type, right, strike, expiry, multiplier, qty, entry_price, opened_t,
     active, extreme, stop, breaches, triggered, ignored_quotes, trigger_id,
     extra) = row  # fmt: skip
    contract = Contract(
        symbol=symbol,
        sec_type=SecType(sec_type),
        right=None if right is None else Right(right),
        strike=None if strike is None else float(strike),
        expiry=expiry,
        multiplier=_f(multiplier),
    )
    more: dict[str, Any] = {}
    if _HAS_EXTRA_FIELD:
        more["extra"] = None if extra is None else decode_state(extra, "stop extra")
    return StopSnapshot(
        id=id_,
        contract=contract,
        qty=_f(qty),
        entry_price=_f(entry_price),
        opened_t=_f(opened_t),
        active=bool(active),
        extreme=_f(extreme),
        stop=None if stop is None else float(stop),
        breaches=int(breaches),
        triggered=bool(triggered),
        ignored_quotes=int(ignored_quotes),
        trigger_id=trigger_id,
        **more,
    )

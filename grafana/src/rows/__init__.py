"""The dashboard's rows, one module each, in the order they appear.

Each module's ``row()`` returns a :class:`style.Row`: its title and its
panels, each under a key that alert rules use to link to it.
"""

from __future__ import annotations

from collections.abc import Callable

from style import Row

from rows import (
    breaker,
    broker,
    greeks,
    limits,
    margin,
    money,
    operations,
    orders,
    overview,
    pretrade,
    stops,
)

__all__ = ["ROWS"]

ROWS: tuple[Callable[[], Row], ...] = (
    overview.row,
    breaker.row,
    money.row,
    pretrade.row,
    orders.row,
    margin.row,
    greeks.row,
    limits.row,
    stops.row,
    operations.row,
    broker.row,
)

"""Which lines replay accepts: its parser for each ``type``, taken from replay itself.

Tune must call a line bad exactly when replay does, since a good line of any
type moves replay's clock and a line behind that clock is bad. The parsers
live in :mod:`supervisor.commands.replay`; this module is the one place that
reaches for them. ``PARSERS`` (a public mapping ``type -> parse(obj, t)``) is
is replay's own table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Parse = Callable[[dict[str, Any], float], Any]
LineParsers = Mapping[str, Parse]


def replay_parsers() -> LineParsers:
    from supervisor.commands import replay

    return replay.PARSERS

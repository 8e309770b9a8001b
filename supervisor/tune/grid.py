"""The grid file of ``tune``: the values to try, the objective to rank by, the horizon.

```toml
objective = "min_mean_giveback"   # see OBJECTIVES
max_whipsaws_per_100 = 20         # optional: sets above this rank after all others
min_triggers = 1                  # sets with fewer triggers rank after all others
horizon_s = 1800                  # whipsaw and saved-or-cost horizon
top = 10                          # rows of the best-sets table in the report

[trailing_stop]                   # any [trailing_stop] key: a list, or one value
activation_pct = [1, 2, 3]
trailing_pct = [1.0, 1.5, 2.0]
max_spread_pct = ["off", 0.5]     # "off" removes the cap
```

Each combination is the config file with those keys replaced in its
``[trailing_stop]`` table; per-symbol tables inherit key by key exactly as in
the daemon, because the config loader itself builds every set. Problems are
reported all at once, each naming its key, like the config loader's.
"""

from __future__ import annotations

import copy
import itertools
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervisor.config import Config, ConfigError, parse

STOP_KEYS = (
    "activation_pct",
    "trailing_pct",
    "min_move_pct",
    "confirm_quotes",
    "max_spread_pct",
    "min_trail_abs",
    "price_source",
)


@dataclass(frozen=True, slots=True)
class ObjectiveKind:
    column: str
    descending: bool
    meaning: str


OBJECTIVES: Mapping[str, ObjectiveKind] = {
    "min_mean_giveback": ObjectiveKind(
        "mean_giveback_pct", False, "least mean giveback (extreme to exit, %)"
    ),
    "min_median_giveback": ObjectiveKind(
        "median_giveback_pct", False, "least median giveback (extreme to exit, %)"
    ),
    "max_mean_saved": ObjectiveKind(
        "mean_saved_pct", True, "most saved by the exit vs holding for horizon_s (mean, %)"
    ),
    "min_whipsaw_rate": ObjectiveKind(
        "whipsaws_per_100", False, "fewest whipsaws per 100 triggers"
    ),
}


class GridError(ConfigError):
    """Every problem found in a grid file, one per line, each naming its key."""


@dataclass(frozen=True, slots=True)
class Objective:
    name: str
    max_whipsaws_per_100: float | None = None
    min_triggers: int = 1

    @property
    def kind(self) -> ObjectiveKind:
        return OBJECTIVES[self.name]

    def describe(self) -> str:
        text = self.kind.meaning
        if self.max_whipsaws_per_100 is not None:
            text += f", at most {self.max_whipsaws_per_100:g} whipsaws per 100 triggers"
        if self.min_triggers > 0:
            text += f", at least {self.min_triggers} trigger(s)"
        return text


@dataclass(frozen=True, slots=True)
class Grid:
    values: Mapping[str, tuple[Any, ...]]
    objective: Objective
    horizon_s: float = 1800.0
    top: int = 10

    def combinations(self) -> list[dict[str, Any]]:
        keys = list(self.values)
        return [
            dict(zip(keys, combo, strict=True))
            for combo in itertools.product(*(self.values[k] for k in keys))
        ]


def _number(x: Any) -> bool:
    return not isinstance(x, bool) and isinstance(x, int | float) and math.isfinite(x)


def parse_grid(data: Mapping[str, Any], base: Mapping[str, Any] | None = None) -> Grid:
    """Validate a parsed grid; each value is also tried in the config loader on ``base``."""
    problems: list[str] = []
    data = dict(data)
    name = data.pop("objective", "min_mean_giveback")
    if name not in OBJECTIVES:
        problems.append(f"objective: must be one of {', '.join(OBJECTIVES)}, got {name!r}")
        name = "min_mean_giveback"
    cap = data.pop("max_whipsaws_per_100", None)
    if cap is not None and not (_number(cap) and cap >= 0):
        problems.append(f"max_whipsaws_per_100: must be a finite number >= 0, got {cap!r}")
        cap = None
    min_triggers = data.pop("min_triggers", 1)
    if isinstance(min_triggers, bool) or not isinstance(min_triggers, int) or min_triggers < 0:
        problems.append(f"min_triggers: must be an integer >= 0, got {min_triggers!r}")
        min_triggers = 1
    horizon = data.pop("horizon_s", 1800.0)
    if not (_number(horizon) and horizon > 0):
        problems.append(f"horizon_s: must be a finite number > 0, got {horizon!r}")
        horizon = 1800.0
    top = data.pop("top", 10)
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        problems.append(f"top: must be an integer >= 1, got {top!r}")
        top = 10
    table = data.pop("trailing_stop", None)
    values: dict[str, tuple[Any, ...]] = {}
    if not isinstance(table, dict) or not table:
        problems.append("trailing_stop: must be a table listing values of [trailing_stop] keys")
        table = {}
    for key, raw in table.items():
        where = f"trailing_stop.{key}"
        if key not in STOP_KEYS:
            problems.append(f"{where}: unknown key (one of {', '.join(STOP_KEYS)})")
            continue
        vals = raw if isinstance(raw, list) else [raw]
        if not vals:
            problems.append(f"{where}: must list at least one value")
            continue
        good = []
        for i, v in enumerate(vals):
            problem = _check_value(key, v, base or {})
            if problem is not None:
                problems.append(f"{where}[{i}]: {problem}")
            elif v in good:
                problems.append(f"{where}[{i}]: {v!r} is listed twice")
            else:
                good.append(v)
        values[key] = tuple(good)
    for key in data:
        problems.append(f"{key}: unknown key")
    if problems:
        raise GridError(problems)
    return Grid(values, Objective(name, cap, min_triggers), float(horizon), top)


def _check_value(key: str, value: Any, base: Mapping[str, Any]) -> str | None:
    if key == "max_spread_pct" and value == "off":
        return None
    try:
        apply(base, {key: value})
    except ConfigError as exc:
        mine = [p for p in exc.problems if p.startswith(f"trailing_stop.{key}:")]
        if mine:
            return mine[0].split(": ", 1)[1]
        return "; ".join(exc.problems)
    return None


def apply(base: Mapping[str, Any], values: Mapping[str, Any]) -> Config:
    """The config with ``values`` in its ``[trailing_stop]`` table, built by the config loader."""
    data = copy.deepcopy(dict(base))
    table = data.get("trailing_stop")
    table = dict(table) if isinstance(table, dict) else {}
    for key, v in values.items():
        if key == "max_spread_pct" and v == "off":
            table.pop(key, None)
        else:
            table[key] = v
    data["trailing_stop"] = table
    return parse(data)


def load_grid(path: str | Path, base: Mapping[str, Any] | None = None) -> Grid:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise GridError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise GridError([f"{path}: not valid TOML: {exc}"]) from exc
    return parse_grid(data, base)

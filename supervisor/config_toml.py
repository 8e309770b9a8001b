"""A configuration as TOML text: what a recording stores beside itself.

``replay --config <the stored config>`` must read back exactly the
configuration the day ran with. Configs given as files are stored as their
own text; a configuration built in code (the demo's) is written here, from
the plain mapping it was parsed from: tables, strings, booleans, numbers and
lists of them — all a configuration holds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string is a JSON string
    if isinstance(v, list | tuple):
        if all(isinstance(x, Mapping) for x in v) and v:
            return "[" + ", ".join(_inline(x) for x in v) + "]"
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def _inline(table: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in table.items()) + "}"


def _key(k: str) -> str:
    bare = k and all(c.isalnum() or c in "_-" for c in k)
    return k if bare else json.dumps(k)


def dumps(doc: Mapping[str, Any]) -> str:
    """``doc`` as TOML; ``tomllib.loads`` gives it back equal."""
    lines: list[str] = []

    def table(prefix: str, t: Mapping[str, Any]) -> None:
        scalars = [(k, v) for k, v in t.items() if not isinstance(v, Mapping)]
        tables = [(k, v) for k, v in t.items() if isinstance(v, Mapping)]
        if prefix and (scalars or not tables):
            lines.append(f"[{prefix}]")
        for k, v in scalars:
            lines.append(f"{_key(k)} = {_value(v)}")
        if scalars:
            lines.append("")
        for k, v in tables:
            table(f"{prefix}.{_key(k)}" if prefix else _key(k), v)

    table("", doc)
    return "\n".join(lines).rstrip() + "\n"

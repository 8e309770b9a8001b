"""A small, deterministic YAML writer for the generated provisioning and rule files.

The builder must run with the standard library alone (in CI, on an ops host
with nothing installed), and its output is committed and compared byte for
byte, so it needs one fixed rendering of each value rather than whatever a
YAML library's version happens to choose. The subset written here is what the
files need: mappings (in insertion order), lists, strings, numbers, booleans
and null.

Strings are written plain when that cannot be misread, single-quoted when
they hold YAML syntax (PromQL with its braces and double quotes reads best
that way) and as literal blocks when they span lines.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Mapping

__all__ = ["dump"]

Value = (
    Mapping[str, "Value"] | list["Value"] | tuple["Value", ...] | str | int | float | bool | None
)

_PLAIN = re.compile(r"[A-Za-z0-9_/][A-Za-z0-9_ ./():\-]*\Z")
# What YAML 1.1 or 1.2 would read as something other than a string.
_NOT_PLAIN = re.compile(
    r"(?i)\A(?:y|n|yes|no|on|off|true|false|null|~"
    r"|[-+]?(?:\.inf|\.nan|0x[0-9a-f_]+|0o[0-7_]+|0b[01_]+|[0-9][0-9_.:e+-]*))\Z"
)
_FOLD_AT = 88


def _scalar(value: str | int | float | bool | None) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if (
        _PLAIN.match(value)
        and not _NOT_PLAIN.match(value)
        and ": " not in value
        and not value.endswith((" ", ":"))
    ):
        return value
    return "'" + value.replace("'", "''") + "'"


def _is_block(value: object) -> bool:
    """True for a non-empty mapping or list, which is written on lines of its own."""
    return isinstance(value, Mapping | list | tuple) and len(value) > 0


def _emit(value: Value, indent: int, out: list[str]) -> None:
    pad = " " * indent
    if isinstance(value, Mapping):
        for key, item in value.items():
            _emit_entry(f"{pad}{key}:", item, indent + 2, out)
    elif isinstance(value, list | tuple):
        for item in value:
            if isinstance(item, Mapping) and item:
                # The first key goes on the dash's line, the rest under it.
                sub: list[str] = []
                _emit(item, indent + 2, sub)
                sub[0] = pad + "- " + sub[0][indent + 2 :]
                out.extend(sub)
            else:
                _emit_entry(f"{pad}-", item, indent + 2, out)
    else:
        raise TypeError(f"cannot emit {value!r} as a block")


def _emit_entry(head: str, item: Value, indent: int, out: list[str]) -> None:
    if _is_block(item):
        if isinstance(item, Mapping):
            out.append(head)
            _emit(item, indent, out)
        else:
            # Lists under a key sit at the key's own indentation, as is usual.
            out.append(head)
            _emit(item, indent - 2 if head.endswith(":") else indent, out)
    elif isinstance(item, Mapping):
        out.append(f"{head} {{}}")
    elif isinstance(item, list | tuple):
        out.append(f"{head} []")
    elif isinstance(item, str) and "\n" in item:
        lines = item.split("\n")
        chomp = "-" if not item.endswith("\n") else ""
        if not chomp:
            lines = lines[:-1]
        out.append(f"{head} |{chomp}")
        out.extend((" " * indent + line) if line else "" for line in lines)
    elif isinstance(item, str) and len(item) > _FOLD_AT and _foldable(item):
        # Long prose (annotations) folds: each line break reads back as one space.
        out.append(f"{head} >-")
        wrapped = textwrap.wrap(
            item, _FOLD_AT - indent, break_long_words=False, break_on_hyphens=False
        )
        out.extend(" " * indent + line for line in wrapped)
    else:
        assert not isinstance(item, Mapping | list | tuple)
        out.append(f"{head} {_scalar(item)}")


def _foldable(text: str) -> bool:
    """True when folding at single spaces reads back as exactly ``text``."""
    return (
        text == text.strip()
        and "  " not in text
        and not any(c in text for c in "\t\r\n")
        and not text.startswith(("#", "'", '"', "|", ">", "-", "!", "&", "*", "%", "@", "`"))
    )


def dump(value: Mapping[str, Value], header: str = "") -> str:
    """Render a mapping as a YAML document, with ``header`` as leading comment lines."""
    out = [f"# {line}".rstrip() for line in header.splitlines()]
    _emit(value, 0, out)
    return "\n".join(out) + "\n"

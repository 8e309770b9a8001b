"""The journal as a table: what ``risk-supervisor journal`` prints and reports read.

The store keeps each entry's payload as JSON whose shape belongs to whoever
wrote it; this module lifts out the handful of fields an operator filters and
counts by (a stop's action and level, a breaker's states, a check's verdict
and reasons) so that questions like "why were entries denied this morning" are
one polars expression, while the full payload stays alongside as JSON.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import polars as pl

from supervisor.store.sqlite_store import JournalRow, Store, StoreUnavailable, encode_payload

__all__ = [
    "COLUMNS",
    "frame_from_rows",
    "journal_frame",
    "parse_time",
    "run_journal_command",
    "summarize",
    "write",
]

_BASE_SCHEMA: Final[dict[str, pl.DataType]] = {
    "seq": pl.Int64(),
    "t": pl.Float64(),
    "wall_t": pl.Float64(),
    "kind": pl.String(),
    "position_id": pl.String(),
    "payload": pl.String(),
}
# Always present, null where a row's payload lacks them: a stable schema lets
# reports and summaries name these columns without checking first.
_FLAT_SCHEMA: Final[dict[str, pl.DataType]] = {
    "action": pl.String(),
    "stop": pl.Float64(),
    "ref_price": pl.Float64(),
    "to_state": pl.String(),
    "from_state": pl.String(),
    "allowed": pl.Boolean(),
    "reasons": pl.String(),
}
COLUMNS: Final = (
    "seq", "t", "wall_t", "time", "kind", "position_id", "payload", *_FLAT_SCHEMA,
)  # fmt: skip

_SUMMARY_SCHEMA: Final[dict[str, pl.DataType]] = {
    "group": pl.String(),
    "key": pl.String(),
    "count": pl.Int64(),
}


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v)


def _text(v: Any) -> str | None:
    if v is None or isinstance(v, dict | list):
        return None
    return str(v)


def _reasons(v: Any) -> str | None:
    """Reason codes, comma-joined, from however a writer listed them.

    A CheckAnswer's reasons journal as a list of ``{"code", "value", "limit"}``
    objects; a writer may also list bare codes or give one string.
    """
    if v is None:
        return None
    if isinstance(v, str):
        return v
    if not isinstance(v, list):
        return None
    codes: list[str] = []
    for r in v:
        code = r.get("code") if isinstance(r, dict) else r
        if code is not None and not isinstance(code, dict | list):
            codes.append(str(code))
    return ",".join(codes)


def _flat(payload: dict[str, Any]) -> tuple[Any, ...]:
    allowed = payload.get("allowed")
    # A BreakerTransition journals as {"from", "to"} in the wire format and as
    # {"from_state", "to_state"} when written from the dataclass: take either.
    to_state = payload.get("to_state", payload.get("to"))
    from_state = payload.get("from_state", payload.get("from"))
    return (
        _text(payload.get("action")),
        _num(payload.get("stop")),
        _num(payload.get("ref_price")),
        _text(to_state),
        _text(from_state),
        allowed if isinstance(allowed, bool) else None,
        _reasons(payload.get("reasons")),
    )


def frame_from_rows(rows: Sequence[JournalRow]) -> pl.DataFrame:
    """The journal_frame of rows already read (no store needed)."""
    base: dict[str, list[Any]] = {name: [] for name in _BASE_SCHEMA}
    flat: dict[str, list[Any]] = {name: [] for name in _FLAT_SCHEMA}
    for r in rows:
        base["seq"].append(r.seq)
        base["t"].append(r.t)
        base["wall_t"].append(r.wall_t)
        base["kind"].append(r.kind)
        base["position_id"].append(r.position_id)
        base["payload"].append(encode_payload(r.payload))
        for name, value in zip(_FLAT_SCHEMA, _flat(r.payload), strict=True):
            flat[name].append(value)
    df = pl.DataFrame({**base, **flat}, schema={**_BASE_SCHEMA, **_FLAT_SCHEMA})
    micros = (pl.col("t") * 1_000_000).round(0)
    time_col = (
        pl.when(micros.is_finite())
        .then(micros)
        .otherwise(None)
        .cast(pl.Int64, strict=False)
        .cast(pl.Datetime("us", "UTC"))
        .alias("time")
    )
    return df.with_columns(time_col).select(COLUMNS)


def journal_frame(store: Store, **filters: Any) -> pl.DataFrame:
    """The journal rows ``store.journal(**filters)`` returns, as a DataFrame.

    Columns: seq, t, wall_t, time (UTC datetime from ``t``; null if ``t`` is
    not finite), kind, position_id, payload (JSON string), then action, stop,
    ref_price, to_state, from_state, allowed and reasons (comma-joined codes),
    lifted from the payload where it has them and null elsewhere.
    """
    return frame_from_rows(store.journal(**filters))


def _counts(df: pl.DataFrame, group: str, key: pl.Expr) -> pl.DataFrame:
    return (
        df.select(key.cast(pl.String).alias("key"))
        .group_by("key")
        .agg(pl.len().cast(pl.Int64).alias("count"))
        .select(pl.lit(group, pl.String).alias("group"), "key", "count")
        .sort(["count", "key"], descending=[True, False], nulls_last=True)
    )


def summarize(df: pl.DataFrame) -> pl.DataFrame:
    """Counts an operator asks for first, as one long table (group, key, count).

    Groups, in this order: ``kind`` (rows per journal kind); ``check`` (checks
    allowed vs denied); ``reason`` (denied checks citing each reason code; a
    check denied for two reasons counts under both); ``trigger`` (stop
    TRIGGERs per position). Within a group, largest count first. Groups whose
    source columns are absent from ``df`` are left out; a group with no rows
    contributes nothing.
    """
    parts = [pl.DataFrame(schema=_SUMMARY_SCHEMA)]
    if "kind" in df.columns:
        parts.append(_counts(df, "kind", pl.col("kind")))
        if "allowed" in df.columns:
            checks = df.filter(pl.col("kind") == "check")
            parts.append(
                _counts(
                    checks,
                    "check",
                    pl.when(pl.col("allowed"))
                    .then(pl.lit("allowed"))
                    .when(~pl.col("allowed"))
                    .then(pl.lit("denied"))
                    .otherwise(pl.lit("unknown")),
                )
            )
            if "reasons" in df.columns:
                codes = (
                    checks.filter(pl.col("allowed").not_().fill_null(False))
                    .select(pl.col("reasons").str.split(",").alias("code"))
                    .explode("code")
                    .filter(pl.col("code").is_not_null() & (pl.col("code") != ""))
                )
                parts.append(_counts(codes, "reason", pl.col("code")))
        if "action" in df.columns and "position_id" in df.columns:
            triggers = df.filter((pl.col("kind") == "stop") & (pl.col("action") == "TRIGGER"))
            parts.append(_counts(triggers, "trigger", pl.col("position_id")))
    return pl.concat(parts, how="vertical")


def write(df: pl.DataFrame, path: str) -> None:
    """Write ``df`` as CSV or Parquet, chosen by the path's suffix.

    CSV for a spreadsheet or grep, Parquet to keep the types (the UTC
    datetime, booleans, nulls) for later analysis. Any other suffix raises
    ValueError before anything is written.
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        df.write_csv(path)
    elif suffix == ".parquet":
        df.write_parquet(path)
    else:
        raise ValueError(
            f"cannot write {path!r}: unknown output format {suffix or '(no suffix)'!r}; "
            "use a path ending in .csv or .parquet"
        )


def parse_time(text: str) -> float:
    """Epoch seconds from epoch seconds or ISO-8601 text; naive ISO means UTC.

    Raises ValueError for anything else, including non-finite numbers.
    """
    s = text.strip()
    try:
        value = float(s)
    except ValueError:
        try:
            dt = datetime.fromisoformat(s.replace("z", "Z"))
        except ValueError:
            raise ValueError(
                f"{text!r} is neither epoch seconds nor an ISO-8601 time "
                "(e.g. 1700000000 or 2024-03-01T14:30:00Z)"
            ) from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.timestamp()
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite time")
    return value


def run_journal_command(
    db_path: str,
    *,
    since: str | None,
    until: str | None,
    kind: str | None,
    position: str | None,
    limit: int,
    out: str | None,
    summary: bool,
) -> int:
    """``risk-supervisor journal``: print or export journal rows; the exit code.

    With ``since`` it reads forward from that time (the first ``limit``
    rows); without it, the most recent ``limit`` rows. ``summary`` replaces
    the rows with their summarize() counts. The file is opened read-only, so
    this is safe beside a running daemon and never creates a database.

    Exit codes: 0 done; 2 a bad argument (time, limit, output suffix), with a
    message on stderr; 1 the store cannot be read.
    """
    try:
        since_t = None if since is None else parse_time(since)
        until_t = None if until is None else parse_time(until)
    except ValueError as e:
        print(f"risk-supervisor journal: {e}", file=sys.stderr)
        return 2
    if limit < 1:
        print(f"risk-supervisor journal: --limit must be at least 1, not {limit}", file=sys.stderr)
        return 2
    if out is not None and Path(out).suffix.lower() not in (".csv", ".parquet"):
        print(
            f"risk-supervisor journal: cannot write {out!r}: use a path ending in .csv or .parquet",
            file=sys.stderr,
        )
        return 2
    try:
        with Store(db_path, read_only=True) as store:
            df = journal_frame(
                store,
                since_t=since_t,
                until_t=until_t,
                kind=kind,
                position_id=position,
                limit=limit,
                newest=since_t is None,
            )
    except StoreUnavailable as e:
        print(f"risk-supervisor journal: cannot read {db_path}: {e}", file=sys.stderr)
        return 1
    if summary:
        df = summarize(df)
    if out is not None:
        try:
            write(df, out)
        except OSError as e:
            print(f"risk-supervisor journal: cannot write {out}: {e}", file=sys.stderr)
            return 1
        print(f"wrote {df.height} rows to {out}")
        return 0
    with pl.Config(tbl_rows=-1, tbl_cols=-1, fmt_str_lengths=60, tbl_width_chars=200):
        print(df)
    return 0

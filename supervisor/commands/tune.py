"""``risk-supervisor tune --config C --grid G RECORDING...``: stop parameters over recorded quotes.

Writes ``sets.<fmt>`` (one row per set and symbol, plus ``ALL``),
``triggers.<fmt>`` (every TRIGGER of every set) and ``report.html`` into
``--out``, and prints the best sets. Exit codes as the rest of the CLI: 0
done, 1 the recording had bad lines (the run still completes), 2 bad usage,
config, grid or an unreadable recording.
"""

from __future__ import annotations

import argparse
import sys
import time
import tomllib
from pathlib import Path
from typing import Any, TextIO

from supervisor.config import ConfigError, parse


def add_parser(sub: Any) -> None:
    t = sub.add_parser("tune", help="try trailing-stop parameters over recorded quotes")
    t.add_argument("--config", required=True, help="TOML config the grid changes")
    t.add_argument("--grid", required=True, help="TOML grid: values per [trailing_stop] key")
    t.add_argument("recordings", nargs="+", help=".jsonl or .jsonl.zst files, in time order")
    t.add_argument("--out", default="tune-report", help="output directory (default tune-report)")
    t.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    t.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    t.set_defaults(func=main)


def _read_config(path: str, err: TextIO) -> dict[str, Any] | None:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        parse(data)
    except OSError as exc:
        err.write(f"{path}: cannot read: {exc.strerror or exc}\n")
        return None
    except tomllib.TOMLDecodeError as exc:
        err.write(f"{path}: not valid TOML: {exc}\n")
        return None
    except ConfigError as exc:
        for p in exc.problems:
            err.write(f"{path}: {p}\n")
        return None
    return data


def main(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    from supervisor.record import iter_events
    from supervisor.tune.grid import GridError, load_grid
    from supervisor.tune.table import best
    from supervisor.tune.tuning import tune, write_outputs

    base = _read_config(args.config, err)
    if base is None:
        return 2
    try:
        grid = load_grid(args.grid, base)
    except GridError as exc:
        for problem in exc.problems:
            err.write(f"{args.grid}: {problem}\n")
        return 2
    paths = [Path(name) for name in args.recordings]
    for path in paths:
        if not path.is_file():
            err.write(f"{path}: cannot read: no such file\n")
            return 2
    if args.workers is not None and args.workers < 1:
        err.write("--workers: must be >= 1\n")
        return 2
    started = time.perf_counter()

    def warn(message: str) -> None:
        err.write(f"warning: {message}\n")

    lines = (line for _, _, line in iter_events(paths, warn=warn))
    try:
        result = tune(base, grid, lines, workers=args.workers)
    except OSError as exc:
        err.write(f"cannot read the recording: {exc.strerror or exc}\n")
        return 2
    elapsed = time.perf_counter() - started
    d = result.decoded
    facts = {
        "recording": ", ".join(p.name for p in paths),
        "config": Path(args.config).name,
        "lines": f"{d.lines:,} ({d.bad_lines:,} bad)",
        "quotes of stopped positions": f"{d.quotes:,}: "
        f"{d.quotes - d.routed_quotes:,} in {len(d.segments):,} stop lives"
        + (f", {d.routed_quotes:,} of positions tied to strategies" if d.routed_quotes else ""),
        "parameter sets": f"{len(result.combos):,}",
        "time": f"{elapsed:.1f} s",
    }
    summary = result.strategy_summary()
    if summary is not None:
        facts["strategies"] = summary
    written = write_outputs(
        result, Path(args.out), fmt=args.format, title="Trailing-stop tuning", facts=facts
    )
    top = best(result.table).head(grid.top)
    keys = [k for k in result.grid.values]
    cols = ["rank", *keys, "triggers", "whipsaws_per_100", "mean_giveback_pct", "mean_saved_pct"]
    out.write(f"{len(result.combos)} sets × {d.quotes:,} quotes in {elapsed:.1f} s\n")
    out.write(f"ranked by: {grid.objective.describe()}\n")
    with _wide():
        out.write(str(top.select(cols)) + "\n")
    for what, where in written.items():
        out.write(f"{what}: {where}\n")
    bad = max((result.bad_lines(i) for i in range(len(result.combos))), default=d.bad_lines)
    if bad:
        err.write(f"{bad} bad line(s) in the recording (replay names them)\n")
        return 1
    return 0


def _wide() -> Any:
    import polars as pl

    return pl.Config(
        tbl_rows=100,
        tbl_cols=30,
        tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=True,
        tbl_width_chars=160,
        float_precision=3,
    )

"""``risk-supervisor`` (also ``python -m supervisor``): the command line of DESIGN §6.

Exit codes: 0 success; 1 replay finished with bad lines (or a command found
nothing it could read); 2 bad usage, config or unreachable daemon; 3 the
daemon stopped because an actor kind restarted too often.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from supervisor.config import Config, ConfigError, load


def _load(path: str) -> Config | None:
    try:
        return load(path)
    except ConfigError as exc:
        for p in exc.problems:
            print(f"{path}: {p}", file=sys.stderr)
        return None


def _check_config(args: argparse.Namespace) -> int:
    """One validator for ``check-config`` and ``run``: ok here means ``run`` starts."""
    from supervisor.config import runtime_problems

    config = _load(args.file)
    if config is None:
        return 2
    problems = runtime_problems(config, os.environ)
    for p in problems:
        print(f"{args.file}: {p}", file=sys.stderr)
    if problems:
        return 2
    print(f"{args.file}: ok")
    return 0


def _replay(args: argparse.Namespace) -> int:
    from supervisor.commands import replay

    config = _load(args.config)
    if config is None:
        return 2
    try:
        return replay.run(config, args.events)
    except OSError as exc:
        print(f"{exc.filename}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from supervisor.commands.run import run_daemon

    config = _load(args.config)
    if config is None:
        return 2
    return run_daemon(config, config_text=Path(args.config).read_text(encoding="utf-8"))


def _demo(args: argparse.Namespace) -> int:
    from supervisor.commands import demo

    return demo.main(duration=args.duration, seed=args.seed, store=args.store, record=args.record)


def _status(args: argparse.Namespace) -> int:
    from supervisor.commands.status import run_status_command

    return run_status_command(args.url, args.token_env, args.token_file)


def _kill(args: argparse.Namespace) -> int:
    from supervisor.commands.kill import run_kill

    return run_kill(
        args.mode,
        url=args.url,
        operator=args.operator,
        token_env=args.token_env,
        token_file=args.token_file,
    )


def _api_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default="http://127.0.0.1:8780")
    p.add_argument("--token-env", default="", help="environment variable holding the API token")
    p.add_argument("--token-file", default=None, help="the API token file (default: the daemon's)")


def _journal(args: argparse.Namespace) -> int:
    from supervisor.commands.journal_table import run_journal_command

    path = args.db
    if path is None:
        config = _load(args.config) if args.config else Config()
        if config is None:
            return 2
        path = config.store.path
    return run_journal_command(
        path,
        since=args.since,
        until=args.until,
        kind=args.type,
        position=args.position,
        limit=args.limit,
        out=args.out,
        summary=args.summary,
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="risk-supervisor",
        description="Risk supervisor for an automated options trader on Interactive Brokers.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run the daemon against IB")
    r.add_argument("--config", required=True, help="TOML config file")
    r.set_defaults(func=_run)

    d = sub.add_parser("demo", help="run the daemon against the built-in IB gateway simulator")
    d.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    d.add_argument("--seed", type=int, default=1, help="seed of the simulated market")
    d.add_argument("--store", default=None, help="SQLite file (default: a temporary one)")
    d.add_argument(
        "--record", default=None, metavar="DIR", help="record every input event to DIR (tune on it)"
    )
    d.set_defaults(func=_demo)

    rp = sub.add_parser("replay", help="feed recorded events through the actors on event time")
    rp.add_argument("--config", required=True)
    rp.add_argument(
        "events", nargs="+", help="JSON lines (.jsonl or .jsonl.zst), one event a line, in order"
    )
    rp.set_defaults(func=_replay)

    from supervisor.commands.tune import add_parser as add_tune

    add_tune(sub)

    c = sub.add_parser("check-config", help="validate a config file")
    c.add_argument("file")
    c.set_defaults(func=_check_config)

    s = sub.add_parser("status", help="show the state of a running daemon")
    _api_arguments(s)
    s.set_defaults(func=_status)

    k = sub.add_parser("kill", help="the kill switch: halt, cancel every order, or flatten")
    k.add_argument("--mode", choices=["halt", "cancel", "flatten"], default="halt")
    k.add_argument("--operator", default=None, help="journaled as who killed (default: you)")
    _api_arguments(k)
    k.set_defaults(func=_kill)

    j = sub.add_parser("journal", help="query the decision journal")
    j.add_argument("--config", default=None, help="read [store] path from this config")
    j.add_argument("--db", default=None, help="the SQLite file (overrides --config)")
    j.add_argument("--since", default=None, help="epoch seconds or ISO-8601")
    j.add_argument("--until", default=None, help="epoch seconds or ISO-8601")
    j.add_argument(
        "--type", default=None, help="stop, breaker, failure, check, admin, exit_order, …"
    )
    j.add_argument("--position", default=None)
    j.add_argument("--limit", type=int, default=100)
    j.add_argument("--out", default=None, help="write .csv or .parquet instead of printing")
    j.add_argument("--summary", action="store_true", help="counts by kind, verdict and reason")
    j.set_defaults(func=_journal)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code

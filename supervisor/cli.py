"""``risk-supervisor`` command line (DESIGN §6)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from supervisor.config import ConfigError, load


def _check_config(args: argparse.Namespace) -> int:
    try:
        load(args.file)
    except ConfigError as exc:
        for p in exc.problems:
            print(f"{args.file}: {p}", file=sys.stderr)
        return 2
    print(f"{args.file}: ok")
    return 0


def _replay(args: argparse.Namespace) -> int:
    from supervisor import replay

    try:
        config = load(args.config)
    except ConfigError as exc:
        for p in exc.problems:
            print(f"{args.config}: {p}", file=sys.stderr)
        return 2
    try:
        return replay.run(config, args.events)
    except OSError as exc:
        print(f"{args.events}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="risk-supervisor", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check-config", help="validate a config file")
    c.add_argument("file")
    c.set_defaults(func=_check_config)
    r = sub.add_parser("replay", help="feed recorded events through the actors on event time")
    r.add_argument("--config", required=True)
    r.add_argument("events")
    r.set_defaults(func=_replay)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code

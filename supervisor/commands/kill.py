"""``risk-supervisor kill --mode halt|cancel|flatten``: the kill switch, from a terminal.

It posts ``/v1/kill`` with the API token (the variable ``--token-env``
names, else the token file the daemon wrote) and prints what the daemon did:
the breaker, the cancel step and, for ``flatten``, one closing order per
position. Exit 0 only when the daemon confirmed the kill; anything else —
unreachable, a refused token, a timeout — is a line on stderr starting
``NOT killed`` and exit code 2, so an operator (or a script) never believes
a kill that did not happen.
"""

from __future__ import annotations

import getpass
import sys
import time
from pathlib import Path
from typing import TextIO

from rich.console import Console

from actors.messages import KillMode
from supervisor.api.token_file import TokenError
from supervisor.client import DEFAULT_URL, RiskClient, RiskClientError
from supervisor.commands.status import api_token, kill_table

__all__ = ["EXIT_NOT_KILLED", "default_operator", "run_kill"]

EXIT_NOT_KILLED = 2
KILL_TIMEOUT_S = 10.0  # the daemon answers once the breaker is open; cancel/flatten go on


def default_operator() -> str:
    """Who is killing: the login name, so the journal says who pulled the switch."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def run_kill(
    mode: KillMode | str = KillMode.HALT,
    *,
    url: str = DEFAULT_URL,
    operator: str | None = None,
    token_env: str | None = None,
    token_file: str | Path | None = None,
    out: TextIO | None = None,
) -> int:
    """Kill through the API and print the result; 0 when done, 2 when NOT done."""
    try:
        token = api_token(token_env, token_file)
        with RiskClient(url, token=token, timeout=KILL_TIMEOUT_S) as client:
            status = client.kill(mode, operator or default_operator())
    except (RiskClientError, TokenError) as exc:
        print(f"risk-supervisor kill: NOT killed: {exc}", file=sys.stderr)
        return EXIT_NOT_KILLED
    out = out or sys.stdout
    now = status.get("t")
    console = Console(file=out, width=None if out.isatty() else 120, soft_wrap=False)
    console.print(kill_table(status, float(now) if isinstance(now, int | float) else time.time()))
    return 0

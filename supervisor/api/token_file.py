"""The API token: where the daemon and its clients find the same secret.

One rule for the daemon, its CLI and :class:`~supervisor.client.RiskClient`:

1. ``[api] token_env`` set: the token is that environment variable (the
   daemon refuses to start when it is unset or empty).
2. Otherwise the **token file** (``[api] token_file``; see
   :func:`default_token_file`): the daemon reads it, or creates it on first
   start with a fresh random token, readable by its owner only (0600). A
   token file readable by group or others is refused, as ssh refuses a
   private key. Clients read the same file.
3. No token file configured (``None``) and no ``token_env``: no token; only a
   loopback bind is then allowed (:func:`supervisor.api.security.check_bind`).

This module imports nothing of the server, so a trader's process can read the
token without FastAPI.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path
from typing import Final

__all__ = [
    "TOKEN_FILE_NAME",
    "TokenError",
    "client_token",
    "default_token_file",
    "ensure_token_file",
    "env_token",
    "read_token_file",
    "server_token",
]

TOKEN_FILE_NAME: Final = "api-token"
_TOKEN_BYTES: Final = 32  # 256 bits, 43 URL-safe characters


class TokenError(ValueError):
    """The token cannot be had as configured; the message says what to fix."""


def default_token_file() -> Path:
    """``$XDG_CONFIG_HOME/risk-supervisor/api-token`` (``~/.config/…`` without it).

    Per user, not per working directory, so ``risk-supervisor status`` run from
    anywhere by the daemon's user finds the token the daemon wrote.
    """
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "risk-supervisor" / TOKEN_FILE_NAME


def _valid(token: str, where: str) -> str:
    token = token.strip()
    if not token:
        raise TokenError(f"{where}: the token is empty")
    if not all(33 <= ord(ch) <= 126 for ch in token):
        raise TokenError(f"{where}: the token must be printable ASCII without spaces")
    return token


def env_token(name: str) -> str:
    """The token in environment variable ``name``; raises when it is unset or empty.

    The operator asked for a token there: serving or calling without it would
    silently drop the protection they configured.
    """
    value = os.environ.get(name, "")
    if not value.strip():
        raise TokenError(
            f"api.token_env: the environment variable {name} is not set or empty; "
            "refusing to go on without the API token it should hold"
        )
    return _valid(value, f"environment variable {name}")


def _check_private(path: Path, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise TokenError(f"api.token_file: {path} is not a regular file")
    if st.st_mode & 0o077:
        raise TokenError(
            f"api.token_file: {path} is readable by others (mode {stat.S_IMODE(st.st_mode):04o});"
            f" run: chmod 600 {path}"
        )


def read_token_file(path: Path) -> str | None:
    """The token in ``path``, or None when there is no such file (a client's view)."""
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenError(f"api.token_file: cannot read {path}: {exc}") from None
    return _valid(text, f"api.token_file {path}")


def ensure_token_file(path: Path) -> str:
    """The daemon's token: read from ``path``, or created there (0600) on first start.

    Creation is atomic: the token is written to a private temporary file and
    hard-linked into place, so a crash never leaves an empty token file and
    two daemons starting at once end up with one token (the loser reads the
    winner's).
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        return _create(path)
    except OSError as exc:
        raise TokenError(f"api.token_file: cannot read {path}: {exc}") from None
    _check_private(path, st)
    token = read_token_file(path)
    if token is None:  # removed between stat and read: create it
        return _create(path)
    return token


def _create(path: Path) -> str:
    token = secrets.token_urlsafe(_TOKEN_BYTES)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            os.write(fd, (token + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            token_there = read_token_file(path)
            if token_there is None:
                raise TokenError(f"api.token_file: {path} vanished while creating it") from None
            _check_private(path, path.stat())
            return token_there
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    except OSError as exc:
        raise TokenError(f"api.token_file: cannot create {path}: {exc}") from None
    return token


def server_token(token_env: str, token_file: Path | None) -> str | None:
    """The daemon's token under the module's rule (env var, else token file, else none)."""
    if token_env:
        return env_token(token_env)
    if token_file is not None:
        return ensure_token_file(token_file)
    return None


def client_token(token_env: str | None, token_file: Path | None) -> str | None:
    """A client's token under the same rule; a missing token file means no token."""
    if token_env:
        return env_token(token_env)
    if token_file is not None:
        return read_token_file(token_file)
    return None

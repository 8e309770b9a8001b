"""The token rule of ``supervisor.api.token_file``: env var, else a private file, else none."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from supervisor.api.token_file import (
    TokenError,
    client_token,
    default_token_file,
    ensure_token_file,
    read_token_file,
    server_token,
)

ENV = "RISK_SUPERVISOR_UNIT_TOKEN"


def test_first_start_creates_a_private_file_then_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "api-token"
    old_umask = os.umask(0)  # even a careless umask gives 0600
    try:
        token = ensure_token_file(path)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == token + "\n" and len(token) >= 40
    assert ensure_token_file(path) == token
    assert read_token_file(path) == token
    assert sorted(p.name for p in path.parent.iterdir()) == ["api-token"]


def test_concurrent_first_starts_agree_on_one_token(tmp_path: Path) -> None:
    path = tmp_path / "api-token"
    tokens: list[str] = []
    threads = [threading.Thread(target=lambda: tokens.append(ensure_token_file(path)))
               for _ in range(8)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(tokens) == 8 and len(set(tokens)) == 1 == len(set([*tokens, read_token_file(path)]))


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o666])
def test_a_file_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "api-token"
    path.write_text("token-value")
    path.chmod(mode)
    with pytest.raises(TokenError, match="chmod 600"):
        ensure_token_file(path)


@pytest.mark.parametrize("content", [b"", b"   \n", b"has space", b"caf\xc3\xa9", b"\xff"])
def test_an_unusable_token_file_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "api-token"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(TokenError):
        ensure_token_file(path)
    with pytest.raises(TokenError):
        read_token_file(path)


def test_a_directory_is_not_a_token_file(tmp_path: Path) -> None:
    (tmp_path / "api-token").mkdir(mode=0o700)
    with pytest.raises(TokenError, match="regular file"):
        ensure_token_file(tmp_path / "api-token")


def test_the_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "api-token"
    monkeypatch.setenv(ENV, " from-env ")
    assert server_token(ENV, path) == "from-env" and not path.exists()
    assert client_token(ENV, path) == "from-env"
    monkeypatch.delenv(ENV)
    with pytest.raises(TokenError, match=ENV):
        server_token(ENV, path)
    with pytest.raises(TokenError, match=ENV):
        client_token(ENV, path)
    assert client_token(None, path) is None  # a client without the file: no token
    token = server_token("", path)
    assert token is not None and client_token(None, path) == token
    assert server_token("", None) is None and client_token(None, None) is None


def test_default_token_file_is_per_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert default_token_file() == tmp_path / "risk-supervisor" / "api-token"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert default_token_file() == Path.home() / ".config" / "risk-supervisor" / "api-token"

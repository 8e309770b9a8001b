"""Reading recordings: ``.jsonl`` and ``.jsonl.zst`` (any number of zstd frames), in order.

``replay`` and ``tune`` read through :func:`iter_events`. It yields raw lines
(bytes, without the newline) with their file name and line number, so the
caller's parser decides what is a bad line and can name where it is. The one
thing decided here is the *cut-off last line*: a daemon killed mid-write
leaves a last line without its newline (in a zstd file: a frame cut short,
whose data is readable up to the last flushed block). Such a line is skipped
with a warning — it is damage of the recording, not bad input — unless it is
complete JSON (a hand-written ``.jsonl`` may simply lack the final newline).
A zstd file whose data turns corrupt is read up to that point, with a warning.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import IO, Any, Protocol

import zstandard

CHUNK = 1 << 20
PROGRESS_MIN_BYTES = 16 << 20
"""Below this much input no progress bar is worth drawing."""


class Warn(Protocol):
    def __call__(self, message: str) -> None: ...


def _stderr_warning(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


class _Advance(Protocol):
    def __call__(self, n: int) -> None: ...


def _is_complete_json(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _chunks(f: IO[bytes], zst: bool, name: str, warn: Warn, advance: _Advance) -> Iterator[bytes]:
    """The file's decompressed bytes, chunk by chunk; warns about a cut-short or corrupt tail."""
    if not zst:
        while chunk := f.read(CHUNK):
            advance(len(chunk))
            yield chunk
        return
    dctx = zstandard.ZstdDecompressor()
    obj = dctx.decompressobj()
    in_frame = False  # fed bytes of a frame that has not ended yet
    while raw := f.read(CHUNK):
        advance(len(raw))
        while raw:
            try:
                out = obj.decompress(raw)
            except zstandard.ZstdError as exc:
                warn(f"{name}: corrupt zstd data ({exc}); the rest of the file is skipped")
                return
            in_frame = True
            if out:
                yield out
            if not obj.eof:
                break
            raw = obj.unused_data  # the next frame (a file may hold many)
            obj = dctx.decompressobj()
            in_frame = False
    if in_frame:
        warn(f"{name}: the last zstd frame is cut short (the writer was stopped mid-write)")


def _lines_of(path: Path, warn: Warn, advance: _Advance) -> Iterator[tuple[str, int, bytes]]:
    name = str(path)
    zst = path.name.endswith(".zst")
    n = 0
    rest = b""
    with open(path, "rb") as f:
        for chunk in _chunks(f, zst, name, warn, advance):
            data = rest + chunk if rest else chunk
            lines = data.split(b"\n")
            rest = lines.pop()
            for line in lines:
                n += 1
                yield name, n, line
    if rest:
        n += 1
        if _is_complete_json(rest):
            yield name, n, rest
        else:
            warn(f"{name}: line {n} is cut short (no newline, not complete JSON): skipped")


def _progress(total: int, show: bool | None) -> tuple[AbstractContextManager[Any], _Advance]:
    if show is None:
        show = sys.stderr.isatty() and total >= PROGRESS_MIN_BYTES
    if not show:
        return nullcontext(), lambda n: None
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = bar.add_task("reading", total=total)
    return bar, lambda n: bar.advance(task, n)


def iter_events(
    paths: Sequence[Path | str],
    *,
    warn: Warn = _stderr_warning,
    progress: bool | None = None,
) -> Iterator[tuple[str, int, bytes]]:
    """Every line of every file, in the order given: (file name, line number from 1, raw line).

    Lines are bytes without the ``\\n`` (blank lines included, so numbers match
    an editor's). ``progress``: None draws a bar on stderr only when stderr is
    a terminal and the input is long. Raises ``OSError`` for a file that
    cannot be opened, before yielding anything of it.
    """
    files = [Path(p) for p in paths]
    total = sum(p.stat().st_size for p in files)
    ctx, advance = _progress(total, progress)
    with ctx:
        for path in files:
            yield from _lines_of(path, warn, advance)


def iter_text_lines(
    paths: Sequence[Path | str], *, warn: Warn = _stderr_warning, progress: bool | None = None
) -> Iterator[str]:
    """The lines as text, for a consumer that reads ``str`` lines (today's ``Replay.feed``).

    A line that is not UTF-8 is passed on with replacement characters, so the
    JSON parser names it a bad line instead of the reader crashing.
    """
    for _name, _n, line in iter_events(paths, warn=warn, progress=progress):
        yield line.decode("utf-8", errors="replace")

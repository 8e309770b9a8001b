"""Reading recordings: plain and zstd files, many frames, damaged tails."""

from __future__ import annotations

from pathlib import Path

import pytest
import zstandard

from supervisor.record import iter_events, iter_text_lines


def lines(n: int, tag: str) -> list[bytes]:
    return [f'{{"t":{i},"type":"quote","id":"{tag}"}}'.encode() for i in range(n)]


def read(paths: list[Path]) -> tuple[list[tuple[str, int, bytes]], list[str]]:
    warnings: list[str] = []
    return list(iter_events(paths, warn=warnings.append)), warnings


def test_zstd_files_of_many_frames_read_as_one_stream(tmp_path: Path) -> None:
    a, b, c = lines(3, "a"), lines(1000, "b"), lines(2, "c")
    cctx = zstandard.ZstdCompressor()
    frames = b"".join(cctx.compress(b"\n".join(x) + b"\n") for x in (a, b, c))
    path = tmp_path / "x.jsonl.zst"
    path.write_bytes(frames)
    got, warnings = read([path])
    assert [x for _, _, x in got] == a + b + c
    assert [n for _, n, _ in got] == list(range(1, len(a + b + c) + 1))
    assert not warnings


def test_a_line_may_span_frames(tmp_path: Path) -> None:
    cctx = zstandard.ZstdCompressor()
    path = tmp_path / "x.jsonl.zst"
    path.write_bytes(cctx.compress(b'{"t":1,"ty') + cctx.compress(b'pe":"heartbeat"}\n'))
    got, warnings = read([path])
    assert [x for _, _, x in got] == [b'{"t":1,"type":"heartbeat"}'] and not warnings


def test_several_files_in_the_order_given_with_their_names(tmp_path: Path) -> None:
    p1, p2 = tmp_path / "1.jsonl", tmp_path / "2.jsonl.zst"
    p1.write_bytes(b"\n".join(lines(2, "p")) + b"\n")
    p2.write_bytes(zstandard.ZstdCompressor().compress(b"\n".join(lines(2, "q")) + b"\n"))
    got, _ = read([p2, p1])
    assert [(Path(f).name, n) for f, n, _ in got] == [
        ("2.jsonl.zst", 1),
        ("2.jsonl.zst", 2),
        ("1.jsonl", 1),
        ("1.jsonl", 2),
    ]


def test_a_cut_short_last_line_is_skipped_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b"\n".join(lines(3, "a")) + b'\n{"t":3,"type":"qu')
    got, warnings = read([path])
    assert [x for _, _, x in got] == lines(3, "a")
    assert len(warnings) == 1 and "line 4" in warnings[0] and "cut short" in warnings[0]


def test_a_complete_last_line_without_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b"\n".join(lines(3, "a")))
    got, warnings = read([path])
    assert [x for _, _, x in got] == lines(3, "a") and not warnings


def test_a_zstd_frame_cut_short_keeps_its_flushed_blocks(tmp_path: Path) -> None:
    obj = zstandard.ZstdCompressor().compressobj()
    first = b"\n".join(lines(50, "a")) + b"\n"
    flushed = obj.compress(first) + obj.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
    rest = obj.compress(b"\n".join(lines(50, "b")) + b"\n") + obj.flush()
    path = tmp_path / "x.jsonl.zst"
    path.write_bytes(flushed + rest[:7])
    got, warnings = read([path])
    assert [x for _, _, x in got] == lines(50, "a")
    assert any("cut short" in w for w in warnings)


def test_corrupt_zstd_data_stops_that_file_with_a_warning(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl.zst"
    bad.write_bytes(b"this is not zstd at all\n")
    good = tmp_path / "good.jsonl"
    good.write_bytes(b"\n".join(lines(1, "g")) + b"\n")
    got, warnings = read([bad, good])
    assert [x for _, _, x in got] == lines(1, "g")
    assert len(warnings) == 1 and "corrupt" in warnings[0]


def test_a_missing_file_raises_before_anything_is_read(tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_bytes(b"{}\n")
    it = iter_events([good, tmp_path / "missing.jsonl"])
    with pytest.raises(OSError):
        next(it)


def test_text_lines_and_a_forced_progress_bar(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b"\n".join(lines(2, "a")) + b"\n\xff\xfe\n")
    got = list(iter_text_lines([path], progress=True))
    assert got[:2] == [x.decode() for x in lines(2, "a")]
    assert got[2] == "\ufffd\ufffd"  # not UTF-8: passed on for the parser to refuse


def test_the_progress_bar_is_drawn_only_for_a_terminal_and_a_long_input(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from contextlib import nullcontext

    from supervisor.record import reader

    class Tty:
        def __init__(self, tty: bool) -> None:
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

        def write(self, s: str) -> int:
            return len(s)

        def flush(self) -> None:
            pass

    big = reader.PROGRESS_MIN_BYTES
    monkeypatch.setattr(reader.sys, "stderr", Tty(False))
    assert isinstance(reader._progress(big * 10, None)[0], nullcontext)
    monkeypatch.setattr(reader.sys, "stderr", Tty(True))
    assert isinstance(reader._progress(big - 1, None)[0], nullcontext)
    assert not isinstance(reader._progress(big, None)[0], nullcontext)

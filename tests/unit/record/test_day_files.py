"""File names of a recording: parts, order, retention boundary."""

from __future__ import annotations

import datetime as dt

import pytest

from supervisor.record.day_files import Part, expired, next_part, parse_name, utc_day

D = dt.date(2026, 12, 6)


def test_part_names_sort_in_write_order() -> None:
    names = [Part(D, n).data_name for n in (0, 1, 2, 10, 11)]
    names += [Part(D + dt.timedelta(days=1), 0).data_name]
    assert sorted(names) == names
    assert Part(D, 0).data_name == "events-2026-12-06.000.jsonl.zst"
    assert Part(D, 7).config_name == "events-2026-12-06.007.toml"


def test_parse_name_reads_ours_and_ignores_the_rest() -> None:
    assert parse_name("events-2026-12-06.003.jsonl.zst") == Part(D, 3)
    assert parse_name("events-2026-12-06.003.toml") == Part(D, 3)
    for other in ("events-2026-12-06.jsonl.zst", "events-2026-13-06.000.toml", "x.toml", ""):
        assert parse_name(other) is None


def test_next_part_follows_every_part_of_the_day_on_disk() -> None:
    assert next_part(D, []) == Part(D, 0)
    existing = [
        "events-2026-12-06.000.toml",
        "events-2026-12-06.004.jsonl.zst",
        "events-2026-12-05.009.toml",
    ]
    assert next_part(D, existing) == Part(D, 5)


def test_retention_keeps_today_and_retention_days_before() -> None:
    names = [Part(D - dt.timedelta(days=a), 0).data_name for a in range(5)] + ["other"]
    assert expired(names, D, 3) == [Part(D - dt.timedelta(days=4), 0).data_name]
    assert expired(names, D, 30) == []


def test_utc_day_switches_at_midnight_utc() -> None:
    midnight = dt.datetime(2026, 12, 7, tzinfo=dt.UTC).timestamp()
    assert utc_day(midnight - 1e-3) == D and utc_day(midnight) == D + dt.timedelta(days=1)
    with pytest.raises(ValueError):
        utc_day(float("nan"))

"""`chronos schedule preview`, in-process: one ISO 8601 UTC instant per line."""

from __future__ import annotations

from pathlib import Path

from tests.cli.invoke import Ran, run_chronos
from tests.support.processes import base_env


def preview(tmp_path: Path, *args: str) -> Ran:
    return run_chronos(["schedule", "preview", *args], env=base_env(), cwd=tmp_path)


def test_cron_preview_in_a_zone_across_spring_forward(tmp_path: Path) -> None:
    result = preview(
        tmp_path,
        "30 2 * * *",
        "--tz",
        "America/New_York",
        "--after",
        "2026-03-07T12:00:00+00:00",
        "--count",
        "3",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "2026-03-08T07:00:00+00:00",  # 02:30 does not exist: the run is at the jump, 03:00 EDT
        "2026-03-09T06:30:00+00:00",
        "2026-03-10T06:30:00+00:00",
    ]


def test_interval_preview_counts_from_after(tmp_path: Path) -> None:
    result = preview(tmp_path, "every 90s", "--after", "2026-01-01T00:00:00Z", "--count", "2")
    assert result.stdout.splitlines() == [
        "2026-01-01T00:01:30+00:00",
        "2026-01-01T00:03:00+00:00",
    ]


def test_one_shot_preview_prints_one_line_or_none(tmp_path: Path) -> None:
    future = preview(
        tmp_path, "2026-06-01T09:00:00+02:00", "--after", "2026-01-01T00:00:00Z", "--count", "5"
    )
    assert future.stdout.splitlines() == ["2026-06-01T07:00:00+00:00"]
    past = preview(tmp_path, "2025-06-01T09:00:00+02:00", "--after", "2026-01-01T00:00:00Z")
    assert past.returncode == 0 and past.stdout == ""


def test_bad_input_is_one_clear_line(tmp_path: Path) -> None:
    bad_zone = preview(tmp_path, "0 9 * * *", "--tz", "Mars/Olympus")
    assert bad_zone.returncode == 2
    assert len(bad_zone.stderr.strip().splitlines()) == 1
    assert "unknown timezone" in bad_zone.stderr
    naive = preview(tmp_path, "0 9 * * *", "--after", "2026-01-01T00:00:00")
    assert naive.returncode == 2 and "--after" in naive.stderr


def test_preview_follows_crontab_for_equal_ranges_day_fields_and_long_fall_backs(
    tmp_path: Path,
) -> None:
    def lines(expression: str, zone: str, after: str, count: int) -> list[str]:
        result = preview(
            tmp_path, expression, "--tz", zone, "--after", after, "--count", str(count)
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()

    assert lines("0 9-9 * * *", "UTC", "2026-01-01T00:00:00Z", 2) == [
        "2026-01-01T09:00:00+00:00",
        "2026-01-02T09:00:00+00:00",
    ]
    assert lines("0 0 */2 * 5", "UTC", "2026-01-01T00:00:00Z", 2) == [
        "2026-01-09T00:00:00+00:00",
        "2026-01-23T00:00:00+00:00",
    ]
    assert lines("0 * * * *", "Antarctica/Vostok", "1994-01-31T16:30:00Z", 2) == [
        "1994-01-31T17:00:00+00:00",
        "1994-01-31T18:00:00+00:00",
    ]
    assert lines("@weekly", "UTC", "2026-01-01T00:00:00Z", 1) == ["2026-01-04T00:00:00+00:00"]


def test_preview_refuses_an_out_of_range_field_naming_it(tmp_path: Path) -> None:
    result = preview(tmp_path, "0 24 * * *")
    assert result.returncode == 2
    assert "hour: 24 is out of range 0-23" in result.stderr
    assert result.stdout == ""

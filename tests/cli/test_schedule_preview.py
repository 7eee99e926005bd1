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

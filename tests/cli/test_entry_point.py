"""The installed `chronos` entry point, end to end as a real process: the one CLI test that
does not run in-process (the others use `tests.cli.invoke.run_chronos`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.processes import CHRONOS, base_env


def test_the_installed_command_runs(tmp_path: Path) -> None:
    result = subprocess.run(
        [CHRONOS, "schedule", "preview", "every 90s", "--after", "2026-01-01T00:00:00Z"],
        env=base_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "2026-01-01T00:01:30+00:00",
        "2026-01-01T00:03:00+00:00",
        "2026-01-01T00:04:30+00:00",
        "2026-01-01T00:06:00+00:00",
        "2026-01-01T00:07:30+00:00",
    ]

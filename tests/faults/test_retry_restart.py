"""Retries live in the store: a run that failed and awaits its retry is retried by the agent that
starts after a restart, with the same dedup key and the next attempt number."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.deployment import deployment, eventually

pytestmark = [pytest.mark.faults, pytest.mark.e2e]

# Fails the first time (no marker yet), succeeds after; notes its key and attempt each time.
FAIL_ONCE = (
    "import os, sys, pathlib\n"
    "notes, marker = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])\n"
    "with notes.open('a') as f:\n"
    "    f.write(os.environ['CHRONOS_DEDUP_KEY'] + ' ' + os.environ['CHRONOS_ATTEMPT'] + '\\n')\n"
    "if not marker.exists():\n"
    "    marker.write_text('failed once')\n"
    "    sys.exit(3)\n"
)


def test_a_retry_due_while_the_agent_was_down_runs_after_the_restart(
    tmp_path: Path, database_url: str
) -> None:
    notes, marker = tmp_path / "attempts.txt", tmp_path / "failed-once"
    with deployment(tmp_path, database_url) as d:
        d.agent_env.update(CHRONOS_OUTBOX_DRAIN_INTERVAL_SECONDS="1")
        with d.start_agent(), d.admin() as admin:
            created = admin.post(
                "/api/jobs",
                json={
                    "name": "retried",
                    "schedule": "in 2s",
                    "target": {
                        "type": "command",
                        "argv": [sys.executable, "-c", FAIL_ONCE, str(notes), str(marker)],
                    },
                    "retry": {"max_attempts": 3, "backoff_seconds": 4, "max_backoff_seconds": 4},
                },
            )
            assert created.status_code == 201, created.text
            job_id = created.json()["id"]

            def retrying() -> list[dict[str, Any]] | None:
                runs: list[dict[str, Any]] = admin.get(f"/api/jobs/{job_id}/runs").json()
                return runs if runs and runs[0]["status"] == "retrying" else None

            [run] = eventually(retrying, timeout=20, what="the first attempt to fail")
        # The agent is down while the retry comes due.
        time.sleep(4.5)
        with d.start_agent(), d.admin() as admin:

            def succeeded() -> list[dict[str, Any]] | None:
                runs: list[dict[str, Any]] = admin.get(f"/api/jobs/{job_id}/runs").json()
                return runs if runs and runs[0]["status"] == "succeeded" else None

            [done] = eventually(succeeded, timeout=20, what="the retry after the restart")
    assert done["key"] == run["key"]
    assert done["attempt"] == 2
    key = run["key"]
    assert notes.read_text().splitlines() == [f"{key} 1", f"{key} 2"]

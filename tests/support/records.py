"""Domain records built in memory, for the pure rules that take them (no store involved)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from app.domain.records import JobRecord
from app.domain.states import Catchup, JobState, Overlap

ANCHOR = datetime(2030, 1, 1, tzinfo=UTC)
"""When the jobs built here were created (`anchor_at`): a whole hour, in UTC."""


def job_record(**overrides: Any) -> JobRecord:
    """A scheduled hourly job created at `ANCHOR` that never ran, with the default policies
    (no misfire grace, `catchup = run_once`, `overlap = skip`); `overrides` replace fields."""
    job = JobRecord(
        id="job-1",
        name="job-1",
        schedule="every 1h",
        timezone="UTC",
        target={"type": "command", "argv": ["true"]},
        repeat=None,
        runs_started=0,
        state=JobState.SCHEDULED,
        anchor_at=ANCHOR,
        next_run_at=None,
        last_run_at=None,
        last_status=None,
        created_at=ANCHOR,
        updated_at=ANCHOR,
        misfire_grace_seconds=None,
        catchup=Catchup.RUN_ONCE,
        overlap=Overlap.SKIP,
        completed_at=None,
    )
    return replace(job, **overrides)


def job_row(job_id: str = "job-1", *, next_run_at: datetime, **overrides: Any) -> dict[str, Any]:
    """The values of a scheduled `every 1m` job for `tx.jobs.insert`, due at `next_run_at`."""
    return {
        "id": job_id,
        "name": job_id,
        "schedule": "every 1m",
        "timezone": "UTC",
        "target": {"type": "command", "argv": ["true"]},
        "repeat": None,
        "runs_started": 0,
        "state": JobState.SCHEDULED,
        "anchor_at": ANCHOR,
        "next_run_at": next_run_at,
        "created_at": ANCHOR,
        "updated_at": ANCHOR,
        **overrides,
    }

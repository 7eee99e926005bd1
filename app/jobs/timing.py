"""Where a stored job's schedule goes next: the bridge from records to the pure schedule math."""

from __future__ import annotations

from datetime import datetime

from app.schedule import next_fire_after, parse_schedule
from app.store import JobRecord


def next_run_after(job: JobRecord, after: datetime) -> datetime | None:
    """The job's first fire strictly after `after`, or None when its schedule is exhausted."""
    schedule = parse_schedule(job.schedule, job.timezone)
    return next_fire_after(schedule, job.anchor_at, after)

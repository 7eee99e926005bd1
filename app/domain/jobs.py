"""Where a job goes next: the bridge from a stored job to the pure schedule math."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.domain.records import JobRecord
from app.domain.states import JobState
from app.schedule import missed_slots, next_fire_after, parse_schedule


def next_run_after(job: JobRecord, after: datetime) -> datetime | None:
    """The job's first fire strictly after `after`, or None when its schedule is exhausted."""
    schedule = parse_schedule(job.schedule, job.timezone)
    return next_fire_after(schedule, job.anchor_at, after)


def advance_past(job: JobRecord, fire_at: datetime, now: datetime) -> tuple[int, datetime | None]:
    """For a fire of the job's slot `fire_at` handled at `now`: how many slots it stands for
    (itself plus those that passed since, when late) and the job's next fire after them.

    NAS owns the delivery clock: an early fire advances from its own slot."""
    schedule = parse_schedule(job.schedule, job.timezone)
    if now <= fire_at:
        return 1, next_fire_after(schedule, job.anchor_at, fire_at)
    slots = missed_slots(schedule, job.anchor_at, fire_at, now)
    return slots.count, slots.next_after


def advanced_job(
    *, next_run_at: datetime | None, runs_started: int, now: datetime
) -> dict[str, Any]:
    """Field values of a job moved past a fire: with no next fire it is completed."""
    return {
        "next_run_at": next_run_at,
        "runs_started": runs_started,
        "state": JobState.SCHEDULED if next_run_at is not None else JobState.COMPLETED,
        "completed_at": None if next_run_at is not None else now,
        "updated_at": now,
    }

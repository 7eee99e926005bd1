"""Catch-up: what to do with a job whose fire time passed while nothing was armed.

Nothing is dropped silently: the passed slots are recorded as one `missed` record carrying
their count. With `catchup = run_once` the job then runs once now (a `catchup:` run standing
for all of them, within the misfire grace and the overlap policy); with `skip` it does not.
Either way the schedule continues at its next future fire.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from app.domain.fires import catchup_key, fire_dedup_key, new_fire
from app.domain.jobs import advanced_job
from app.domain.records import FireRecord, JobRecord
from app.domain.states import Catchup, JobState, NasOp, Overlap, RunKind, RunStatus
from app.schedule import missed_slots, parse_schedule
from app.store import DuplicateFire, Tx


@dataclass(frozen=True)
class CatchUp:
    missed: int
    run: FireRecord | None
    next_run_at: datetime | None


async def catch_up(
    tx: Tx,
    seen: JobRecord,
    now: datetime,
    *,
    owner: str,
    lease: timedelta,
    force_run: bool = False,
) -> CatchUp:
    """Record the job's passed slots and maybe admit one catch-up run (leased to `owner`; the
    caller starts it after commit), in the caller's transaction. `force_run` runs it whatever
    the grace and overlap say (an explicit resume). Raises `DuplicateFire` when the job is no
    longer as `seen`: another replica or a fire moved it on first."""
    # Lock the job first (the order admission uses) and make sure it is still as seen.
    job = await tx.jobs.get(seen.id, for_update=True)
    if (
        job is None
        or job.state != JobState.SCHEDULED
        or job.next_run_at is None
        or job.next_run_at != seen.next_run_at
        or job.next_run_at > now
    ):
        raise DuplicateFire(fire_dedup_key(seen.id, seen.next_run_at or now))
    schedule = parse_schedule(job.schedule, job.timezone)
    slots = missed_slots(schedule, job.anchor_at, job.next_run_at, now)
    plural = "s" if slots.count > 1 else ""
    await tx.fires.insert(
        new_fire(
            job_id=job.id,
            fire_at=job.next_run_at,
            dedup_key=fire_dedup_key(job.id, job.next_run_at),
            kind=RunKind.SCHEDULED,
            status=RunStatus.MISSED,
            now=now,
            slots=slots.count,
            error=f"{slots.count}{'+' if slots.capped else ''} slot{plural} passed while nothing"
            " was armed at NAS",
        )
    )
    run: FireRecord | None = None
    lateness = (now - slots.last).total_seconds()
    within_grace = job.misfire_grace_seconds is None or lateness <= job.misfire_grace_seconds
    free = job.overlap == Overlap.ALLOW or await tx.fires.running_count(job.id, now) == 0
    if force_run or (job.catchup == Catchup.RUN_ONCE and within_grace and free):
        run = await tx.fires.insert(
            new_fire(
                job_id=job.id,
                fire_at=slots.last,
                dedup_key=catchup_key(job.id, slots.last),
                kind=RunKind.CATCHUP,
                status=RunStatus.RUNNING,
                now=now,
                lease_owner=owner,
                lease_expires_at=now + lease,
            )
        )
    runs_started = job.runs_started + (1 if run else 0)
    exhausted = job.repeat is not None and runs_started >= job.repeat
    nxt = None if exhausted else slots.next_after
    values = advanced_job(next_run_at=nxt, runs_started=runs_started, now=now)
    values["last_status"] = RunStatus.RUNNING if run else RunStatus.MISSED
    if run:
        values["last_run_at"] = now
    if not await tx.jobs.advance(job.id, expected_next_run_at=job.next_run_at, values=values):
        raise DuplicateFire(fire_dedup_key(job.id, job.next_run_at))
    if nxt is not None:
        await tx.outbox.queue(job.id, NasOp.PROVISION, nxt, now)
    return CatchUp(slots.count, run, nxt)

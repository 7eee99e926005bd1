"""Job lifecycle: create, edit, pause, resume, delete, trigger. Each change arms or cancels
that job at NAS through the outbox before it answers; a NAS failure leaves the operation
queued for the outbox to retry, and the change itself still succeeds."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from app.clock import Clock
from app.domain.fires import manual_key, new_fire
from app.domain.jobs import next_run_after
from app.domain.records import FireRecord, JobRecord, OutboxRecord
from app.domain.states import Catchup, JobState, NasOp, RunKind, RunStatus
from app.errors import Conflict, InvalidRequest, NotFound
from app.fire.catchup import catch_up
from app.fire.policy import decide
from app.jobs.preflight import require_runnable
from app.jobs.schemas import JobCreate, JobPatch, RetrySpec
from app.nas.client import RetryBudget
from app.outbox import OutboxPusher
from app.runner.executor import RunExecutor
from app.schedule import Schedule, ScheduleError, first_fire, parse_schedule, upcoming_fires
from app.store import Store, Tx

log = logging.getLogger(__name__)


ONE_SHOT_REPEAT = "repeat: a one-shot schedule runs once; use 'every …' or cron to repeat"


def parse_job_schedule(schedule: str, timezone: str) -> Schedule:
    try:
        return parse_schedule(schedule, timezone)
    except ScheduleError as exc:
        field = "timezone" if "timezone" in str(exc) else "schedule"
        raise InvalidRequest(f"{field}: {exc}") from exc


def retry_values(spec: RetrySpec | None) -> dict[str, int]:
    """The job's columns for a retry policy (None: never retried)."""
    policy = (spec or RetrySpec()).policy()
    return {
        "retry_max_attempts": policy.max_attempts,
        "retry_backoff_seconds": policy.backoff_seconds,
        "retry_max_backoff_seconds": policy.max_backoff_seconds,
    }


def _first_run(schedule: Schedule, repeat: int | None, now: datetime) -> datetime:
    if schedule.is_one_shot and repeat not in (None, 1):
        raise InvalidRequest(ONE_SHOT_REPEAT)
    first = first_fire(schedule, now)
    if first is None or first <= now:
        raise InvalidRequest(f"schedule: {schedule.text!r} is in the past")
    return first


Plan = Callable[[str, str, int | None, datetime], tuple[str, int | None, datetime]]


def first_run_plan(
    schedule: str, timezone: str, repeat: int | None, now: datetime
) -> tuple[str, int | None, datetime]:
    """A new job's schedule as stored, its `repeat` and its first fire; or `InvalidRequest`."""
    parsed = parse_job_schedule(schedule, timezone)
    repeat = repeat if repeat is not None else (1 if parsed.is_one_shot else None)
    return parsed.text, repeat, _first_run(parsed, repeat, now)


def new_job_values(data: JobCreate, now: datetime, plan: Plan = first_run_plan) -> dict[str, Any]:
    """The columns of a new job under a fresh id, or `InvalidRequest` naming the field (`plan`
    may be a memo of `first_run_plan`). The target's preflight is the caller's."""
    text, repeat, first = plan(data.schedule, data.timezone, data.repeat, now)
    job_id = secrets.token_hex(8)  # 64 random bits: short enough to type
    return {
        "id": job_id,
        "name": data.name or f"job-{job_id}",  # names are unique: the whole id, not a prefix
        "schedule": text,
        "timezone": data.timezone,
        "target": data.target.model_dump(mode="json"),
        "repeat": repeat,
        "runs_started": 0,
        "state": JobState.SCHEDULED,
        "anchor_at": now,
        "next_run_at": first,
        "created_at": now,
        "updated_at": now,
        "misfire_grace_seconds": data.misfire_grace_seconds,
        "catchup": data.catchup,
        "overlap": data.overlap,
        **retry_values(data.retry),
    }


class JobService:
    def __init__(
        self,
        store: Store,
        pusher: OutboxPusher,
        executor: RunExecutor,
        *,
        node_id: str,
        lease_seconds: int,
        arm_budget: RetryBudget,
        clock: Clock,
    ) -> None:
        self.store = store
        self.pusher = pusher
        self.executor = executor
        self.node_id = node_id
        self.lease = timedelta(seconds=lease_seconds)
        self.arm_budget = arm_budget
        self.clock = clock

    # -- reads -------------------------------------------------------------------------

    async def get(self, job_id: str) -> tuple[JobRecord, OutboxRecord | None]:
        """The job with its pending NAS operation, if any."""
        async with self.store.transaction() as tx:
            job = await self._require(tx, job_id)
            return job, await tx.outbox.get(job_id)

    async def list_jobs(self) -> list[tuple[JobRecord, OutboxRecord | None]]:
        """Every job with its pending NAS operation, if any."""
        async with self.store.transaction() as tx:
            jobs = await tx.jobs.list_all()
            pending = {op.job_id: op for op in await tx.outbox.list_all()}
        return [(job, pending.get(job.id)) for job in jobs]

    async def runs(self, job_id: str, *, limit: int) -> list[FireRecord]:
        async with self.store.transaction() as tx:
            await self._require(tx, job_id)
            return await tx.fires.list_for_job(job_id, limit=limit)

    async def runs_across_jobs(self, status: RunStatus | None, *, limit: int) -> list[FireRecord]:
        """Runs of every job, newest first; only those in `status` when given."""
        async with self.store.transaction() as tx:
            return await tx.fires.list_by_status(status, limit=limit)

    # -- changes -----------------------------------------------------------------------

    async def create(self, data: JobCreate) -> JobRecord:
        now = self.clock()
        values = new_job_values(data, now)
        await require_runnable(data.target)
        job_id, first = values["id"], values["next_run_at"]
        async with self.store.transaction() as tx:
            job = await tx.jobs.insert(values)
            await tx.outbox.queue(job_id, NasOp.PROVISION, first, now)
        log.info("job created", extra={"job_id": job_id, "next_run_at": first.isoformat()})
        await self._sync(job_id)
        return job

    async def update(self, job_id: str, patch: JobPatch) -> JobRecord:
        """Apply a partial edit. Only a change of schedule or timezone re-arms the job."""
        now = self.clock()
        # null clears `repeat` and `misfire_grace_seconds` (unlimited) and `retry` (never);
        # elsewhere it is ignored.
        changes = {
            k: v
            for k, v in patch.model_dump(exclude_unset=True).items()
            if v is not None or k in ("repeat", "misfire_grace_seconds", "retry")
        }
        if patch.target is not None:
            await require_runnable(patch.target)
        async with self.store.transaction() as tx:
            job = await self._require(tx, job_id, for_update=True)
            values: dict[str, Any] = {"updated_at": now}
            if "name" in changes:
                values["name"] = changes["name"]
            if patch.target is not None:
                values["target"] = patch.target.model_dump(mode="json")
            for policy in ("repeat", "misfire_grace_seconds", "catchup", "overlap"):
                if policy in changes:
                    values[policy] = changes[policy]
            if "retry" in changes:
                values.update(retry_values(patch.retry))
            op: tuple[NasOp, datetime | None] | None = None
            new_schedule = changes.get("schedule", job.schedule)
            new_zone = changes.get("timezone", job.timezone)
            if (new_schedule, new_zone) != (job.schedule, job.timezone):
                schedule = parse_job_schedule(new_schedule, new_zone)
                was_one_shot = parse_schedule(job.schedule, job.timezone).is_one_shot
                if "repeat" not in changes and schedule.is_one_shot != was_one_shot:
                    values["repeat"] = 1 if schedule.is_one_shot else None
                first = _first_run(schedule, values.get("repeat", job.repeat), now)
                values.update(
                    schedule=schedule.text, timezone=new_zone, anchor_at=now, next_run_at=first
                )
                if job.state == JobState.COMPLETED:
                    values.update(state=JobState.SCHEDULED, runs_started=0, completed_at=None)
                if job.state != JobState.PAUSED:
                    op = (NasOp.PROVISION, first)
            else:
                repeat = values.get("repeat", job.repeat)
                one_shot = parse_schedule(job.schedule, job.timezone).is_one_shot
                if "repeat" in changes and repeat not in (None, 1) and one_shot:
                    raise InvalidRequest(ONE_SHOT_REPEAT)
                if (
                    job.state != JobState.COMPLETED
                    and repeat is not None
                    and job.runs_started >= repeat
                ):
                    values.update(state=JobState.COMPLETED, next_run_at=None, completed_at=now)
                    if job.state == JobState.SCHEDULED:
                        op = (NasOp.CANCEL, None)
            updated = await tx.jobs.update(job_id, values)
            if op is not None:
                await tx.outbox.queue(job_id, op[0], op[1], now)
        if op is not None:
            await self._sync(job_id)
        return updated

    async def delete(self, job_id: str) -> None:
        now = self.clock()
        async with self.store.transaction() as tx:
            await self._require(tx, job_id, for_update=True)
            await tx.fires.delete_for_jobs([job_id])
            await tx.jobs.delete(job_id)
            await tx.outbox.queue(job_id, NasOp.CANCEL, None, now)
        log.info("job deleted", extra={"job_id": job_id})
        await self._sync(job_id)

    async def pause(self, job_id: str) -> JobRecord:
        now = self.clock()
        async with self.store.transaction() as tx:
            job = await self._require(tx, job_id, for_update=True)
            if job.state == JobState.COMPLETED:
                raise Conflict("job is completed; edit its schedule to run it again")
            if job.state == JobState.PAUSED:
                return job
            job = await tx.jobs.update(job_id, {"state": JobState.PAUSED, "updated_at": now})
            await tx.outbox.queue(job_id, NasOp.CANCEL, None, now)
        await self._sync(job_id)
        return job

    async def resume(self, job_id: str) -> JobRecord:
        """Resume from now. A one-shot whose time passed runs now with `catchup = run_once`,
        and is refused with 409 (changing nothing) otherwise."""
        now = self.clock()
        run: FireRecord | None = None
        async with self.store.transaction() as tx:
            job = await self._require(tx, job_id, for_update=True)
            if job.state == JobState.COMPLETED:
                raise Conflict("job is completed; edit its schedule to run it again")
            if job.state == JobState.SCHEDULED:
                return job
            schedule = parse_job_schedule(job.schedule, job.timezone)
            if schedule.is_one_shot:
                due = job.next_run_at or first_fire(schedule, job.anchor_at)
                assert due is not None
                if due <= now and job.catchup != Catchup.RUN_ONCE:
                    raise Conflict(
                        f"the one-shot time {due.isoformat()} has passed and catchup is"
                        f" {job.catchup!r}; edit the schedule to run it again"
                    )
                nxt: datetime | None = due
            else:
                nxt = next_run_after(job, now)
            if nxt is None:
                raise Conflict("the schedule has no future fire")
            job = await tx.jobs.update(
                job_id, {"state": JobState.SCHEDULED, "next_run_at": nxt, "updated_at": now}
            )
            if nxt <= now:
                caught_up = await catch_up(
                    tx, job, now, owner=self.node_id, lease=self.lease, force_run=True
                )
                run = caught_up.run
                job = await self._require(tx, job_id)
            else:
                await tx.outbox.queue(job_id, NasOp.PROVISION, nxt, now)
        if run is not None:
            self.executor.start(run, job.target)
        await self._sync(job_id)
        return job

    async def trigger(self, job_id: str) -> FireRecord:
        """Run the job now, outside its schedule, in its own key space (`manual:<uuid>`).

        It never consumes or shifts a scheduled fire, does not count toward `repeat`, and
        honours the overlap policy (the run may come back `skipped` or `buffered`)."""
        now = self.clock()
        async with self.store.transaction() as tx:
            job = await self._require(tx, job_id, for_update=True)
            decision = decide(
                job,
                None,
                now,
                running=await tx.fires.running_count(job_id, now),
                buffered=await tx.fires.buffered(job_id) is not None,
            )
            fire = await tx.fires.insert(
                new_fire(
                    job_id=job_id,
                    fire_at=now,
                    dedup_key=manual_key(),
                    kind=RunKind.MANUAL,
                    status=decision.status,
                    now=now,
                    lease_owner=self.node_id,
                    lease_expires_at=now + self.lease,
                    error=decision.reason if decision.status == RunStatus.SKIPPED else None,
                )
            )
            if decision.status == RunStatus.RUNNING:
                await tx.jobs.update(job_id, {"last_run_at": now, "last_status": RunStatus.RUNNING})
        if fire.status == RunStatus.RUNNING:
            self.executor.start(fire, job.target)
        log.info(
            "manual run admitted",
            extra={"job_id": job_id, "run_key": fire.dedup_key, "status": fire.status},
        )
        return fire

    async def preview(self, job: JobRecord, count: int) -> list[datetime]:
        """The job's next `count` fires, starting at `next_run_at`."""
        if job.next_run_at is None or job.state == JobState.COMPLETED:
            return []
        schedule = parse_job_schedule(job.schedule, job.timezone)
        return upcoming_fires(schedule, job.anchor_at, job.next_run_at, count)

    async def purge_completed(self, retention: timedelta) -> int:
        """Delete completed jobs (and their runs) that finished more than `retention` ago."""
        async with self.store.transaction() as tx:
            old = await tx.jobs.completed_before(self.clock() - retention)
            await tx.fires.delete_for_jobs(old)
            return await tx.jobs.delete_many(old)

    # -- helpers -------------------------------------------------------------------------

    async def _require(self, tx: Tx, job_id: str, *, for_update: bool = False) -> JobRecord:
        job = await tx.jobs.get(job_id, for_update=for_update)
        if job is None:
            raise NotFound(f"no job with id {job_id!r}")
        return job

    async def _sync(self, job_id: str) -> None:
        if not await self.pusher.push_job(job_id, budget=self.arm_budget):
            log.warning("NAS did not acknowledge; the outbox retries", extra={"job_id": job_id})

"""Declarative jobs (`POST /api/jobs/apply`, `chronos apply`): make the stored jobs what a file
declares, each job keyed by its name (names are unique).

Every item is judged as a create judges it (its body, its schedule, a python target's
module), and a name given twice is refused, before anything is written: one invalid item and
nothing changes (400 naming each problem by index). Each declared job is then compared with
the stored job of its name on the declared fields, an omitted field standing for its default:

- no such job: **create** it and arm it;
- a field differs: **update** it as PATCH would: a new schedule or timezone re-arms it (a
  completed job is scheduled again, a paused one stays paused and unarmed), a `repeat` already
  reached completes it;
- nothing differs: **unchanged**; the job is neither written nor armed again, so applying the
  same file twice changes nothing the second time.

With `prune`, every stored job the file does not name is **deleted** (and cancelled at NAS).
All the changes are written in one transaction, the rows they touch locked first; then the
arms and cancels are pushed as a batch pushes them. A dry run answers the same comparison and
writes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from app.domain.records import JobRecord
from app.domain.states import JobState, NasOp
from app.errors import InvalidRequest
from app.jobs.apply_schemas import JobApplyOut, JobDeclared
from app.jobs.batch import (
    MAX_PROBLEMS_PER_ITEM,
    BatchInvalid,
    domain_problem,
    preflight_items,
    validation_problem,
)
from app.jobs.batch_schemas import BatchItemError
from app.jobs.schemas import JobOut
from app.jobs.service import (
    ONE_SHOT_REPEAT,
    JobService,
    first_run_plan,
    new_job_values,
    parse_job_schedule,
    retry_values,
)
from app.schedule import Schedule
from app.store import Tx

log = logging.getLogger(__name__)

_RESCHEDULING = ("schedule", "timezone")
_CHUNK = 500  # ids per statement when deleting many jobs


@dataclass(frozen=True)
class Declared:
    """One valid item of the file: its body, its schedule parsed, its `repeat` defaulted."""

    index: int
    data: JobDeclared
    schedule: Schedule
    repeat: int | None

    @property
    def name(self) -> str:
        return self.data.name

    def fields(self) -> dict[str, Any]:
        """The declared fields as they would be stored, an omitted one at its default."""
        return {
            "schedule": self.schedule.text,
            "timezone": self.data.timezone,
            "target": self.data.target.model_dump(mode="json"),
            "repeat": self.repeat,
            "misfire_grace_seconds": self.data.misfire_grace_seconds,
            "catchup": self.data.catchup,
            "overlap": self.data.overlap,
            "retry": self.data.retry.policy(),
        }


def stored_fields(job: JobRecord) -> dict[str, Any]:
    """The fields of `Declared.fields` as `job` has them."""
    return {
        "schedule": job.schedule,
        "timezone": job.timezone,
        "target": job.target,
        "repeat": job.repeat,
        "misfire_grace_seconds": job.misfire_grace_seconds,
        "catchup": job.catchup,
        "overlap": job.overlap,
        "retry": job.retry,
    }


@dataclass
class Update:
    job: JobRecord
    values: dict[str, Any]
    op: tuple[NasOp, datetime | None] | None  # the NAS operation it needs, if any


@dataclass
class Plan:
    """What an apply does, job by job."""

    creates: list[dict[str, Any]] = field(default_factory=list)  # the columns of each new job
    updates: list[Update] = field(default_factory=list)
    unchanged: list[JobRecord] = field(default_factory=list)
    deletes: list[JobRecord] = field(default_factory=list)
    changes: dict[str, list[str]] = field(default_factory=dict)  # name → the fields changed

    def pushed(self) -> list[str]:
        """The jobs with a NAS operation to push after the transaction."""
        return (
            [row["id"] for row in self.creates]
            + [update.job.id for update in self.updates if update.op is not None]
            + [job.id for job in self.deletes]
        )

    def answer(self, *, dry_run: bool, jobs: list[JobOut]) -> JobApplyOut:
        return JobApplyOut(
            dry_run=dry_run,
            created=[row["name"] for row in self.creates],
            updated=list(self.changes),
            unchanged=[job.name for job in self.unchanged],
            deleted=[job.name for job in self.deletes],
            changes=self.changes,
            jobs=jobs,
        )


def _declared(index: int, item: Any) -> Declared:
    """The item judged alone; `ValidationError` or `InvalidRequest` naming the field."""
    data = JobDeclared.model_validate(item)
    schedule = parse_job_schedule(data.schedule, data.timezone)
    repeat = data.repeat if data.repeat is not None else (1 if schedule.is_one_shot else None)
    if schedule.is_one_shot and repeat != 1:
        raise InvalidRequest(ONE_SHOT_REPEAT)
    return Declared(index, data, schedule, repeat)


async def judge(raw: list[Any]) -> list[Declared]:
    """Every item of the file, valid; or `BatchInvalid` naming every problem by index."""
    problems: list[BatchItemError] = []
    valid: dict[int, Declared] = {}
    first_of: dict[str, int] = {}
    for index, item in enumerate(raw):
        try:
            declared = _declared(index, item)
        except ValidationError as exc:
            errors = exc.errors()[:MAX_PROBLEMS_PER_ITEM]
            problems.extend(validation_problem(index, error) for error in errors)
        except InvalidRequest as exc:
            problems.append(domain_problem(index, exc))
        else:
            if declared.name in first_of:
                detail = f"jobs[{first_of[declared.name]}] has this name too: names are unique"
                problems.append(BatchItemError(index=index, field="name", detail=detail))
            else:
                first_of[declared.name] = index
                valid[index] = declared
    problems.extend(await preflight_items({i: d.data for i, d in valid.items()}))
    if problems:
        problems.sort(key=lambda problem: problem.index)
        raise BatchInvalid(problems, total=len(raw), outcome="nothing changed")
    return list(valid.values())


def _reached(repeat: int | None, runs_started: int) -> bool:
    return repeat is not None and runs_started >= repeat


def _update(job: JobRecord, want: Declared, changed: list[str], now: datetime) -> Update:
    """The columns that make `job` what `want` declares, as PATCH would write them."""
    fields = want.fields()
    values: dict[str, Any] = {"updated_at": now}
    values.update({name: fields[name] for name in changed if name not in (*_RESCHEDULING, "retry")})
    if "retry" in changed:
        values.update(retry_values(want.data.retry))
    op: tuple[NasOp, datetime | None] | None = None
    if any(name in changed for name in _RESCHEDULING):
        _, _, first = first_run_plan(want.data.schedule, want.data.timezone, want.repeat, now)
        values.update(
            schedule=want.schedule.text,
            timezone=want.data.timezone,
            anchor_at=now,
            next_run_at=first,
        )
        if job.state == JobState.COMPLETED:
            values.update(state=JobState.SCHEDULED, runs_started=0, completed_at=None)
        if job.state != JobState.PAUSED:
            op = (NasOp.PROVISION, first)
    elif job.state != JobState.COMPLETED and _reached(want.repeat, job.runs_started):
        values.update(state=JobState.COMPLETED, next_run_at=None, completed_at=now)
        if job.state == JobState.SCHEDULED:
            op = (NasOp.CANCEL, None)
    return Update(job, values, op)


def plan_apply(
    declared: list[Declared], stored: list[JobRecord], *, prune: bool, now: datetime
) -> Plan:
    """Compare the declared jobs with the stored ones (all of them when `prune`, else at least
    those of the declared names); `BatchInvalid` when a job to create or reschedule cannot be
    (its time has passed)."""
    by_name = {job.name: job for job in stored}
    plan = Plan()
    problems: list[BatchItemError] = []
    for want in declared:
        job = by_name.get(want.name)
        try:
            if job is None:
                plan.creates.append(new_job_values(want.data, now))
                continue
            have = stored_fields(job)
            changed = [name for name, value in want.fields().items() if have[name] != value]
            if not changed:
                plan.unchanged.append(job)
                continue
            plan.updates.append(_update(job, want, changed, now))
            plan.changes[want.name] = changed
        except InvalidRequest as exc:
            problems.append(domain_problem(want.index, exc))
    if problems:
        raise BatchInvalid(problems, total=len(declared), outcome="nothing changed")
    if prune:
        names = {want.name for want in declared}
        gone = [job for job in stored if job.name not in names]
        plan.deletes = sorted(gone, key=lambda job: (job.created_at, job.id))
    return plan


async def write_plan(tx: Tx, plan: Plan, now: datetime) -> None:
    """Every change of `plan` in `tx`, with the NAS operations it needs queued."""
    await tx.jobs.insert_many(plan.creates)
    arms = [(row["id"], row["next_run_at"]) for row in plan.creates]
    await tx.outbox.queue_new(arms, NasOp.PROVISION, now)
    for update in plan.updates:
        await tx.jobs.set_values(update.job.id, update.values)
        if update.op is not None:
            await tx.outbox.queue(update.job.id, update.op[0], update.op[1], now)
    ids = [job.id for job in plan.deletes]
    for i in range(0, len(ids), _CHUNK):
        await tx.fires.delete_for_jobs(ids[i : i + _CHUNK])
        await tx.jobs.delete_many(ids[i : i + _CHUNK])
    for job_id in ids:
        await tx.outbox.queue(job_id, NasOp.CANCEL, None, now)


class JobApplier:
    """Applies job files with `jobs`' store, pusher, clock and arm budget, pushing at most
    `concurrency` NAS operations at a time."""

    def __init__(self, jobs: JobService, *, concurrency: int) -> None:
        self.jobs = jobs
        self.concurrency = concurrency

    async def apply(self, raw: list[Any], *, prune: bool, dry_run: bool) -> JobApplyOut:
        """Make the stored jobs what `raw` declares (see the module); `BatchInvalid` when an
        item is invalid, and then nothing changed."""
        declared = await judge(raw)
        names = [want.name for want in declared]
        wanted = None if prune else names
        now = self.jobs.clock()
        store = self.jobs.store
        if dry_run:
            async with store.read() as tx:
                stored = await tx.jobs.named(wanted)
            return plan_apply(declared, stored, prune=prune, now=now).answer(dry_run=True, jobs=[])
        async with store.transaction() as tx:
            plan = plan_apply(
                declared, await tx.jobs.named(wanted, for_update=True), prune=prune, now=now
            )
            await write_plan(tx, plan, now)
        log.info(
            "jobs applied",
            extra={
                "created": len(plan.creates),
                "updated": len(plan.updates),
                "unchanged": len(plan.unchanged),
                "deleted": len(plan.deletes),
            },
        )
        await self._push(plan.pushed())
        return plan.answer(dry_run=False, jobs=await self._read(names))

    async def _push(self, job_ids: list[str]) -> None:
        """Push the operations queued, as a batch pushes its arms: what NAS has not
        acknowledged when the bound passes stays in the outbox (the jobs say `nas_pending`)."""
        if not job_ids:
            return
        pushed = await self.jobs.pusher.push_jobs(
            job_ids,
            concurrency=self.concurrency,
            budget=self.jobs.arm_budget,
            start_within=self.jobs.arm_budget.max_seconds,
        )
        if left := [job_id for job_id in job_ids if job_id not in pushed]:
            log.warning(
                "NAS did not acknowledge every operation of the apply; the outbox retries",
                extra={"count": len(left)},
            )

    async def _read(self, names: list[str]) -> list[JobOut]:
        """The jobs of these names with their pending operations, in the order of `names`."""
        async with self.jobs.store.read() as tx:
            jobs = await tx.jobs.named(names)
            pending = {op.job_id: op for op in await tx.outbox.list_for_jobs([j.id for j in jobs])}
        order = {name: i for i, name in enumerate(names)}
        jobs.sort(key=lambda job: order[job.name])
        return [JobOut.from_record(job, pending=pending.get(job.id)) for job in jobs]

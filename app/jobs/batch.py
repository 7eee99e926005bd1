"""Bulk job creation (`POST /api/jobs/batch`): all the jobs or none.

Every item is judged exactly as `POST /api/jobs` judges one (its body, its schedule, its
target's preflight), and every invalid item is named by its index before anything is stored.
Then all the jobs and their NAS arms (outbox rows) are written in one transaction, two
executemany inserts with nothing read back: the answer is built from the values written.
After commit the arms are pushed concurrently, as a single create pushes its arm before it
answers, within a bound (`arm_budget.max_seconds` to start them all): an arm not acknowledged
by then stays in the outbox, which keeps pushing it, and the job says so (`nas_pending`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from app.domain.records import JobRecord, OutboxRecord, RetryPolicy
from app.domain.states import NasOp
from app.errors import InvalidRequest, NameTaken
from app.jobs.batch_schemas import BatchItemError
from app.jobs.preflight import require_runnable
from app.jobs.schemas import JobCreate, JobOut
from app.jobs.service import JobService, first_run_plan, new_job_values
from app.runner.targets import TARGET_TAGS, PythonTarget
from app.validation import describe_error

log = logging.getLogger(__name__)

MAX_PROBLEMS_PER_ITEM = 5  # as a single create's 400 names its first five
_TAG_ERRORS = {"union_tag_invalid", "union_tag_not_found"}


class BatchInvalid(InvalidRequest):
    """At least one item is invalid: nothing was created (or, for an apply, `outcome`:
    changed). `items` names each problem."""

    def __init__(
        self, items: list[BatchItemError], total: int, *, outcome: str = "nothing created"
    ) -> None:
        first = items[0]
        where = f"jobs[{first.index}]" + (f".{first.field}" if first.field else "")
        invalid = len({item.index for item in items})
        super().__init__(
            f"{invalid} of {total} jobs invalid, {outcome}; the first: {where}: {first.detail}"
        )
        self.items = items

    def body(self) -> dict[str, Any]:
        return {
            "error": self.kind,
            "detail": self.message,
            "items": [item.model_dump() for item in self.items],
        }


def validation_problem(index: int, error: Mapping[str, Any]) -> BatchItemError:
    if not error.get("loc"):
        return BatchItemError(index=index, field=None, detail=str(error.get("msg", "invalid")))
    # `body` first, as FastAPI places a body's errors: the formatter drops it, and so names an
    # item's own `body`, `path` or `query` key as it names any other.
    text = describe_error(
        {**error, "loc": ("body", *error["loc"])}, tagged_unions={"target": TARGET_TAGS}
    )
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if error.get("type") not in _TAG_ERRORS and text.endswith(f": {message}"):
        return BatchItemError(index=index, field=text[: -len(message) - 2], detail=message)
    field, _, detail = text.partition(": ")
    return BatchItemError(index=index, field=field, detail=detail)


def domain_problem(index: int, exc: InvalidRequest) -> BatchItemError:
    """A service refusal reads `field: message` (`schedule: …`, `target.callable: …`)."""
    field, sep, detail = exc.message.partition(": ")
    if not sep:
        return BatchItemError(index=index, field=None, detail=exc.message)
    return BatchItemError(index=index, field=field, detail=detail)


async def preflight_items(items: Mapping[int, JobCreate]) -> list[BatchItemError]:
    """`require_runnable` once per distinct python callable of the batch, not once per item."""
    users: dict[str, list[int]] = {}
    targets: dict[str, PythonTarget] = {}
    for index, data in items.items():
        if isinstance(data.target, PythonTarget):
            users.setdefault(data.target.callable, []).append(index)
            targets.setdefault(data.target.callable, data.target)

    async def refusal(target: PythonTarget) -> InvalidRequest | None:
        try:
            await require_runnable(target)
        except InvalidRequest as exc:
            return exc
        return None

    refusals = await asyncio.gather(*(refusal(t) for t in targets.values()))
    return [
        domain_problem(index, exc)
        for key, exc in zip(targets, refusals, strict=True)
        if exc is not None
        for index in users[key]
    ]


def job_record(values: Mapping[str, Any]) -> JobRecord:
    """The job as stored from the columns of `new_job_values`, without reading it back."""
    return JobRecord(
        id=values["id"],
        name=values["name"],
        schedule=values["schedule"],
        timezone=values["timezone"],
        target=values["target"],
        repeat=values["repeat"],
        runs_started=values["runs_started"],
        state=values["state"],
        anchor_at=values["anchor_at"],
        next_run_at=values["next_run_at"],
        last_run_at=None,
        last_status=None,
        created_at=values["created_at"],
        updated_at=values["updated_at"],
        misfire_grace_seconds=values["misfire_grace_seconds"],
        catchup=values["catchup"],
        overlap=values["overlap"],
        completed_at=None,
        retry=RetryPolicy(
            values["retry_max_attempts"],
            values["retry_backoff_seconds"],
            values["retry_max_backoff_seconds"],
        ),
    )


class JobBatch:
    """Creates batches of jobs with `jobs`' store, pusher, clock and arm budget, pushing at
    most `concurrency` arms at a time."""

    def __init__(self, jobs: JobService, *, concurrency: int) -> None:
        self.jobs = jobs
        self.concurrency = concurrency

    async def create(self, raw: Sequence[Any]) -> list[JobOut]:
        """Create every job of `raw` (the request's items), in order, or raise `BatchInvalid`
        naming every invalid one, or `NameTaken` for a name given twice or another job's, and
        create nothing."""
        now = self.jobs.clock()
        rows = await self._plan(raw, now)
        names = [row["name"] for row in rows]
        if twice := [name for name, count in Counter(names).items() if count > 1]:
            raise NameTaken(twice[0], within="batch")
        async with self.jobs.store.transaction() as tx:
            if taken := await tx.jobs.names_taken(names):
                raise NameTaken(taken[0])
            await tx.jobs.insert_many(rows)
            arms = [(row["id"], row["next_run_at"]) for row in rows]
            await tx.outbox.queue_new(arms, NasOp.PROVISION, now)
        # One line for the batch: a line per job costs more than the insert itself.
        log.info("jobs created", extra={"count": len(rows), "job_ids": [r["id"] for r in rows]})
        pending = await self._push([row["id"] for row in rows])
        return [JobOut.from_record(job_record(row), pending=pending.get(row["id"])) for row in rows]

    async def _plan(self, raw: Sequence[Any], now: datetime) -> list[dict[str, Any]]:
        """The columns of each new job; `BatchInvalid` when any item is invalid."""
        if not raw:
            raise InvalidRequest("jobs: at least one job")
        # Items of a batch share a few schedules, judged once each at the same `now`.
        plan = functools.lru_cache(maxsize=1024)(first_run_plan)
        problems: list[BatchItemError] = []
        valid: dict[int, JobCreate] = {}
        rows: list[dict[str, Any]] = []
        for index, item in enumerate(raw):
            try:
                data = JobCreate.model_validate(item)
                rows.append(new_job_values(data, now, plan))
            except ValidationError as exc:
                errors = exc.errors()[:MAX_PROBLEMS_PER_ITEM]
                problems.extend(validation_problem(index, error) for error in errors)
            except InvalidRequest as exc:
                problems.append(domain_problem(index, exc))
            else:
                valid[index] = data
        problems.extend(await preflight_items(valid))
        if problems:
            problems.sort(key=lambda problem: problem.index)
            raise BatchInvalid(problems, total=len(raw))
        return rows

    async def _push(self, job_ids: list[str]) -> dict[str, OutboxRecord]:
        """Push the new jobs' arms, `concurrency` NAS calls at a time, claimed and acknowledged
        in chunks; no chunk starts past the bound. The operations still pending afterwards,
        by job."""
        pushed = await self.jobs.pusher.push_jobs(
            job_ids,
            concurrency=self.concurrency,
            budget=self.jobs.arm_budget,
            start_within=self.jobs.arm_budget.max_seconds,
        )
        left = [job_id for job_id in job_ids if job_id not in pushed]
        if not left:
            return {}
        log.warning(
            "NAS did not acknowledge every arm of the batch; the outbox retries",
            extra={"count": len(left)},
        )
        async with self.jobs.store.transaction() as tx:
            return {op.job_id: op for op in await tx.outbox.list_for_jobs(left)}

"""Reads of the admin API beside the job service: a page of jobs, and one run of a job.

A listing is filtered by state and a name glob, and continued by an opaque cursor.
The cursor is the base64url of the last listed job's sort key `(created_at, id)`; the next
page starts strictly after it, so a job created or deleted meanwhile never shifts the others
and every job is listed at most once."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from app.domain.records import FireRecord, JobRecord, OutboxRecord
from app.domain.states import JobState
from app.errors import InvalidRequest, NotFound
from app.store import Store

DEFAULT_PAGE = 100
MAX_PAGE = 1000
MAX_INT32 = 2**31 - 1  # fire ids are 32-bit integers on PostgreSQL


@dataclass(frozen=True)
class JobQuery:
    """Which jobs, and which page of them: `name` is a glob (`*`, `?`), case-sensitive."""

    limit: int = DEFAULT_PAGE
    cursor: str | None = None
    state: JobState | None = None
    name: str | None = None


@dataclass(frozen=True)
class JobPage:
    jobs: list[tuple[JobRecord, OutboxRecord | None]]
    next_cursor: str | None  # None: this is the last page


def encode_cursor(job: JobRecord) -> str:
    key = json.dumps([job.created_at.isoformat(), job.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The sort key a cursor stands for, or `InvalidRequest` naming `cursor`."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, job_id = json.loads(raw)
        at = datetime.fromisoformat(created_at)
        if at.tzinfo is None or not isinstance(job_id, str):
            raise ValueError("not a sort key")
        job_id.encode()  # a lone surrogate fails here, as a NUL below: no database takes them
        if "\x00" in job_id:
            raise ValueError("NUL")
        return at.astimezone(UTC), job_id
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeError):
        raise InvalidRequest("cursor: not a cursor this API returned") from None


async def list_page(store: Store, query: JobQuery) -> JobPage:
    """One page of jobs in creation order, each with its pending NAS operation, if any."""
    after = decode_cursor(query.cursor) if query.cursor else None
    async with store.transaction() as tx:
        found = await tx.jobs.page(
            limit=query.limit + 1, after=after, state=query.state, name=query.name
        )
        page = found[: query.limit]
        pending = {op.job_id: op for op in await tx.outbox.list_for_jobs([j.id for j in page])}
    more = len(found) > query.limit
    return JobPage(
        jobs=[(job, pending.get(job.id)) for job in page],
        next_cursor=encode_cursor(page[-1]) if more else None,
    )


async def find_run(store: Store, job_id: str, run: str) -> FireRecord:
    """One run of the job, by its id (digits) or its key; `NotFound` for an unknown job, or a
    run that is not the job's."""
    fire_id = int(run) if run.isascii() and run.isdigit() else None
    async with store.transaction() as tx:
        if await tx.jobs.get(job_id) is None:
            raise NotFound(f"no job with id {job_id!r}")
        if fire_id is not None:
            fire = await tx.fires.get(fire_id) if fire_id <= MAX_INT32 else None
        else:
            fire = await tx.fires.get_by_key(run)
    if fire is None or fire.job_id != job_id:
        raise NotFound(f"job {job_id!r} has no run {run!r}")
    return fire

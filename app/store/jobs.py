"""Queries on the `jobs` table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain.records import JobRecord
from app.domain.states import JobState
from app.store.job_names import jobs_named, name_is_unique, names_taken
from app.store.job_pages import page_of_jobs
from app.store.rows import job_from_row
from app.store.tables import jobs

# The fire path's statements, built once (building one costs more than running it).
_GET = select(jobs).where(jobs.c.id == bindparam("b_id"))
_GET_FOR_UPDATE = _GET.with_for_update()
_SET = update(jobs).where(jobs.c.id == bindparam("b_id"))  # the columns come with the values
_ADVANCE = update(jobs).where(
    jobs.c.id == bindparam("b_id"),
    jobs.c.state == JobState.SCHEDULED,
    jobs.c.next_run_at == bindparam("b_expected", type_=jobs.c.next_run_at.type),
)


class JobRepository:
    def __init__(self, conn: AsyncConnection, dialect: str) -> None:
        self.conn = conn
        self.dialect = dialect

    async def insert(self, values: dict[str, Any]) -> JobRecord:
        with name_is_unique(values.get("name")):
            row = (await self.conn.execute(insert(jobs).values(**values).returning(*jobs.c))).one()
        return job_from_row(row)

    async def get(self, job_id: str, *, for_update: bool = False) -> JobRecord | None:
        stmt = _GET_FOR_UPDATE if for_update and self.dialect == "postgresql" else _GET
        row = (await self.conn.execute(stmt, {"b_id": job_id})).first()
        return job_from_row(row) if row else None

    async def list_all(self, *, state: JobState | None = None) -> list[JobRecord]:
        stmt = select(jobs).order_by(jobs.c.created_at, jobs.c.id)
        if state:
            stmt = stmt.where(jobs.c.state == state)
        return [job_from_row(r) for r in (await self.conn.execute(stmt)).all()]

    async def page(
        self,
        *,
        limit: int,
        after: tuple[datetime, str] | None = None,
        state: JobState | None = None,
        name: str | None = None,
    ) -> list[JobRecord]:
        """Up to `limit` jobs in `(created_at, id)` order after `after`, in `state` and with a
        name matching the glob `name` when given (see `app.store.job_pages`)."""
        return await page_of_jobs(
            self.conn, self.dialect, limit=limit, after=after, state=state, name=name
        )

    async def update(self, job_id: str, values: dict[str, Any]) -> JobRecord:
        """Update a job known to exist (callers hold it in this transaction); one statement."""
        stmt = update(jobs).where(jobs.c.id == job_id).values(**values).returning(*jobs.c)
        with name_is_unique(values.get("name")):
            row = (await self.conn.execute(stmt)).first()
        if row is None:
            raise LookupError(f"job {job_id} vanished inside its own transaction")
        return job_from_row(row)

    async def advance(
        self, job_id: str, *, expected_next_run_at: datetime, values: dict[str, Any]
    ) -> bool:
        """Move a scheduled job past `expected_next_run_at`; False if another fire came first."""
        params = {**values, "b_id": job_id, "b_expected": expected_next_run_at}
        result = await self.conn.execute(_ADVANCE, params)
        return result.rowcount == 1

    async def set_values(self, job_id: str, values: dict[str, Any]) -> bool:
        """`update` without reading the job back: False if there is no such job."""
        result = await self.conn.execute(_SET, {**values, "b_id": job_id})
        return result.rowcount == 1

    async def record_nas_arm(self, job_id: str, fire_at: datetime | None) -> None:
        """Note what NAS acknowledged for the job: an arm at `fire_at`, or none (cancelled)."""
        await self.conn.execute(
            update(jobs).where(jobs.c.id == job_id).values(nas_armed_at=fire_at)
        )

    async def record_nas_arms(self, arms: list[tuple[str, datetime | None]]) -> None:
        """`record_nas_arm` for many jobs in one executemany, in job id order (the order every
        transaction that locks several job rows takes them in)."""
        if not arms:
            return
        await self.conn.execute(
            update(jobs)
            .where(jobs.c.id == bindparam("b_id"))
            .values(nas_armed_at=bindparam("b_at")),
            [{"b_id": job_id, "b_at": at} for job_id, at in sorted(arms, key=lambda a: a[0])],
        )

    async def delete(self, job_id: str) -> bool:
        result = await self.conn.execute(delete(jobs).where(jobs.c.id == job_id))
        return result.rowcount == 1

    async def completed_before(self, before: datetime) -> list[str]:
        """Ids of completed jobs that finished before `before`."""
        stmt = select(jobs.c.id).where(
            jobs.c.state == JobState.COMPLETED, jobs.c.completed_at < before
        )
        return list((await self.conn.execute(stmt)).scalars().all())

    async def delete_many(self, job_ids: list[str]) -> int:
        if not job_ids:
            return 0
        result = await self.conn.execute(delete(jobs).where(jobs.c.id.in_(job_ids)))
        return int(result.rowcount or 0)

    async def insert_many(self, rows: list[dict[str, Any]]) -> None:
        """Insert new jobs, one executemany; nothing is read back (callers hold the values)."""
        if rows:
            with name_is_unique(None):
                await self.conn.execute(insert(jobs), rows)

    async def wanted_arms(self) -> list[tuple[str, datetime, datetime | None]]:
        """`(id, next_run_at, nas_armed_at)` of every scheduled job with a next fire, oldest
        first: what reconcile compares with NAS's list, without reading whole rows."""
        stmt = (
            select(jobs.c.id, jobs.c.next_run_at, jobs.c.nas_armed_at)
            .where(jobs.c.state == JobState.SCHEDULED, jobs.c.next_run_at.is_not(None))
            .order_by(jobs.c.created_at, jobs.c.id)
        )
        rows = (await self.conn.execute(stmt)).all()
        return [(job_id, next_run_at, armed_at) for job_id, next_run_at, armed_at in rows]

    async def lock_many(self, job_ids: list[str]) -> None:
        """Lock the rows of those of the jobs that exist until the transaction ends, in job id
        order (as every transaction that locks several job rows takes them); PostgreSQL only,
        as `get(for_update=True)`: SQLite's write transactions exclude each other already."""
        if self.dialect != "postgresql" or not job_ids:
            return
        stmt = select(jobs.c.id).where(jobs.c.id.in_(job_ids)).order_by(jobs.c.id)
        await self.conn.execute(stmt.with_for_update())

    async def next_fires(self, job_ids: list[str]) -> dict[str, datetime]:
        """`next_run_at` of those of the jobs that are scheduled with a next fire, by id; one
        statement per 500 ids, reading two columns."""
        found: dict[str, datetime] = {}
        for i in range(0, len(job_ids), 500):
            stmt = select(jobs.c.id, jobs.c.next_run_at).where(
                jobs.c.id.in_(job_ids[i : i + 500]),
                jobs.c.state == JobState.SCHEDULED,
                jobs.c.next_run_at.is_not(None),
            )
            found.update((job_id, at) for job_id, at in (await self.conn.execute(stmt)).all())
        return found

    async def names_taken(self, names: list[str]) -> list[str]:
        """Those of `names` that jobs have already, in the order given."""
        return await names_taken(self.conn, names)

    async def named(self, names: list[str] | None, *, for_update: bool = False) -> list[JobRecord]:
        """The jobs with these names (None: every job), in id order; `for_update` locks them."""
        return await jobs_named(self.conn, self.dialect, names, for_update=for_update)

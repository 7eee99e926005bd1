"""Queries on the `jobs` table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain.records import JobRecord
from app.domain.states import JobState
from app.store.rows import job_from_row
from app.store.tables import jobs


class JobRepository:
    def __init__(self, conn: AsyncConnection, dialect: str) -> None:
        self.conn = conn
        self.dialect = dialect

    async def insert(self, values: dict[str, Any]) -> JobRecord:
        await self.conn.execute(insert(jobs).values(**values))
        job = await self.get(values["id"])
        assert job is not None
        return job

    async def get(self, job_id: str, *, for_update: bool = False) -> JobRecord | None:
        stmt = select(jobs).where(jobs.c.id == job_id)
        if for_update and self.dialect == "postgresql":
            stmt = stmt.with_for_update()
        row = (await self.conn.execute(stmt)).first()
        return job_from_row(row) if row else None

    async def list_all(self, *, state: JobState | None = None) -> list[JobRecord]:
        stmt = select(jobs).order_by(jobs.c.created_at, jobs.c.id)
        if state:
            stmt = stmt.where(jobs.c.state == state)
        return [job_from_row(r) for r in (await self.conn.execute(stmt)).all()]

    async def update(self, job_id: str, values: dict[str, Any]) -> JobRecord:
        """Update a job known to exist (callers hold it in this transaction)."""
        await self.conn.execute(update(jobs).where(jobs.c.id == job_id).values(**values))
        job = await self.get(job_id)
        if job is None:
            raise LookupError(f"job {job_id} vanished inside its own transaction")
        return job

    async def advance(
        self, job_id: str, *, expected_next_run_at: datetime, values: dict[str, Any]
    ) -> bool:
        """Move a scheduled job past `expected_next_run_at`; False if another fire came first."""
        result = await self.conn.execute(
            update(jobs)
            .where(
                jobs.c.id == job_id,
                jobs.c.state == JobState.SCHEDULED,
                jobs.c.next_run_at == expected_next_run_at,
            )
            .values(**values)
        )
        return result.rowcount == 1

    async def record_nas_arm(self, job_id: str, fire_at: datetime | None) -> None:
        """Note what NAS acknowledged for the job: an arm at `fire_at`, or none (cancelled)."""
        await self.conn.execute(
            update(jobs).where(jobs.c.id == job_id).values(nas_armed_at=fire_at)
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

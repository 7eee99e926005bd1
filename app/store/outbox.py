"""Queries on the `outbox` table: each job's NAS operation not yet acknowledged."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain.records import OutboxRecord
from app.domain.states import NasOp
from app.store.rows import outbox_from_row
from app.store.tables import outbox


class OutboxRepository:
    def __init__(self, conn: AsyncConnection, dialect: str) -> None:
        self.conn = conn
        self.dialect = dialect

    async def queue(
        self, job_id: str, op: NasOp, fire_at: datetime | None, now: datetime
    ) -> OutboxRecord:
        """Make `op` the job's pending NAS operation, replacing any older one (parked or not),
        under a new identity. A pusher's claim on the job is kept: the operation it is sending
        must be answered before the new one is sent."""
        op_id = uuid.uuid4().hex
        values = {
            "job_id": job_id,
            "op": op,
            "fire_at": fire_at,
            "op_id": op_id,
            "attempts": 0,
            "last_error": None,
            "created_at": now,
            "updated_at": now,
            "parked_at": None,
        }
        upsert = pg_insert(outbox) if self.dialect == "postgresql" else sqlite_insert(outbox)
        stmt = upsert.values(**values).on_conflict_do_update(
            index_elements=[outbox.c.job_id],
            set_={
                "op": op,
                "fire_at": fire_at,
                "op_id": op_id,
                "attempts": 0,
                "last_error": None,
                "updated_at": now,
                "parked_at": None,
            },
        )
        await self.conn.execute(stmt)
        record = await self.get(job_id)
        assert record is not None
        return record

    async def get(self, job_id: str) -> OutboxRecord | None:
        row = (await self.conn.execute(select(outbox).where(outbox.c.job_id == job_id))).first()
        return outbox_from_row(row) if row else None

    async def list_all(self, *, limit: int | None = None) -> list[OutboxRecord]:
        stmt = select(outbox).order_by(outbox.c.updated_at, outbox.c.job_id)
        if limit:
            stmt = stmt.limit(limit)
        return [outbox_from_row(r) for r in (await self.conn.execute(stmt)).all()]

    async def ack(self, job_id: str, op_id: str) -> bool:
        """Drop the operation NAS acknowledged, unless a newer one replaced it meanwhile."""
        result = await self.conn.execute(
            delete(outbox).where(outbox.c.job_id == job_id, outbox.c.op_id == op_id)
        )
        return result.rowcount == 1

    async def note_failure(
        self, job_id: str, op_id: str, error: str, now: datetime, *, park: bool = False
    ) -> None:
        """Count a failed push of this very operation; `park` it when NAS refused it for good,
        else (un-parked) it waits for the backoff. The claim stays: its holder releases it."""
        await self.conn.execute(
            update(outbox)
            .where(outbox.c.job_id == job_id, outbox.c.op_id == op_id)
            .values(
                attempts=outbox.c.attempts + 1,
                last_error=error[:500],
                updated_at=now,
                parked_at=now if park else None,
            )
        )

    async def claim(
        self, job_id: str, owner: str, now: datetime, until: datetime
    ) -> OutboxRecord | None:
        """Claim the job's pending operation for `owner` until `until`, so that only `owner`
        pushes the job's operations meanwhile; the operation as claimed, or None when there
        is none or another pusher holds a claim that has not lapsed. `owner` may renew its
        own claim. On PostgreSQL a row another transaction holds is skipped, not waited for."""
        stmt = select(outbox).where(outbox.c.job_id == job_id)
        if self.dialect == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        row = (await self.conn.execute(stmt)).first()
        if row is None or outbox_from_row(row).claimed_by_other(owner, now):
            return None
        result = await self.conn.execute(
            update(outbox)
            .where(
                outbox.c.job_id == job_id,
                or_(
                    outbox.c.claimed_by.is_(None),
                    outbox.c.claimed_by == owner,
                    outbox.c.claimed_until < now,
                ),
            )
            .values(claimed_by=owner, claimed_until=until)
        )
        return await self.get(job_id) if result.rowcount == 1 else None

    async def release(self, job_id: str, owner: str) -> bool:
        """Release `owner`'s claim on the job's operations, if it still holds one."""
        result = await self.conn.execute(
            update(outbox)
            .where(outbox.c.job_id == job_id, outbox.c.claimed_by == owner)
            .values(claimed_by=None, claimed_until=None)
        )
        return result.rowcount == 1

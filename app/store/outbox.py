"""Queries on the `outbox` table: each job's NAS operation not yet acknowledged."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    case,
    column,
    delete,
    exists,
    literal,
    or_,
    select,
    update,
    values,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain.records import OutboxRecord
from app.domain.states import JobState, NasOp
from app.store.rows import outbox_from_row
from app.store.tables import UTCDateTime, jobs, outbox
from app.store.upsert import upsert_into


def _claim_free(owner: str, now: datetime) -> ColumnElement[bool]:
    """The row's claim is free for `owner`: none, its own, or lapsed."""
    return or_(
        outbox.c.claimed_by.is_(None),
        outbox.c.claimed_by == owner,
        outbox.c.claimed_until < now,
    )


def _new_operation(
    job_id: str, op: NasOp, fire_at: datetime | None, now: datetime
) -> dict[str, object]:
    """The values of an operation queued now, under a new identity, unclaimed."""
    return {
        "job_id": job_id,
        "op": op,
        "fire_at": fire_at,
        "op_id": uuid.uuid4().hex,
        "attempts": 0,
        "last_error": None,
        "created_at": now,
        "updated_at": now,
        "parked_at": None,
    }


_GET = select(outbox).where(outbox.c.job_id == bindparam("b_job_id"))
_QUEUE: dict[tuple[str, bool], Any] = {}


def _queue_statement(dialect: str, claiming: bool) -> Any:
    """The upsert behind `queue`, built once per dialect and claim: its values come with the
    parameters (`excluded` is the row that was to be inserted)."""
    stmt = _QUEUE.get((dialect, claiming))
    if stmt is not None:
        return stmt
    upsert = upsert_into(outbox, dialect)
    new = upsert.excluded
    update_set: dict[str, Any] = {
        name: new[name]
        for name in ("op", "fire_at", "op_id", "attempts", "last_error", "updated_at", "parked_at")
    }
    if claiming:
        now = bindparam("b_now", type_=outbox.c.claimed_until.type)
        free = or_(
            outbox.c.claimed_by.is_(None),
            outbox.c.claimed_by == new.claimed_by,
            outbox.c.claimed_until < now,
        )
        update_set["claimed_by"] = case((free, new.claimed_by), else_=outbox.c.claimed_by)
        update_set["claimed_until"] = case((free, new.claimed_until), else_=outbox.c.claimed_until)
    stmt = _QUEUE[(dialect, claiming)] = upsert.on_conflict_do_update(
        index_elements=[outbox.c.job_id], set_=update_set
    ).returning(*outbox.c)
    return stmt


class OutboxRepository:
    def __init__(self, conn: AsyncConnection, dialect: str) -> None:
        self.conn = conn
        self.dialect = dialect

    async def queue(
        self,
        job_id: str,
        op: NasOp,
        fire_at: datetime | None,
        now: datetime,
        *,
        claim_for: str | None = None,
        claim_until: datetime | None = None,
    ) -> OutboxRecord:
        """Make `op` the job's pending NAS operation, replacing any older one (parked or not),
        under a new identity; one statement. A pusher's claim on the job is kept: the operation
        it is sending must be answered before the new one is sent.

        With `claim_for`, the row is also claimed for that pusher until `claim_until` unless
        another pusher holds a claim that has not lapsed (the record's `claimed_by` tells)."""
        params = _new_operation(job_id, op, fire_at, now)
        claiming = claim_for is not None
        if claiming:
            params.update(claimed_by=claim_for, claimed_until=claim_until, b_now=now)
        stmt = _queue_statement(self.dialect, claiming)
        row = (await self.conn.execute(stmt, params)).one()
        return outbox_from_row(row)

    async def get(self, job_id: str) -> OutboxRecord | None:
        row = (await self.conn.execute(_GET, {"b_job_id": job_id})).first()
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
        own claim. One statement; on PostgreSQL a row another transaction holds is skipped,
        not waited for."""
        claimed = await self.claim_many([job_id], owner, now, until)
        return claimed[0] if claimed else None

    async def claim_many(
        self, job_ids: list[str], owner: str, now: datetime, until: datetime
    ) -> list[OutboxRecord]:
        """`claim` for many jobs in one statement: the operations claimed (those pending and
        not held by another pusher's live claim), in no particular order."""
        if not job_ids:
            return []
        which: ColumnElement[bool] = and_(outbox.c.job_id.in_(job_ids), _claim_free(owner, now))
        if self.dialect == "postgresql":
            # Rows another transaction holds are skipped, not waited for (that pusher, or the
            # admission queueing a newer operation, is about to answer for them).
            free = select(outbox.c.job_id).where(which).with_for_update(skip_locked=True)
            which = outbox.c.job_id.in_(free.scalar_subquery())
        stmt = (
            update(outbox)
            .where(which)
            .values(claimed_by=owner, claimed_until=until)
            .returning(*outbox.c)
        )
        return [outbox_from_row(r) for r in (await self.conn.execute(stmt)).all()]

    async def release_many(self, job_ids: list[str], owner: str) -> None:
        """`release` for many jobs in one statement."""
        if job_ids:
            await self.conn.execute(
                update(outbox)
                .where(outbox.c.job_id.in_(job_ids), outbox.c.claimed_by == owner)
                .values(claimed_by=None, claimed_until=None)
            )

    async def ack_many(self, acks: list[tuple[str, str]], owner: str) -> list[str]:
        """Drop each acknowledged `(job_id, op_id)` unless a newer operation replaced it; return
        the jobs that need another push: their row is still claimed by `owner` (a newer
        operation waits behind the one acknowledged: its claim holder must push it), or none is
        left although what NAS holds is not what the job needs. Two statements whatever the
        count (callers record what NAS holds first)."""
        if not acks:
            return []
        await self.conn.execute(
            delete(outbox).where(
                outbox.c.job_id == bindparam("b_job_id"), outbox.c.op_id == bindparam("b_op_id")
            ),
            [{"b_job_id": job_id, "b_op_id": op_id} for job_id, op_id in acks],
        )
        job_ids = sorted({job_id for job_id, _ in acks})
        wanted = case((jobs.c.state == JobState.SCHEDULED, jobs.c.next_run_at), else_=None)
        still_claimed = select(outbox.c.job_id).where(
            outbox.c.job_id.in_(job_ids), outbox.c.claimed_by == owner
        )
        not_as_wanted = select(jobs.c.id).where(
            jobs.c.id.in_(job_ids),
            ~exists().where(outbox.c.job_id == jobs.c.id),
            jobs.c.nas_armed_at.is_distinct_from(wanted),
        )
        left = await self.conn.execute(still_claimed.union(not_as_wanted))
        return list(left.scalars().all())

    async def release(self, job_id: str, owner: str) -> bool:
        """Release `owner`'s claim on the job's operations, if it still holds one."""
        result = await self.conn.execute(
            update(outbox)
            .where(outbox.c.job_id == job_id, outbox.c.claimed_by == owner)
            .values(claimed_by=None, claimed_until=None)
        )
        return result.rowcount == 1

    async def queue_new(
        self, ops: list[tuple[str, datetime | None]], op: NasOp, now: datetime
    ) -> None:
        """Queue `op` for jobs that have no pending operation yet (jobs created in this very
        transaction), one executemany of `(job_id, fire_at)`; nothing is read back."""
        if not ops:
            return
        rows = [_new_operation(job_id, op, fire_at, now) for job_id, fire_at in ops]
        await self.conn.execute(outbox.insert(), rows)

    async def list_for_jobs(self, job_ids: list[str]) -> list[OutboxRecord]:
        """The pending operations of these jobs (those that have one)."""
        if not job_ids:
            return []
        stmt = select(outbox).where(outbox.c.job_id.in_(job_ids))
        return [outbox_from_row(r) for r in (await self.conn.execute(stmt)).all()]

    async def pending_job_ids(self) -> set[str]:
        """The jobs that have an operation pending, parked ones included."""
        return set((await self.conn.execute(select(outbox.c.job_id))).scalars().all())

    async def queue_provisions_if_unchanged(
        self, arms: list[tuple[str, datetime]], now: datetime
    ) -> list[str]:
        """Queue a provision of each `(job_id, fire_at)`, as `queue` writes one, only for the
        jobs still scheduled at that very `fire_at` that have no operation pending: an arm read
        earlier never replaces a newer operation. One statement, three bound values an arm
        (SQLite takes 32,766 at most). On PostgreSQL, lock the jobs first
        (`JobRepository.lock_many`) so that none changes before commit. Returns the ids queued."""
        if not arms:
            return []
        source = (
            values(
                column("job_id", String),
                column("fire_at", UTCDateTime),
                column("op_id", String),
                name="arms",
            )
            .data([(job_id, fire_at, uuid.uuid4().hex) for job_id, fire_at in arms])
            .cte("arms")
        )
        rows = (
            select(
                source.c.job_id,
                literal(NasOp.PROVISION.value, String),
                source.c.fire_at,
                source.c.op_id,
                literal(0, Integer),
                literal(now, UTCDateTime),
                literal(now, UTCDateTime),
            )
            .join_from(source, jobs, jobs.c.id == source.c.job_id)
            .where(
                jobs.c.state == JobState.SCHEDULED,
                jobs.c.next_run_at == source.c.fire_at,
                ~exists().where(outbox.c.job_id == source.c.job_id),
            )
        )
        names = ["job_id", "op", "fire_at", "op_id", "attempts", "created_at", "updated_at"]
        return await self._insert_new(names, rows)

    async def queue_cancels_if_unwanted(self, job_ids: list[str], now: datetime) -> list[str]:
        """Queue a cancel for each job, as `queue` writes one, only where the job does not
        exist or is not wanted (scheduled with a next fire) and has no operation pending: a job
        created or resumed meanwhile is no orphan, and a newer operation is never replaced.
        One statement, two bound values a job. On PostgreSQL, lock the jobs first
        (`JobRepository.lock_many`). Returns the ids queued."""
        if not job_ids:
            return []
        source = (
            values(column("job_id", String), column("op_id", String), name="orphans")
            .data([(job_id, uuid.uuid4().hex) for job_id in job_ids])
            .cte("orphans")
        )
        wanted = exists().where(
            jobs.c.id == source.c.job_id,
            jobs.c.state == JobState.SCHEDULED,
            jobs.c.next_run_at.is_not(None),
        )
        rows = select(
            source.c.job_id,
            literal(NasOp.CANCEL.value, String),
            source.c.op_id,
            literal(0, Integer),
            literal(now, UTCDateTime),
            literal(now, UTCDateTime),
        ).where(~wanted, ~exists().where(outbox.c.job_id == source.c.job_id))
        names = ["job_id", "op", "op_id", "attempts", "created_at", "updated_at"]
        return await self._insert_new(names, rows)

    async def _insert_new(self, names: list[str], rows: Select[Any]) -> list[str]:
        """Insert `rows` (their columns are `names`; the others stay NULL) where the job has
        no row yet, a concurrent insert included; the job ids inserted."""
        stmt = (
            upsert_into(outbox, self.dialect)
            .from_select(names, rows)
            .on_conflict_do_nothing(index_elements=[outbox.c.job_id])
            .returning(outbox.c.job_id)
        )
        return list((await self.conn.execute(stmt)).scalars().all())

"""Queries on the `fires` table (a job's fires and runs, claimed under leases)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain.records import AttemptRecord, FireRecord
from app.domain.states import RunStatus
from app.store.errors import DuplicateFire
from app.store.fire_views import FireViews
from app.store.rows import attempt_to_json, fire_from_row, fire_from_values
from app.store.tables import fires
from app.store.upsert import upsert_into

# Statements of every run, built once (building one costs more than running it).
_BUFFERED = (
    select(fires)
    .where(fires.c.job_id == bindparam("b_job_id"), fires.c.status == RunStatus.BUFFERED)
    .order_by(fires.c.id)
    .limit(1)
)
# A write by the lease holder (the fencing condition of `_held`); the columns to set come
# with the parameters.
_HELD_UPDATE = update(fires).where(
    fires.c.id == bindparam("b_id"),
    fires.c.fencing_token == bindparam("b_token"),
    fires.c.status == RunStatus.RUNNING,
)
# INSERT … ON CONFLICT (dedup_key) DO NOTHING RETURNING id, built once per dialect.
_INSERTS: dict[str, Any] = {}


def _held(fire_id: int, fencing_token: int) -> ColumnElement[bool]:
    """The fencing condition: the fire still runs under this very lease. Every write by a
    lease holder carries it, so a holder that lost its lease can never overwrite a newer one."""
    return and_(
        fires.c.id == fire_id,
        fires.c.fencing_token == fencing_token,
        fires.c.status == RunStatus.RUNNING,
    )


class FireRepository(FireViews):
    def __init__(self, conn: AsyncConnection, dialect: str = "sqlite") -> None:
        self.conn = conn
        self.dialect = dialect

    async def get_by_key(self, dedup_key: str) -> FireRecord | None:
        row = (await self.conn.execute(select(fires).where(fires.c.dedup_key == dedup_key))).first()
        return fire_from_row(row) if row else None

    async def get(self, fire_id: int) -> FireRecord | None:
        row = (await self.conn.execute(select(fires).where(fires.c.id == fire_id))).first()
        return fire_from_row(row) if row else None

    async def insert(self, values: dict[str, Any]) -> FireRecord:
        """Insert a fire; `DuplicateFire` if its dedup key exists (the unique key decides).
        One statement: the record is built from the values written and the new id."""
        stmt = _INSERTS.get(self.dialect)
        if stmt is None:
            stmt = _INSERTS[self.dialect] = (
                upsert_into(fires, self.dialect)
                .on_conflict_do_nothing(index_elements=[fires.c.dedup_key])
                .returning(fires.c.id)
            )
        fire_id = (await self.conn.execute(stmt, values)).scalar_one_or_none()
        if fire_id is None:
            raise DuplicateFire(values["dedup_key"])
        return fire_from_values(int(fire_id), values)

    async def list_for_job(self, job_id: str, *, limit: int = 50) -> list[FireRecord]:
        stmt = (
            select(fires)
            .where(fires.c.job_id == job_id)
            .order_by(fires.c.admitted_at.desc(), fires.c.id.desc())
            .limit(limit)
        )
        return [fire_from_row(r) for r in (await self.conn.execute(stmt)).all()]

    async def running_count(self, job_id: str, now: datetime) -> int:
        """Runs of the job going on now, queued to start or awaiting a retry: a run whose lease
        expired (its replica died) is not."""
        stmt = select(func.count()).where(
            fires.c.job_id == job_id,
            or_(
                fires.c.status.in_((RunStatus.QUEUED, RunStatus.RETRYING)),
                and_(fires.c.status == RunStatus.RUNNING, fires.c.lease_expires_at >= now),
            ),
        )
        return int((await self.conn.execute(stmt)).scalar_one())

    async def buffered(self, job_id: str) -> FireRecord | None:
        """The job's buffered fire (at most one waits), if any."""
        row = (await self.conn.execute(_BUFFERED, {"b_job_id": job_id})).first()
        return fire_from_row(row) if row else None

    async def start_buffered(
        self, fire: FireRecord, *, owner: str, lease_expires_at: datetime, now: datetime
    ) -> FireRecord | None:
        """Move a buffered fire to running under `owner`'s lease; None if someone else did."""
        result = await self.conn.execute(
            update(fires)
            .where(fires.c.id == fire.id, fires.c.status == RunStatus.BUFFERED)
            .values(
                status=RunStatus.RUNNING,
                lease_owner=owner,
                lease_expires_at=lease_expires_at,
                fencing_token=fire.fencing_token + 1,
                attempt=fire.attempt + 1,
                started_at=now,
            )
        )
        return await self.get(fire.id) if result.rowcount == 1 else None

    async def stranded_buffered(self, *, limit: int = 100) -> list[FireRecord]:
        """Buffered fires whose job has no run going or queued: the replica that should start
        them died."""
        running = select(fires.c.job_id).where(
            fires.c.status.in_((RunStatus.RUNNING, RunStatus.QUEUED, RunStatus.RETRYING))
        )
        stmt = (
            select(fires)
            .where(fires.c.status == RunStatus.BUFFERED, fires.c.job_id.not_in(running))
            .order_by(fires.c.id)
            .limit(limit)
        )
        return [fire_from_row(r) for r in (await self.conn.execute(stmt)).all()]

    async def queue(self, fire_id: int, fencing_token: int) -> bool:
        """Put a held fire back in the store as `queued`, its lease released, to be started by
        whichever replica has capacity; False if the lease was lost meanwhile. It has not run:
        its attempt goes back one, and the claim that starts it counts it again."""
        result = await self.conn.execute(
            update(fires)
            .where(_held(fire_id, fencing_token))
            .values(
                status=RunStatus.QUEUED,
                attempt=fires.c.attempt - 1,
                lease_owner=None,
                lease_expires_at=None,
                started_at=None,
            )
        )
        return result.rowcount == 1

    async def queued(self, *, limit: int) -> list[FireRecord]:
        """The oldest queued fires, in admission order. On PostgreSQL the rows are locked and
        rows another replica is claiming are skipped, so replicas drain the queue side by side."""
        stmt = (
            select(fires)
            .where(fires.c.status == RunStatus.QUEUED)
            .order_by(fires.c.admitted_at, fires.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [fire_from_row(r) for r in (await self.conn.execute(stmt)).all()]

    async def claim_queued(
        self, fire: FireRecord, *, owner: str, lease_expires_at: datetime, now: datetime
    ) -> FireRecord | None:
        """Start a queued fire under `owner`'s lease; None if another replica claimed it."""
        result = await self.conn.execute(
            update(fires)
            .where(
                fires.c.id == fire.id,
                fires.c.status == RunStatus.QUEUED,
                fires.c.fencing_token == fire.fencing_token,
            )
            .values(
                status=RunStatus.RUNNING,
                lease_owner=owner,
                lease_expires_at=lease_expires_at,
                fencing_token=fire.fencing_token + 1,
                attempt=fire.attempt + 1,
                started_at=now,
            )
        )
        return await self.get(fire.id) if result.rowcount == 1 else None

    async def expired_leases(self, now: datetime, *, limit: int = 100) -> list[FireRecord]:
        """Running fires whose owner stopped renewing: it crashed or was stopped."""
        stmt = (
            select(fires)
            .where(
                fires.c.status == RunStatus.RUNNING,
                or_(fires.c.lease_expires_at.is_(None), fires.c.lease_expires_at < now),
            )
            .order_by(fires.c.id)
            .limit(limit)
        )
        return [fire_from_row(r) for r in (await self.conn.execute(stmt)).all()]

    async def take_over_lease(
        self,
        fire: FireRecord,
        *,
        owner: str,
        lease_expires_at: datetime,
        now: datetime,
        expired_before: datetime | None = None,
    ) -> FireRecord | None:
        """Claim an expired fire for `owner` with a new fencing token; None if someone else did.

        With `expired_before`, the lease must still be expired then (or released) as the row is
        claimed: an owner that renewed since the fire was read as expired keeps its run."""
        held = _held(fire.id, fire.fencing_token)
        if expired_before is not None:
            held = and_(
                held,
                or_(fires.c.lease_expires_at.is_(None), fires.c.lease_expires_at < expired_before),
            )
        result = await self.conn.execute(
            update(fires)
            .where(held)
            .values(
                lease_owner=owner,
                lease_expires_at=lease_expires_at,
                fencing_token=fire.fencing_token + 1,
                attempt=fire.attempt + 1,
                started_at=now,
            )
        )
        if result.rowcount != 1:
            return None
        return await self.get(fire.id)

    async def renew_lease(
        self, fire_id: int, fencing_token: int, lease_expires_at: datetime
    ) -> bool:
        params = {"b_id": fire_id, "b_token": fencing_token, "lease_expires_at": lease_expires_at}
        result = await self.conn.execute(_HELD_UPDATE, params)
        return result.rowcount == 1

    async def finish(
        self,
        fire_id: int,
        fencing_token: int,
        *,
        status: RunStatus,
        finished_at: datetime,
        outcome: str | None,
        output: str | None,
        error: str | None,
    ) -> bool:
        """Record a run's end; False if the lease was lost (a newer attempt owns the fire)."""
        params = {
            "b_id": fire_id,
            "b_token": fencing_token,
            "status": status,
            "finished_at": finished_at,
            "outcome": outcome,
            "output": output,
            "error": error,
            "lease_owner": None,
            "lease_expires_at": None,
        }
        result = await self.conn.execute(_HELD_UPDATE, params)
        return result.rowcount == 1

    async def retry_later(
        self,
        fire_id: int,
        fencing_token: int,
        *,
        retry_at: datetime,
        failed: AttemptRecord,
        outcome: str | None,
        output: str | None,
        error: str | None,
    ) -> bool:
        """Record a failed attempt (`failed`, appended to `previous_attempts`) and leave the
        fire `retrying` until `retry_at`, its lease released; False if the lease was lost."""
        held = _held(fire_id, fencing_token)
        row = (await self.conn.execute(select(fires.c.previous_attempts).where(held))).first()
        if row is None:
            return False
        result = await self.conn.execute(
            update(fires)
            .where(held)
            .values(
                status=RunStatus.RETRYING,
                retry_at=retry_at,
                previous_attempts=[*(row.previous_attempts or ()), attempt_to_json(failed)],
                outcome=outcome,
                output=output,
                error=error,
                lease_owner=None,
                lease_expires_at=None,
            )
        )
        return result.rowcount == 1

    async def queue_due_retries(self, now: datetime, *, limit: int = 100) -> int:
        """Move fires whose retry is due to `queued`, to be started by whichever replica has
        capacity (`queued`, `claim_queued`: that claim counts the new attempt); returns how
        many."""
        due = (
            select(fires.c.id)
            .where(fires.c.status == RunStatus.RETRYING, fires.c.retry_at <= now)
            .order_by(fires.c.retry_at, fires.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        ids = list((await self.conn.execute(due)).scalars().all())
        if not ids:
            return 0
        result = await self.conn.execute(
            update(fires)
            .where(fires.c.id.in_(ids), fires.c.status == RunStatus.RETRYING)
            .values(status=RunStatus.QUEUED, retry_at=None, started_at=None)
        )
        return int(result.rowcount or 0)

    async def list_by_status(self, status: RunStatus | None, *, limit: int) -> list[FireRecord]:
        """Runs of every job, newest first; only those in `status` when given."""
        stmt = select(fires).order_by(fires.c.admitted_at.desc(), fires.c.id.desc()).limit(limit)
        if status is not None:
            stmt = stmt.where(fires.c.status == status)
        return [fire_from_row(r) for r in (await self.conn.execute(stmt)).all()]

    async def delete_for_jobs(self, job_ids: list[str]) -> int:
        if not job_ids:
            return 0
        result = await self.conn.execute(delete(fires).where(fires.c.job_id.in_(job_ids)))
        return int(result.rowcount or 0)

    async def release_lease(self, fire_id: int, fencing_token: int) -> bool:
        """Give up a held lease at once (a stopping replica stopped the run): the fire stays
        `running` with no lease, which `expired_leases` lists at once, so any replica takes it
        over at its next round. False if the lease was no longer held under this token."""
        result = await self.conn.execute(
            update(fires).where(_held(fire_id, fencing_token)).values(lease_expires_at=None)
        )
        return result.rowcount == 1

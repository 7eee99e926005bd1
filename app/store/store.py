"""The store: an async SQLAlchemy Core engine over SQLite or PostgreSQL, and its transactions.

Claims are conditional writes whose row count is checked, so the same code is correct on
both databases and across replicas sharing PostgreSQL.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, and_, delete, event, func, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from app.settings import ensure_sqlite_folder
from app.store.records import FireRecord, JobRecord, OutboxRecord
from app.store.tables import fires, jobs, outbox

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_LOCK_ID = 7_246_310_001  # pg advisory lock: one replica migrates at a time


class StoreUnavailable(Exception):
    """The database cannot be reached or is locked; the operation changed nothing."""


class DuplicateFire(Exception):
    """A fire with this dedup key was already admitted."""


def fire_dedup_key(job_id: str, fire_at: datetime) -> str:
    """The contract's dedup key, `{job_id}:{fire_at}`, with `fire_at` in UTC."""
    return f"{job_id}:{fire_at.astimezone(UTC).isoformat()}"


def new_fire(
    *,
    job_id: str,
    fire_at: datetime,
    dedup_key: str,
    kind: str,
    status: str,
    now: datetime,
    lease_owner: str | None = None,
    lease_expires_at: datetime | None = None,
    error: str | None = None,
    slots: int = 1,
) -> dict[str, Any]:
    """Column values of a new fire: running ones carry their lease, final ones their end."""
    running = status == "running"
    return {
        "job_id": job_id,
        "fire_at": fire_at,
        "dedup_key": dedup_key,
        "kind": kind,
        "status": status,
        "attempt": 1 if running else 0,
        "lease_owner": lease_owner if running else None,
        "lease_expires_at": lease_expires_at if running else None,
        "fencing_token": 1 if running else 0,
        "admitted_at": now,
        "started_at": now if running else None,
        "finished_at": now if status in ("missed", "skipped") else None,
        "error": error,
        "slots": slots,
    }


# SQLSTATE classes worth a retry: connection exceptions, transaction rollbacks (serialization
# failures, deadlocks), insufficient resources, operator intervention (server shutting down).
_TRANSIENT_SQLSTATE = ("08", "40", "53", "57")


def advanced_job(
    *, next_run_at: datetime | None, runs_started: int, now: datetime
) -> dict[str, Any]:
    """Column values of a job moved past a fire: with no next fire it is completed."""
    return {
        "next_run_at": next_run_at,
        "runs_started": runs_started,
        "state": "scheduled" if next_run_at is not None else "completed",
        "completed_at": None if next_run_at is not None else now,
        "updated_at": now,
    }


def _is_unavailable(exc: BaseException) -> bool:
    """Errors that say "try again later" rather than "this request is wrong"."""
    if isinstance(exc, IntegrityError):
        return False
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeoutError):
        return True
    if isinstance(exc, DBAPIError):
        sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        if exc.connection_invalidated or str(sqlstate or "").startswith(_TRANSIENT_SQLSTATE):
            return True
    return isinstance(exc, OSError | ConnectionError | TimeoutError)


class Store:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @classmethod
    def from_url(cls, url: str, *, echo: bool = False) -> Store:
        if url.startswith("sqlite"):
            ensure_sqlite_folder(url)
            engine = create_async_engine(url, echo=echo)
            _configure_sqlite(engine)
        else:
            engine = create_async_engine(
                url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=10, pool_timeout=10
            )
        return cls(engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def migrate(self) -> None:
        """Apply Alembic migrations up to head; safe when several replicas start at once."""
        async with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                await conn.execute(text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_ID})"))
            await conn.run_sync(_upgrade_to_head)

    async def ping(self) -> None:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(select(1))
        except Exception as exc:
            if _is_unavailable(exc):
                raise StoreUnavailable(str(exc.__class__.__name__)) from exc
            raise

    async def close(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """One database transaction; connection failures surface as `StoreUnavailable`."""
        try:
            async with self.engine.begin() as conn:
                yield Tx(conn, self.dialect)
        except (DuplicateFire, StoreUnavailable):
            raise
        except Exception as exc:
            if _is_unavailable(exc):
                raise StoreUnavailable(exc.__class__.__name__) from exc
            raise


def _upgrade_to_head(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _configure_sqlite(engine: AsyncEngine) -> None:
    """WAL, a busy timeout, and BEGIN IMMEDIATE so writers queue instead of failing."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class Tx:
    """The statements of one transaction. Every method is one or two SQL statements."""

    def __init__(self, conn: AsyncConnection, dialect: str) -> None:
        self.conn = conn
        self.dialect = dialect

    # -- jobs ----------------------------------------------------------------------

    async def insert_job(self, values: dict[str, Any]) -> JobRecord:
        await self.conn.execute(insert(jobs).values(**values))
        job = await self.get_job(values["id"])
        assert job is not None
        return job

    async def get_job(self, job_id: str, *, for_update: bool = False) -> JobRecord | None:
        stmt = select(jobs).where(jobs.c.id == job_id)
        if for_update and self.dialect == "postgresql":
            stmt = stmt.with_for_update()
        row = (await self.conn.execute(stmt)).first()
        return JobRecord.from_row(row) if row else None

    async def list_jobs(self, *, state: str | None = None) -> list[JobRecord]:
        stmt = select(jobs).order_by(jobs.c.created_at, jobs.c.id)
        if state:
            stmt = stmt.where(jobs.c.state == state)
        return [JobRecord.from_row(r) for r in (await self.conn.execute(stmt)).all()]

    async def update_job(self, job_id: str, values: dict[str, Any]) -> JobRecord:
        """Update a job known to exist (callers hold it in this transaction)."""
        await self.conn.execute(update(jobs).where(jobs.c.id == job_id).values(**values))
        job = await self.get_job(job_id)
        if job is None:
            raise LookupError(f"job {job_id} vanished inside its own transaction")
        return job

    async def advance_job(
        self, job_id: str, *, expected_next_run_at: datetime, values: dict[str, Any]
    ) -> bool:
        """Move a scheduled job past `expected_next_run_at`; False if another fire came first."""
        result = await self.conn.execute(
            update(jobs)
            .where(
                jobs.c.id == job_id,
                jobs.c.state == "scheduled",
                jobs.c.next_run_at == expected_next_run_at,
            )
            .values(**values)
        )
        return result.rowcount == 1

    async def delete_job(self, job_id: str) -> bool:
        await self.conn.execute(delete(fires).where(fires.c.job_id == job_id))
        result = await self.conn.execute(delete(jobs).where(jobs.c.id == job_id))
        return result.rowcount == 1

    # -- fires -----------------------------------------------------------------------

    async def get_fire_by_key(self, dedup_key: str) -> FireRecord | None:
        row = (await self.conn.execute(select(fires).where(fires.c.dedup_key == dedup_key))).first()
        return FireRecord.from_row(row) if row else None

    async def get_fire(self, fire_id: int) -> FireRecord | None:
        row = (await self.conn.execute(select(fires).where(fires.c.id == fire_id))).first()
        return FireRecord.from_row(row) if row else None

    async def insert_fire(self, values: dict[str, Any]) -> FireRecord:
        """Insert a fire; `DuplicateFire` if its dedup key exists (the unique key decides)."""
        try:
            async with self.conn.begin_nested():
                result = await self.conn.execute(insert(fires).values(**values))
        except IntegrityError as exc:
            raise DuplicateFire(values["dedup_key"]) from exc
        fire_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
        fire = await self.get_fire(int(fire_id)) if fire_id is not None else None
        if fire is None:
            fire = await self.get_fire_by_key(values["dedup_key"])
        assert fire is not None
        return fire

    async def list_fires(self, job_id: str, *, limit: int = 50) -> list[FireRecord]:
        stmt = (
            select(fires)
            .where(fires.c.job_id == job_id)
            .order_by(fires.c.admitted_at.desc(), fires.c.id.desc())
            .limit(limit)
        )
        return [FireRecord.from_row(r) for r in (await self.conn.execute(stmt)).all()]

    async def running_count(self, job_id: str, now: datetime) -> int:
        """Runs of the job going on now: a run whose lease expired (its replica died) is not."""
        stmt = select(func.count()).where(
            fires.c.job_id == job_id,
            fires.c.status == "running",
            fires.c.lease_expires_at >= now,
        )
        return int((await self.conn.execute(stmt)).scalar_one())

    async def buffered_fire(self, job_id: str) -> FireRecord | None:
        stmt = (
            select(fires)
            .where(fires.c.job_id == job_id, fires.c.status == "buffered")
            .order_by(fires.c.id)
            .limit(1)
        )
        row = (await self.conn.execute(stmt)).first()
        return FireRecord.from_row(row) if row else None

    async def start_buffered(
        self, fire: FireRecord, *, owner: str, lease_expires_at: datetime, now: datetime
    ) -> FireRecord | None:
        """Move a buffered fire to running under `owner`'s lease; None if someone else did."""
        result = await self.conn.execute(
            update(fires)
            .where(fires.c.id == fire.id, fires.c.status == "buffered")
            .values(
                status="running",
                lease_owner=owner,
                lease_expires_at=lease_expires_at,
                fencing_token=fire.fencing_token + 1,
                attempt=fire.attempt + 1,
                started_at=now,
            )
        )
        return await self.get_fire(fire.id) if result.rowcount == 1 else None

    async def stranded_buffered(self, *, limit: int = 100) -> list[FireRecord]:
        """Buffered fires whose job has no run going: the replica that should start them died."""
        running = select(fires.c.job_id).where(fires.c.status == "running")
        stmt = (
            select(fires)
            .where(fires.c.status == "buffered", fires.c.job_id.not_in(running))
            .order_by(fires.c.id)
            .limit(limit)
        )
        return [FireRecord.from_row(r) for r in (await self.conn.execute(stmt)).all()]

    async def purge_completed_jobs(self, completed_before: datetime) -> int:
        """Delete completed jobs (and their runs) that finished before `completed_before`."""
        old = select(jobs.c.id).where(
            jobs.c.state == "completed", jobs.c.completed_at < completed_before
        )
        await self.conn.execute(delete(fires).where(fires.c.job_id.in_(old)))
        result = await self.conn.execute(
            delete(jobs).where(jobs.c.state == "completed", jobs.c.completed_at < completed_before)
        )
        return int(result.rowcount or 0)

    async def expired_leases(self, now: datetime, *, limit: int = 100) -> list[FireRecord]:
        """Running fires whose owner stopped renewing: it crashed or was stopped."""
        stmt = (
            select(fires)
            .where(
                fires.c.status == "running",
                or_(fires.c.lease_expires_at.is_(None), fires.c.lease_expires_at < now),
            )
            .order_by(fires.c.id)
            .limit(limit)
        )
        return [FireRecord.from_row(r) for r in (await self.conn.execute(stmt)).all()]

    async def take_over_lease(
        self, fire: FireRecord, *, owner: str, lease_expires_at: datetime, now: datetime
    ) -> FireRecord | None:
        """Claim an expired fire for `owner` with a new fencing token; None if someone else did."""
        result = await self.conn.execute(
            update(fires)
            .where(
                fires.c.id == fire.id,
                fires.c.status == "running",
                fires.c.fencing_token == fire.fencing_token,
            )
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
        return await self.get_fire(fire.id)

    async def renew_lease(
        self, fire_id: int, fencing_token: int, lease_expires_at: datetime
    ) -> bool:
        result = await self.conn.execute(
            update(fires)
            .where(
                fires.c.id == fire_id,
                fires.c.fencing_token == fencing_token,
                fires.c.status == "running",
            )
            .values(lease_expires_at=lease_expires_at)
        )
        return result.rowcount == 1

    async def finish_fire(
        self,
        fire_id: int,
        fencing_token: int,
        *,
        status: str,
        finished_at: datetime,
        outcome: str | None,
        output: str | None,
        error: str | None,
    ) -> bool:
        """Record a run's end; False if the lease was lost (a newer attempt owns the fire)."""
        result = await self.conn.execute(
            update(fires)
            .where(
                fires.c.id == fire_id,
                fires.c.fencing_token == fencing_token,
                fires.c.status == "running",
            )
            .values(
                status=status,
                finished_at=finished_at,
                outcome=outcome,
                output=output,
                error=error,
                lease_owner=None,
                lease_expires_at=None,
            )
        )
        return result.rowcount == 1

    # -- outbox ----------------------------------------------------------------------

    async def queue_nas_op(
        self, job_id: str, op: str, fire_at: datetime | None, now: datetime
    ) -> OutboxRecord:
        """Make `op` the job's pending NAS operation, replacing any older one."""
        values = {
            "job_id": job_id,
            "op": op,
            "fire_at": fire_at,
            "generation": 1,
            "attempts": 0,
            "last_error": None,
            "created_at": now,
            "updated_at": now,
        }
        upsert = pg_insert(outbox) if self.dialect == "postgresql" else sqlite_insert(outbox)
        stmt = upsert.values(**values).on_conflict_do_update(
            index_elements=[outbox.c.job_id],
            set_={
                "op": op,
                "fire_at": fire_at,
                "generation": outbox.c.generation + 1,
                "attempts": 0,
                "last_error": None,
                "updated_at": now,
            },
        )
        await self.conn.execute(stmt)
        record = await self.get_nas_op(job_id)
        assert record is not None
        return record

    async def get_nas_op(self, job_id: str) -> OutboxRecord | None:
        row = (await self.conn.execute(select(outbox).where(outbox.c.job_id == job_id))).first()
        return OutboxRecord.from_row(row) if row else None

    async def list_nas_ops(self, *, limit: int | None = None) -> list[OutboxRecord]:
        stmt = select(outbox).order_by(outbox.c.updated_at, outbox.c.job_id)
        if limit:
            stmt = stmt.limit(limit)
        return [OutboxRecord.from_row(r) for r in (await self.conn.execute(stmt)).all()]

    async def ack_nas_op(self, job_id: str, generation: int) -> bool:
        """Drop the operation NAS acknowledged, unless a newer one replaced it meanwhile."""
        result = await self.conn.execute(
            delete(outbox).where(and_(outbox.c.job_id == job_id, outbox.c.generation == generation))
        )
        return result.rowcount == 1

    async def note_nas_failure(
        self, job_id: str, generation: int, error: str, now: datetime
    ) -> None:
        await self.conn.execute(
            update(outbox)
            .where(outbox.c.job_id == job_id, outbox.c.generation == generation)
            .values(attempts=outbox.c.attempts + 1, last_error=error[:500], updated_at=now)
        )

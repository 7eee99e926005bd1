"""Migration 0007 (outbox claims, `leases`, retry policies and attempts) carries existing rows
forward unclaimed and never retried, and downgrades again, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, insert, inspect

from app.domain.fires import fire_dedup_key, new_fire
from app.domain.records import RetryPolicy
from app.domain.states import NasOp, RunKind, RunStatus
from app.store import Store
from app.store.revisions import MIGRATIONS
from app.store.tables import fires, jobs, outbox
from tests.support.records import job_row

pytestmark = pytest.mark.asyncio

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def _downgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.downgrade(config, "0006")


def _has_leases(connection: Connection) -> bool:
    return inspect(connection).has_table("leases")


async def test_0007_keeps_rows_unclaimed_and_never_retried(empty_database_url: str) -> None:
    store = Store.from_url(empty_database_url)
    try:
        await store.migrate("0006")
        async with store.engine.begin() as conn:
            await conn.execute(insert(jobs).values(job_row("job-a", next_run_at=T0)))
            fire = new_fire(
                job_id="job-a",
                fire_at=T0,
                dedup_key=fire_dedup_key("job-a", T0),
                kind=RunKind.SCHEDULED,
                status=RunStatus.FAILED,
                now=T0,
            )
            await conn.execute(insert(fires).values(fire))
            await conn.execute(
                insert(outbox).values(
                    job_id="job-a",
                    op=NasOp.PROVISION,
                    fire_at=T0,
                    op_id="op-a",
                    attempts=0,
                    created_at=T0,
                    updated_at=T0,
                )
            )
            assert not await conn.run_sync(_has_leases)

        await store.migrate()
        async with store.transaction() as tx:
            job = await tx.jobs.get("job-a")
            [kept] = await tx.fires.list_for_job("job-a")
            pending = await tx.outbox.get("job-a")
            assert await tx.leases.acquire("purge", "a", T0, T0)
        assert job is not None and job.retry == RetryPolicy(1, 10, 600)
        assert (kept.status, kept.retry_at, kept.previous_attempts) == (RunStatus.FAILED, None, ())
        assert pending is not None and (pending.claimed_by, pending.claimed_until) == (None, None)

        async with store.engine.begin() as conn:
            await conn.run_sync(_downgrade)
            assert not await conn.run_sync(_has_leases)
        await store.migrate()
        async with store.transaction() as tx:
            assert await tx.jobs.get("job-a") is not None
    finally:
        await store.close()

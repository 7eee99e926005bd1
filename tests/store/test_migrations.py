"""Migrations carry existing data forward, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from app.domain.states import NasOp
from app.store import Store

pytestmark = pytest.mark.asyncio

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


async def test_0004_gives_queued_operations_an_identity_and_keeps_them(
    empty_database_url: str,
) -> None:
    store = Store.from_url(empty_database_url)
    try:
        await store.migrate("0003")
        async with store.engine.begin() as conn:
            for job_id, generation in (("job-a", 1), ("job-b", 7)):
                await conn.execute(
                    text(
                        "INSERT INTO outbox (job_id, op, fire_at, generation, attempts,"
                        " created_at, updated_at) VALUES (:j, 'provision', :t, :g, 0, :t, :t)"
                    ),
                    {"j": job_id, "g": generation, "t": T0.replace(tzinfo=None)},
                )
        await store.migrate()
        async with store.transaction() as tx:
            queued = {op.job_id: op for op in await tx.outbox.list_all()}
            fresh = await tx.outbox.queue("job-a", NasOp.CANCEL, None, T0)
        assert set(queued) == {"job-a", "job-b"}
        assert all(op.op == NasOp.PROVISION and op.fire_at == T0 for op in queued.values())
        assert len({op.op_id for op in queued.values()} | {fresh.op_id}) == 3
    finally:
        await store.close()


async def test_0005_keeps_queued_operations_unparked(empty_database_url: str) -> None:
    store = Store.from_url(empty_database_url)
    try:
        await store.migrate("0004")
        async with store.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO outbox (job_id, op, fire_at, op_id, attempts, last_error,"
                    " created_at, updated_at) VALUES ('job-a', 'provision', :t, 'op-a', 3,"
                    " 'POST /api/agent-cron/provision: HTTP 422: bad fire_at', :t, :t)"
                ),
                {"t": T0.replace(tzinfo=None)},
            )
        await store.migrate()  # the repositories read the latest columns
        async with store.transaction() as tx:
            [kept] = await tx.outbox.list_all()
            await tx.outbox.note_failure("job-a", "op-a", "HTTP 422: again", T0, park=True)
            parked = await tx.outbox.get("job-a")
        assert (kept.job_id, kept.op, kept.fire_at, kept.op_id) == (
            "job-a",
            NasOp.PROVISION,
            T0,
            "op-a",
        )
        assert kept.attempts == 3
        assert kept.last_error == "POST /api/agent-cron/provision: HTTP 422: bad fire_at"
        assert kept.parked_at is None  # on backoff as before, until a push is refused again
        assert parked is not None and parked.parked_at == T0 and parked.attempts == 4
    finally:
        await store.close()

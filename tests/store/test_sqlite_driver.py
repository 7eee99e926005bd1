"""SQLite in this process: one trip to aiosqlite's thread per statement (not four), write
transactions that take turns instead of sleeping in SQLite's busy handler, and a commit that
is on disk before it returns."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import text

from app.store import Store
from tests.support.records import job_row

pytestmark = pytest.mark.asyncio

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def sqlite_only(store: Store) -> Store:
    if store.dialect != "sqlite":
        pytest.skip("SQLite's driver and write lock")
    return store


def count_trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every call queued to aiosqlite's thread, by the function's name."""
    trips: list[str] = []
    real = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        trips.append(getattr(fn, "__name__", repr(fn)))
        return await real(self, fn, *args, **kwargs)  # type: ignore[no-untyped-call]

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return trips


async def test_a_statement_is_one_trip_and_its_results_are_whole(
    sqlite_only: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = sqlite_only
    async with store.transaction() as tx:
        await tx.jobs.insert(job_row("job-a", next_run_at=T0))
        await tx.jobs.insert(job_row("job-b", next_run_at=T0))
    trips = count_trips(monkeypatch)
    async with store.transaction() as tx:
        rows = (await tx.conn.execute(text("SELECT id FROM jobs ORDER BY id"))).all()
        updated = await tx.conn.execute(text("UPDATE jobs SET name = 'x' WHERE id = 'job-a'"))
    assert [r.id for r in rows] == ["job-a", "job-b"]
    assert updated.rowcount == 1
    # BEGIN IMMEDIATE, the SELECT, the UPDATE: one trip each; then the commit, and the pool's
    # reset of the connection it gets back (SQLAlchemy's adapter took 4 trips per statement).
    assert trips == ["_run", "_run", "_run", "commit", "rollback"]


async def test_concurrent_write_transactions_take_turns(sqlite_only: Store) -> None:
    store = sqlite_only
    async with store.transaction() as tx:
        await tx.jobs.insert(job_row("job-a", next_run_at=T0))
    inside = 0
    most = 0

    async def write(i: int) -> None:
        nonlocal inside, most
        async with store.transaction() as tx:
            inside += 1
            most = max(most, inside)
            await tx.conn.execute(text(f"UPDATE jobs SET name = 'n{i}' WHERE id = 'job-a'"))
            await asyncio.sleep(0.005)  # hold the transaction across an await
            inside -= 1

    await asyncio.wait_for(asyncio.gather(*(write(i) for i in range(20))), timeout=10)
    assert most == 1


async def test_a_write_transaction_inside_another_is_refused_not_deadlocked(
    sqlite_only: Store,
) -> None:
    store = sqlite_only
    async with store.transaction():
        with pytest.raises(RuntimeError, match="inside another"):
            async with store.transaction():
                raise AssertionError("unreachable")
    async with store.read() as tx:  # reads never wait for the writer
        assert (await tx.conn.execute(text("SELECT 1"))).scalar_one() == 1


async def test_every_commit_reaches_the_disk(sqlite_only: Store) -> None:
    async with sqlite_only.read() as tx:
        synchronous = (await tx.conn.execute(text("PRAGMA synchronous"))).scalar_one()
        journal = (await tx.conn.execute(text("PRAGMA journal_mode"))).scalar_one()
    assert (synchronous, journal) == (2, "wal")  # 2 = FULL

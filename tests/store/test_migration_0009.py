"""Migration 0009 makes job names unique: the oldest job of a shared name keeps it, the others
take the first free `name-N`, then the unique index refuses duplicates; on SQLite and
PostgreSQL alike."""

from __future__ import annotations

from datetime import timedelta

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, insert

from app.errors import NameTaken
from app.store import Store
from app.store.revisions import MIGRATIONS
from app.store.tables import jobs
from tests.support.records import ANCHOR, job_row

pytestmark = pytest.mark.asyncio

LONG = "x" * 200  # the column's length


def _downgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.downgrade(config, "0008")


def _row(job_id: str, name: str, minutes: int) -> dict[str, object]:
    at = ANCHOR + timedelta(minutes=minutes)
    return job_row(job_id, next_run_at=at, name=name, created_at=at)


async def _names(store: Store) -> dict[str, str]:
    async with store.transaction() as tx:
        return {job.id: job.name for job in await tx.jobs.named(None)}


async def test_0009_suffixes_duplicate_names_then_keeps_names_unique(
    empty_database_url: str,
) -> None:
    store = Store.from_url(empty_database_url)
    try:
        await store.migrate("0008")
        rows = [
            _row("z-oldest", "backup", 0),  # the oldest keeps its name, whatever its id
            _row("a-newest", "backup", 30),
            _row("m-middle", "backup", 10),
            _row("b-same-time", "backup", 10),  # created together: the id decides
            _row("taken", "backup-2", 5),  # a suffix already used is skipped
            _row("long-1", LONG, 0),
            _row("long-2", LONG, 1),
            _row("solo", "solo", 0),
        ]
        async with store.engine.begin() as conn:
            await conn.execute(insert(jobs), rows)

        await store.migrate()
        assert await _names(store) == {
            "z-oldest": "backup",
            "b-same-time": "backup-3",
            "m-middle": "backup-4",
            "a-newest": "backup-5",
            "taken": "backup-2",
            "long-1": LONG,
            "long-2": LONG[:198] + "-2",  # cut to fit the column with its suffix
            "solo": "solo",
        }
        with pytest.raises(NameTaken):
            async with store.transaction() as tx:
                await tx.jobs.insert(_row("another", "solo", 40))

        # Down again: the index goes, the new names stay; duplicates are possible once more.
        async with store.engine.begin() as conn:
            await conn.run_sync(_downgrade)
            await conn.execute(insert(jobs), [_row("again", "solo", 50)])
        await store.migrate()
        names = await _names(store)
        assert (names["solo"], names["again"], names["a-newest"]) == ("solo", "solo-2", "backup-5")
    finally:
        await store.close()


async def test_0009_on_names_already_unique_changes_none(empty_database_url: str) -> None:
    store = Store.from_url(empty_database_url)
    try:
        await store.migrate("0008")
        async with store.engine.begin() as conn:
            await conn.execute(insert(jobs), [_row("a", "a", 0), _row("b", "a-2", 1)])
        await store.migrate()
        assert await _names(store) == {"a": "a", "b": "a-2"}
    finally:
        await store.close()

"""Migration 0006 adds `fire_tokens` over existing data and removes it again, on SQLite and
PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, insert, inspect

from app.store import Store
from app.store.revisions import MIGRATIONS
from app.store.tables import jobs
from tests.support.records import job_row

pytestmark = pytest.mark.asyncio

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _downgrade(connection: Connection, revision: str) -> None:
    command.downgrade(_config(connection), revision)


def _fire_token_tables(connection: Connection) -> tuple[bool, list[str]]:
    inspector = inspect(connection)
    if not inspector.has_table("fire_tokens"):
        return False, []
    return True, sorted(index["name"] or "" for index in inspector.get_indexes("fire_tokens"))


def _previous_revision() -> str:
    """The revision 0006 follows, read from the migration chain."""
    script = ScriptDirectory.from_config(_config()).get_revision("0006")
    assert script is not None and isinstance(script.down_revision, str)
    return script.down_revision


PREVIOUS = _previous_revision()


async def test_0006_adds_fire_tokens_over_existing_jobs_and_downgrades(
    empty_database_url: str,
) -> None:
    store = Store.from_url(empty_database_url)
    try:
        await store.migrate(PREVIOUS)
        async with store.transaction() as tx:
            # Not `tx.jobs`: it reads the columns of the latest revision back.
            await tx.conn.execute(
                insert(jobs).values(job_row("job-a", next_run_at=T0, anchor_at=T0))
            )
            assert not (await tx.conn.run_sync(_fire_token_tables))[0]

        await store.migrate()
        async with store.transaction() as tx:
            assert await tx.conn.run_sync(_fire_token_tables) == (
                True,
                ["ix_fire_tokens_expires_at"],
            )
            assert await tx.fire_tokens.bind("jti:t", "job-a:k", T0 + timedelta(minutes=2)) == (
                "job-a:k"
            )
            assert await tx.jobs.get("job-a") is not None

        async with store.engine.begin() as conn:
            await conn.run_sync(_downgrade, PREVIOUS)
            assert not (await conn.run_sync(_fire_token_tables))[0]
        await store.migrate()
        async with store.transaction() as tx:
            assert await tx.fire_tokens.bound_key("jti:t") is None
    finally:
        await store.close()

"""Shared fixtures. Every test that touches the store gets its own freshly migrated database:
a SQLite file by default, or a PostgreSQL database when `CHRONOS_TEST_DATABASE_URL` is set
(cloned from a migrated template, so each test still starts empty).

`nas` is a real NAS emulator on a loopback port, signing with the session's NAS key
(`tests.support.keys.nas_signing_key`: generated once, not per test); `agent` is the app over
ASGI, talking to it."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url

from app.store import Store
from tests.support.agent import Agent, RunningNas, run_agent, run_nas

PG_URL = os.environ.get("CHRONOS_TEST_DATABASE_URL")


def _pg_admin_dsn(url: str) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


async def _pg_execute(url: str, *statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_pg_admin_dsn(url))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _migrate(url: str) -> None:
    store = Store.from_url(url)
    try:
        await store.migrate()
    finally:
        await store.close()


@pytest.fixture(scope="session")
def database_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database to copy per test: a SQLite file, or a PostgreSQL template database."""
    if PG_URL:
        name = f"chronos_tpl_{uuid.uuid4().hex[:10]}"
        url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
        asyncio.run(_pg_execute(PG_URL, f'CREATE DATABASE "{name}"'))
        asyncio.run(_migrate(url))
        yield name
        asyncio.run(_pg_execute(PG_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    else:
        path = tmp_path_factory.mktemp("db-template") / "template.db"
        asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
        yield str(path)


@pytest.fixture
def database_url(database_template: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated, empty database for this test only."""
    if PG_URL:
        name = f"chronos_t_{uuid.uuid4().hex[:12]}"
        asyncio.run(_pg_execute(PG_URL, f'CREATE DATABASE "{name}" TEMPLATE "{database_template}"'))
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
        asyncio.run(_pg_execute(PG_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    else:
        path = tmp_path / "chronos.db"
        shutil.copyfile(database_template, path)
        yield f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def empty_database_url(tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all, for migration tests."""
    if PG_URL:
        name = f"chronos_e_{uuid.uuid4().hex[:12]}"
        asyncio.run(_pg_execute(PG_URL, f'CREATE DATABASE "{name}"'))
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
        asyncio.run(_pg_execute(PG_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    else:
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"


@pytest_asyncio.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    store = Store.from_url(database_url)
    await store.migrate()
    yield store
    await store.close()


@pytest_asyncio.fixture
async def nas(tmp_path: Path) -> AsyncIterator[RunningNas]:
    async with run_nas(tmp_path) as running_nas:
        yield running_nas


@pytest_asyncio.fixture
async def agent(database_url: str, nas: RunningNas) -> AsyncIterator[Agent]:
    async with run_agent(database_url, nas) as running_agent:
        yield running_agent

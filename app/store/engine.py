"""The store's engine over SQLite or PostgreSQL, its migrations and its transactions.

Claims are conditional writes whose row count is checked, so the same code is correct on
both databases and across replicas sharing PostgreSQL.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import Connection, event, select, text
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.settings import ensure_sqlite_folder
from app.store.errors import DuplicateFire, StoreDataError, StoreUnavailable
from app.store.revisions import MIGRATIONS, MigrationStatus, head_revision, migration_status
from app.store.tx import Tx

log = logging.getLogger(__name__)

_MIGRATION_LOCK_ID = 7_246_310_001  # pg advisory lock: one replica migrates at a time


# SQLSTATE classes worth a retry: connection exceptions, transaction rollbacks (serialization
# failures, deadlocks), insufficient resources, operator intervention (server shutting down).
_TRANSIENT_SQLSTATE = ("08", "40", "53", "57")
_DATA_SQLSTATE = "22"  # data exception: a value out of range, or text the database refuses


def _sqlstate(exc: DBAPIError) -> str:
    return str(getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None) or "")


def _is_data_error(exc: BaseException) -> bool:
    """Errors that say "this value cannot be stored": the request is wrong, not the database.
    SQLite raises OverflowError (an integer over 64 bits) and UnicodeEncodeError (a lone
    surrogate) before SQLAlchemy wraps anything."""
    if isinstance(exc, DataError):
        return True
    if isinstance(exc, DBAPIError):
        return _sqlstate(exc).startswith(_DATA_SQLSTATE)
    return isinstance(exc, OverflowError | UnicodeEncodeError)


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


# Set while the current task holds a SQLite write transaction (see `Store._writer`).
_writing: ContextVar[bool] = ContextVar("chronos_store_writing", default=False)


class Store:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # When (time.monotonic()) a transaction last found the database unavailable: lease
        # holders could not renew then, so their leases say nothing about them for a while.
        self.last_unavailable_at: float | None = None
        # SQLite has one writer at a time. Left to SQLite, concurrent write transactions on
        # the pool's connections find the database locked and sleep in its busy handler
        # (1, 2, 5 … 100 ms at a time): a burst then waits on sleeps, not on work. In this
        # process, writers take turns on this lock instead, and each starts the moment the
        # one before it committed. (Other processes on the same file still meet the busy
        # timeout, as before.)
        self._writer = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    @classmethod
    def from_url(cls, url: str, *, echo: bool = False) -> Store:
        if url.startswith("sqlite"):
            ensure_sqlite_folder(url)
            # hide_parameters: job targets hold secrets; errors and echo never show parameters.
            from app.store.sqlite_driver import OneTripDBAPI

            engine = create_async_engine(
                url, echo=echo, hide_parameters=True, module=OneTripDBAPI()
            )
            _configure_sqlite(engine)
        else:
            engine = create_async_engine(
                url,
                echo=echo,
                hide_parameters=True,
                pool_pre_ping=True,
                pool_size=10,
                max_overflow=10,
                pool_timeout=10,
            )
        return cls(engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def migrate(self, revision: str = "head") -> None:
        """Apply Alembic migrations up to `revision`; safe when several replicas start at once.

        A schema already at the scripts' head (`head_revision`) costs one query and no Alembic
        import; otherwise Alembic upgrades under a PostgreSQL advisory lock (and checks the
        revision again there).
        """
        if revision == "head":
            head = await asyncio.to_thread(head_revision)
            if head is not None and await self.schema_revisions() == {head}:
                return
        await asyncio.to_thread(importlib.import_module, "alembic.command")  # off the loop
        async with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                await conn.execute(text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_ID})"))
            await conn.run_sync(_upgrade, revision)

    async def schema_revisions(self) -> set[str]:
        """The revisions in `alembic_version`; empty when there is none or no such table. Any
        error reading it counts as empty: the upgrade that follows reports a real failure."""
        try:
            async with self.engine.connect() as conn:
                result = await conn.execute(text("SELECT version_num FROM alembic_version"))
                return {str(row[0]) for row in result}
        except DBAPIError:
            return set()

    async def migration_status(self) -> MigrationStatus:
        """The schema's revision, the scripts' head and how many scripts it is behind (for
        `chronos doctor` and `GET /api/status`); reads the scripts off the event loop."""
        revisions = await self.schema_revisions()
        return await asyncio.to_thread(migration_status, revisions)

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
        if self._writer is None:
            async with self._translated(), self.engine.begin() as conn:
                yield Tx(conn, self.dialect)
            return
        if _writing.get():
            raise RuntimeError("a write transaction inside another one: SQLite would deadlock")
        token = _writing.set(True)
        try:
            async with self._writer, self._translated(), self.engine.begin() as conn:
                yield Tx(conn, self.dialect)
        finally:
            _writing.reset(token)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Tx]:
        """A transaction that only reads. On SQLite it does not take the write lock (a plain
        deferred BEGIN: WAL readers wait for no writer), so reads never queue behind writes."""
        async with self._translated(), self.engine.connect() as conn:
            conn = await conn.execution_options(chronos_read_only=True)
            async with conn.begin():
                yield Tx(conn, self.dialect)

    @asynccontextmanager
    async def _translated(self) -> AsyncIterator[None]:
        try:
            yield
        except (DuplicateFire, StoreUnavailable, StoreDataError):
            raise
        except Exception as exc:
            if _is_data_error(exc):
                raise StoreDataError(exc.__class__.__name__) from exc
            if _is_unavailable(exc):
                self.last_unavailable_at = time.monotonic()
                raise StoreUnavailable(exc.__class__.__name__) from exc
            raise

    def unavailable_within(self, seconds: float) -> bool:
        """True when a transaction found the database unavailable in the last `seconds`."""
        last = self.last_unavailable_at
        return last is not None and time.monotonic() - last < seconds


def _upgrade(connection: Connection, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _configure_sqlite(engine: AsyncEngine) -> None:
    """WAL, a busy timeout, and BEGIN IMMEDIATE so writers queue instead of failing.

    `synchronous=FULL`: every commit is on disk (fsync of the WAL) before it returns, so what
    a 2xx answered survives a process crash and a power loss alike. (NORMAL would survive a
    crash of the process but may lose the last commits to a power loss.)"""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        read_only = conn.get_execution_options().get("chronos_read_only", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

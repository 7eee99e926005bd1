"""Job names are unique (the index `uq_jobs_name`, migration 0009): the queries that look jobs
up by name, and the translation of the index's refusal into `NameTaken`, a 409, whichever
write met it (a create, a batch, a rename, an apply; a race between two of them included)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain.records import JobRecord
from app.errors import NameTaken
from app.store.rows import job_from_row
from app.store.tables import jobs

# How each database names the index in its refusal: PostgreSQL by the index, SQLite by the
# column ("UNIQUE constraint failed: jobs.name").
_NAME_INDEX_MARKS = ("uq_jobs_name", "jobs.name")


def _is_name_clash(exc: IntegrityError) -> bool:
    text = str(exc.orig)
    return any(mark in text for mark in _NAME_INDEX_MARKS)


@contextmanager
def name_is_unique(name: str | None) -> Iterator[None]:
    """Raise `NameTaken(name)` for a write inside that the unique index on names refuses
    (`name`: the name written, when one is)."""
    try:
        yield
    except IntegrityError as exc:
        if _is_name_clash(exc):
            raise NameTaken(name) from None
        raise


async def names_taken(conn: AsyncConnection, names: list[str]) -> list[str]:
    """Those of `names` that jobs have, in the order given (at most a batch's 1000 names)."""
    if not names:
        return []
    found = set((await conn.execute(select(jobs.c.name).where(jobs.c.name.in_(names)))).scalars())
    return [name for name in names if name in found]


async def jobs_named(
    conn: AsyncConnection, dialect: str, names: list[str] | None, *, for_update: bool
) -> list[JobRecord]:
    """The jobs with these names (None: every job), in id order; with `for_update` their rows
    are locked until the transaction ends, in id order, as every transaction that locks
    several job rows takes them (PostgreSQL; SQLite's write transactions exclude each other)."""
    stmt = select(jobs).order_by(jobs.c.id)
    if names is not None:
        if not names:
            return []
        stmt = stmt.where(jobs.c.name.in_(names))
    if for_update and dialect == "postgresql":
        stmt = stmt.with_for_update()
    return [job_from_row(row) for row in (await conn.execute(stmt)).all()]

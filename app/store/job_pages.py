"""One page of the `jobs` table, in creation order, filtered by state and a name glob."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain.records import JobRecord
from app.domain.states import JobState
from app.store.rows import job_from_row
from app.store.tables import jobs

LIKE_ESCAPE = "\\"


def glob_to_like(pattern: str) -> str:
    """An fnmatch-style glob (`*` any run, `?` one character, all else literal) as a LIKE
    pattern escaped with a backslash: a `%` or `_` in the glob matches only itself."""
    like = []
    for char in pattern:
        if char in (LIKE_ESCAPE, "%", "_"):
            like.append(LIKE_ESCAPE + char)
        elif char == "*":
            like.append("%")
        elif char == "?":
            like.append("_")
        else:
            like.append(char)
    return "".join(like)


def glob_to_sqlite_glob(pattern: str) -> str:
    """The glob for SQLite's case-sensitive GLOB: only `[` is special besides `*` and `?`."""
    return pattern.replace("[", "[[]")


def _name_matches(pattern: str, dialect: str) -> ColumnElement[bool]:
    """Case-sensitive on both databases (SQLite's LIKE ignores ASCII case; its GLOB does not)."""
    if dialect == "sqlite":
        return jobs.c.name.op("GLOB", is_comparison=True)(glob_to_sqlite_glob(pattern))
    return jobs.c.name.like(glob_to_like(pattern), escape=LIKE_ESCAPE)


async def page_of_jobs(
    conn: AsyncConnection,
    dialect: str,
    *,
    limit: int,
    after: tuple[datetime, str] | None = None,
    state: JobState | None = None,
    name: str | None = None,
) -> list[JobRecord]:
    """Up to `limit` jobs ordered by `(created_at, id)`, those after `after` only."""
    stmt = select(jobs).order_by(jobs.c.created_at, jobs.c.id).limit(limit)
    if after is not None:
        created_at, job_id = after
        stmt = stmt.where(
            or_(
                jobs.c.created_at > created_at,
                and_(jobs.c.created_at == created_at, jobs.c.id > job_id),
            )
        )
    if state is not None:
        stmt = stmt.where(jobs.c.state == state)
    if name is not None:
        stmt = stmt.where(_name_matches(name, dialect))
    return [job_from_row(r) for r in (await conn.execute(stmt)).all()]

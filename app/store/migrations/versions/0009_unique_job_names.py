"""Job names become unique (`chronos apply` keys jobs by name): existing duplicates are renamed
first, then a unique index on `jobs.name` keeps them so.

Of the jobs sharing a name, the oldest (by `created_at`, then `id`) keeps it; the others, in
that order, take the first free `name-2`, `name-3`, … (a suffixed name already used by another
job is skipped; a name too long for the column is cut before its suffix). The same rows get
the same names on SQLite and PostgreSQL, and on a rerun.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

MAX_NAME_LENGTH = 200  # the column's length

_jobs = sa.table(
    "jobs", sa.column("id", sa.String), sa.column("name", sa.String), sa.column("created_at")
)


def _suffixed(name: str, n: int) -> str:
    suffix = f"-{n}"
    return name[: MAX_NAME_LENGTH - len(suffix)] + suffix


def _renames(conn: sa.Connection) -> dict[str, str]:
    """`id → new name` for every job but the oldest of each shared name."""
    duplicated = (
        sa.select(_jobs.c.name).group_by(_jobs.c.name).having(sa.func.count() > 1).subquery()
    )
    rows = conn.execute(
        sa.select(_jobs.c.name, _jobs.c.created_at, _jobs.c.id).where(
            _jobs.c.name.in_(sa.select(duplicated.c.name))
        )
    ).all()
    if not rows:
        return {}
    taken = set(conn.execute(sa.select(_jobs.c.name)).scalars())
    renames: dict[str, str] = {}
    seen: set[str] = set()
    # Sorted here, not by the database: its collation would order the names differently.
    for name, _created_at, job_id in sorted(tuple(row) for row in rows):
        if name not in seen:
            seen.add(name)  # the oldest keeps it
            continue
        n = 2
        while _suffixed(name, n) in taken:
            n += 1
        renames[job_id] = _suffixed(name, n)
        taken.add(renames[job_id])
    return renames


def upgrade() -> None:
    conn = op.get_bind()
    for job_id, name in _renames(conn).items():
        conn.execute(sa.update(_jobs).where(_jobs.c.id == job_id).values(name=name))
    op.create_index("uq_jobs_name", "jobs", ["name"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_jobs_name", table_name="jobs")  # renamed jobs keep their new names

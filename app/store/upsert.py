"""`INSERT … ON CONFLICT` in the database's own dialect, for the repositories' upserts.

The dialect is imported when first used, not with the store: an agent on SQLite never loads
SQLAlchemy's PostgreSQL dialect (some 50 ms and 2 MiB at start), and one on PostgreSQL never
loads SQLite's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.dialects import postgresql, sqlite


def upsert_into(table: Table, dialect: str) -> postgresql.Insert | sqlite.Insert:
    """An INSERT into `table` that takes `on_conflict_do_update` / `on_conflict_do_nothing`;
    `dialect` is the engine's dialect name (`postgresql`, else SQLite)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)

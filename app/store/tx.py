"""One transaction, with a repository per table over its connection."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.fire_tokens import FireTokenRepository
from app.store.fires import FireRepository
from app.store.jobs import JobRepository
from app.store.leases import LeaseRepository
from app.store.outbox import OutboxRepository


class Tx:
    """`tx.jobs`, `tx.fires`, `tx.fire_tokens`, `tx.outbox` and `tx.leases` share the
    transaction: what they write commits or rolls back together."""

    def __init__(self, conn: AsyncConnection, dialect: str) -> None:
        self.conn = conn
        self.dialect = dialect
        self.jobs = JobRepository(conn, dialect)
        self.fires = FireRepository(conn, dialect)
        self.fire_tokens = FireTokenRepository(conn, dialect)
        self.outbox = OutboxRepository(conn, dialect)
        self.leases = LeaseRepository(conn, dialect)

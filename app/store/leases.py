"""Queries on the `leases` table: named housekeeping work one replica at a time holds."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, or_
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.tables import leases
from app.store.upsert import upsert_into


class LeaseRepository:
    def __init__(self, conn: AsyncConnection, dialect: str) -> None:
        self.conn = conn
        self.dialect = dialect

    async def acquire(self, name: str, holder: str, now: datetime, until: datetime) -> bool:
        """Hold the lease `name` until `until`: True when it was free, lapsed (its expiry
        before `now`) or already `holder`'s (renewed); False while another holder has it. One
        conditional upsert, so two replicas asking at once never both get it."""
        stmt = (
            upsert_into(leases, self.dialect)
            .values(name=name, holder=holder, expires_at=until)
            .on_conflict_do_update(
                index_elements=[leases.c.name],
                set_={"holder": holder, "expires_at": until},
                where=or_(leases.c.holder == holder, leases.c.expires_at < now),
            )
        )
        result = await self.conn.execute(stmt)
        return result.rowcount == 1

    async def release(self, name: str, holder: str) -> bool:
        """Give the lease up, if `holder` still has it."""
        result = await self.conn.execute(
            delete(leases).where(leases.c.name == name, leases.c.holder == holder)
        )
        return result.rowcount == 1

"""Queries on the `fire_tokens` table: which fire each presented fire token is bound to."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.tables import fire_tokens
from app.store.upsert import upsert_into


class FireTokenRepository:
    def __init__(self, conn: AsyncConnection, dialect: str) -> None:
        self.conn = conn
        self.dialect = dialect

    async def bind(self, token_id: str, dedup_key: str, expires_at: datetime) -> str:
        """Bind the token to `dedup_key` unless it is bound already; return the key it is bound
        to (the first one). One statement when the token is new."""
        stmt = (
            upsert_into(fire_tokens, self.dialect)
            .values(token_id=token_id, dedup_key=dedup_key, expires_at=expires_at)
            .on_conflict_do_nothing(index_elements=[fire_tokens.c.token_id])
            .returning(fire_tokens.c.dedup_key)
        )
        # The conflicting row may be purged (expired by another replica's clock) before it is
        # read: then the insert is tried again.
        for _ in range(3):
            inserted: str | None = (await self.conn.execute(stmt)).scalar_one_or_none()
            if inserted is not None:
                return inserted
            bound = await self.bound_key(token_id)
            if bound is not None:
                return bound
        raise RuntimeError(f"fire token {token_id} kept conflicting with a purge")

    async def bound_key(self, token_id: str) -> str | None:
        """The key the token is bound to, or None if it was never bound (or purged)."""
        stmt = select(fire_tokens.c.dedup_key).where(fire_tokens.c.token_id == token_id)
        return (await self.conn.execute(stmt)).scalar_one_or_none()

    async def purge_expired(self, now: datetime, limit: int = 1000) -> int:
        """Delete up to `limit` bindings whose token no longer verifies at `now` (its
        `expires_at` is not after `now`), oldest first; return how many were deleted."""
        expired = (
            select(fire_tokens.c.token_id)
            .where(fire_tokens.c.expires_at <= now)
            .order_by(fire_tokens.c.expires_at)
            .limit(limit)
        )
        result = await self.conn.execute(
            delete(fire_tokens).where(fire_tokens.c.token_id.in_(expired.scalar_subquery()))
        )
        return result.rowcount

"""Counts for `GET /api/status`: the `/metrics` gauges plus the leases a node holds, in one
read."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select

from app.domain.states import RunStatus
from app.store.gauges import read_gauges
from app.store.tables import fires, leases
from app.store.tx import Tx


@dataclass(frozen=True)
class StoreOverview:
    jobs_by_state: dict[str, int] = field(default_factory=dict)
    outbox_pending: int = 0
    outbox_oldest_at: datetime | None = None
    runs_by_status: dict[str, int] = field(default_factory=dict)  # open runs only
    run_leases_held: int = 0  # runs leased to the node asked about, lease not expired
    leases_held: list[str] = field(default_factory=list)  # named leases that node holds


async def read_overview(tx: Tx, *, node_id: str, now: datetime) -> StoreOverview:
    """Jobs by state, the outbox's size and oldest operation, open runs by status and the
    leases `node_id` holds at `now`."""
    gauges = await read_gauges(tx)
    conn = tx.conn
    run_leases = await conn.scalar(
        select(func.count()).where(
            fires.c.lease_owner == node_id,
            fires.c.lease_expires_at > now,
            fires.c.status.in_([str(RunStatus.RUNNING), str(RunStatus.QUEUED)]),
        )
    )
    named = await conn.execute(
        select(leases.c.name).where(leases.c.holder == node_id, leases.c.expires_at > now)
    )
    return StoreOverview(
        jobs_by_state=gauges.jobs_by_state,
        outbox_pending=gauges.outbox_pending,
        outbox_oldest_at=gauges.outbox_oldest_at,
        runs_by_status=gauges.open_runs_by_status,
        run_leases_held=int(run_leases or 0),
        leases_held=sorted(str(row[0]) for row in named),
    )

"""Counts for the `/metrics` scrape: three small aggregates, in one read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from app.domain.states import RunStatus
from app.store.tables import fires, jobs, outbox
from app.store.tx import Tx

# Open runs: admitted and not ended (`ix_fires_status_lease` serves the count).
OPEN_RUNS = (RunStatus.BUFFERED, RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.RETRYING)


@dataclass(frozen=True)
class StoreGauges:
    jobs_by_state: dict[str, int]
    open_runs_by_status: dict[str, int]
    outbox_pending: int  # parked operations included
    outbox_parked: int
    outbox_oldest_at: datetime | None  # when the oldest pending operation was queued


async def read_gauges(tx: Tx) -> StoreGauges:
    """Jobs by state, open runs by status, the outbox's size and its oldest operation."""
    conn = tx.conn
    job_rows = await conn.execute(select(jobs.c.state, func.count()).group_by(jobs.c.state))
    run_rows = await conn.execute(
        select(fires.c.status, func.count())
        .where(fires.c.status.in_([str(status) for status in OPEN_RUNS]))
        .group_by(fires.c.status)
    )
    pending, parked, oldest = (
        await conn.execute(
            select(func.count(), func.count(outbox.c.parked_at), func.min(outbox.c.created_at))
        )
    ).one()
    return StoreGauges(
        jobs_by_state={str(state): int(count) for state, count in job_rows},
        open_runs_by_status={str(status): int(count) for status, count in run_rows},
        outbox_pending=int(pending or 0),
        outbox_parked=int(parked or 0),
        outbox_oldest_at=oldest,
    )

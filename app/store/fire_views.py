"""The fire path's reads of the `fires` table: what deciding a fire needs, and what answering a
re-delivery needs, each in one statement."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, bindparam, case, exists, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain.records import FireRecord
from app.domain.states import JobState, RunStatus
from app.store.rows import fire_from_row
from app.store.tables import fire_tokens, fires, jobs, outbox


@dataclass(frozen=True)
class AdmissionView:
    existing: FireRecord | None  # the fire already admitted under the key
    running: int  # the job's runs going on, queued or awaiting a retry
    buffered: bool  # one of the job's fires waits for the run going on


@dataclass(frozen=True)
class DuplicateView:
    fire: FireRecord
    settled: bool  # the job's arm is acknowledged where the job wants it; nothing pending
    bound_key: str | None  # the fire the token is bound to (asked for a token id only)


def _admission_view() -> Select[Any]:
    now = bindparam("now", type_=fires.c.lease_expires_at.type)
    going = or_(
        fires.c.status.in_((RunStatus.QUEUED, RunStatus.RETRYING)),
        and_(fires.c.status == RunStatus.RUNNING, fires.c.lease_expires_at >= now),
    )
    counts = (
        select(
            func.count(case((going, 1))).label("running"),
            func.count(case((fires.c.status == RunStatus.BUFFERED, 1))).label("buffered"),
        )
        .where(
            fires.c.job_id == bindparam("job_id"),
            fires.c.status.in_(
                (RunStatus.QUEUED, RunStatus.RETRYING, RunStatus.RUNNING, RunStatus.BUFFERED)
            ),
        )
        .subquery()
    )
    existing = select(fires).where(fires.c.dedup_key == bindparam("key")).subquery()
    return select(counts.c.running, counts.c.buffered, existing).select_from(
        counts.outerjoin(existing, true())
    )


def _duplicate_view(with_token: bool) -> Select[Any]:
    wanted = case((jobs.c.state == JobState.SCHEDULED, jobs.c.next_run_at), else_=None)
    pending = exists().where(outbox.c.job_id == fires.c.job_id)
    settled = and_(
        jobs.c.id.isnot(None), ~pending, jobs.c.nas_armed_at.is_not_distinct_from(wanted)
    )
    columns: list[Any] = [*fires.c, case((settled, True), else_=False).label("settled")]
    if with_token:
        bound = select(fire_tokens.c.dedup_key).where(
            fire_tokens.c.token_id == bindparam("token_id")
        )
        columns.append(bound.scalar_subquery().label("bound_key"))
    return (
        select(*columns)
        .select_from(fires.outerjoin(jobs, jobs.c.id == fires.c.job_id))
        .where(fires.c.dedup_key == bindparam("key"))
    )


# Built once: the fire path runs them on every delivery, and building a statement costs more
# than running it.
_ADMISSION_VIEW = _admission_view()
_DUPLICATE_VIEW = _duplicate_view(with_token=False)
_DUPLICATE_VIEW_WITH_TOKEN = _duplicate_view(with_token=True)


class FireViews:
    conn: AsyncConnection

    async def admission_view(self, job_id: str, dedup_key: str, now: datetime) -> AdmissionView:
        """What deciding a fire of the job needs besides the job row, in one statement: the fire
        already admitted under `dedup_key` (if any), how many of the job's runs are going on
        (`running_count`), and whether one of its fires is buffered."""
        params = {"job_id": job_id, "key": dedup_key, "now": now}
        row = (await self.conn.execute(_ADMISSION_VIEW, params)).first()
        assert row is not None  # the aggregate always yields one row
        fire = fire_from_row(row) if row._mapping["id"] is not None else None
        return AdmissionView(fire, int(row.running or 0), bool(row.buffered))

    async def duplicate_view(self, dedup_key: str, token_id: str | None) -> DuplicateView | None:
        """The fire admitted under `dedup_key` with what answering a re-delivery of it needs,
        in one indexed read: whether its job's arm is known to be where the job wants it (no
        operation pending, NAS's acknowledged arm the job's next fire) and, for a token that
        needs its binding checked, the fire `token_id` is bound to. None when no such fire."""
        if token_id is None:
            result = await self.conn.execute(_DUPLICATE_VIEW, {"key": dedup_key})
        else:
            params = {"key": dedup_key, "token_id": token_id}
            result = await self.conn.execute(_DUPLICATE_VIEW_WITH_TOKEN, params)
        row = result.first()
        if row is None:
            return None
        m = row._mapping
        return DuplicateView(fire_from_row(row), bool(m["settled"]), m.get("bound_key"))

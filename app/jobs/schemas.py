"""Request and response bodies of the admin API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from app.domain.records import FireRecord, JobRecord, OutboxRecord
from app.domain.states import Catchup, JobState, Overlap, RunKind, RunStatus
from app.jobs.redaction import redact_target
from app.runner.targets import Target
from app.validation import SafeText


def _iso_utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


UtcTime = Annotated[datetime, PlainSerializer(_iso_utc, return_type=str)]

_GRACE = (
    "seconds a fire may be late and still run; later ones are recorded as missed (null: no limit)"
)
_CATCHUP = (
    "when fires passed while nothing was armed: run once now (run_once)"
    " or only record them missed (skip)"
)
_OVERLAP = "when a fire comes while the previous run is going: skip it, allow both, or buffer_one"
_REPEAT = "runs before the job completes; default 1 for one-shots (null: no limit)"
# Integer columns are 32-bit on PostgreSQL: every integer a job stores fits one.
MAX_INT32 = 2**31 - 1
MAX_NAME_LENGTH = 200  # the column's length, as for `schedule`


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: SafeText | None = Field(default=None, min_length=1, max_length=MAX_NAME_LENGTH)
    schedule: SafeText = Field(
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        description="`in 90s`, an ISO 8601 instant, `every 5m`, or a 5-field cron expression",
        examples=["every 5m", "*/15 * * * *", "in 90s", "2026-12-01T09:00:00+01:00"],
    )
    timezone: SafeText = Field(
        default="UTC", max_length=64, description="IANA zone for cron schedules"
    )
    target: Target
    repeat: int | None = Field(default=None, ge=1, le=MAX_INT32, description=_REPEAT)
    misfire_grace_seconds: int | None = Field(default=None, ge=0, le=MAX_INT32, description=_GRACE)
    catchup: Catchup = Field(default=Catchup.RUN_ONCE, description=_CATCHUP)
    overlap: Overlap = Field(default=Overlap.SKIP, description=_OVERLAP)


class JobPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: SafeText | None = Field(default=None, min_length=1, max_length=MAX_NAME_LENGTH)
    schedule: SafeText | None = Field(default=None, min_length=1, max_length=MAX_NAME_LENGTH)
    timezone: SafeText | None = Field(default=None, max_length=64)
    target: Target | None = None
    repeat: int | None = Field(default=None, ge=1, le=MAX_INT32, description=_REPEAT)
    misfire_grace_seconds: int | None = Field(default=None, ge=0, le=MAX_INT32, description=_GRACE)
    catchup: Catchup | None = None
    overlap: Overlap | None = None


class JobOut(BaseModel):
    id: str
    name: str
    schedule: str
    timezone: str
    target: dict[str, Any] = Field(
        description="header, env and kwargs values and a URL's password read `***`"
        " unless asked with ?reveal=true"
    )
    repeat: int | None
    runs_started: int
    state: JobState
    next_run_at: UtcTime | None
    last_run_at: UtcTime | None
    last_status: RunStatus | None
    misfire_grace_seconds: int | None
    catchup: Catchup
    overlap: Overlap
    created_at: UtcTime
    updated_at: UtcTime
    completed_at: UtcTime | None
    nas_pending: str | None = Field(
        default=None,
        description="the NAS operation not yet acknowledged for this job (provision | cancel)",
    )
    nas_error: str | None = Field(
        default=None,
        description="why NAS has not acknowledged the pending operation yet: the last failure"
        " of its push (NAS's answer or the transport's), null before any failure",
    )
    nas_parked: bool = Field(
        default=False,
        description="NAS refused the pending operation itself (a 4xx other than 401/403): it"
        " waits for the next reconcile (or a change to the job, or a fire) to be tried again",
    )
    preview: list[UtcTime] | None = Field(
        default=None, description="with ?preview=N: the next N fires, from next_run_at"
    )

    @classmethod
    def from_record(
        cls, job: JobRecord, *, pending: OutboxRecord | None = None, reveal: bool = False
    ) -> JobOut:
        """The job as answered: its target's secrets redacted unless `reveal`."""
        return cls(
            id=job.id,
            name=job.name,
            schedule=job.schedule,
            timezone=job.timezone,
            target=job.target if reveal else redact_target(job.target),
            repeat=job.repeat,
            runs_started=job.runs_started,
            state=job.state,
            next_run_at=job.next_run_at,
            last_run_at=job.last_run_at,
            last_status=job.last_status,
            misfire_grace_seconds=job.misfire_grace_seconds,
            catchup=job.catchup,
            overlap=job.overlap,
            created_at=job.created_at,
            updated_at=job.updated_at,
            completed_at=job.completed_at,
            nas_pending=pending.op if pending else None,
            nas_error=pending.last_error if pending else None,
            nas_parked=pending.parked if pending else False,
        )


class RunOut(BaseModel):
    key: str = Field(
        description="`{job_id}:{fire_at}` for scheduled fires, `manual:<uuid>` for manual runs"
    )
    kind: RunKind
    fire_at: UtcTime
    status: RunStatus
    count: int = Field(description="schedule slots this record stands for (coalesced missed slots)")
    attempt: int
    started_at: UtcTime | None
    finished_at: UtcTime | None
    outcome: str | None
    output: str | None
    error: str | None

    @classmethod
    def from_record(cls, fire: FireRecord) -> RunOut:
        return cls(
            key=fire.dedup_key,
            kind=fire.kind,
            fire_at=fire.fire_at,
            status=fire.status,
            count=fire.slots,
            attempt=fire.attempt,
            started_at=fire.started_at,
            finished_at=fire.finished_at,
            outcome=fire.outcome,
            output=fire.output,
            error=fire.error,
        )

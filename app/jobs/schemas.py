"""Request and response bodies of the admin API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from app.domain.records import AttemptRecord, FireRecord, JobRecord, OutboxRecord, RetryPolicy
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
_RETRY = (
    "how a failed run (non-2xx answer, non-zero exit, exception, timeout) is tried again, with"
    " the same Idempotency-Key / CHRONOS_DEDUP_KEY; default: never"
)
# Integer columns are 32-bit on PostgreSQL: every integer a job stores fits one.
MAX_INT32 = 2**31 - 1
MAX_NAME_LENGTH = 200  # the column's length, as for `schedule`
MAX_ATTEMPTS = 20
MAX_BACKOFF_SECONDS = 86_400  # one day


class RetrySpec(BaseModel):
    """A job's retry policy. The n-th retry waits `backoff_seconds * 2^(n-1)` seconds, at most
    `max_backoff_seconds`, jittered down to half of that."""

    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(
        default=1,
        ge=1,
        le=MAX_ATTEMPTS,
        description="attempts in all, the first included (1: never retried)",
    )
    backoff_seconds: int = Field(
        default=10, ge=1, le=MAX_BACKOFF_SECONDS, description="the wait before the first retry"
    )
    max_backoff_seconds: int = Field(
        default=600, ge=1, le=MAX_BACKOFF_SECONDS, description="the longest wait between attempts"
    )

    def policy(self) -> RetryPolicy:
        return RetryPolicy(self.max_attempts, self.backoff_seconds, self.max_backoff_seconds)

    @classmethod
    def of(cls, policy: RetryPolicy) -> RetrySpec:
        return cls(
            max_attempts=policy.max_attempts,
            backoff_seconds=policy.backoff_seconds,
            max_backoff_seconds=policy.max_backoff_seconds,
        )


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
    retry: RetrySpec = Field(default_factory=RetrySpec, description=_RETRY)


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
    retry: RetrySpec | None = Field(
        default=None,
        description="replaces the whole policy (omitted fields take their defaults);"
        " null: never retried",
    )


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
    retry: RetrySpec
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
            retry=RetrySpec.of(job.retry),
            created_at=job.created_at,
            updated_at=job.updated_at,
            completed_at=job.completed_at,
            nas_pending=pending.op if pending else None,
            nas_error=pending.last_error if pending else None,
            nas_parked=pending.parked if pending else False,
        )


class AttemptOut(BaseModel):
    attempt: int
    status: RunStatus = Field(description="failed or timed_out")
    started_at: UtcTime | None
    finished_at: UtcTime
    outcome: str | None
    error: str | None

    @classmethod
    def from_record(cls, attempt: AttemptRecord) -> AttemptOut:
        return cls(
            attempt=attempt.attempt,
            status=attempt.status,
            started_at=attempt.started_at,
            finished_at=attempt.finished_at,
            outcome=attempt.outcome,
            error=attempt.error,
        )


class RunOut(BaseModel):
    """One fire (a run, when it runs) with all its attempts: `attempt` is the latest, and
    `previous_attempts` how the earlier ones ended."""

    id: int = Field(description="the run's number: `GET /api/jobs/{job_id}/runs/{id}` shows it")
    job_id: str
    key: str = Field(
        description="`{job_id}:{fire_at}` for scheduled fires, `manual:<uuid>` for manual runs"
    )
    kind: RunKind
    fire_at: UtcTime
    status: RunStatus
    count: int = Field(description="schedule slots this record stands for (coalesced missed slots)")
    attempt: int = Field(
        description="the latest attempt, from 1: a retry, or a resume after a replica died,"
        " counts one more"
    )
    retry_at: UtcTime | None = Field(
        default=None, description="status `retrying`: when the next attempt is due"
    )
    previous_attempts: list[AttemptOut] = Field(
        default_factory=list, description="earlier attempts that failed and were retried"
    )
    started_at: UtcTime | None
    finished_at: UtcTime | None
    outcome: str | None
    output: str | None
    error: str | None

    @classmethod
    def from_record(cls, fire: FireRecord) -> RunOut:
        return cls(
            id=fire.id,
            job_id=fire.job_id,
            key=fire.dedup_key,
            kind=fire.kind,
            fire_at=fire.fire_at,
            status=fire.status,
            count=fire.slots,
            attempt=fire.attempt,
            retry_at=fire.retry_at,
            previous_attempts=[AttemptOut.from_record(a) for a in fire.previous_attempts],
            started_at=fire.started_at,
            finished_at=fire.finished_at,
            outcome=fire.outcome,
            output=fire.output,
            error=fire.error,
        )


class JobPageOut(BaseModel):
    """A page of `GET /api/jobs`, oldest job first."""

    jobs: list[JobOut]
    next_cursor: str | None = Field(
        description="pass as `?cursor=` (with the same filters) for the next page; null on the"
        " last page"
    )

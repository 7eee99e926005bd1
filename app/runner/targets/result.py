"""What a run is given and what it gives back: `RunContext` in, `RunResult` out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from app.domain.states import RunStatus


@dataclass(frozen=True)
class RunContext:
    """Which fire is running. `dedup_key` is `{job_id}:{fire_at}` or `manual:<uuid>`."""

    job_id: str
    fire_at: datetime
    dedup_key: str


@dataclass(frozen=True)
class RunResult:
    """How one run went. `output` and `error` are bounded by the runner's output budget."""

    status: RunStatus  # succeeded, failed or timed_out
    outcome: str | None
    output: str | None
    error: str | None


def utc_iso(value: datetime) -> str:
    """ISO 8601 in UTC (`+00:00`); a naive datetime is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()

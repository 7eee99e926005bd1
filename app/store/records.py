"""Plain records the store returns: no SQLAlchemy types leak past the store."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Self


@dataclass(frozen=True)
class _Record:
    @classmethod
    def from_row(cls, row: Any) -> Self:
        mapping = row._mapping
        return cls(**{f.name: mapping[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class JobRecord(_Record):
    id: str
    name: str
    schedule: str
    timezone: str
    target: dict[str, Any]
    repeat: int | None
    runs_started: int
    state: str
    anchor_at: datetime
    next_run_at: datetime | None
    last_run_at: datetime | None
    last_status: str | None
    created_at: datetime
    updated_at: datetime
    misfire_grace_seconds: int | None
    catchup: str
    overlap: str
    completed_at: datetime | None


@dataclass(frozen=True)
class FireRecord(_Record):
    id: int
    job_id: str
    fire_at: datetime
    dedup_key: str
    kind: str
    status: str
    attempt: int
    lease_owner: str | None
    lease_expires_at: datetime | None
    fencing_token: int
    admitted_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    outcome: str | None
    output: str | None
    error: str | None
    slots: int


@dataclass(frozen=True)
class OutboxRecord(_Record):
    job_id: str
    op: str
    fire_at: datetime | None
    generation: int
    attempts: int
    last_error: str | None
    created_at: datetime
    updated_at: datetime

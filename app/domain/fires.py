"""Fire identities and the values of a new fire."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from app.domain.states import RunKind, RunStatus

FIRE_PURPOSE = "cron_fire"
"""The `purpose` claim of a fire token: NAS mints it, the agent requires it."""


def fire_dedup_key(job_id: str, fire_at: datetime) -> str:
    """The contract's dedup key, `{job_id}:{fire_at}`, with `fire_at` in UTC."""
    return f"{job_id}:{fire_at.astimezone(UTC).isoformat()}"


def manual_key() -> str:
    """Manual runs live in their own key space: they never swallow a scheduled fire."""
    return f"manual:{uuid.uuid4()}"


def catchup_key(job_id: str, slot: datetime) -> str:
    return f"catchup:{job_id}:{slot.isoformat()}"


def new_fire(
    *,
    job_id: str,
    fire_at: datetime,
    dedup_key: str,
    kind: RunKind,
    status: RunStatus,
    now: datetime,
    lease_owner: str | None = None,
    lease_expires_at: datetime | None = None,
    error: str | None = None,
    slots: int = 1,
) -> dict[str, Any]:
    """Field values of a new fire: running ones carry their lease, final ones their end."""
    running = status == RunStatus.RUNNING
    return {
        "job_id": job_id,
        "fire_at": fire_at,
        "dedup_key": dedup_key,
        "kind": kind,
        "status": status,
        "attempt": 1 if running else 0,
        "lease_owner": lease_owner if running else None,
        "lease_expires_at": lease_expires_at if running else None,
        "fencing_token": 1 if running else 0,
        "admitted_at": now,
        "started_at": now if running else None,
        "finished_at": now if status in (RunStatus.MISSED, RunStatus.SKIPPED) else None,
        "error": error,
        "slots": slots,
    }

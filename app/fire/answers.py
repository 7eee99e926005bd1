"""The fire path's answers to NAS, and the bodies that say what became of a fire."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.domain.records import FireRecord
from app.domain.states import FireOutcome

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FireAnswer:
    status_code: int
    body: dict[str, Any]
    retry_after: int | None = None


def duplicate_answer(fire: FireRecord) -> FireAnswer:
    return FireAnswer(
        200,
        {
            "status": FireOutcome.DUPLICATE,
            "job_id": fire.job_id,
            "fire_at": fire.fire_at.isoformat(),
            "run_status": fire.status,
        },
    )


def ignored_answer(reason: str, job_id: str, fire_at: datetime | None) -> FireAnswer:
    log.info("fire ignored", extra={"reason": reason})
    return FireAnswer(
        200,
        {
            "status": FireOutcome.IGNORED,
            "reason": reason,
            "job_id": job_id,
            "fire_at": fire_at.isoformat() if fire_at is not None else None,
        },
    )

"""The emulator's delivery log: the last delivery attempts, kept for `/_emulator/deliveries`,
and one log line per attempt (a WARNING when a fire is abandoned)."""

from __future__ import annotations

import logging
from collections import deque

from app.emulator.records import DeliveryRecord, Outcome

logger = logging.getLogger(__name__)

DEFAULT_DELIVERY_LOG_SIZE = 10_000


class DeliveryLog:
    """The last `size` attempts, oldest first."""

    def __init__(self, size: int = DEFAULT_DELIVERY_LOG_SIZE) -> None:
        self._records: deque[DeliveryRecord] = deque(maxlen=size)

    def append(self, record: DeliveryRecord) -> None:
        self._records.append(record)
        _log_attempt(record)

    def records(self, job_id: str | None = None) -> list[DeliveryRecord]:
        return [r for r in self._records if job_id is None or r.job_id == job_id]


def _log_attempt(record: DeliveryRecord) -> None:
    result = (
        f"HTTP {record.status_code}" if record.status_code is not None else f"error {record.error}"
    )
    abandoned = record.outcome is Outcome.ABANDONED
    logger.log(
        logging.WARNING if abandoned else logging.INFO,
        "fire of job %s (agent %s, fire_at %s) attempt %d: %s -> %s%s%s",
        record.job_id,
        record.instance_id,
        record.fire_at,
        record.attempt,
        result,
        record.outcome.value,
        f", next attempt at {record.next_retry_at.isoformat()}" if record.next_retry_at else "",
        f" after {record.attempt} attempts, arm removed" if abandoned else "",
        extra={
            "job_id": record.job_id,
            "fire_at": record.fire_at,
            "attempt": record.attempt,
            "outcome": record.outcome.value,
        },
    )

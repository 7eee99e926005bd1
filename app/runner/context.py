"""What a run carries: the context its target sees, and the fields its log lines carry."""

from __future__ import annotations

from app.domain.fires import fire_dedup_key
from app.domain.records import FireRecord
from app.domain.states import RunKind
from app.runner.targets import RunContext


def run_context(fire: FireRecord) -> RunContext:
    """What the target sees. A catch-up run stands for its slot, so its `Idempotency-Key` is
    the slot's `{job_id}:{fire_at}`, as for the scheduled fire it replaces."""
    key = fire.dedup_key
    if fire.kind == RunKind.CATCHUP:
        key = fire_dedup_key(fire.job_id, fire.fire_at)
    return RunContext(fire.job_id, fire.fire_at, key, attempt=fire.attempt)


def run_log_fields(fire: FireRecord) -> dict[str, object]:
    """The context every log line of a run carries."""
    return {
        "job_id": fire.job_id,
        "fire_at": fire.fire_at.isoformat(),
        "attempt": fire.attempt,
        "run_key": fire.dedup_key,
    }

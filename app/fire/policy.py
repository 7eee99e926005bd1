"""What happens to a fire that is due: pure rules over the job, the clock and its runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.domain.records import JobRecord
from app.domain.states import Overlap, RunStatus


@dataclass(frozen=True)
class Decision:
    status: RunStatus  # running, buffered, skipped or missed
    reason: str | None = None

    @property
    def starts_a_run(self) -> bool:
        """Counted against `repeat`: the fire runs now or right after the current run."""
        return self.status in (RunStatus.RUNNING, RunStatus.BUFFERED)


def decide(
    job: JobRecord, fire_at: datetime | None, now: datetime, *, running: int, buffered: bool
) -> Decision:
    """Misfire grace first (lateness is `now - fire_at`), then the overlap policy.

    `fire_at` is None for manual runs, which have no lateness. An early fire (NAS ahead of
    our clock) has negative lateness and is never missed.
    """
    if fire_at is not None and job.misfire_grace_seconds is not None:
        lateness = (now - fire_at).total_seconds()
        if lateness > job.misfire_grace_seconds:
            return Decision(
                RunStatus.MISSED,
                f"delivered {lateness:.0f}s late, beyond the misfire grace of "
                f"{job.misfire_grace_seconds}s",
            )
    if running and job.overlap != Overlap.ALLOW:
        if job.overlap == Overlap.BUFFER_ONE and not buffered:
            return Decision(RunStatus.BUFFERED, "waits for the run in progress")
        return Decision(RunStatus.SKIPPED, "the previous run is still going")
    return Decision(RunStatus.RUNNING)

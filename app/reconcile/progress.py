"""What the reconciler is doing now and what its last round reported, for `GET /api/status`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class ReconcilePhase(StrEnum):
    LISTING = "listing"  # asking NAS what it holds
    QUEUEING = "queueing"  # queueing the arms and cancels that differ (`total` jobs)
    PUSHING = "pushing"  # pushing the outbox to NAS (`total` operations pending at the start)


@dataclass
class ReconcileProgress:
    phase: ReconcilePhase = ReconcilePhase.LISTING
    done: int = 0
    total: int = 0


@dataclass
class ReconcileState:
    """One process's reconciles: whether one runs now (and how far it is), and the last one's
    start, end and report (`error` instead when it raised)."""

    running: bool = False
    last_started_at: datetime | None = None
    last_finished_at: datetime | None = None
    last_report: dict[str, object] | None = None
    last_error: str | None = None
    progress: ReconcileProgress = field(default_factory=ReconcileProgress)

    def start(self, now: datetime) -> None:
        self.running = True
        self.last_started_at = now
        self.progress = ReconcileProgress()

    def enter(self, phase: ReconcilePhase, total: int) -> None:
        self.progress = ReconcileProgress(phase=phase, total=total)

    def advance(self, done: int) -> None:
        self.progress.done += done

    def finish(self, now: datetime, report: dict[str, object] | None, error: str | None) -> None:
        self.running = False
        self.last_finished_at = now
        self.last_report = report
        self.last_error = error

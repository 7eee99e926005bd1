"""Run attempts in the metrics: how many ended and how, how long their targets ran, how late
they started, how many run now, and leases taken over. Counters and histograms only."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping

from app.clock import Clock
from app.domain.records import FireRecord
from app.metrics.registry import Metrics
from app.runner.targets import TARGET_TAGS, RunResult


def target_type(target: Mapping[str, object]) -> str:
    """The `target_type` label: a target's `type`, `unknown` for anything else (a deleted
    job's run, a stored target that no longer parses)."""
    kind = target.get("type")
    return kind if isinstance(kind, str) and kind in TARGET_TAGS else "unknown"


class RunObserver:
    def __init__(self, metrics: Metrics | None, clock: Clock) -> None:
        self.metrics = metrics or Metrics()
        self.clock = clock

    async def run(
        self,
        fire: FireRecord,
        target: Mapping[str, object],
        attempt: Callable[[], Awaitable[RunResult]],
    ) -> RunResult:
        """Run an attempt of `fire` (`attempt()`), observed. A first attempt's lateness is its start
        less its `fire_at`; an attempt cancelled (shutdown, lease lost) is not counted."""
        metrics = self.metrics
        if fire.attempt == 1:
            lateness = (self.clock() - fire.fire_at).total_seconds()
            metrics.run_lateness.observe(max(0.0, lateness))
        started = time.perf_counter()
        with metrics.runs_in_flight.track_inprogress():
            result = await attempt()
        metrics.run_duration.labels(target_type=target_type(target)).observe(
            time.perf_counter() - started
        )
        metrics.runs.labels(kind=str(fire.kind), status=str(result.status)).inc()
        return result

    def took_over(self) -> None:
        self.metrics.lease_takeovers.inc()

"""Gauges read from the store when Prometheus scrapes: jobs by state, open runs by status,
the outbox's size and the age of its oldest operation.

Collectors are called synchronously while the page is rendered, and the store is async: the
scrape first awaits `refresh`, which reads the store at most once per `ttl` seconds (one read
shared by concurrent scrapes), and `collect` serves what it read. When the store cannot be
read the page still answers, without these gauges: a figure from before an outage would look
current.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from app.clock import Clock
from app.domain.states import JobState
from app.store import Store, StoreUnavailable
from app.store.gauges import OPEN_RUNS, StoreGauges, read_gauges

log = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 2.0


class StoreGaugeCollector:
    def __init__(self, store: Store, clock: Clock, *, ttl: float = DEFAULT_TTL_SECONDS) -> None:
        self.store = store
        self.clock = clock
        self.ttl = ttl
        self.reads = 0  # store reads made (scrapes within the ttl make none)
        self._gauges: StoreGauges | None = None
        self._read_at = float("-inf")  # time.monotonic() of the last read
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Read the store unless the last read is less than `ttl` old."""
        async with self._lock:
            if time.monotonic() - self._read_at < self.ttl:
                return
            self._read_at = time.monotonic()
            try:
                async with self.store.read() as tx:
                    self._gauges = await read_gauges(tx)
            except StoreUnavailable as exc:
                self._gauges = None
                log.warning("metrics: the store could not be read", extra={"error": str(exc)})
            self.reads += 1

    def describe(self) -> Iterable[Metric]:
        return list(self._families(None))

    def collect(self) -> Iterable[Metric]:
        return list(self._families(self._gauges)) if self._gauges is not None else []

    def _families(self, gauges: StoreGauges | None) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("chronos_jobs", "Jobs in the store, by state.", labels=["state"])
        runs = GaugeMetricFamily(
            "chronos_runs_open",
            "Runs admitted and not ended, in the store (every replica's), by status.",
            labels=["status"],
        )
        pending = GaugeMetricFamily(
            "chronos_outbox_pending", "NAS operations not acknowledged yet (parked included)."
        )
        parked = GaugeMetricFamily(
            "chronos_outbox_parked", "NAS operations NAS refused for good, left to reconcile."
        )
        oldest = GaugeMetricFamily(
            "chronos_outbox_oldest_age_seconds",
            "Age of the oldest NAS operation not acknowledged yet (0 when there is none).",
        )
        if gauges is not None:
            for state in JobState:
                jobs.add_metric([str(state)], gauges.jobs_by_state.get(str(state), 0))
            for status in OPEN_RUNS:
                runs.add_metric([str(status)], gauges.open_runs_by_status.get(str(status), 0))
            pending.add_metric([], gauges.outbox_pending)
            parked.add_metric([], gauges.outbox_parked)
            age = 0.0
            if gauges.outbox_oldest_at is not None:
                age = max(0.0, (self.clock() - gauges.outbox_oldest_at).total_seconds())
            oldest.add_metric([], age)
        yield from (jobs, runs, pending, parked, oldest)

"""The agent's Prometheus instruments: one `Metrics` per app, on its own registry.

Nothing is registered in prometheus-client's global registry, so a test builds as many apps
as it likes. No label carries a job id: every label takes one of a few fixed values.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.registry import Collector

from app.domain.states import FireOutcome, IgnoredReason, RunKind, RunStatus
from app.version import VERSION

FIRE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0)
NAS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
RUN_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
LATENESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)
RECONCILE_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)

# Every value the `outcome` label of `chronos_fires_total` takes.
FIRE_OUTCOMES = (
    *(str(o) for o in FireOutcome if o != FireOutcome.IGNORED),
    *(f"ignored_{reason}" for reason in IgnoredReason),
    "ignored_other",
    "rejected_400",
    "rejected_401",
    "rejected_413",
    "unavailable",
    "error",
)
NAS_OPS = ("provision", "cancel", "list")
NAS_RESULTS = ("ok", "transient", "permanent", "credentials_refused", "credentials_unavailable")
RUN_ENDS = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT)
RECONCILE_ACTIONS = ("armed", "cancelled", "missed", "error")


class Metrics:
    """The instruments the services update as things happen (counters, histograms, one
    gauge); figures read at scrape time are collectors added with `add_collector`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.fires = Counter(
            "chronos_fires",
            "Fire calls answered, by outcome: the answer's status (ignored_<reason> for an"
            " ignored fire), rejected_<HTTP status> or unavailable (503).",
            ["outcome"],
            registry=r,
        )
        self.fire_admission = Histogram(
            "chronos_fire_admission_seconds",
            "Time from a fire call reaching the fire route (its wait for a turn included) to"
            " its answer.",
            buckets=FIRE_BUCKETS,
            registry=r,
        )
        self.runs = Counter(
            "chronos_runs",
            "Run attempts that ended, by run kind and status.",
            ["kind", "status"],
            registry=r,
        )
        self.run_duration = Histogram(
            "chronos_run_duration_seconds",
            "How long a run attempt's target ran, by target type.",
            ["target_type"],
            buckets=RUN_BUCKETS,
            registry=r,
        )
        self.run_lateness = Histogram(
            "chronos_run_lateness_seconds",
            "A run's start less its fire_at (first attempts only).",
            buckets=LATENESS_BUCKETS,
            registry=r,
        )
        self.runs_in_flight = Gauge(
            "chronos_runs_in_flight", "Run attempts executing in this process now.", registry=r
        )
        self.nas_requests = Counter(
            "chronos_nas_requests",
            "HTTP requests to NAS's agent-cron API (each retry counts), by operation and result.",
            ["op", "result"],
            registry=r,
        )
        self.nas_request_seconds = Histogram(
            "chronos_nas_request_seconds",
            "Duration of one HTTP request to NAS's agent-cron API, by operation.",
            ["op"],
            buckets=NAS_BUCKETS,
            registry=r,
        )
        self.lease_takeovers = Counter(
            "chronos_lease_takeovers",
            "Runs whose lease had expired, taken over by this process.",
            registry=r,
        )
        self.reconcile_seconds = Histogram(
            "chronos_reconcile_seconds",
            "Duration of a reconcile with NAS.",
            buckets=RECONCILE_BUCKETS,
            registry=r,
        )
        self.reconcile_actions = Counter(
            "chronos_reconcile_actions",
            "What reconciles did, by action: armed, cancelled (orphans), missed, error.",
            ["action"],
            registry=r,
        )
        self.jwks_refreshes = Counter(
            "chronos_jwks_refreshes",
            "Fetches of NAS's JWKS, by result (ok, error).",
            ["result"],
            registry=r,
        )
        build_info = Gauge(
            "chronos_build_info", "Always 1; the version is a label.", ["version"], registry=r
        )
        build_info.labels(version=VERSION).set(1)
        self._initialise_series()
        self._before_scrape: list[Callable[[], Awaitable[None]]] = []

    def _initialise_series(self) -> None:
        """Every series of a known label value starts at 0, so rates and alerts see it."""
        for outcome in FIRE_OUTCOMES:
            self.fires.labels(outcome=outcome)
        for kind in RunKind:
            for status in RUN_ENDS:
                self.runs.labels(kind=str(kind), status=str(status))
        for op in NAS_OPS:
            self.nas_request_seconds.labels(op=op)
            for result in NAS_RESULTS:
                self.nas_requests.labels(op=op, result=result)
        for action in RECONCILE_ACTIONS:
            self.reconcile_actions.labels(action=action)
        for result in ("ok", "error"):
            self.jwks_refreshes.labels(result=result)

    def fire_answered(self, outcome: str, seconds: float | None) -> None:
        """A fire call was answered; `seconds` None when it never reached the fire route."""
        self.fires.labels(outcome=outcome).inc()
        if seconds is not None:
            self.fire_admission.observe(seconds)

    def nas_request(self, op: str, result: str, seconds: float) -> None:
        self.nas_requests.labels(op=op, result=result).inc()
        self.nas_request_seconds.labels(op=op).observe(seconds)

    def reconciled(self, seconds: float, actions: Mapping[str, int]) -> None:
        self.reconcile_seconds.observe(seconds)
        for action, count in actions.items():
            if count:
                self.reconcile_actions.labels(action=action).inc(count)

    def add_collector(
        self, collector: Collector, *, refresh: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """Collect `collector` too; `refresh`, if given, is awaited before each scrape (a
        collector is called synchronously, so async reads happen there)."""
        self.registry.register(collector)
        if refresh is not None:
            self._before_scrape.append(refresh)

    async def scrape(self) -> bytes:
        """The registry in Prometheus's text format, collectors refreshed first."""
        for refresh in self._before_scrape:
            await refresh()
        return generate_latest(self.registry)

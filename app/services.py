"""The services container: every long-lived service of one agent process, built from the
settings and the resources the app's lifespan owns."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httpx

from app.auth import FireTokenVerifier, JwksCache
from app.clock import Clock
from app.fire.gate import FireGate
from app.fire.service import FireService
from app.jobs.service import JobService
from app.metrics import Metrics, ServiceFigures, StoreGaugeCollector
from app.nas import NasClient, RetryBudget, build_credentials
from app.outbox import OutboxPusher
from app.outbox.audit import ArmAudit
from app.reconcile.service import Reconciler
from app.runner.executor import RunExecutor
from app.runner.targets import TargetRunner
from app.settings import Settings
from app.store import Store


@dataclass
class StartupState:
    """Readiness after start: `done` once NAS's list was read by the startup reconcile."""

    done: bool = False
    last_error: str | None = None


@dataclass
class DrainState:
    """Graceful shutdown. `begin()` (on SIGTERM) turns `/readyz` and fires to 503 at once; runs
    in flight then have `grace` seconds from that moment to finish. `finished` is set once they
    did (or were stopped) and the `settle` time passed: the server may close its listener."""

    grace: float = 20.0
    settle: float = 0.0
    draining: bool = False
    finished: bool = False
    started_at: float | None = None  # time.monotonic() when the drain began
    begun: asyncio.Event = field(default_factory=asyncio.Event)

    def begin(self) -> None:
        """Start draining (idempotent). Call it on the event loop's thread."""
        if not self.draining:
            self.draining = True
            self.started_at = time.monotonic()
            self.begun.set()

    def elapsed(self) -> float:
        return 0.0 if self.started_at is None else time.monotonic() - self.started_at

    def grace_left(self) -> float:
        return max(0.0, self.grace - self.elapsed())

    def settle_left(self) -> float:
        return max(0.0, self.settle - self.elapsed())


@dataclass
class Services:
    settings: Settings
    store: Store
    nas: NasClient
    pusher: OutboxPusher
    executor: RunExecutor
    fires: FireService
    jobs: JobService
    reconciler: Reconciler
    audit: ArmAudit
    fire_gate: FireGate
    metrics: Metrics
    startup: StartupState = field(default_factory=StartupState)
    drain: DrainState = field(default_factory=DrainState)


def nas_retry_budget(settings: Settings) -> RetryBudget:
    return RetryBudget(
        attempts=settings.nas_retry_attempts,
        max_seconds=settings.nas_retry_max_seconds,
        initial_wait=settings.nas_retry_initial_wait,
    )


def fire_arm_budget(settings: Settings) -> RetryBudget:
    """The budget of a push made while a caller waits (a fire, an admin change)."""
    return RetryBudget(
        attempts=settings.fire_arm_attempts,
        max_seconds=settings.fire_arm_max_seconds,
        initial_wait=settings.nas_retry_initial_wait,
        max_wait=max(0.1, settings.fire_arm_max_seconds / 2),
    )


def build_services(
    settings: Settings,
    store: Store,
    nas_http: httpx.AsyncClient,
    target_http: httpx.AsyncClient,
    clock: Clock,
) -> Services:
    assert settings.portal_url and settings.callback_url and settings.nas_jwks_url
    assert settings.expected_audience and settings.issuer
    metrics = Metrics()  # one registry per app: tests build many apps in one process
    nas = NasClient(
        nas_http,
        settings.portal_url,
        build_credentials(settings),
        budget=nas_retry_budget(settings),
        metrics=metrics,
    )
    arm_budget = fire_arm_budget(settings)
    pusher = OutboxPusher(store, nas, settings.callback_url, clock, node_id=settings.node_id)
    audit = ArmAudit(
        store,
        nas,
        pusher,
        delay=settings.arm_audit_delay_seconds,
        clock=clock,
        concurrency=settings.reconcile_concurrency,
    )
    executor = RunExecutor(
        store,
        TargetRunner(
            target_http,
            max_output_bytes=settings.max_output_bytes,
            python_workers=settings.python_workers,
        ),
        node_id=settings.node_id,
        lease_seconds=settings.lease_seconds,
        clock=clock,
        max_concurrent_runs=settings.max_concurrent_runs,
        metrics=metrics,
    )
    verifier = FireTokenVerifier(
        JwksCache(
            nas_http,
            settings.nas_jwks_url,
            max_age=settings.jwks_max_age_seconds,
            refresh_interval=settings.jwks_refresh_interval_seconds,
            failure_ttl=settings.jwks_failure_ttl_seconds,
            metrics=metrics,
        ),
        audience=settings.expected_audience,
        issuer=settings.issuer,
        leeway=settings.jwt_leeway_seconds,
    )
    fire_gate = FireGate(
        concurrency=settings.fire_concurrency,
        queue=settings.fire_queue,
        max_wait=settings.fire_queue_wait_seconds,
        retry_after=settings.retry_after_seconds,
    )
    metrics.add_collector(
        ServiceFigures(gate=fire_gate, acks=pusher.acks, audit=audit, executor=executor)
    )
    gauges = StoreGaugeCollector(store, clock)
    metrics.add_collector(gauges, refresh=gauges.refresh)
    return Services(
        settings=settings,
        store=store,
        nas=nas,
        pusher=pusher,
        executor=executor,
        fires=FireService(
            store,
            verifier,
            pusher,
            executor,
            node_id=settings.node_id,
            lease_seconds=settings.lease_seconds,
            arm_budget=arm_budget,
            retry_after_seconds=settings.retry_after_seconds,
            clock=clock,
            early_fire_seconds=settings.early_fire_seconds,
            audit=audit,
        ),
        jobs=JobService(
            store,
            pusher,
            executor,
            node_id=settings.node_id,
            lease_seconds=settings.lease_seconds,
            arm_budget=arm_budget,
            clock=clock,
        ),
        reconciler=Reconciler(
            store,
            nas,
            pusher,
            executor,
            concurrency=settings.reconcile_concurrency,
            clock=clock,
            metrics=metrics,
        ),
        audit=audit,
        fire_gate=fire_gate,
        metrics=metrics,
    )

"""The app factory: `create_app(settings)` wires everything; the lifespan owns the resources."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from app.api import fire as fire_api
from app.api import health as health_api
from app.api import jobs as jobs_api
from app.api.errors import install_error_handlers
from app.auth import FireTokenVerifier, JwksCache
from app.clock import Clock, utc_now
from app.fire.service import FireService
from app.jobs.service import JobService
from app.nas import NasClient, RetryBudget
from app.nas.outbox import OutboxPusher
from app.reconcile.service import Reconciler
from app.runner.executor import RunExecutor
from app.runner.targets import TargetRunner
from app.settings import Settings
from app.store import Store, StoreUnavailable

log = logging.getLogger(__name__)

TransportFactory = Callable[[], httpx.AsyncBaseTransport | None]


@dataclass
class StartupState:
    done: bool = False
    last_error: str | None = None


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
    startup: StartupState = field(default_factory=StartupState)


def build_services(
    settings: Settings,
    store: Store,
    nas_http: httpx.AsyncClient,
    target_http: httpx.AsyncClient,
    clock: Clock,
) -> Services:
    assert settings.portal_url and settings.callback_url and settings.nas_jwks_url
    assert settings.expected_audience and settings.issuer
    nas = NasClient(
        nas_http,
        settings.portal_url,
        settings.nas_token_value() or "",
        budget=RetryBudget(
            attempts=settings.nas_retry_attempts,
            max_seconds=settings.nas_retry_max_seconds,
            initial_wait=settings.nas_retry_initial_wait,
        ),
    )
    arm_budget = RetryBudget(
        attempts=settings.fire_arm_attempts,
        max_seconds=settings.fire_arm_max_seconds,
        initial_wait=settings.nas_retry_initial_wait,
        max_wait=max(0.1, settings.fire_arm_max_seconds / 2),
    )
    pusher = OutboxPusher(store, nas, settings.callback_url, clock)
    executor = RunExecutor(
        store,
        TargetRunner(target_http, max_output_bytes=settings.max_output_bytes),
        node_id=settings.node_id,
        lease_seconds=settings.lease_seconds,
        clock=clock,
    )
    verifier = FireTokenVerifier(
        JwksCache(
            nas_http,
            settings.nas_jwks_url,
            refresh_interval=settings.jwks_refresh_interval_seconds,
            failure_ttl=settings.jwks_failure_ttl_seconds,
        ),
        audience=settings.expected_audience,
        issuer=settings.issuer,
        leeway=settings.jwt_leeway_seconds,
    )
    common = {
        "node_id": settings.node_id,
        "lease_seconds": settings.lease_seconds,
        "arm_budget": arm_budget,
        "clock": clock,
    }
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
            retry_after_seconds=settings.retry_after_seconds,
            **common,  # type: ignore[arg-type]
        ),
        jobs=JobService(store, pusher, executor, **common),  # type: ignore[arg-type]
        reconciler=Reconciler(
            store, nas, pusher, executor, concurrency=settings.reconcile_concurrency, clock=clock
        ),
    )


async def startup_reconcile(services: Services) -> None:
    """Reconcile until NAS's list could be read once; `/readyz` turns ready then.

    Runs beside the fire endpoint: startup never blocks fires."""
    delay = 1.0
    while True:
        try:
            report = await services.reconciler.reconcile()
        except StoreUnavailable as exc:
            services.startup.last_error = f"store unavailable ({exc})"
        except Exception as exc:  # never give up: /readyz would stay 503 for good
            log.exception("startup reconcile failed")
            services.startup.last_error = f"reconcile failed ({exc.__class__.__name__})"
        else:
            # Finished once NAS answered `list`: operations NAS refused or could not take yet
            # stay in the outbox, retried by the maintenance loop; they do not block readiness.
            if report.list_error is None:
                services.startup.done = True
                services.startup.last_error = None
                return
            services.startup.last_error = report.list_error
        log.warning(
            "startup reconcile incomplete; retrying", extra={"error": services.startup.last_error}
        )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 30.0)


async def maintenance_loop(services: Services, interval: float) -> None:
    """Resume runs whose lease expired, retry queued NAS operations, purge old completed
    jobs, and reconcile every `CHRONOS_RECONCILE_INTERVAL_SECONDS`."""
    retention = timedelta(seconds=services.settings.completed_retention_seconds)
    every = services.settings.reconcile_interval_seconds
    last_reconcile = time.monotonic()

    async def periodic_reconcile() -> None:
        nonlocal last_reconcile
        if every and services.startup.done and time.monotonic() - last_reconcile >= every:
            last_reconcile = time.monotonic()
            await services.reconciler.reconcile()

    steps = (
        # Runs first: resuming a dead replica's run must not wait behind a slow NAS.
        ("resume expired runs", services.executor.recover_expired),
        ("start stranded buffered runs", services.executor.start_stranded_buffered),
        (
            "push the outbox",
            lambda: services.pusher.push_all(
                concurrency=services.settings.reconcile_concurrency, backoff=True
            ),
        ),
        ("purge completed jobs", lambda: services.jobs.purge_completed(retention)),
        ("periodic reconcile", periodic_reconcile),
    )
    while True:
        await asyncio.sleep(interval)
        for name, step in steps:
            try:
                await step()
            except StoreUnavailable as exc:
                log.warning(
                    "maintenance: store unavailable", extra={"step": name, "error": str(exc)}
                )
            except Exception:  # keep the loop alive whatever one step hit
                log.exception("maintenance step failed", extra={"step": name})


def create_app(
    settings: Settings,
    *,
    clock: Clock = utc_now,
    transport_factory: TransportFactory | None = None,
) -> FastAPI:
    """Build the agent. Refuses settings with which fires could not be verified or armed.

    `transport_factory` supplies the transport of the client that talks to NAS (tests inject
    outages there); job targets always use the network as it is.
    """
    settings.require_fire_config()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = Store.from_url(settings.database_url)
        await store.migrate()
        transport = transport_factory() if transport_factory else None
        nas_http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.nas_read_timeout, connect=settings.nas_connect_timeout),
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
            transport=transport,
        )
        target_http = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            follow_redirects=False,
        )
        services = build_services(settings, store, nas_http, target_http, clock)
        app.state.services = services
        tasks: list[asyncio.Task[None]] = []
        if settings.reconcile_on_startup:
            tasks.append(asyncio.create_task(startup_reconcile(services), name="startup-reconcile"))
        else:
            services.startup.done = True
        tasks.append(
            asyncio.create_task(
                maintenance_loop(services, settings.outbox_drain_interval_seconds),
                name="maintenance",
            )
        )
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await services.executor.shutdown(grace=10.0)
            await nas_http.aclose()
            await target_http.aclose()
            await store.close()

    app = FastAPI(
        title="Chronos",
        version="0.1.0",
        summary="The agent side of the NAS managed-cron contract.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app, retry_after_seconds=settings.retry_after_seconds)
    app.include_router(health_api.router)
    app.include_router(fire_api.router)
    app.include_router(jobs_api.router)
    _add_error_schema(app)
    return app


_BAD_INPUT = {
    "description": "invalid input; `detail` names the field",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


def _add_error_schema(app: FastAPI) -> None:
    """Make the OpenAPI document say what the app does: every failure is an `Error` body,
    invalid input is a 400 (never FastAPI's default 422), the fire call's token and answer."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                responses = operation.get("responses", {})
                if responses.pop("422", None) is not None:
                    responses.setdefault("400", _BAD_INPUT)
        components = schema.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        schemas["Error"] = {
            "type": "object",
            "required": ["error", "detail"],
            "properties": {
                "error": {"type": "string", "examples": ["invalid_request"]},
                "detail": {"type": "string", "examples": ["fire_at: field required"]},
            },
        }
        schemas["FireAnswer"] = {
            "type": "object",
            "required": ["status", "job_id", "fire_at"],
            "properties": {
                "status": {
                    "type": "string",
                    "enum": ["accepted", "buffered", "ignored", "duplicate", "missed", "skipped"],
                },
                "job_id": {"type": "string"},
                "fire_at": {"type": "string", "format": "date-time"},
                "reason": {
                    "type": ["string", "null"],
                    "description": "ignored: unknown_job | paused | completed | stale",
                },
                "run_status": {"type": "string", "description": "duplicate: the run's status"},
            },
        }
        components.setdefault("securitySchemes", {})["NasFireToken"] = {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A short-lived JWT minted by NAS: aud, iss, exp, purpose=cron_fire",
        }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

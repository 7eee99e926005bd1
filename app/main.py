"""The app factory: `create_app(settings)` wires everything; the lifespan owns the resources."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from app.api import fire as fire_api
from app.api import health as health_api
from app.api import jobs as jobs_api
from app.api.errors import install_error_handlers
from app.api.openapi import describe_errors_and_fire
from app.clock import Clock, utc_now
from app.maintenance import maintenance_loop, startup_reconcile
from app.services import build_services
from app.settings import Settings
from app.store import Store
from app.version import USER_AGENT, VERSION

TransportFactory = Callable[[], httpx.AsyncBaseTransport | None]


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
            headers={"User-Agent": USER_AGENT},  # NAS and its JWKS: never httpx's default
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
        tasks.append(asyncio.create_task(services.audit.run(), name="arm-audit"))
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
        version=VERSION,
        summary="The agent side of the NAS managed-cron contract.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app, retry_after_seconds=settings.retry_after_seconds)
    app.include_router(health_api.router)
    app.include_router(fire_api.router)
    app.include_router(jobs_api.router)
    describe_errors_and_fire(app)
    return app

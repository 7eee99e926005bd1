"""The app factory: `create_app(settings)` wires everything; the lifespan owns the resources."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from app.api import fire as fire_api
from app.api import health as health_api
from app.api import jobs as jobs_api
from app.api import metrics as metrics_api
from app.api import status as status_api
from app.api.errors import install_error_handlers
from app.api.openapi import describe_errors_and_fire
from app.clock import Clock, utc_now
from app.maintenance import maintenance_loop, startup_reconcile
from app.services import DrainState, Services, build_services
from app.settings import Settings
from app.store import Store
from app.ui import routes as ui_routes
from app.version import USER_AGENT, VERSION

TransportFactory = Callable[[], httpx.AsyncBaseTransport | None]

log = logging.getLogger(__name__)


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
    # Created with the app, not in the lifespan: the server that runs the app begins the drain.
    drain = DrainState(grace=settings.shutdown_grace_seconds, settle=settings.drain_settle_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = Store.from_url(settings.database_url)
        # One TLS context (httpx's default one) for both clients, built while the schema is
        # checked: loading the CA bundle takes some 40 ms, which each client would pay again.
        tls, _ = await asyncio.gather(asyncio.to_thread(httpx.create_ssl_context), store.migrate())
        transport = transport_factory() if transport_factory else None
        nas_http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.nas_read_timeout, connect=settings.nas_connect_timeout),
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
            headers={"User-Agent": USER_AGENT},  # NAS and its JWKS: never httpx's default
            transport=transport,
            verify=tls,
        )
        target_http = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            follow_redirects=False,
            verify=tls,
        )
        services = build_services(settings, store, nas_http, target_http, clock)
        services.drain = drain
        app.state.services = services
        # The first fire needs NAS's keys: fetched beside startup, not when that fire comes.
        tasks: list[asyncio.Task[None]] = [
            asyncio.create_task(services.fires.verifier.prefetch_keys(), name="jwks-prefetch")
        ]
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
        drainer = asyncio.create_task(drain_on_signal(services, tasks), name="drain")
        try:
            yield
        finally:
            # Shutdown order: no new work (fires 503, background tasks stopped), runs finish
            # within what is left of the grace or are stopped and their leases released, then
            # the clients and the store close.
            drain.begin()
            await stop_tasks([drainer, *tasks])
            services.executor.refuse_new_runs()
            await services.executor.shutdown(grace=drain.grace_left())
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
    app.state.drain = drain
    install_error_handlers(app, retry_after_seconds=settings.retry_after_seconds)
    app.include_router(health_api.router)
    app.include_router(fire_api.router)
    app.include_router(jobs_api.router)
    app.include_router(metrics_api.router)
    app.include_router(status_api.router)
    app.include_router(ui_routes.router)  # the dashboard, outside the OpenAPI document
    describe_errors_and_fire(app)
    return app


async def stop_tasks(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel `tasks` and wait until each has ended."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def drain_on_signal(services: Services, background: list[asyncio.Task[None]]) -> None:
    """Once the drain begins (`chronos serve` got SIGTERM): stop the background work, so no
    run is started or taken over here any more; give runs in flight what is left of the grace,
    then stop the rest and release their leases; mark the drain finished once the settle time
    passed too, so the server closes its listener. Fires answer 503 meanwhile."""
    drain, executor = services.drain, services.executor
    await drain.begun.wait()
    log.info(
        "draining: /readyz and fires answer 503",
        extra={"runs": executor.active, "grace_seconds": drain.grace, "settle": drain.settle},
    )
    await stop_tasks(background)
    executor.refuse_new_runs()

    async def finish_runs() -> None:
        await executor.wait_idle(drain.grace_left())
        if executor.active:
            released = await executor.stop_runs()
            log.warning(
                "drain: runs still going after the grace were stopped",
                extra={"grace_seconds": drain.grace, "released": released},
            )

    await asyncio.gather(finish_runs(), asyncio.sleep(drain.settle_left()))
    drain.finished = True
    log.info("drained", extra={"seconds": round(drain.elapsed(), 2)})

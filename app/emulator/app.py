"""The NAS emulator as a FastAPI app: the agent-cron API, the JWKS, and emulator-only controls.

Routes live in `routes.py`, their dependencies in `deps.py`, request parsing in `requests.py`;
arm state in `state.py`, delivery in `delivery.py`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from app.clock import Clock, utc_now
from app.emulator.config import EmulatorConfig
from app.emulator.delivery import DeliveryScheduler, default_http_client
from app.emulator.deps import EmulatorRuntime
from app.emulator.keys import load_signing_key
from app.emulator.records import RetryPolicy
from app.emulator.routes import agent_cron_router, emulator_router, public_router
from app.emulator.state import ArmRegistry
from app.http_errors import install_error_handlers

logger = logging.getLogger(__name__)


def create_emulator_app(
    config: EmulatorConfig,
    *,
    http_client_factory: Callable[[], httpx.AsyncClient] | None = None,
    clock: Clock = utc_now,
) -> FastAPI:
    """Build the emulator app. The signing key is loaded (or generated) here, so a bad key file
    fails at once, and the configured agent tokens count as issued now; the HTTP client and
    the delivery scheduler live in the lifespan. Arms, deliveries and agent tokens follow
    `clock`."""
    signing_key = load_signing_key(config.key_file, config.kid)
    registry = ArmRegistry(
        RetryPolicy(
            initial_seconds=config.redelivery_initial_seconds,
            max_seconds=config.redelivery_max_seconds,
            max_attempts=config.redelivery_max_attempts,
        ),
        clock=clock,
    )
    make_client = http_client_factory or (lambda: default_http_client(config))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        client = make_client()
        scheduler = DeliveryScheduler(
            registry=registry,
            signing_key=signing_key,
            config=config,
            http_client=client,
            clock=clock,
        )
        scheduler.start()
        logger.info(
            "NAS emulator up",
            extra={
                "iss": config.public_url,
                "kid": signing_key.kid,
                "agents": len(config.agent_tokens),
            },
        )
        try:
            yield
        finally:
            await scheduler.stop()
            await client.aclose()

    app = FastAPI(
        title="NAS emulator",
        description=(
            "Emulates the NAS managed-cron API for development and tests. "
            "Routes under `/_emulator` exist only in the emulator."
        ),
        lifespan=lifespan,
    )
    app.state.emulator = EmulatorRuntime(
        config=config, signing_key=signing_key, registry=registry, clock=clock
    )
    install_error_handlers(app)
    app.include_router(agent_cron_router)
    app.include_router(public_router)
    app.include_router(emulator_router)
    return app

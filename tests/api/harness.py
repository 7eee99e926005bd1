"""An agent whose NAS transport the test supplies before startup.

`tests.support.agent.run_agent` creates its `NasFaults` inside, so a fault can only be set
once the lifespan (and with it the startup reconcile) has already begun. Tests about startup
need NAS to look down from the very first call, and some need to observe the NAS calls
themselves; both pass their transport in through the app's client factory here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from app.clock import Clock, utc_now
from app.main import create_app
from tests.support.agent import Agent, FaultyNasTransport, NasFaults, RunningNas, agent_settings


@asynccontextmanager
async def run_agent_with(
    database_url: str,
    nas: RunningNas,
    *,
    faults: NasFaults | None = None,
    transport: Callable[[NasFaults], httpx.AsyncBaseTransport] = FaultyNasTransport,
    clock: Clock = utc_now,
    **overrides: Any,
) -> AsyncIterator[Agent]:
    """Like `run_agent`, but `faults` are in force from startup and `transport` wraps them."""
    faults = faults if faults is not None else NasFaults()
    settings = agent_settings(database_url, nas, **overrides)
    app = create_app(settings, clock=clock, transport_factory=lambda: transport(faults))
    async with (
        LifespanManager(app, startup_timeout=30, shutdown_timeout=30),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://agent.test", timeout=30
        ) as client,
    ):
        yield Agent(app=app, client=client, nas=nas, faults=faults, settings=settings)

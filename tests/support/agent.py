"""An agent under test: the real app (driven over ASGI) talking to a real NAS emulator on loopback.

NAS outages are injected at the agent's HTTP transport (`NasFaults`), so everything else —
provision, cancel, list, JWKS — goes over real HTTP to the real emulator.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.clock import Clock, utc_now
from app.emulator import EmulatorConfig, SigningKey, build_uvicorn_server, load_signing_key
from app.main import create_app
from app.services import Services
from app.settings import Settings
from tests.support import keys
from tests.support.servers import bind_loopback, running

NAS_TOKEN = "nas-token-for-the-test-agent"
INSTANCE_ID = "test-agent"
AUDIENCE = f"agent:{INSTANCE_ID}"
ADMIN_TOKEN = "admin-token-for-tests-0123456789"


@dataclass
class RunningNas:
    url: str
    key: SigningKey
    config: EmulatorConfig

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url, headers={"Authorization": f"Bearer {NAS_TOKEN}"}, timeout=10
        )

    async def armed(self) -> dict[str, str]:
        """job_id → armed fire_at (ISO, UTC)."""
        async with self.client() as client:
            response = await client.get("/api/agent-cron/list")
        response.raise_for_status()
        return {a["job_id"]: a["fire_at"] for a in response.json()["armed"]}

    async def deliveries(self, job_id: str | None = None) -> list[dict[str, Any]]:
        async with self.client() as client:
            response = await client.get(
                "/_emulator/deliveries", params={"job_id": job_id} if job_id else None
            )
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()["deliveries"]
        return result

    async def clear(self) -> None:
        async with self.client() as client:
            (await client.delete("/_emulator/arms")).raise_for_status()

    def mint(
        self, job_id: str | None = None, fire_at: datetime | str | None = None, **overrides: Any
    ) -> str:
        """A fire token as NAS mints it, one per delivery (a fresh `jti`); `overrides` replace
        or (with None) drop claims."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "jti": uuid.uuid4().hex,
            "aud": AUDIENCE,
            "iss": self.url,
            "purpose": "cron_fire",
            "iat": now,
            "nbf": now,
            "exp": now + 90,
        }
        if job_id is not None:
            claims["job_id"] = job_id
        if fire_at is not None:
            claims["fire_at"] = fire_at if isinstance(fire_at, str) else fire_at.isoformat()
        for name, value in overrides.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return self.key.sign(claims)


@asynccontextmanager
async def run_nas(
    tmp_path: Path, *, key: keys.SigningKey | None = None, **config: Any
) -> AsyncIterator[RunningNas]:
    """The NAS emulator on a loopback port. It signs with `key` (default: the session's NAS
    key), written to `tmp_path/nas-key.pem` unless a key file is there already, so a NAS
    restarted on the same `tmp_path` keeps its key."""
    sock = bind_loopback()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    key_file = str(keys.write_private_key(key or keys.nas_signing_key(), tmp_path / "nas-key.pem"))
    cfg = EmulatorConfig(
        public_url=url,
        agent_tokens={NAS_TOKEN: INSTANCE_ID},
        key_file=key_file,
        **{
            "redelivery_initial_seconds": 0.2,
            "redelivery_max_seconds": 1.0,
            "redelivery_max_attempts": 30,
            "delivery_timeout_seconds": 10.0,
            **config,
        },
    )
    server = build_uvicorn_server(cfg, "127.0.0.1", 0, log_level="warning")
    async with running(server, sock):
        yield RunningNas(url=url, key=load_signing_key(key_file), config=cfg)


class NasFaults:
    """Makes NAS look down from the agent's side: `mode` is None, "down" (connection refused),
    "503", or "no-list" (a NAS without the list endpoint: 404); `calls` records every
    agent-cron call the agent attempted, `user_agents` the User-Agent of every request."""

    def __init__(self) -> None:
        self.mode: str | None = None
        self.calls: list[str] = []
        self.user_agents: list[str | None] = []


class FaultyNasTransport(httpx.AsyncBaseTransport):
    def __init__(self, faults: NasFaults) -> None:
        self.faults = faults
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.faults.user_agents.append(request.headers.get("user-agent"))
        if self.faults.mode == "no-list" and request.url.path == "/api/agent-cron/list":
            self.faults.calls.append("list")
            return httpx.Response(404, json={"error": "not_found", "detail": "no such route"})
        if request.url.path.startswith("/api/agent-cron/"):
            self.faults.calls.append(request.url.path.rsplit("/", 1)[-1])
            if self.faults.mode == "down":
                raise httpx.ConnectError("NAS unreachable (injected)", request=request)
            if self.faults.mode == "503":
                return httpx.Response(
                    503, json={"error": "unavailable"}, headers={"Retry-After": "0"}
                )
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def agent_settings(database_url: str, nas: RunningNas, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "env": "dev",
        "database_url": database_url,
        "portal_url": nas.url,
        "callback_url": "http://127.0.0.1:9",
        "expected_audience": AUDIENCE,
        "nas_jwks_url": f"{nas.url}/.well-known/jwks.json",
        "nas_token": NAS_TOKEN,
        "admin_token": ADMIN_TOKEN,
        "nas_retry_attempts": 2,
        "nas_retry_max_seconds": 2.0,
        "nas_retry_initial_wait": 0.01,
        "fire_arm_attempts": 2,
        "fire_arm_max_seconds": 1.0,
        "reconcile_on_startup": False,
        "outbox_drain_interval_seconds": 3600,
        "node_id": "node-test",
        **overrides,
    }
    return Settings(_env_file=None, **values)


@dataclass
class Agent:
    app: FastAPI
    client: httpx.AsyncClient
    nas: RunningNas
    faults: NasFaults
    settings: Settings
    admin_headers: dict[str, str] = field(
        default_factory=lambda: {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )

    @property
    def services(self) -> Services:
        return self.app.state.services  # type: ignore[no-any-return]

    async def fire(
        self, job_id: str, fire_at: datetime | str, *, token: str | None = None
    ) -> httpx.Response:
        fire_text = fire_at if isinstance(fire_at, str) else fire_at.astimezone(UTC).isoformat()
        token = token if token is not None else self.nas.mint()
        return await self.client.post(
            "/api/cron/fire",
            json={"job_id": job_id, "fire_at": fire_text},
            headers={"Authorization": f"Bearer {token}"},
        )

    async def create_job(self, **body: Any) -> dict[str, Any]:
        response = await self.client.post("/api/jobs", json=body, headers=self.admin_headers)
        assert response.status_code == 201, response.text
        job: dict[str, Any] = response.json()
        return job

    async def job(self, job_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/api/jobs/{job_id}", headers=self.admin_headers)
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        return job

    async def runs(self, job_id: str) -> list[dict[str, Any]]:
        response = await self.client.get(f"/api/jobs/{job_id}/runs", headers=self.admin_headers)
        assert response.status_code == 200, response.text
        runs: list[dict[str, Any]] = response.json()
        return runs

    async def idle(self, timeout: float = 30.0) -> None:
        """Wait until no run of this agent is going (runs started meanwhile, such as a buffered
        fire started by the end of the run before it, included); fail the test on timeout."""
        executor = self.services.executor
        deadline = time.monotonic() + timeout
        while executor.active:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                still = sorted(
                    task.get_name()
                    for task in asyncio.all_tasks()
                    if task.get_name().startswith("run:") and not task.done()
                )
                raise AssertionError(
                    f"agent not idle after {timeout}s: {executor.active} run(s) still going: "
                    + (", ".join(still) or "(unnamed)")
                )
            await executor.wait_idle(timeout=remaining)


@asynccontextmanager
async def run_agent(
    database_url: str,
    nas: RunningNas,
    *,
    clock: Clock = utc_now,
    faults: NasFaults | None = None,
    transport: Callable[[NasFaults], httpx.AsyncBaseTransport] = FaultyNasTransport,
    **overrides: Any,
) -> AsyncIterator[Agent]:
    """The app over ASGI, talking to `nas`. `faults` passed in are in force from the first
    NAS call (the startup reconcile included); `transport` wraps them."""
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

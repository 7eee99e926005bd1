"""Fixtures: the NAS emulator and a fake agent, both real uvicorn servers on loopback ports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest_asyncio
import uvicorn
from fastapi import FastAPI, Request, Response

from app.emulator import EmulatorConfig, build_uvicorn_server
from tests.support.servers import bind_loopback, running, wait_until

TOKEN_A, INSTANCE_A = "token-of-agent-a", "instance-a"
TOKEN_B, INSTANCE_B = "token-of-agent-b", "instance-b"

# Fast re-delivery so retry tests take milliseconds, not seconds.
FAST_REDELIVERY: dict[str, Any] = {
    "redelivery_initial_seconds": 0.05,
    "redelivery_max_seconds": 0.2,
    "redelivery_max_attempts": 5,
    "delivery_timeout_seconds": 2.0,
}


def iso_in(seconds: float, tz: timezone = UTC) -> str:
    """An ISO 8601 instant `seconds` from now, in `tz`, with millisecond precision."""
    return (
        (datetime.now(UTC) + timedelta(seconds=seconds))
        .astimezone(tz)
        .isoformat(timespec="milliseconds")
    )


def provision_body(job_id: str, fire_at: str, callback_url: str) -> dict[str, str]:
    return {
        "job_id": job_id,
        "fire_at": fire_at,
        "agent_callback_url": callback_url,
        "dedup_key": f"{job_id}:{fire_at}",
    }


@dataclass
class RunningEmulator:
    url: str
    config: EmulatorConfig
    _clients: dict[str | None, httpx.AsyncClient] = field(default_factory=dict)

    def client(self, token: str | None = TOKEN_A) -> httpx.AsyncClient:
        """An HTTP client for the emulator, authenticated as the agent owning `token`."""
        if token not in self._clients:
            headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
            self._clients[token] = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=5)
        return self._clients[token]

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()

    async def armed(self, token: str = TOKEN_A) -> list[dict[str, Any]]:
        response = await self.client(token).get("/api/agent-cron/list")
        response.raise_for_status()
        armed: list[dict[str, Any]] = response.json()["armed"]
        return armed

    async def deliveries(self, job_id: str | None = None) -> list[dict[str, Any]]:
        params = {"job_id": job_id} if job_id is not None else {}
        response = await self.client(None).get("/_emulator/deliveries", params=params)
        response.raise_for_status()
        deliveries: list[dict[str, Any]] = response.json()["deliveries"]
        return deliveries


@dataclass
class Reply:
    """How the fake agent answers one fire call; a `gate` holds the answer until it is set."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str = '{"status": "ok"}'
    gate: asyncio.Event | None = None


@dataclass
class FireCall:
    path: str
    body: bytes
    json: dict[str, Any]
    authorization: str | None
    received_at: datetime


class AgentReceiver:
    """A fake agent recording every `POST /api/cron/fire` and answering from a script."""

    def __init__(self) -> None:
        self.url = ""
        self.calls: list[FireCall] = []
        self._script: dict[str, list[Reply]] = {}
        self._gates: list[asyncio.Event] = []
        self.app = FastAPI()
        self.app.add_api_route("/api/cron/fire", self._fire, methods=["POST"])

    def script(self, job_id: str, *replies: Reply | int) -> None:
        """Answer the next fire calls of `job_id` with `replies`, in order; then 200."""
        queue = [Reply(status=r) if isinstance(r, int) else r for r in replies]
        self._gates.extend(r.gate for r in queue if r.gate is not None)
        self._script.setdefault(job_id, []).extend(queue)

    def calls_for(self, job_id: str) -> list[FireCall]:
        return [call for call in self.calls if call.json.get("job_id") == job_id]

    async def wait_for_calls(self, n: int, job_id: str, timeout: float = 5.0) -> list[FireCall]:
        async def enough() -> bool:
            return len(self.calls_for(job_id)) >= n

        await wait_until(enough, timeout=timeout, what=f"{n} fire calls for {job_id}")
        return self.calls_for(job_id)

    def open_gates(self) -> None:
        for gate in self._gates:
            gate.set()

    async def _fire(self, request: Request) -> Response:
        body = await request.body()
        payload = await request.json()
        self.calls.append(
            FireCall(
                path=request.url.path,
                body=body,
                json=payload,
                authorization=request.headers.get("authorization"),
                received_at=datetime.now(UTC),
            )
        )
        queue = self._script.get(payload.get("job_id"), [])
        reply = queue.pop(0) if queue else Reply()
        if reply.gate is not None:
            await reply.gate.wait()
        return Response(
            reply.body, status_code=reply.status, headers=reply.headers, media_type="text/plain"
        )


StartEmulator = Callable[..., Awaitable[RunningEmulator]]


@pytest_asyncio.fixture
async def start_emulator() -> AsyncIterator[StartEmulator]:
    """Start emulators with config overrides; every one is stopped at teardown."""
    async with AsyncExitStack() as stack:

        async def start(**overrides: Any) -> RunningEmulator:
            sock = bind_loopback()
            url = f"http://127.0.0.1:{sock.getsockname()[1]}"
            settings: dict[str, Any] = {
                "public_url": url,
                "agent_tokens": {TOKEN_A: INSTANCE_A, TOKEN_B: INSTANCE_B},
                **FAST_REDELIVERY,
                **overrides,
            }
            config = EmulatorConfig(**settings)
            server = build_uvicorn_server(config, "127.0.0.1", 0, log_level="warning")
            emulator = RunningEmulator(url=url, config=config)
            await stack.enter_async_context(running(server, sock))
            stack.push_async_callback(emulator.aclose)
            return emulator

        yield start


@pytest_asyncio.fixture
async def emulator(start_emulator: StartEmulator) -> RunningEmulator:
    return await start_emulator()


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[AgentReceiver]:
    agent = AgentReceiver()
    sock = bind_loopback()
    agent.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(
        uvicorn.Config(
            agent.app,
            log_level="warning",
            log_config=None,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
    )
    async with running(server, sock):
        try:
            yield agent
        finally:
            agent.open_gates()  # never leave a held request blocking the shutdown

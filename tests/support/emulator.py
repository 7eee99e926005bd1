"""The NAS emulator as tests run it, and a fake agent it delivers to: real uvicorn servers on
loopback ports.

`start_emulators` starts emulators as `chronos nas-emulator` runs them, on the wall clock.
`start_driven_emulators` starts emulators whose delivery runs on a `ManualUtcClock`: nothing is
delivered or re-delivered until the test moves the clock (`advance`), and `settle` waits until
everything due at the clock's time has been delivered and answered. A test can thus show that
something is *not* delivered: move the clock past the moment it would be due, settle, look.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request, Response

from app.emulator import EmulatorConfig, build_uvicorn_server, create_emulator_app
from app.emulator.delivery import DeliveryScheduler, default_http_client
from app.emulator.deps import EmulatorRuntime
from app.emulator.records import RetryPolicy
from app.emulator.state import ArmRegistry
from tests.support import ManualUtcClock
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


def iso_in(seconds: float, tz: timezone = UTC, *, now: datetime | None = None) -> str:
    """An ISO 8601 instant `seconds` after `now` (default: the wall clock), in `tz`, with
    millisecond precision."""
    start = now if now is not None else datetime.now(UTC)
    return (start + timedelta(seconds=seconds)).astimezone(tz).isoformat(timespec="milliseconds")


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

    async def all_arms(self) -> list[dict[str, Any]]:
        """Every agent's arms with their delivery state (`GET /_emulator/arms`)."""
        response = await self.client(None).get("/_emulator/arms")
        response.raise_for_status()
        arms: list[dict[str, Any]] = response.json()["arms"]
        return arms

    async def deliveries(self, job_id: str | None = None) -> list[dict[str, Any]]:
        params = {"job_id": job_id} if job_id is not None else {}
        response = await self.client(None).get("/_emulator/deliveries", params=params)
        response.raise_for_status()
        deliveries: list[dict[str, Any]] = response.json()["deliveries"]
        return deliveries


@dataclass(kw_only=True)
class DrivenEmulator(RunningEmulator):
    """An emulator whose deliveries happen only when the test moves `clock`."""

    clock: ManualUtcClock
    registry: ArmRegistry
    scheduler: DeliveryScheduler

    def iso_in(self, seconds: float, tz: timezone = UTC) -> str:
        """An ISO 8601 instant `seconds` after the emulator's clock."""
        return iso_in(seconds, tz, now=self.clock())

    def advance(self, seconds: float) -> None:
        """Move the clock; what becomes due is delivered from now on (see `settle`)."""
        self.clock.advance(seconds)
        self.scheduler.wake()

    async def settle(self, timeout: float = 5.0) -> None:
        """Wait until every arm waits for an instant after the clock: all that was due has been
        delivered, answered and recorded (removed, abandoned or re-scheduled). Fails on timeout.

        An attempt whose arm was replaced or cancelled while it was in flight is not an arm any
        more: wait for its record in `deliveries` instead."""

        async def quiet() -> bool:
            now = self.clock()
            return all(
                arm.next_attempt_at is not None and arm.next_attempt_at > now
                for arm in self.registry.all_arms()
            )

        await wait_until(quiet, timeout=timeout, what="the emulator to deliver all that is due")

    async def pass_time(self, seconds: float) -> None:
        """`advance`, then `settle`."""
        self.advance(seconds)
        await self.settle()


StartEmulator = Callable[..., Awaitable[RunningEmulator]]
StartDrivenEmulator = Callable[..., Awaitable[DrivenEmulator]]


def emulator_config(url: str, default_key_file: Path, **overrides: Any) -> EmulatorConfig:
    """Two agents (A and B), fast re-delivery, and `default_key_file`, unless overridden."""
    settings: dict[str, Any] = {
        "public_url": url,
        "agent_tokens": {TOKEN_A: INSTANCE_A, TOKEN_B: INSTANCE_B},
        "key_file": str(default_key_file),
        **FAST_REDELIVERY,
        **overrides,
    }
    return EmulatorConfig(**settings)


@asynccontextmanager
async def start_emulators(key_file: Path) -> AsyncIterator[StartEmulator]:
    """Start emulators with config overrides; every one is stopped when the block ends."""
    async with AsyncExitStack() as stack:

        async def start(**overrides: Any) -> RunningEmulator:
            sock = bind_loopback()
            url = f"http://127.0.0.1:{sock.getsockname()[1]}"
            config = emulator_config(url, key_file, **overrides)
            server = build_uvicorn_server(config, "127.0.0.1", 0, log_level="warning")
            emulator = RunningEmulator(url=url, config=config)
            await stack.enter_async_context(running(server, sock))
            stack.push_async_callback(emulator.aclose)
            return emulator

        yield start


@asynccontextmanager
async def start_driven_emulators(key_file: Path) -> AsyncIterator[StartDrivenEmulator]:
    """Start driven emulators with config overrides; every one is stopped when the block ends.

    The app is the emulator's own (`create_emulator_app`: routes, validation, JWKS), served
    without its lifespan, so its wall-clock scheduler never starts; its runtime gets an arm
    registry on the manual clock instead, delivered by a scheduler on that same clock, over
    real HTTP."""
    async with AsyncExitStack() as stack:

        async def start(**overrides: Any) -> DrivenEmulator:
            sock = bind_loopback()
            url = f"http://127.0.0.1:{sock.getsockname()[1]}"
            config = emulator_config(url, key_file, **overrides)
            clock = ManualUtcClock(datetime.now(UTC).replace(microsecond=0))
            registry = ArmRegistry(
                RetryPolicy(
                    initial_seconds=config.redelivery_initial_seconds,
                    max_seconds=config.redelivery_max_seconds,
                    max_attempts=config.redelivery_max_attempts,
                ),
                clock=clock,
            )
            app = create_emulator_app(config)
            signing_key = app.state.emulator.signing_key
            app.state.emulator = EmulatorRuntime(
                config=config, signing_key=signing_key, registry=registry
            )
            await stack.enter_async_context(running(quiet_server(app), sock))
            http = default_http_client(config)
            stack.push_async_callback(http.aclose)
            scheduler = DeliveryScheduler(
                registry=registry,
                signing_key=signing_key,
                config=config,
                http_client=http,
                clock=clock,
            )
            scheduler.start()
            stack.push_async_callback(scheduler.stop)
            emulator = DrivenEmulator(
                url=url, config=config, clock=clock, registry=registry, scheduler=scheduler
            )
            stack.push_async_callback(emulator.aclose)
            return emulator

        yield start


def quiet_server(app: FastAPI) -> uvicorn.Server:
    """A uvicorn server for `app` without lifespan events or access logs."""
    return uvicorn.Server(
        uvicorn.Config(
            app,
            log_level="warning",
            log_config=None,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
    )


# -- the fake agent --------------------------------------------------------------------------


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


@asynccontextmanager
async def run_receiver() -> AsyncIterator[AgentReceiver]:
    """The fake agent on a loopback port; held answers are released when the block ends."""
    agent = AgentReceiver()
    sock = bind_loopback()
    agent.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with running(quiet_server(agent.app), sock):
        try:
            yield agent
        finally:
            agent.open_gates()  # never leave a held request blocking the shutdown

"""A job whose NAS operation NAS refused shows why (`nas_error`), and whether it waits for the
next reconcile (`nas_parked`): the app over ASGI against the real NAS emulator, its refusals
scripted at the agent's NAS transport."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.support import ManualUtcClock
from tests.support.agent import (
    NAS_TOKEN,
    Agent,
    FaultyNasTransport,
    NasFaults,
    RunningNas,
    run_agent,
)

pytestmark = pytest.mark.asyncio

TRUE = {"type": "command", "argv": ["true"]}


@dataclass
class Refusal:
    """NAS's answer to every provision and cancel while `status` is set."""

    status: int | None = None
    detail: str = ""


class RefusingNasTransport(FaultyNasTransport):
    def __init__(self, faults: NasFaults, refusal: Refusal) -> None:
        super().__init__(faults)
        self.refusal = refusal

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        operation = request.url.path.rsplit("/", 1)[-1]
        if self.refusal.status is not None and operation in ("provision", "cancel"):
            self.faults.calls.append(operation)
            body = {"error": "refused", "detail": self.refusal.detail}
            return httpx.Response(self.refusal.status, json=body)
        return await super().handle_async_request(request)


@dataclass
class Refused:
    agent: Agent
    refusal: Refusal
    clock: ManualUtcClock


@pytest_asyncio.fixture
async def refused(database_url: str, nas: RunningNas) -> AsyncIterator[Refused]:
    refusal = Refusal()
    clock = ManualUtcClock(datetime.now(UTC).replace(microsecond=0))
    async with run_agent(
        database_url,
        nas,
        clock=clock,
        transport=lambda faults: RefusingNasTransport(faults, refusal),
    ) as agent:
        yield Refused(agent, refusal, clock)


async def create(agent: Agent) -> dict[str, Any]:
    response = await agent.client.post(
        "/api/jobs", json={"schedule": "every 6h", "target": TRUE}, headers=agent.admin_headers
    )
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


async def listed(agent: Agent, job_id: str) -> dict[str, Any]:
    response = await agent.client.get("/api/jobs?limit=1000", headers=agent.admin_headers)
    jobs: list[dict[str, Any]] = response.json()["jobs"]
    [job] = [j for j in jobs if j["id"] == job_id]
    return job


async def test_refused_credentials_show_on_the_job_until_nas_takes_the_operation(
    refused: Refused,
) -> None:
    agent = refused.agent
    refused.refusal.status, refused.refusal.detail = 401, "unknown agent token"

    job = await create(agent)

    expected_error = (
        "POST /api/agent-cron/provision: NAS refused the agent's credentials (HTTP 401)"
        " after a refresh: unknown agent token"
    )
    for shown in (job, await agent.job(job["id"]), await listed(agent, job["id"])):
        assert shown["nas_pending"] == "provision"
        assert shown["nas_error"] == expected_error
        assert shown["nas_parked"] is False
        assert NAS_TOKEN not in str(shown)
    assert await agent.nas.armed() == {}

    # Still queued, on backoff: the maintenance drain sends it again once NAS takes it.
    refused.refusal.status = None
    refused.clock.advance(2)
    assert await agent.services.pusher.push_all(concurrency=1, backoff=True) == 0
    shown = await agent.job(job["id"])
    assert (shown["nas_pending"], shown["nas_error"], shown["nas_parked"]) == (None, None, False)
    assert (await agent.nas.armed())[job["id"]] == job["next_run_at"]


async def test_an_operation_nas_refuses_is_parked_until_the_next_reconcile(
    refused: Refused,
) -> None:
    agent = refused.agent
    refused.refusal.status, refused.refusal.detail = 422, "fire_at: bad fire_at"

    job = await create(agent)

    shown = await agent.job(job["id"])
    assert shown["nas_pending"] == "provision"
    assert shown["nas_error"] == "POST /api/agent-cron/provision: HTTP 422: fire_at: bad fire_at"
    assert shown["nas_parked"] is True
    assert (await listed(agent, job["id"]))["nas_parked"] is True

    calls = len(agent.faults.calls)
    refused.clock.advance(3600)  # far past any backoff
    await agent.services.pusher.push_all(concurrency=1, backoff=True)
    assert len(agent.faults.calls) == calls  # the maintenance drain leaves it alone

    refused.refusal.status = None
    report = await agent.services.reconciler.reconcile()
    assert report.pending == 0
    shown = await agent.job(job["id"])
    assert (shown["nas_pending"], shown["nas_error"], shown["nas_parked"]) == (None, None, False)
    assert (await agent.nas.armed())[job["id"]] == job["next_run_at"]


async def test_a_change_to_a_parked_job_queues_and_pushes_afresh(refused: Refused) -> None:
    agent = refused.agent
    refused.refusal.status, refused.refusal.detail = 422, "fire_at: bad fire_at"
    job = await create(agent)
    assert (await agent.job(job["id"]))["nas_parked"] is True

    refused.refusal.status = None
    paused = await agent.client.post(f"/api/jobs/{job['id']}/pause", headers=agent.admin_headers)

    assert paused.status_code == 200
    assert (paused.json()["nas_pending"], paused.json()["nas_parked"]) == (None, False)
    assert job["id"] not in await agent.nas.armed()


async def test_a_rotated_token_file_is_used_without_a_restart(
    database_url: str, nas: RunningNas, tmp_path: Path
) -> None:
    """Against the emulator's own token check: the agent reads CHRONOS_NAS_TOKEN_FILE again
    when it changes, and a job created while the file held a refused token shows it."""
    token_file = tmp_path / "nas-token"
    token_file.write_text(NAS_TOKEN + "\n")
    async with run_agent(
        database_url, nas, nas_token=None, nas_token_file=str(token_file)
    ) as agent:
        armed = await agent.create_job(schedule="every 6h", target=TRUE)
        assert armed["nas_pending"] is None

        token_file.write_text("a-token-nas-never-issued\n")
        refused_job = await agent.create_job(schedule="every 6h", target=TRUE)
        assert refused_job["nas_pending"] == "provision"
        assert "NAS refused the agent's credentials (HTTP 401)" in refused_job["nas_error"]
        assert "a-token-nas-never-issued" not in str(refused_job)

        token_file.write_text(NAS_TOKEN + "\n")
        assert await agent.services.pusher.push_all(concurrency=1) == 0
        assert (await agent.job(refused_job["id"]))["nas_pending"] is None
        assert set(await agent.nas.armed()) == {armed["id"], refused_job["id"]}

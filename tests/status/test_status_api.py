"""`GET /api/status`: the real app over ASGI, a real NAS emulator on loopback, a real store."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.version import VERSION
from tests.support.agent import Agent, RunningNas, run_agent
from tests.support.servers import wait_until

pytestmark = pytest.mark.asyncio

TRUE = {"type": "command", "argv": ["true"]}


async def status(agent: Agent) -> dict[str, Any]:
    response = await agent.client.get("/api/status", headers=agent.admin_headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_status_needs_the_admin_token(agent: Agent) -> None:
    assert (await agent.client.get("/api/status")).status_code == 401
    wrong = {"Authorization": "Bearer not-the-admin-token-at-all"}
    response = await agent.client.get("/api/status", headers=wrong)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


async def test_a_fresh_agent(agent: Agent, database_url: str) -> None:
    body = await status(agent)
    assert body["version"] == VERSION
    assert body["node_id"] == "node-test"
    kind = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    assert body["store"]["kind"] == kind
    assert body["store"]["reachable"] is True
    assert body["store"]["revision"] == body["store"]["head"] is not None
    assert body["store"]["behind"] == 0
    assert body["nas"] == {
        "last_success_at": None,
        "last_error_at": None,
        "last_error": None,
        "credentials_ok": None,
        "list_supported": None,
    }
    assert body["outbox"] == {"pending": 0, "oldest_age_seconds": None}
    assert body["jobs"] == {"scheduled": 0, "paused": 0, "completed": 0}
    assert body["runs"] == {
        "in_flight": 0,
        "in_flight_here": 0,
        "queued": 0,
        "retrying": 0,
        "buffered": 0,
    }
    assert body["leases"] == {"runs": 0, "named": []}
    assert body["reconcile"]["running"] is False
    assert body["reconcile"]["last_report"] is None
    # reconcile_on_startup is off in these tests: the agent is ready at once, as /readyz says.
    assert body["readiness"] == {"ready": True, "reason": None}
    assert (await agent.client.get("/readyz")).json() == {"status": "ready"}


async def test_counts_follow_jobs_and_the_outbox(agent: Agent) -> None:
    await agent.create_job(schedule="every 1h", target=TRUE, name="a")
    body = await status(agent)
    assert body["jobs"]["scheduled"] == 1
    assert body["outbox"]["pending"] == 0  # NAS acknowledged the arm before the answer
    assert body["nas"]["credentials_ok"] is True
    assert body["nas"]["last_success_at"] is not None

    agent.faults.mode = "down"
    await agent.create_job(schedule="every 1h", target=TRUE, name="b")
    body = await status(agent)
    assert body["jobs"]["scheduled"] == 2
    assert body["outbox"]["pending"] == 1
    assert body["outbox"]["oldest_age_seconds"] >= 0
    assert "ConnectError" in body["nas"]["last_error"]
    assert body["nas"]["credentials_ok"] is True  # not refused: unreachable


async def test_the_last_reconcile_is_reported(agent: Agent) -> None:
    await agent.create_job(schedule="every 1h", target=TRUE)
    report = (await agent.client.post("/api/reconcile", headers=agent.admin_headers)).json()
    body = await status(agent)
    rec = body["reconcile"]
    assert rec["running"] is False and rec["progress"] is None
    assert rec["last_report"] == report
    assert rec["last_started_at"] <= rec["last_finished_at"]
    assert body["nas"]["list_supported"] is True


async def test_a_reconcile_in_progress(agent: Agent, nas: RunningNas) -> None:
    async with nas.client() as client:
        held = {"agent_cron": "hold", "calls": ["list"], "seconds": 1.5}
        (await client.post("/_emulator/faults", json=held)).raise_for_status()
    reconcile = asyncio.create_task(
        agent.client.post("/api/reconcile", headers=agent.admin_headers)
    )

    async def running() -> bool:
        return bool((await status(agent))["reconcile"]["running"])

    await wait_until(running, what="a running reconcile")
    rec = (await status(agent))["reconcile"]
    assert rec["progress"]["phase"] == "listing"
    assert (await reconcile).status_code == 200
    assert (await status(agent))["reconcile"]["running"] is False


async def test_a_nas_without_list(agent: Agent) -> None:
    agent.faults.mode = "no-list"
    await agent.client.post("/api/reconcile", headers=agent.admin_headers)
    nas = (await status(agent))["nas"]
    assert nas["list_supported"] is False
    assert nas["last_error"] is None  # "no list" is an answer, not a failure
    assert nas["credentials_ok"] is True


async def test_refused_credentials(database_url: str, nas: RunningNas) -> None:
    async with run_agent(database_url, nas, nas_token="a-token-nas-does-not-know") as agent:
        await agent.client.post("/api/reconcile", headers=agent.admin_headers)
        body = await status(agent)
    assert body["nas"]["credentials_ok"] is False
    assert "401" in body["nas"]["last_error"]
    assert "a-token-nas-does-not-know" not in body["nas"]["last_error"]
    assert body["nas"]["last_error_at"] is not None


async def test_the_openapi_lists_the_route(agent: Agent) -> None:
    schema = (await agent.client.get("/openapi.json")).json()
    operation = schema["paths"]["/api/status"]["get"]
    assert {"200", "401", "403"} <= set(operation["responses"])


async def test_progress_while_pushing(agent: Agent, nas: RunningNas) -> None:
    agent.faults.mode = "down"
    for name in ("a", "b", "c"):
        await agent.create_job(schedule="every 1h", target=TRUE, name=name)
    agent.faults.mode = None
    async with nas.client() as client:
        held = {"agent_cron": "hold", "calls": ["provision"], "seconds": 1.5}
        (await client.post("/_emulator/faults", json=held)).raise_for_status()
    reconcile = asyncio.create_task(
        agent.client.post("/api/reconcile", headers=agent.admin_headers)
    )

    async def pushing() -> bool:
        progress = (await status(agent))["reconcile"]["progress"]
        return progress is not None and progress["phase"] == "pushing"

    await wait_until(pushing, what="a reconcile pushing the outbox")
    progress = (await status(agent))["reconcile"]["progress"]
    assert progress["total"] == 3 and 0 <= progress["done"] <= 3
    report = (await reconcile).json()
    assert report["ok"] is True
    body = await status(agent)
    assert body["outbox"]["pending"] == 0
    assert body["reconcile"]["last_report"] == report

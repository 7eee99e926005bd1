"""`POST /api/jobs/batch`: many jobs at once, all or none, through the ASGI app against a real
NAS emulator on loopback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from app.jobs.batch_schemas import MAX_BATCH_JOBS
from tests.support.agent import Agent, NasFaults, RunningNas, run_agent

pytestmark = pytest.mark.asyncio

TRUE = {"type": "command", "argv": ["true"]}
HTTP_SECRET = {
    "type": "http",
    "url": "https://robot:hunter2@example.com/hook?x=1",
    "headers": {"Authorization": "Bearer s3cret"},
}


class InstantNas(httpx.AsyncBaseTransport):
    """A NAS that acknowledges every provision at once (the emulator answers in tens of ms on
    loopback here), recording each job provisioned with its fire time."""

    def __init__(self) -> None:
        self.provisioned: dict[str, str] = {}
        self.inner = httpx.AsyncHTTPTransport()  # the emulator's JWKS and the rest

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/api/agent-cron/provision":
            return await self.inner.handle_async_request(request)
        body = json.loads(request.content)
        self.provisioned[body["job_id"]] = body["fire_at"]
        return httpx.Response(200, json={"schedule_id": body["job_id"]})

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest_asyncio.fixture
async def instant_nas() -> InstantNas:
    return InstantNas()


@pytest_asyncio.fixture
async def fast_agent(
    database_url: str, nas: RunningNas, instant_nas: InstantNas
) -> AsyncIterator[Agent]:
    def transport(_: NasFaults) -> httpx.AsyncBaseTransport:
        return instant_nas

    async with run_agent(database_url, nas, transport=transport) as running_agent:
        yield running_agent


async def post_batch(agent: Agent, body: Any) -> httpx.Response:
    return await agent.client.post("/api/jobs/batch", json=body, headers=agent.admin_headers)


async def stored_jobs(agent: Agent) -> list[dict[str, Any]]:
    response = await agent.client.get("/api/jobs?limit=1000", headers=agent.admin_headers)
    assert response.status_code == 200
    assert response.json()["next_cursor"] is None
    jobs: list[dict[str, Any]] = response.json()["jobs"]
    return jobs


def typical_job(n: int) -> dict[str, Any]:
    """A typical job of a bulk import: an http hook with a token, a few policies."""
    return {
        "name": f"tenant-{n:04d}-report",
        "schedule": "*/15 * * * *",
        "timezone": "Europe/Paris",
        "target": {
            "type": "http",
            "url": f"https://hooks.example.com/tenants/{n:04d}/report",
            "method": "POST",
            "headers": {"Authorization": "Bearer 0123456789abcdef0123456789abcdef"},
            "timeout_seconds": 30,
        },
        "misfire_grace_seconds": 300,
        "overlap": "skip",
        "retry": {"max_attempts": 3, "backoff_seconds": 10, "max_backoff_seconds": 300},
    }


async def test_creates_every_job_in_request_order_and_arms_each(agent: Agent) -> None:
    items = [
        {"name": "b-first", "schedule": "every 1h", "target": TRUE},
        {"name": "a-second", "schedule": "in 2h", "target": TRUE},
        {"name": "c-third", "schedule": "0 9 * * *", "timezone": "Europe/Paris", "target": TRUE},
    ]
    response = await post_batch(agent, {"jobs": items})
    assert response.status_code == 201, response.text
    jobs = response.json()["jobs"]
    assert [job["name"] for job in jobs] == ["b-first", "a-second", "c-third"]
    assert jobs[1]["repeat"] == 1 and jobs[0]["repeat"] is None
    armed = await agent.nas.armed()
    for job in jobs:
        assert job["nas_pending"] is None
        assert armed[job["id"]] == job["next_run_at"]
        # Built from the values written, yet exactly what reading the job back answers.
        assert job == {"preview": None, **await agent.job(job["id"])}


async def test_the_answer_is_what_a_single_create_answers(agent: Agent) -> None:
    item = typical_job(1)
    single = await agent.create_job(**item)
    batch = {"jobs": [{**item, "name": "tenant-0001-batched"}]}  # names are unique
    [batched] = (await post_batch(agent, batch)).json()["jobs"]
    different = {"id", "name", "created_at", "updated_at", "next_run_at"}
    assert {k: v for k, v in batched.items() if k not in different} == {
        k: v for k, v in single.items() if k not in different
    }
    assert set(batched) == set(single)


async def test_one_invalid_item_creates_nothing_and_every_invalid_item_is_named(
    agent: Agent,
) -> None:
    items: list[Any] = [
        {"schedule": "every 1h", "target": TRUE},
        {"schedule": "every whenever", "target": TRUE},
        {"schedule": "every 1h", "target": {"type": "http", "url": "not a url"}},
        {"schedule": "every 1h", "target": TRUE},
        {"schedule": "every 1h", "target": {"type": "ftp"}, "repeat": 0},
        "not an object",
        {"schedule": "in 1h", "repeat": 3, "target": TRUE},
        {"schedule": "every 1h", "target": {"type": "python", "callable": "no_such_mod_x:run"}},
    ]
    response = await post_batch(agent, {"jobs": items})
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_request"
    assert body["detail"].startswith("6 of 8 jobs invalid, nothing created")
    assert "jobs[1].schedule: cannot parse schedule" in body["detail"]
    named = {(item["index"], item["field"]) for item in body["items"]}
    assert named == {
        (1, "schedule"),
        (2, "target.url"),
        (4, "target.type"),
        (4, "repeat"),
        (5, None),
        (6, "repeat"),
        (7, "target.callable"),
    }
    assert [item["index"] for item in body["items"]] == sorted(i["index"] for i in body["items"])
    assert all(item["detail"] for item in body["items"])
    assert "ftp" not in response.text  # values are never echoed
    assert await stored_jobs(agent) == []
    assert await agent.nas.armed() == {}


async def test_a_thousand_typical_jobs_fit_the_body_limit_and_are_created(
    fast_agent: Agent, instant_nas: InstantNas
) -> None:
    agent = fast_agent
    items = [typical_job(n) for n in range(MAX_BATCH_JOBS)]
    size = len(json.dumps({"jobs": items}).encode())
    assert size < agent.settings.max_admin_body_bytes / 2, size
    response = await post_batch(agent, {"jobs": items})
    assert response.status_code == 201, response.text
    jobs = response.json()["jobs"]
    assert [job["name"] for job in jobs] == [item["name"] for item in items]
    assert len({job["id"] for job in jobs}) == MAX_BATCH_JOBS
    stored = await stored_jobs(agent)
    assert {job["id"] for job in stored} == {job["id"] for job in jobs}
    # An arm not acknowledged within the bound stays in the outbox, which pushes it.
    assert {job["id"] for job in stored if job["nas_pending"]} == {
        job["id"] for job in jobs if job["nas_pending"]
    }
    assert await agent.services.pusher.push_all(concurrency=8) == 0
    assert not any(job["nas_pending"] for job in await stored_jobs(agent))
    assert instant_nas.provisioned == {job["id"]: job["next_run_at"] for job in jobs}


async def test_more_than_a_thousand_jobs_are_refused_naming_the_limit(agent: Agent) -> None:
    items = [{"schedule": "every 1h", "target": TRUE}] * (MAX_BATCH_JOBS + 1)
    response = await post_batch(agent, {"jobs": items})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert "jobs" in response.json()["detail"] and "1000" in response.json()["detail"]
    assert await stored_jobs(agent) == []


@pytest.mark.parametrize(
    "body",
    [{}, {"jobs": []}, {"jobs": {"schedule": "every 1h"}}, {"jobs": [], "extra": 1}, [1]],
)
async def test_a_body_that_is_not_a_batch_is_refused(agent: Agent, body: Any) -> None:
    response = await post_batch(agent, body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"


async def test_a_body_over_the_admin_limit_is_413(agent: Agent) -> None:
    padding = "x" * 200
    items = [{"name": padding, "schedule": "every 1h", "target": TRUE}] * MAX_BATCH_JOBS
    items = items * 6  # about 1.3 MB: over 1 MiB before the item count is judged
    response = await post_batch(agent, {"jobs": items})
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


async def test_secrets_are_redacted_in_the_answer_as_on_a_single_create(agent: Agent) -> None:
    response = await post_batch(agent, {"jobs": [{"schedule": "every 1h", "target": HTTP_SECRET}]})
    assert response.status_code == 201
    [job] = response.json()["jobs"]
    assert job["target"]["url"] == "https://robot:***@example.com/hook?x=1"
    assert job["target"]["headers"] == {"Authorization": "***"}
    assert "hunter2" not in response.text and "s3cret" not in response.text
    revealed = await agent.client.get(
        f"/api/jobs/{job['id']}", params={"reveal": "true"}, headers=agent.admin_headers
    )
    assert revealed.json()["target"]["headers"] == {"Authorization": "Bearer s3cret"}


async def test_nas_down_creates_the_jobs_and_answers_their_pending_arms(agent: Agent) -> None:
    agent.faults.mode = "down"
    items = [{"schedule": "every 1h", "target": TRUE}, {"schedule": "in 3h", "target": TRUE}]
    response = await post_batch(agent, {"jobs": items})
    assert response.status_code == 201, response.text
    jobs = response.json()["jobs"]
    assert [job["nas_pending"] for job in jobs] == ["provision", "provision"]
    assert all(job["nas_error"] for job in jobs)
    assert await agent.nas.armed() == {}

    agent.faults.mode = None
    assert await agent.services.pusher.push_all(concurrency=4) == 0
    armed = await agent.nas.armed()
    assert {job["id"]: job["next_run_at"] for job in jobs} == armed


async def test_needs_the_admin_token(agent: Agent) -> None:
    response = await agent.client.post(
        "/api/jobs/batch", json={"jobs": [{"schedule": "every 1h", "target": TRUE}]}
    )
    assert response.status_code == 401
    assert await stored_jobs(agent) == []

"""The admin API's `retry` policy (create, PATCH, GET; ranges refused with 400 naming the
field) and `GET /api/runs?status=failed`: failed runs across jobs, with their attempts."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.agent import Agent

pytestmark = pytest.mark.asyncio

NO_RETRY = {"max_attempts": 1, "backoff_seconds": 10, "max_backoff_seconds": 600}


def job(**fields: Any) -> dict[str, Any]:
    return {"schedule": "every 1h", "target": {"type": "command", "argv": ["false"]}, **fields}


async def call(agent: Agent, method: str, path: str, **kwargs: Any) -> Any:
    return await agent.client.request(method, path, headers=agent.admin_headers, **kwargs)


async def test_a_job_has_no_retry_unless_asked(agent: Agent) -> None:
    created = await agent.create_job(**job())
    assert created["retry"] == NO_RETRY
    assert (await agent.job(created["id"]))["retry"] == NO_RETRY


async def test_the_retry_policy_is_created_patched_and_read_back(agent: Agent) -> None:
    policy = {"max_attempts": 5, "backoff_seconds": 30, "max_backoff_seconds": 120}
    created = await agent.create_job(**job(retry=policy))
    assert created["retry"] == policy

    patched = await call(
        agent, "PATCH", f"/api/jobs/{created['id']}", json={"retry": {"max_attempts": 3}}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["retry"] == {**NO_RETRY, "max_attempts": 3}  # the whole policy
    renamed = await call(agent, "PATCH", f"/api/jobs/{created['id']}", json={"name": "other"})
    assert renamed.json()["retry"] == {**NO_RETRY, "max_attempts": 3}  # left as it was
    cleared = await call(agent, "PATCH", f"/api/jobs/{created['id']}", json={"retry": None})
    assert cleared.json()["retry"] == NO_RETRY
    assert (await agent.job(created["id"]))["retry"] == NO_RETRY


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_attempts", 0),
        ("max_attempts", 21),
        ("backoff_seconds", 0),
        ("max_backoff_seconds", 86_401),
        ("backoff_seconds", 2**31),
    ],
)
async def test_a_retry_policy_out_of_range_is_400_naming_the_field(
    agent: Agent, field: str, value: int
) -> None:
    response = await call(agent, "POST", "/api/jobs", json=job(retry={field: value}))
    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith(f"retry.{field}:"), response.text
    listed = await call(agent, "GET", "/api/jobs")
    assert listed.json() == {"jobs": [], "next_cursor": None}


async def test_failed_runs_are_listed_across_jobs(agent: Agent) -> None:
    failing = [await agent.create_job(**job(name=f"failing-{i}")) for i in range(2)]
    passing = await agent.create_job(**job(target={"type": "command", "argv": ["true"]}))
    for created in [*failing, passing]:
        triggered = await call(agent, "POST", f"/api/jobs/{created['id']}/trigger")
        assert triggered.status_code == 202, triggered.text
    await agent.idle()

    response = await call(agent, "GET", "/api/runs", params={"status": "failed"})
    assert response.status_code == 200, response.text
    runs = response.json()
    assert sorted(r["job_id"] for r in runs) == sorted(j["id"] for j in failing)
    assert all(r["status"] == "failed" and r["attempt"] == 1 for r in runs)
    assert all(r["previous_attempts"] == [] and r["retry_at"] is None for r in runs)
    everything = await call(agent, "GET", "/api/runs", params={"limit": 2})
    assert len(everything.json()) == 2
    refused = await agent.client.get("/api/runs", params={"status": "failed"})
    assert refused.status_code == 401
    unknown = await call(agent, "GET", "/api/runs", params={"status": "exploded"})
    assert unknown.status_code == 400

"""The admin API's bearer auth: 401 without the right token, 403 when it is disabled."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.agent import ADMIN_TOKEN, Agent, RunningNas, run_agent

pytestmark = pytest.mark.asyncio

JOB = {"schedule": "every 1h", "target": {"type": "command", "argv": ["true"]}}

ADMIN_CALLS = [
    ("GET", "/api/jobs", None),
    ("POST", "/api/jobs", JOB),
    ("GET", "/api/jobs/some-id", None),
    ("PATCH", "/api/jobs/some-id", {"name": "x"}),
    ("DELETE", "/api/jobs/some-id", None),
    ("POST", "/api/jobs/some-id/pause", None),
    ("POST", "/api/jobs/some-id/resume", None),
    ("POST", "/api/jobs/some-id/trigger", None),
    ("GET", "/api/jobs/some-id/runs", None),
    ("POST", "/api/reconcile", None),
]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-of-the-right-length!"},
        {"Authorization": f"Bearer {ADMIN_TOKEN}x"},
        {"Authorization": f"Basic {ADMIN_TOKEN}"},
        {"Authorization": "Bearer "},
    ],
    ids=["none", "wrong", "longer", "basic-scheme", "empty"],
)
async def test_without_the_right_bearer_is_401(agent: Agent, headers: dict[str, str]) -> None:
    for method, path, body in ADMIN_CALLS:
        response = await agent.client.request(method, path, json=body, headers=headers)
        assert response.status_code == 401, (method, path)
        assert response.headers["WWW-Authenticate"] == "Bearer"
        payload = response.json()
        assert payload["error"] == "unauthorized"
        assert payload["detail"]
        assert ADMIN_TOKEN not in response.text


async def test_a_refused_create_changes_nothing(agent: Agent) -> None:
    response = await agent.client.post(
        "/api/jobs", json=JOB, headers={"Authorization": "Bearer no"}
    )
    assert response.status_code == 401
    listed = await agent.client.get("/api/jobs", headers=agent.admin_headers)
    assert listed.json() == {"jobs": [], "next_cursor": None}
    assert await agent.nas.armed() == {}
    assert agent.faults.calls == []


async def test_without_an_admin_token_configured_the_admin_api_is_403(
    database_url: str, nas: RunningNas
) -> None:
    async with run_agent(database_url, nas, admin_token=None) as agent:
        for headers in ({}, {"Authorization": f"Bearer {ADMIN_TOKEN}"}):
            for method, path, body in ADMIN_CALLS:
                response = await agent.client.request(method, path, json=body, headers=headers)
                assert response.status_code == 403, (method, path, headers)
                payload = response.json()
                assert payload["error"] == "forbidden"
                assert "CHRONOS_ADMIN_TOKEN" in payload["detail"]
                assert "enable" in payload["detail"]
        # Disabling the admin API leaves the rest of the agent up.
        assert (await agent.client.get("/healthz")).status_code == 200


async def test_the_right_token_is_200(agent: Agent) -> None:
    response = await agent.client.get("/api/jobs", headers=agent.admin_headers)
    assert response.status_code == 200
    assert response.json() == {"jobs": [], "next_cursor": None}
    lowercase = {"authorization": f"bearer {ADMIN_TOKEN}"}
    assert (await agent.client.get("/api/jobs", headers=lowercase)).status_code == 200


async def test_admin_token_from_a_file(database_url: str, nas: RunningNas, tmp_path: Path) -> None:
    token_file = tmp_path / "admin-token"
    token_file.write_text("file-admin-token-0123456789abcdef\n")
    async with run_agent(
        database_url, nas, admin_token=None, admin_token_file=str(token_file)
    ) as agent:
        ok = await agent.client.get(
            "/api/jobs", headers={"Authorization": "Bearer file-admin-token-0123456789abcdef"}
        )
        assert ok.status_code == 200
        refused = await agent.client.get("/api/jobs", headers=agent.admin_headers)
        assert refused.status_code == 401


async def test_the_fire_endpoint_does_not_take_the_admin_token(agent: Agent) -> None:
    response = await agent.client.post(
        "/api/cron/fire",
        json={"job_id": "x", "fire_at": "2030-01-01T00:00:00+00:00"},
        headers=agent.admin_headers,
    )
    assert response.status_code == 401

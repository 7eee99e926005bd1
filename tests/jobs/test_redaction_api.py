"""The admin API answers a target's secrets as `***` unless asked with `?reveal=true`."""

from __future__ import annotations

from typing import Any

import pytest

from app.jobs.redaction import redact_target, redact_url
from tests.support.agent import Agent

pytestmark = pytest.mark.asyncio

HTTP = {
    "type": "http",
    "url": "https://robot:hunter2@example.com/hook?x=1",
    "headers": {"Authorization": "Bearer s3cret", "X-Plain": "visible-name"},
}
COMMAND = {"type": "command", "argv": ["true"], "env": {"DB_PASSWORD": "pa55"}}
PYTHON = {
    "type": "python",
    "callable": "tests.runner.sample_callables:add",
    "kwargs": {"a": 1, "b": {"token": "t0k"}},
}


async def create(agent: Agent, target: dict[str, Any]) -> dict[str, Any]:
    return await agent.create_job(schedule="every 1h", target=target)


async def test_answers_redact_header_values_and_the_url_password(agent: Agent) -> None:
    created = await create(agent, HTTP)
    for target in (created["target"], (await agent.job(created["id"]))["target"]):
        assert target["url"] == "https://robot:***@example.com/hook?x=1"
        assert target["headers"] == {"Authorization": "***", "X-Plain": "***"}


async def test_answers_redact_env_and_kwargs_values(agent: Agent) -> None:
    command = await create(agent, COMMAND)
    python = await create(agent, PYTHON)
    listed = await agent.client.get("/api/jobs", headers=agent.admin_headers)
    targets = {job["id"]: job["target"] for job in listed.json()["jobs"]}
    assert targets[command["id"]]["env"] == {"DB_PASSWORD": "***"}
    assert targets[command["id"]]["argv"] == ["true"]
    assert targets[python["id"]]["kwargs"] == {"a": "***", "b": "***"}
    assert "pa55" not in listed.text and "t0k" not in listed.text


@pytest.mark.parametrize("target", [HTTP, COMMAND, PYTHON])
async def test_reveal_answers_the_target_as_stored(agent: Agent, target: dict[str, Any]) -> None:
    created = await create(agent, target)
    one = await agent.client.get(
        f"/api/jobs/{created['id']}", params={"reveal": "true"}, headers=agent.admin_headers
    )
    listed = await agent.client.get("/api/jobs?reveal=true", headers=agent.admin_headers)
    for answered in (one.json()["target"], listed.json()["jobs"][0]["target"]):
        assert {key: answered[key] for key in target} == target


async def test_redaction_keeps_names_and_never_changes_the_stored_data() -> None:
    stored = {**HTTP}
    assert redact_target(stored)["headers"] == {"Authorization": "***", "X-Plain": "***"}
    assert stored == HTTP
    assert redact_url("https://example.com/x") == "https://example.com/x"
    # a userinfo without password is a credential itself (https://TOKEN@host)
    assert redact_url("https://ghp_token123@example.com/x") == "https://***@example.com/x"
    assert redact_url("https://:pw@example.com:8443/x") == "https://:***@example.com:8443/x"

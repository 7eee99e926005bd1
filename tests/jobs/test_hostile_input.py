"""Hostile input to the admin API: a 4xx naming the field, never a 500, nothing stored or
armed, and every later read still answers (on SQLite and PostgreSQL alike)."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.support.agent import Agent, RunningNas, run_agent

pytestmark = pytest.mark.asyncio

INT32_MAX = 2**31 - 1
COMMAND = {"type": "command", "argv": ["true"]}
PYTHON = {"type": "python", "callable": "tests.runner.sample_callables:add"}
HTTP = {"type": "http", "url": "https://example.com/hook"}


def job(**fields: Any) -> dict[str, Any]:
    return {"schedule": "every 1h", "target": COMMAND, **fields}


async def send(agent: Agent, method: str, path: str, body: Any) -> httpx.Response:
    """`body` as JSON, lone surrogates written as `\\ud800` escapes (as a hostile client may)."""
    return await agent.client.request(
        method,
        path,
        content=json.dumps(body).encode(),
        headers={**agent.admin_headers, "Content-Type": "application/json"},
    )


def assert_refused(response: httpx.Response, field: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    payload = response.json()
    assert payload["error"] == "invalid_request"
    assert payload["detail"].startswith(f"{field}:"), payload["detail"]


async def assert_nothing_stored(agent: Agent) -> None:
    listed = await agent.client.get("/api/jobs", headers=agent.admin_headers)
    assert listed.status_code == 200, listed.text
    assert listed.json() == {"jobs": [], "next_cursor": None}
    assert await agent.nas.armed() == {}


# -- integers ----------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["repeat", "misfire_grace_seconds"])
@pytest.mark.parametrize("value", [2**31, 2**63, 10**30, -1])
async def test_an_integer_out_of_range_is_400_and_stores_nothing(
    agent: Agent, field: str, value: int
) -> None:
    assert_refused(await send(agent, "POST", "/api/jobs", job(**{field: value})), field)
    await assert_nothing_stored(agent)


@pytest.mark.parametrize("field", ["repeat", "misfire_grace_seconds"])
@pytest.mark.parametrize("value", [2**31, 2**63])
async def test_patching_an_integer_out_of_range_is_400_and_changes_nothing(
    agent: Agent, field: str, value: int
) -> None:
    created = await agent.create_job(**job(repeat=3, misfire_grace_seconds=30))
    response = await send(agent, "PATCH", f"/api/jobs/{created['id']}", {field: value})
    assert_refused(response, field)
    assert (await agent.job(created["id"]))[field] == created[field]


async def test_the_largest_32_bit_integers_are_accepted(agent: Agent) -> None:
    created = await agent.create_job(**job(repeat=INT32_MAX, misfire_grace_seconds=INT32_MAX))
    assert created["repeat"] == INT32_MAX
    assert (await agent.job(created["id"]))["misfire_grace_seconds"] == INT32_MAX


# -- strings -----------------------------------------------------------------------------

NUL, SURROGATE = "\x00", "\ud800"

HOSTILE_BODIES = [
    (job(name=f"a{NUL}b"), "name"),
    (job(name=f"a{SURROGATE}"), "name"),
    ({"schedule": f"every 1h{NUL}", "target": COMMAND}, "schedule"),
    (job(timezone=f"UTC{SURROGATE}"), "timezone"),
    (job(target={"type": "command", "argv": ["echo", f"x{SURROGATE}"]}), "target.argv[1]"),
    (job(target={"type": "command", "argv": ["echo", f"x{NUL}"]}), "target.argv[1]"),
    (job(target={**COMMAND, "env": {"TOKEN": SURROGATE}}), "target.env.TOKEN"),
    (job(target={**COMMAND, "env": {"TOKEN": f"a{NUL}"}}), "target.env.TOKEN"),
    (job(target={**COMMAND, "env": {f"A{SURROGATE}": "x"}}), "target.env"),
    (job(target={**COMMAND, "cwd": f"/tmp/{NUL}"}), "target.cwd"),
    (job(target={**PYTHON, "kwargs": {"a": SURROGATE}}), "target.kwargs"),
    (job(target={**PYTHON, "kwargs": {"a": {"b": [1, f"x{NUL}"]}}}), "target.kwargs"),
    (job(target={**PYTHON, "kwargs": {f"k{SURROGATE}": 1}}), "target.kwargs"),
    (job(target={**PYTHON, "kwargs": {"a": math.nan}}), "target.kwargs"),
    (
        job(
            target={
                **PYTHON,
                "kwargs": {
                    "deep": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]
                },
            }
        ),
        "target.kwargs",
    ),
    (job(target={**HTTP, "url": f"https://example.com/{SURROGATE}"}), "target.url"),
    (job(target={**HTTP, "url": f"https://example.com/{NUL}"}), "target.url"),
    (job(target={**HTTP, "headers": {"X-Token": "abc\n"}}), "target.headers"),
    (job(target={**HTTP, "headers": {"X-Token": "abc\r\nX-Injected: 1"}}), "target.headers"),
    (job(target={**HTTP, "headers": {"X-Token\r": "abc"}}), "target.headers"),
    (job(target={**HTTP, "headers": {"X-Token": SURROGATE}}), "target.headers"),
    (job(target={**HTTP, "body": {"a": [SURROGATE]}}), "target.body"),
    (job(target={**HTTP, "body": f"text{NUL}"}), "target.body"),
    (
        job(target={"type": "python", "callable": "tests.runner.sample_callables:add\n"}),
        "target.callable",
    ),
]


@pytest.mark.parametrize(("body", "field"), HOSTILE_BODIES)
async def test_hostile_text_is_400_naming_the_field_and_stores_nothing(
    agent: Agent, body: dict[str, Any], field: str
) -> None:
    assert_refused(await send(agent, "POST", "/api/jobs", body), field)
    await assert_nothing_stored(agent)


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"name": f"a{NUL}"}, "name"),
        ({"target": {"type": "command", "argv": [f"x{SURROGATE}"]}}, "target.argv[0]"),
        ({"target": {**COMMAND, "env": {"A": SURROGATE}}}, "target.env.A"),
        ({"target": {**PYTHON, "kwargs": {"a": SURROGATE}}}, "target.kwargs"),
        ({"target": {**HTTP, "headers": {"X-A": "v\n"}}}, "target.headers"),
    ],
)
async def test_patching_hostile_text_is_400_and_changes_nothing(
    agent: Agent, patch: dict[str, Any], field: str
) -> None:
    created = await agent.create_job(**job(name="kept"))
    assert_refused(await send(agent, "PATCH", f"/api/jobs/{created['id']}", patch), field)
    again = await agent.job(created["id"])
    assert (again["name"], again["target"]["argv"]) == ("kept", COMMAND["argv"])


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/jobs/%00"),
        ("GET", "/api/jobs/a%00b/runs"),
        ("DELETE", "/api/jobs/%00"),
        ("POST", "/api/jobs/%00/pause"),
        ("POST", "/api/jobs/%00/resume"),
        ("POST", "/api/jobs/%00/trigger"),
        ("GET", "/api/jobs/" + "x" * 201),
    ],
)
async def test_a_hostile_job_id_in_the_path_is_400(agent: Agent, method: str, path: str) -> None:
    response = await agent.client.request(method, path, headers=agent.admin_headers)
    assert_refused(response, "job_id")


async def test_a_patch_to_a_hostile_job_id_is_400(agent: Agent) -> None:
    assert_refused(await send(agent, "PATCH", "/api/jobs/%00", {"name": "x"}), "job_id")


# -- python targets ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec", ["no_such_module_anywhere:run", "tests.no_such_module:run", "json.no_such:run"]
)
async def test_a_python_target_whose_module_cannot_be_imported_is_400(
    agent: Agent, spec: str
) -> None:
    body = job(target={"type": "python", "callable": spec})
    assert_refused(await send(agent, "POST", "/api/jobs", body), "target.callable")
    await assert_nothing_stored(agent)


async def test_patching_in_a_python_target_that_cannot_be_imported_is_400(agent: Agent) -> None:
    created = await agent.create_job(**job(target=PYTHON))
    patch = {"target": {"type": "python", "callable": "no_such_module_anywhere:run"}}
    assert_refused(
        await send(agent, "PATCH", f"/api/jobs/{created['id']}", patch), "target.callable"
    )
    assert (await agent.job(created["id"]))["target"]["callable"] == PYTHON["callable"]


# -- body size ---------------------------------------------------------------------------


@pytest_asyncio.fixture
async def small_bodied_agent(database_url: str, nas: RunningNas) -> AsyncIterator[Agent]:
    async with run_agent(database_url, nas, max_admin_body_bytes=4096) as running_agent:
        yield running_agent


def padded(size: int) -> bytes:
    """A valid create body of exactly `size` bytes."""
    base = job(target={"type": "command", "argv": [sys.executable, ""]})
    empty = len(json.dumps(base).encode())
    base["target"]["argv"][1] = "x" * (size - empty)
    raw = json.dumps(base).encode()
    assert len(raw) == size
    return raw


async def test_a_10_mb_admin_body_is_413_and_stores_nothing(agent: Agent) -> None:
    response = await agent.client.post(
        "/api/jobs",
        content=padded(10 * 1024 * 1024),
        headers={**agent.admin_headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    await assert_nothing_stored(agent)


async def test_admin_bodies_are_limited_by_the_setting(small_bodied_agent: Agent) -> None:
    agent = small_bodied_agent
    headers = {**agent.admin_headers, "Content-Type": "application/json"}
    over = await agent.client.post("/api/jobs", content=padded(4097), headers=headers)
    assert over.status_code == 413
    at_limit = await agent.client.post("/api/jobs", content=padded(4096), headers=headers)
    assert at_limit.status_code == 201, at_limit.text
    patch = await agent.client.patch(
        f"/api/jobs/{at_limit.json()['id']}", content=b" " * 4097, headers=headers
    )
    assert patch.status_code == 413


async def test_a_streamed_admin_body_is_cut_at_the_limit(small_bodied_agent: Agent) -> None:
    """No Content-Length (chunked): refused once the stream passes the limit."""
    agent = small_bodied_agent

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b" " * 1024

    response = await agent.client.post(
        "/api/jobs",
        content=chunks(),
        headers={**agent.admin_headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    await assert_nothing_stored(agent)

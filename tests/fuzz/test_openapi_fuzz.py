"""Schemathesis against the agent's own OpenAPI document, on the store under test.

The agent runs under uvicorn on a loopback port (with a real NAS emulator), in a thread of its
own; every admin call carries the admin token and every fire call a freshly minted, validly
signed fire token, so the fuzzer reaches the handlers behind authentication. Cases are
schema-valid (positive) and schema-invalid (negative) requests to every operation (and
valid ones to a job that exists), with a fixed seed and a bounded count. No answer may be a
5xx, and every answer must match the document: its status, content type and body schema.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.main import create_app
from tests.support.agent import ADMIN_TOKEN, RunningNas, agent_settings, run_nas
from tests.support.servers import bind_loopback, running

pytestmark = pytest.mark.fuzz

MAX_EXAMPLES = 400
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
FIRE_PATH = "/api/cron/fire"


@dataclass
class ServedAgent:
    url: str
    nas: RunningNas
    requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


@pytest.fixture
def served_agent(database_url: str, tmp_path: Path) -> Iterator[ServedAgent]:
    """The agent and the NAS emulator served on loopback by an event loop in its own thread,
    stopped (and the thread joined) when the test ends."""
    started = threading.Event()
    box: dict[str, Any] = {}

    async def serve() -> None:
        stop = asyncio.Event()
        box["stop"] = (asyncio.get_running_loop(), stop)
        try:
            async with run_nas(tmp_path) as nas:
                app = create_app(agent_settings(database_url, nas))
                sock = bind_loopback()
                config = uvicorn.Config(app, log_level="warning", lifespan="on")
                server = uvicorn.Server(config)
                async with running(server, sock):
                    host, port = sock.getsockname()
                    box["agent"] = ServedAgent(url=f"http://{host}:{port}", nas=nas)
                    started.set()
                    await stop.wait()
        except BaseException as exc:
            box["error"] = exc
            started.set()
            raise

    thread = threading.Thread(target=asyncio.run, args=(serve(),), name="fuzzed-agent")
    thread.start()
    try:
        assert started.wait(60), "the agent did not start"
        if "error" in box:
            raise box["error"]
        yield box["agent"]
    finally:
        loop, stop = box["stop"]
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        assert not thread.is_alive(), "the agent did not stop"


def credentials(case: Case[Any], agent: ServedAgent) -> dict[str, str]:
    """A fresh fire token for the fire call (each is good for one fire), else the admin token."""
    if case.operation.path == FIRE_PATH:
        return {"Authorization": f"Bearer {agent.nas.mint()}"}
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_the_openapi_document_holds_under_fuzzing(served_agent: ServedAgent) -> None:
    agent = served_agent
    document = requests.get(f"{agent.url}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(document)
    session = requests.Session()
    seeded = session.post(
        f"{agent.url}/api/jobs",
        json={"schedule": "every 1h", "target": {"type": "command", "argv": ["true"]}},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=30,
    )
    assert seeded.status_code == 201, seeded.text
    cases = st.one_of(
        schema.as_strategy(GenerationMode.POSITIVE),
        schema.as_strategy(GenerationMode.NEGATIVE),
        # Operations on a job that exists, not only on ids that do not.
        schema.as_strategy(
            GenerationMode.POSITIVE, path_parameters={"job_id": seeded.json()["id"]}
        ),
    )

    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    @given(case=cases)
    def exercise(case: Case[Any]) -> None:
        headers = credentials(case, agent)
        response = case.call(base_url=agent.url, session=session, headers=headers, timeout=30)
        agent.requests += 1
        agent.statuses[response.status_code] = agent.statuses.get(response.status_code, 0) + 1
        case.validate_response(response, checks=CHECKS, headers=headers)

    exercise()
    server_errors = sum(n for status, n in agent.statuses.items() if status >= 500)
    print(f"fuzz: {agent.requests} requests, statuses {sorted(agent.statuses.items())}")
    assert server_errors == 0
    assert agent.requests >= MAX_EXAMPLES // 2

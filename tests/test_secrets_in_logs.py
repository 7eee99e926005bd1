"""Secrets never reach logs, at any level.

The agent runs over ASGI against the real NAS emulator on loopback, with logging configured as
`chronos serve` configures it (`configure_logging`, JSON lines) at DEBUG, and every line any
logger writes (the database drivers, SQLAlchemy, httpx/httpcore, uvicorn, the emulator, ours)
is captured at the handler. The test plants secrets where an operator would: the NAS bearer
token, the admin token, fire tokens, an http target's `Authorization` header and URL userinfo,
a command target's `env`, a python target's `kwargs`. It then drives what happens in
production: jobs created, fires accepted and repeated, fires refused (401), NAS answering 503
and unreachable during a fire, targets that fail. Not one planted secret may appear in the
output, nor in the run errors the admin API shows.
"""

from __future__ import annotations

import io
import json
import logging
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from app.domain.states import RunStatus
from app.logs import log_context
from app.runner.targets import CommandTarget, HttpTarget, PythonTarget, RunContext, TargetRunner
from app.runner.targets.command import execute_command
from app.runner.targets.http import execute_http
from tests.support.agent import ADMIN_TOKEN, NAS_TOKEN, Agent, RunningNas, run_agent
from tests.support.keys import SigningKey
from tests.support.logs import configured_logging
from tests.support.servers import free_port

HEADER_TOKEN = "hdr-Tok3n-5f1d0c9e7a2b"
API_KEY = "x-api-key-9b8c7d6e5f4a"
URL_USER = "url-user-4d3c2b1a"
URL_PASSWORD = "url-pass-a1b2c3d4e5"
BODY_SECRET = "body-secret-0f9e8d7c6b"
ENV_SECRET = "env-secret-6a5b4c3d2e1f"
KWARG_SECRET = "kwarg-secret-1e2d3c4b5a"
WRONG_ADMIN_TOKEN = "wrong-admin-token-7c6b5a4938"
GARBAGE_FIRE_TOKEN = "garbage-fire-token-2a3b4c5d6e"

# Prints its own secret to stderr and fails: the run's error must still not show it.
LEAKY_COMMAND = "import os, sys; sys.stderr.write('db: ' + os.environ['DB_PASSWORD']); sys.exit(3)"


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Every line any logger writes at DEBUG and above, as `chronos serve` writes it."""
    with configured_logging("DEBUG") as buffer:
        yield buffer


def http_target(port: int) -> dict[str, Any]:
    """A POST to a loopback port nobody listens on: connection refused."""
    return {
        "type": "http",
        "url": f"http://{URL_USER}:{URL_PASSWORD}@127.0.0.1:{port}/hook",
        "headers": {"Authorization": f"Bearer {HEADER_TOKEN}", "X-Api-Key": API_KEY},
        "body": {"password": BODY_SECRET},
        "timeout_seconds": 5,
    }


def command_target() -> dict[str, Any]:
    return {
        "type": "command",
        "argv": [sys.executable, "-c", LEAKY_COMMAND],
        "env": command_env(),
    }


def python_target() -> dict[str, Any]:
    return {
        "type": "python",
        "callable": "tests.runner.sample_callables:explode",
        "kwargs": {"message": KWARG_SECRET},
    }


async def fire_and_repeat(agent: Agent, job: dict[str, Any], tokens: list[str]) -> None:
    """Fire the job's due slot (accepted), then deliver it again (a duplicate)."""
    for _ in range(2):
        token = agent.nas.mint()
        tokens.append(token)
        response = await agent.fire(job["id"], job["next_run_at"], token=token)
        assert response.status_code < 300, response.text


async def refused_fires(agent: Agent, job: dict[str, Any], tokens: list[str]) -> None:
    """Fires that carry a token NAS did not sign, an expired one, garbage."""
    stranger = SigningKey.rsa(kid="not-nas")
    now = int(time.time())
    bad = [
        stranger.mint(
            {
                "aud": "agent:test-agent",
                "iss": agent.nas.url,
                "purpose": "cron_fire",
                "exp": now + 60,
            }
        ),
        agent.nas.mint(exp=now - 120, iat=now - 300),
        GARBAGE_FIRE_TOKEN,
    ]
    tokens.extend(bad)
    for token in bad:
        response = await agent.fire(job["id"], job["next_run_at"], token=token)
        assert response.status_code == 401, response.text


async def fires_while_nas_fails(agent: Agent, job: dict[str, Any], tokens: list[str]) -> None:
    """Fires whose next arm meets NAS answering 503, then NAS unreachable, then NAS refusing
    the agent's token (401: NAS issued a new one and revoked the agent's)."""
    for mode in ("503", "down", "401"):
        if mode == "401":
            async with agent.nas.client() as nas:
                rotated = await nas.post("/_emulator/agent-tokens", params={"revoke_others": True})
            tokens.append(rotated.json()["token"])
        else:
            agent.faults.mode = mode
        current = await agent.job(job["id"])
        token = agent.nas.mint()
        tokens.append(token)
        response = await agent.fire(job["id"], current["next_run_at"], token=token)
        assert response.status_code != 500, response.text
        await agent.idle()
        agent.faults.mode = None


def scan(output: str, secrets: dict[str, str]) -> list[str]:
    """`name: line` for every line of `output` that carries a planted secret."""
    return [
        f"{name}: {line[:300]}"
        for line in output.splitlines()
        for name, secret in secrets.items()
        if secret in line
    ]


def planted(tokens: list[str]) -> dict[str, str]:
    secrets = {
        "NAS token": NAS_TOKEN,
        "admin token": ADMIN_TOKEN,
        "wrong admin token": WRONG_ADMIN_TOKEN,
        "header token": HEADER_TOKEN,
        "api key": API_KEY,
        "url user": URL_USER,
        "url password": URL_PASSWORD,
        "http body": BODY_SECRET,
        "env value": ENV_SECRET,
        "python kwarg": KWARG_SECRET,
    }
    for i, token in enumerate(tokens):
        secrets[f"token {i}"] = token
        if token.count(".") == 2:
            secrets[f"token {i} signature"] = token.rsplit(".", 1)[-1]
    return secrets


@pytest.mark.asyncio
async def test_no_planted_secret_reaches_the_logs_at_debug(
    log_output: io.StringIO, database_url: str, nas: RunningNas
) -> None:
    tokens: list[str] = []
    async with run_agent(database_url, nas, log_level="DEBUG") as agent:
        jobs = [
            await agent.create_job(name=kind, schedule="every 1h", target=target)
            for kind, target in (
                ("http", http_target(free_port())),
                ("command", command_target()),
                ("python", python_target()),
            )
        ]
        for job in jobs:
            await fire_and_repeat(agent, job, tokens)
        await agent.idle()
        await refused_fires(agent, jobs[0], tokens)
        refused = await agent.client.get("/api/jobs", headers={"Authorization": WRONG_ADMIN_TOKEN})
        assert refused.status_code == 401
        await fires_while_nas_fails(agent, jobs[1], tokens)
        runs = {job["name"]: await agent.runs(job["id"]) for job in jobs}

    output = log_output.getvalue()
    entries = [json.loads(line) for line in output.splitlines()]
    assert any(e["level"] == "debug" for e in entries)  # DEBUG really was on
    loggers = {e["logger"] for e in entries}
    assert {"app.fire.admission", "app.runner.executor", "app.nas.client"} <= loggers
    assert any("401" in line for line in output.splitlines() if "app.nas.client" in line)
    assert scan(output, planted(tokens)) == []

    # The run errors say what failed, with the target's secrets masked.
    errors = {name: [r["error"] for r in job_runs] for name, job_runs in runs.items()}
    assert scan(json.dumps(errors["http"] + errors["command"]), planted(tokens)) == []
    assert errors["http"] and all("cannot connect to 127.0.0.1:" in e for e in errors["http"])
    assert errors["command"] and all(e == "db: ***" for e in errors["command"])


def test_the_scan_finds_a_planted_secret() -> None:  # so a clean scan means something
    assert scan('{"msg": "x"}\n{"msg": "token abc"}', {"t": "abc"}) == ['t: {"msg": "token abc"}']


# -- the logging set-up ----------------------------------------------------------------------


def test_quiet_libraries_stay_quiet_even_when_their_level_is_lowered_later(
    log_output: io.StringIO,
) -> None:
    for name in ("aiosqlite", "sqlalchemy.engine.Engine", "httpcore.http11", "hpack.hpack"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)  # as a library's own `echo` or a debugging session would
        logger.debug("executing INSERT ... ('%s',)", ENV_SECRET)
        logger.info("INSERT ... ('%s',)", ENV_SECRET)
        logger.warning("%s: pool overflow", name)
    logging.getLogger("app.store").debug("our own debug line")

    messages = [json.loads(line)["msg"] for line in log_output.getvalue().splitlines()]
    assert messages == [
        "aiosqlite: pool overflow",
        "sqlalchemy.engine.Engine: pool overflow",
        "httpcore.http11: pool overflow",
        "hpack.hpack: pool overflow",
        "our own debug line",
    ]


def test_every_part_of_a_line_is_masked() -> None:
    with configured_logging("INFO", secrets=[ADMIN_TOKEN, None]) as stream:
        log = logging.getLogger("tests.secrets")
        try:
            raise RuntimeError(f"call with {ADMIN_TOKEN} failed")
        except RuntimeError:
            with log_context(job_id="j1", url=f"https://u:{URL_PASSWORD}@h/"):
                log.exception(
                    "admin token %s",
                    ADMIN_TOKEN,
                    extra={"header": f"Bearer {HEADER_TOKEN}", "nested": {"t": [ADMIN_TOKEN]}},
                )

    entry = json.loads(stream.getvalue())
    assert entry["msg"] == "admin token ***"
    assert entry["header"] == "Bearer ***"
    assert entry["nested"] == {"t": ["***"]}
    assert entry["url"] == "https://***@h/"
    assert entry["job_id"] == "j1"
    assert entry["exc"].endswith("RuntimeError: call with *** failed")


# -- run results -----------------------------------------------------------------------------

CTX = RunContext(job_id="j1", fire_at=datetime(2030, 1, 1, tzinfo=UTC), dedup_key="j1:k")


def echo_everything(request: httpx.Request) -> httpx.Response:
    """An endpoint that answers with what it was sent, credentials included."""
    return httpx.Response(
        200, text=f"{request.url} {request.headers.get('authorization')} {request.headers}"
    )


def refuse_quoting_the_url(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError(f"refused: {request.url}", request=request)


@pytest.mark.asyncio
@pytest.mark.parametrize("handler", [echo_everything, refuse_quoting_the_url])
async def test_an_http_result_never_shows_the_targets_secrets(handler: Any) -> None:
    target = HttpTarget.model_validate(http_target(8080))
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        result = await execute_http(client, target, CTX, max_output_bytes=4096)

    shown = f"{result.outcome} {result.output} {result.error}"
    assert "***" in shown
    assert scan(shown, planted([])) == []


@pytest.mark.asyncio
async def test_a_command_result_never_shows_its_env_values() -> None:
    script = "import os, sys; v = os.environ['DB_PASSWORD']; print(v); sys.exit('bad ' + v)"
    target = CommandTarget(type="command", argv=[sys.executable, "-c", script], env=command_env())
    result = await execute_command(
        target, CTX, max_output_bytes=4096, kill_grace_seconds=1, cleanups=set()
    )
    assert (result.status, result.output, result.error) == (RunStatus.FAILED, "***\n", "bad ***\n")


@pytest.mark.asyncio
async def test_a_secret_cut_by_the_output_budget_is_masked_too() -> None:
    script = "import os; print('x' * 20 + os.environ['DB_PASSWORD'])"
    target = CommandTarget(type="command", argv=[sys.executable, "-c", script], env=command_env())
    result = await execute_command(
        target, CTX, max_output_bytes=40, kill_grace_seconds=1, cleanups=set()
    )
    assert result.output == "x" * 20 + "***…[truncated]"


@pytest.mark.asyncio
async def test_a_python_result_never_shows_its_kwargs() -> None:
    target = PythonTarget.model_validate(python_target())
    async with httpx.AsyncClient() as client:
        result = await TargetRunner(client).run(target, CTX)
    assert result.error == "ValueError: ***"


def command_env() -> dict[str, str]:
    return {"DB_PASSWORD": ENV_SECRET}

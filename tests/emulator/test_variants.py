"""NAS behaviours the emulator can take besides its default, over real HTTP: fires without
`fire_at`, no list endpoint, an empty provision answer, which arm a delivery consumes, and
what an exhausted re-delivery leaves behind."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import jwt
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from app.emulator.records import Outcome
from tests.support.emulator import (
    INSTANCE_A,
    TOKEN_A,
    AgentReceiver,
    DrivenEmulator,
    StartDrivenEmulator,
    StartEmulator,
    iso_in,
    provision_body,
    quiet_server,
)
from tests.support.servers import bind_loopback, running, wait_until

pytestmark = pytest.mark.asyncio

CALLBACK = "http://agent.invalid:8080"  # never reached: these fires are an hour away
NEVER = 24 * 3600.0  # long past any delivery these tests could leave pending
RETRIES_DUE = 1.0  # driven emulators retry within 0.2 s of their clock


async def provision(emulator: DrivenEmulator, body: dict[str, str]) -> str:
    response = await emulator.client().post("/api/agent-cron/provision", json=body)
    assert response.status_code == 200, response.text
    schedule_id: str = response.json()["schedule_id"]
    return schedule_id


# -- NAS_EMULATOR_FIRE_AT -------------------------------------------------------------------------


async def test_omitted_fire_at_leaves_it_out_of_the_body_and_the_token(
    start_driven_emulator: StartDrivenEmulator, receiver: AgentReceiver
) -> None:
    emulator = await start_driven_emulator(fire_at="omitted")
    fire_at = emulator.iso_in(-1)
    await provision(emulator, provision_body("bare", fire_at, receiver.url))

    (call,) = await receiver.wait_for_calls(1, "bare")

    assert json.loads(call.body) == {"job_id": "bare"}
    token = (call.authorization or "").removeprefix("Bearer ")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["job_id"] == "bare"
    assert "fire_at" not in claims
    assert claims["aud"] == f"agent:{INSTANCE_A}" and claims["purpose"] == "cron_fire"
    await emulator.settle()
    (record,) = await emulator.deliveries("bare")
    assert (record["outcome"], record["fire_at"]) == ("delivered", fire_at)  # the log knows


async def test_provisioned_fire_at_is_the_default(
    start_driven_emulator: StartDrivenEmulator, receiver: AgentReceiver
) -> None:
    emulator = await start_driven_emulator()
    fire_at = emulator.iso_in(-1)
    await provision(emulator, provision_body("full", fire_at, receiver.url))

    (call,) = await receiver.wait_for_calls(1, "full")

    assert call.json == {"job_id": "full", "fire_at": fire_at}
    claims = jwt.decode((call.authorization or "")[7:], options={"verify_signature": False})
    assert claims["fire_at"] == fire_at


# -- NAS_EMULATOR_LIST ----------------------------------------------------------------------------


@pytest.mark.parametrize("token", [TOKEN_A, None, "not-a-known-token"])
async def test_list_off_answers_404_whoever_asks(
    start_emulator: StartEmulator, token: str | None
) -> None:
    emulator = await start_emulator(list_endpoint="off")
    await emulator.client().post(
        "/api/agent-cron/provision", json=provision_body("armed", iso_in(3600), CALLBACK)
    )

    response = await emulator.client(token).get("/api/agent-cron/list")

    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": "Not Found"}
    assert [arm["job_id"] for arm in await emulator.all_arms()] == ["armed"]


# -- NAS_EMULATOR_PROVISION_ANSWER ----------------------------------------------------------------


async def test_empty_provision_answer_is_an_empty_object_and_still_arms(
    start_emulator: StartEmulator,
) -> None:
    emulator = await start_emulator(provision_answer="empty")
    body = provision_body("quiet", iso_in(3600), CALLBACK)

    first = await emulator.client().post("/api/agent-cron/provision", json=body)
    again = await emulator.client().post("/api/agent-cron/provision", json=body)
    invalid = await emulator.client().post("/api/agent-cron/provision", json={"job_id": "x"})

    assert (first.status_code, first.json()) == (200, {})
    assert (again.status_code, again.json()) == (200, {})
    assert invalid.status_code == 400 and invalid.json()["error"] == "invalid_request"
    (arm,) = await emulator.armed()
    assert arm["job_id"] == "quiet" and arm["schedule_id"]


# -- NAS_EMULATOR_CONSUME -------------------------------------------------------------------------


@dataclass
class ChainingAgent:
    """An agent that, on the first fire, arms the job's next fire an hour later at the
    emulator, and only then answers 202: the next arm exists before NAS sees the 2xx."""

    url: str = ""
    fires: list[dict[str, str]] = field(default_factory=list)
    next_schedule_ids: list[str] = field(default_factory=list)


@asynccontextmanager
async def run_chaining_agent(emulator: DrivenEmulator) -> AsyncIterator[ChainingAgent]:
    agent = ChainingAgent()
    app = FastAPI()

    @app.post("/api/cron/fire")
    async def fire(request: Request) -> JSONResponse:
        payload = await request.json()
        agent.fires.append(payload)
        if len(agent.fires) == 1:
            next_arm = provision_body(payload["job_id"], emulator.iso_in(3600), agent.url)
            agent.next_schedule_ids.append(await provision(emulator, next_arm))
        return JSONResponse({"status": "accepted"}, status_code=202)

    sock = bind_loopback()
    agent.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with running(quiet_server(app), sock):
        yield agent


@pytest.mark.parametrize(
    ("consume", "next_arm_survives"), [(None, True), ("schedule", True), ("job", False)]
)
async def test_consume_decides_whether_an_arm_made_during_the_delivery_survives(
    start_driven_emulator: StartDrivenEmulator, consume: str | None, next_arm_survives: bool
) -> None:
    emulator = await start_driven_emulator(**({"consume": consume} if consume else {}))
    async with run_chaining_agent(emulator) as agent:
        first = await provision(emulator, provision_body("chain", emulator.iso_in(-1), agent.url))

        await wait_until(_delivered(emulator, first), what="the first fire to be answered")
        (next_schedule_id,) = agent.next_schedule_ids
        await emulator.pass_time(3600)  # the next fire's time
        await emulator.pass_time(NEVER)

        if next_arm_survives:
            assert len(agent.fires) == 2  # the next arm was delivered in its turn
            records = await emulator.deliveries("chain")
            assert [(r["schedule_id"], r["outcome"]) for r in records] == [
                (first, "delivered"),
                (next_schedule_id, "delivered"),
            ]
        else:
            assert len(agent.fires) == 1  # the 2xx of the first fire took the next arm too
            assert await emulator.all_arms() == []
            (record,) = await emulator.deliveries("chain")
            assert (record["schedule_id"], record["outcome"]) == (first, "delivered")


def _delivered(emulator: DrivenEmulator, schedule_id: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return any(
            r["schedule_id"] == schedule_id and r["outcome"] == Outcome.DELIVERED
            for r in await emulator.deliveries()
        )

    return check


# -- NAS_EMULATOR_REDELIVERY_MAX_ATTEMPTS ---------------------------------------------------------


async def test_exhausted_redelivery_is_recorded_abandoned_removed_and_logged(
    start_driven_emulator: StartDrivenEmulator,
    receiver: AgentReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    emulator = await start_driven_emulator(redelivery_max_attempts=2)
    receiver.script("doomed", 500, 500, 500)
    caplog.set_level(logging.INFO, logger="app.emulator")
    await provision(emulator, provision_body("doomed", emulator.iso_in(-1), receiver.url))

    await emulator.settle()
    await emulator.pass_time(RETRIES_DUE)
    await emulator.pass_time(NEVER)

    records = await emulator.deliveries("doomed")
    assert [(r["attempt"], r["outcome"]) for r in records] == [(1, "retrying"), (2, "abandoned")]
    assert records[-1]["next_retry_at"] is None
    assert await emulator.all_arms() == []
    assert len(receiver.calls_for("doomed")) == 2
    (warning,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warning.name == "app.emulator.delivery_log"
    assert "doomed" in warning.getMessage()
    assert "abandoned after 2 attempts, arm removed" in warning.getMessage()
    assert vars(warning)["outcome"] == "abandoned" and vars(warning)["attempt"] == 2

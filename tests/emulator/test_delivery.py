"""Fire delivery over real HTTP: timing, the JWT, re-delivery, abandonment and cancellation.

What must *not* be delivered is checked on a driven emulator (`start_driven_emulator`): its
clock moves only when the test says, so the test moves it past the moment the delivery would
be due, waits until everything due is delivered (`settle`), and only then looks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone

import httpx
import jwt
import pytest
from asgi_lifespan import LifespanManager

from app.emulator import EmulatorConfig, create_emulator_app
from tests.support.emulator import (
    INSTANCE_A,
    TOKEN_A,
    TOKEN_B,
    AgentReceiver,
    Reply,
    RunningEmulator,
    StartDrivenEmulator,
    StartEmulator,
    iso_in,
    provision_body,
)
from tests.support.servers import bind_loopback, wait_until

pytestmark = pytest.mark.asyncio

# Driven emulators run on FAST_REDELIVERY: a failed attempt is retried within 0.2 s (of their
# clock) unless the agent's Retry-After says otherwise.
RETRIES_DUE = 1.0
NEVER = 24 * 3600.0  # long past any re-delivery any of these tests could leave pending


async def provision(emulator: RunningEmulator, body: dict[str, str], token: str = TOKEN_A) -> str:
    response = await emulator.client(token).post("/api/agent-cron/provision", json=body)
    assert response.status_code == 200, response.text
    schedule_id: str = response.json()["schedule_id"]
    return schedule_id


async def test_fire_is_delivered_at_fire_at_with_a_verifiable_jwt(
    start_emulator: StartEmulator, receiver: AgentReceiver
) -> None:
    emulator = await start_emulator(token_ttl_seconds=75)
    fire_at_utc = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)
    fire_at = fire_at_utc.astimezone(timezone(timedelta(hours=-5))).isoformat()
    schedule_id = await provision(emulator, provision_body("nightly", fire_at, receiver.url + "/"))

    (call,) = await receiver.wait_for_calls(1, "nightly", timeout=5)

    assert call.received_at >= fire_at_utc
    assert call.received_at - fire_at_utc < timedelta(seconds=1)
    assert call.path == "/api/cron/fire"
    assert json.loads(call.body) == {"job_id": "nightly", "fire_at": fire_at}  # as provisioned
    jwks = (await emulator.client(None).get("/.well-known/jwks.json")).json()
    assert call.authorization is not None and call.authorization.startswith("Bearer ")
    token = call.authorization.removeprefix("Bearer ")
    header = jwt.get_unverified_header(token)
    signing_key = jwt.PyJWKSet.from_dict(jwks)[header["kid"]]
    claims = jwt.decode(
        token,
        signing_key.key,
        algorithms=["RS256"],
        audience=f"agent:{INSTANCE_A}",
        issuer=emulator.url,
        options={"require": ["exp", "iat", "nbf", "iss", "aud", "jti"]},
    )
    assert header["alg"] == "RS256"
    assert claims["purpose"] == "cron_fire"
    assert claims["exp"] - claims["iat"] == 75
    assert claims["nbf"] == claims["iat"]
    assert claims["job_id"] == "nightly"
    assert claims["fire_at"] == fire_at
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(token, signing_key.key, algorithms=["RS256"], audience="agent:someone-else")

    await wait_until(_no_arms(emulator), what="the delivered arm to disappear")
    (record,) = await emulator.deliveries("nightly")
    assert record["outcome"] == "delivered"
    assert record["status_code"] == 200
    assert record["attempt"] == 1
    assert record["schedule_id"] == schedule_id
    assert record["next_retry_at"] is None
    assert record["response_body"] == '{"status": "ok"}'


async def test_failed_deliveries_are_retried_and_the_arm_stays_listed_until_2xx(
    start_driven_emulator: StartDrivenEmulator, receiver: AgentReceiver
) -> None:
    emulator = await start_driven_emulator()
    third_answer = asyncio.Event()
    receiver.script("flaky", 503, 503, Reply(200, gate=third_answer))
    schedule_id = await provision(
        emulator, provision_body("flaky", emulator.iso_in(-1), receiver.url)
    )

    await emulator.settle()  # the first attempt failed
    await emulator.pass_time(RETRIES_DUE)  # the second one too
    emulator.advance(RETRIES_DUE)
    calls = await receiver.wait_for_calls(3, "flaky")

    # The third attempt is in flight: the fire is not done, so the arm is still listed.
    assert [arm["schedule_id"] for arm in await emulator.armed()] == [schedule_id]
    retrying = await emulator.deliveries("flaky")
    assert [(r["attempt"], r["status_code"], r["outcome"]) for r in retrying] == [
        (1, 503, "retrying"),
        (2, 503, "retrying"),
    ]
    assert all(r["next_retry_at"] is not None for r in retrying)

    third_answer.set()
    await wait_until(_no_arms(emulator), what="the arm to go after the 200")

    records = await emulator.deliveries("flaky")
    assert [(r["attempt"], r["status_code"], r["outcome"]) for r in records] == [
        (1, 503, "retrying"),
        (2, 503, "retrying"),
        (3, 200, "delivered"),
    ]
    # A fresh token per attempt, for the same fire.
    tokens = [
        jwt.decode((c.authorization or "")[7:], options={"verify_signature": False}) for c in calls
    ]
    assert len({claims["jti"] for claims in tokens}) == 3
    assert {(claims["job_id"], claims["fire_at"]) for claims in tokens} == {
        ("flaky", calls[0].json["fire_at"])
    }
    await emulator.pass_time(NEVER)  # any re-delivery left would be made by now
    assert len(receiver.calls_for("flaky")) == 3


async def test_delivery_is_abandoned_after_max_attempts(
    start_driven_emulator: StartDrivenEmulator, receiver: AgentReceiver
) -> None:
    emulator = await start_driven_emulator(redelivery_max_attempts=3)
    receiver.script("broken", 500, 500, 500, 500, 500)
    await provision(emulator, provision_body("broken", emulator.iso_in(-1), receiver.url))

    await emulator.settle()
    await emulator.pass_time(RETRIES_DUE)
    await emulator.pass_time(RETRIES_DUE)
    await receiver.wait_for_calls(3, "broken")
    await wait_until(_no_arms(emulator), what="the abandoned arm to disappear")

    records = await emulator.deliveries("broken")
    assert [r["outcome"] for r in records] == ["retrying", "retrying", "abandoned"]
    assert records[-1]["next_retry_at"] is None
    await emulator.pass_time(NEVER)  # a fourth attempt, if any were left, would be made by now
    assert len(receiver.calls_for("broken")) == 3


async def test_transport_errors_are_recorded_and_retried(start_emulator: StartEmulator) -> None:
    emulator = await start_emulator(redelivery_max_attempts=2)
    closed = bind_loopback()  # bound but not listening: connections are refused
    dead_url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    try:
        await provision(emulator, provision_body("unreachable", iso_in(-1), dead_url))

        async def abandoned() -> bool:
            records = await emulator.deliveries("unreachable")
            return bool(records) and records[-1]["outcome"] == "abandoned"

        await wait_until(abandoned, what="the unreachable fire to be abandoned")
    finally:
        closed.close()

    records = await emulator.deliveries("unreachable")
    assert [r["outcome"] for r in records] == ["retrying", "abandoned"]
    assert all(r["status_code"] is None for r in records)
    assert all(r["error"] and "Connect" in r["error"] for r in records)


async def test_retry_after_is_honoured_but_capped(
    start_driven_emulator: StartDrivenEmulator, receiver: AgentReceiver
) -> None:
    emulator = await start_driven_emulator(
        redelivery_initial_seconds=0.01, redelivery_max_seconds=0.6
    )
    receiver.script("busy", Reply(429, headers={"Retry-After": "3600"}))
    await provision(emulator, provision_body("busy", emulator.iso_in(-1), receiver.url))
    await emulator.settle()

    # Without Retry-After the backoff would be at most 0.01 s; with it uncapped, an hour.
    (first,) = await emulator.deliveries("busy")
    gap = datetime.fromisoformat(first["next_retry_at"]) - datetime.fromisoformat(
        first["delivered_at"]
    )
    assert gap == timedelta(seconds=0.6)
    await emulator.pass_time(0.59)
    assert len(receiver.calls_for("busy")) == 1
    emulator.advance(0.01)
    await receiver.wait_for_calls(2, "busy")


async def test_a_past_fire_at_is_delivered_immediately(
    emulator: RunningEmulator, receiver: AgentReceiver
) -> None:
    fire_at = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    started = datetime.now(UTC)

    await provision(emulator, provision_body("late", fire_at, receiver.url))
    (call,) = await receiver.wait_for_calls(1, "late", timeout=2)

    assert call.received_at - started < timedelta(seconds=1)
    assert call.json["fire_at"] == fire_at


async def test_only_the_replacing_fire_is_delivered(
    start_driven_emulator: StartDrivenEmulator, receiver: AgentReceiver
) -> None:
    emulator = await start_driven_emulator()
    await provision(emulator, provision_body("moved", emulator.iso_in(60), receiver.url))
    new_fire_at = emulator.iso_in(90)
    await provision(emulator, provision_body("moved", new_fire_at, receiver.url))

    await emulator.pass_time(60)  # the replaced fire's time: nothing is due
    assert receiver.calls_for("moved") == []
    emulator.advance(30)
    await receiver.wait_for_calls(1, "moved")
    await emulator.pass_time(NEVER)

    assert [call.json["fire_at"] for call in receiver.calls_for("moved")] == [new_fire_at]


async def test_replacing_a_retrying_fire_stops_its_redelivery(
    start_driven_emulator: StartDrivenEmulator, receiver: AgentReceiver
) -> None:
    emulator = await start_driven_emulator(redelivery_max_seconds=2)
    receiver.script("stuck", Reply(503, headers={"Retry-After": "1"}), 503, 503)
    await provision(emulator, provision_body("stuck", emulator.iso_in(-1), receiver.url))
    await emulator.settle()
    assert [r["outcome"] for r in await emulator.deliveries("stuck")] == ["retrying"]

    new_schedule_id = await provision(
        emulator, provision_body("stuck", emulator.iso_in(3600), receiver.url)
    )
    await emulator.pass_time(2)  # past the moment the re-delivery was due (Retry-After: 1)

    assert len(receiver.calls_for("stuck")) == 1
    assert [arm["schedule_id"] for arm in await emulator.armed()] == [new_schedule_id]


async def test_an_attempt_in_flight_when_its_arm_is_replaced_is_not_retried(
    start_driven_emulator: StartDrivenEmulator, receiver: AgentReceiver
) -> None:
    emulator = await start_driven_emulator()
    answer = asyncio.Event()
    receiver.script("moving", Reply(503, gate=answer), 503, 503)
    await provision(emulator, provision_body("moving", emulator.iso_in(-1), receiver.url))
    await receiver.wait_for_calls(1, "moving")

    new_schedule_id = await provision(
        emulator, provision_body("moving", emulator.iso_in(3600), receiver.url)
    )
    answer.set()

    async def recorded() -> bool:
        return bool(await emulator.deliveries("moving"))

    await wait_until(recorded, what="the in-flight attempt to be recorded")
    # Past several re-delivery intervals, short of the replacing fire.
    await emulator.pass_time(RETRIES_DUE)
    (record,) = await emulator.deliveries("moving")
    assert (record["status_code"], record["outcome"]) == (503, "cancelled")
    assert record["next_retry_at"] is None
    assert len(receiver.calls_for("moving")) == 1
    assert [arm["schedule_id"] for arm in await emulator.armed()] == [new_schedule_id]


async def test_cancel_prevents_the_pending_delivery(
    start_driven_emulator: StartDrivenEmulator, receiver: AgentReceiver
) -> None:
    emulator = await start_driven_emulator()
    fire_at = emulator.iso_in(60)
    await provision(emulator, provision_body("cancelled", fire_at, receiver.url))
    await provision(emulator, provision_body("control", fire_at, receiver.url))

    await emulator.client().post("/api/agent-cron/cancel", json={"job_id": "cancelled"})
    emulator.advance(60)  # both fires' time
    await receiver.wait_for_calls(1, "control")
    await emulator.pass_time(NEVER)

    assert receiver.calls_for("cancelled") == []
    assert await emulator.deliveries("cancelled") == []


async def test_clearing_all_arms_prevents_their_delivery(
    start_driven_emulator: StartDrivenEmulator, receiver: AgentReceiver
) -> None:
    emulator = await start_driven_emulator()
    fire_at = emulator.iso_in(60)
    await provision(emulator, provision_body("a-job", fire_at, receiver.url), TOKEN_A)
    await provision(emulator, provision_body("b-job", fire_at, receiver.url), TOKEN_B)

    response = await emulator.client(None).delete("/_emulator/arms")
    await emulator.pass_time(NEVER)  # far past the cleared fires' time

    assert response.json() == {"cleared": 2}
    assert receiver.calls == []
    assert await emulator.armed(TOKEN_A) == []
    assert await emulator.armed(TOKEN_B) == []
    assert (await emulator.client(None).get("/_emulator/arms")).json() == {"arms": []}


async def test_a_slow_agent_does_not_hold_up_other_fires(
    emulator: RunningEmulator, receiver: AgentReceiver
) -> None:
    release = asyncio.Event()
    receiver.script("slow", Reply(200, gate=release))
    await provision(emulator, provision_body("slow", iso_in(-1), receiver.url))
    await receiver.wait_for_calls(1, "slow")

    await provision(emulator, provision_body("fast", iso_in(-1), receiver.url))
    await receiver.wait_for_calls(1, "fast", timeout=2)
    await wait_until(_delivered(emulator, "fast"), what="the fast fire to be delivered", timeout=2)

    arms = (await emulator.client(None).get("/_emulator/arms")).json()["arms"]
    assert [(arm["job_id"], arm["state"]) for arm in arms] == [("slow", "delivering")]
    release.set()
    await wait_until(_no_arms(emulator), what="the slow fire to complete")


async def test_emulator_arms_show_the_delivery_state(
    start_driven_emulator: StartDrivenEmulator, receiver: AgentReceiver
) -> None:
    emulator = await start_driven_emulator()
    receiver.script("retried", 502, 502, 502, 502)
    fire_at = emulator.iso_in(3600)
    await provision(emulator, provision_body("later", fire_at, receiver.url))
    await provision(emulator, provision_body("retried", emulator.iso_in(-1), receiver.url))
    await receiver.wait_for_calls(1, "retried")
    await emulator.settle()  # the failed attempt is recorded; the next one waits for the clock

    arms = {arm["job_id"]: arm for arm in await emulator.all_arms()}

    assert arms["later"]["state"] == "scheduled"
    assert arms["later"]["fire_at"] == fire_at
    assert arms["later"]["instance_id"] == INSTANCE_A
    assert arms["later"]["attempts"] == 0
    assert arms["retried"]["state"] == "retrying"
    assert arms["retried"]["attempts"] == 1


async def test_deliveries_can_be_filtered_by_job(
    emulator: RunningEmulator, receiver: AgentReceiver
) -> None:
    await provision(emulator, provision_body("one", iso_in(-1), receiver.url))
    await provision(emulator, provision_body("two", iso_in(-1), receiver.url))
    await receiver.wait_for_calls(1, "one")
    await receiver.wait_for_calls(1, "two")
    await wait_until(_no_arms(emulator), what="both fires to be delivered")

    assert {r["job_id"] for r in await emulator.deliveries()} == {"one", "two"}
    assert [r["job_id"] for r in await emulator.deliveries("two")] == ["two"]


async def test_http_client_factory_is_used_for_deliveries() -> None:
    """The factory's client delivers the fires: here a mock transport answers every call."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    config = EmulatorConfig(public_url="http://nas.test", agent_tokens={TOKEN_A: INSTANCE_A})
    app = create_emulator_app(
        config, http_client_factory=lambda: httpx.AsyncClient(transport=httpx.MockTransport(answer))
    )
    async with LifespanManager(app) as manager:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(manager.app), base_url="http://nas.test"
        )
        async with client:
            body = provision_body("mocked", iso_in(-1), "http://agent.test/base/")
            response = await client.post(
                "/api/agent-cron/provision",
                json=body,
                headers={"Authorization": f"Bearer {TOKEN_A}"},
            )
            assert response.status_code == 200

            async def delivered() -> bool:
                return bool(seen)

            await wait_until(delivered, what="the mocked delivery")

    assert str(seen[0].url) == "http://agent.test/base/api/cron/fire"
    assert seen[0].headers["authorization"].startswith("Bearer ")


def _no_arms(emulator: RunningEmulator) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await emulator.all_arms() == []

    return check


def _delivered(emulator: RunningEmulator, job_id: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return any(r["outcome"] == "delivered" for r in await emulator.deliveries(job_id))

    return check

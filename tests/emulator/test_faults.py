"""Faults injected at runtime through `/_emulator/faults`: agent-cron calls answered 503 or held,
deliveries held. None is in force by default; clearing them restores the usual behaviour."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.emulator.faults import AgentCronMode, FaultControl
from app.emulator.records import ProvisionRequest, RetryPolicy
from app.emulator.state import ArmRegistry
from app.errors import ServiceUnavailable
from tests.support import ManualClock
from tests.support.emulator import (
    AgentReceiver,
    RunningEmulator,
    StartDrivenEmulator,
    iso_in,
    provision_body,
)

CALLBACK = "http://agent.invalid:8080"  # never reached: these fires are an hour away
NO_FAULTS = {"agent_cron": None, "deliveries": None}
T0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


async def inject(emulator: RunningEmulator, **body: Any) -> dict[str, Any]:
    response = await emulator.client(None).post("/_emulator/faults", json=body)
    assert response.status_code == 200, response.text
    faults: dict[str, Any] = response.json()
    return faults


async def clear(emulator: RunningEmulator) -> dict[str, Any]:
    response = await emulator.client(None).delete("/_emulator/faults")
    assert response.status_code == 200, response.text
    faults: dict[str, Any] = response.json()
    return faults


async def provision(emulator: RunningEmulator, job_id: str, callback: str = CALLBACK) -> Any:
    body = provision_body(job_id, iso_in(3600), callback)
    return await emulator.client().post("/api/agent-cron/provision", json=body)


# -- the fault control, on a manual clock --------------------------------------------------------


@pytest.mark.asyncio
async def test_no_fault_lets_every_call_through_at_once() -> None:
    faults = FaultControl(clock=ManualClock())
    assert faults.current() is None
    for call in ("provision", "cancel", "list"):
        await faults.admit(call)


@pytest.mark.asyncio
async def test_unavailable_refuses_the_chosen_calls_until_it_expires() -> None:
    clock = ManualClock()
    faults = FaultControl(clock=clock)
    faults.set_agent_cron(AgentCronMode.UNAVAILABLE, seconds=5, calls=["provision", "cancel"])

    with pytest.raises(ServiceUnavailable) as refused:
        await faults.admit("provision")
    assert refused.value.headers == {"Retry-After": "1"}
    await faults.admit("list")  # not chosen: served

    clock.advance(4.9)
    with pytest.raises(ServiceUnavailable):
        await faults.admit("cancel")
    clock.advance(0.1)
    await faults.admit("cancel")
    assert faults.current() is None


def test_unknown_calls_are_refused() -> None:
    faults = FaultControl(clock=ManualClock())
    with pytest.raises(ValueError, match="calls"):
        faults.set_agent_cron(AgentCronMode.HOLD, seconds=None, calls=["fire"])
    with pytest.raises(ValueError, match="calls"):
        faults.set_agent_cron(AgentCronMode.HOLD, seconds=None, calls=[])
    assert faults.current() is None


@pytest.mark.asyncio
async def test_a_held_call_goes_on_when_the_hold_is_cleared_or_replaced() -> None:
    faults = FaultControl(clock=ManualClock())
    faults.set_agent_cron(AgentCronMode.HOLD, seconds=None)
    held = asyncio.create_task(faults.admit("provision"))
    await asyncio.sleep(0.05)
    assert not held.done()

    faults.set_agent_cron(AgentCronMode.HOLD, seconds=None, calls=["list"])  # provision freed
    await asyncio.wait_for(held, timeout=1)

    faults.set_agent_cron(AgentCronMode.HOLD, seconds=None)
    held = asyncio.create_task(faults.admit("cancel"))
    await asyncio.sleep(0.05)
    faults.set_agent_cron(AgentCronMode.UNAVAILABLE, seconds=None)  # re-judged: now refused
    with pytest.raises(ServiceUnavailable):
        await asyncio.wait_for(held, timeout=1)

    faults.set_agent_cron(AgentCronMode.HOLD, seconds=None)
    held = asyncio.create_task(faults.admit("list"))
    await asyncio.sleep(0.05)
    faults.clear()
    await asyncio.wait_for(held, timeout=1)


# -- held deliveries in the registry ---------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def arm_at(registry: ArmRegistry, job_id: str, fire_at: datetime) -> None:
    registry.provision(
        "i",
        ProvisionRequest(
            job_id=job_id,
            fire_at=fire_at.isoformat(),
            fire_at_utc=fire_at,
            agent_callback_url="http://agent",
            dedup_key=f"{job_id}:{fire_at.isoformat()}",
        ),
    )


def test_held_deliveries_are_taken_when_the_hold_ends() -> None:
    clock = FakeClock()
    registry = ArmRegistry(
        RetryPolicy(initial_seconds=1, max_seconds=8, max_attempts=3), clock=clock
    )
    heard: list[None] = []
    registry.add_listener(lambda: heard.append(None))
    arm_at(registry, "due", T0)

    assert registry.hold_deliveries(30) == T0 + timedelta(seconds=30)
    assert registry.deliveries_hold() == (True, 30.0)
    assert registry.next_due_at() == T0 + timedelta(seconds=30)  # the scheduler wakes then
    clock.now = T0 + timedelta(seconds=29)
    assert registry.take_due(clock.now) == []

    clock.now = T0 + timedelta(seconds=30)
    assert [ticket.job_id for ticket in registry.take_due(clock.now)] == ["due"]
    assert registry.deliveries_hold() == (False, None)
    assert len(heard) == 2  # the provision, the hold


def test_deliveries_held_until_released() -> None:
    clock = FakeClock()
    registry = ArmRegistry(
        RetryPolicy(initial_seconds=1, max_seconds=8, max_attempts=3), clock=clock
    )
    arm_at(registry, "due", T0)
    registry.hold_deliveries()
    heard: list[None] = []
    registry.add_listener(lambda: heard.append(None))

    clock.now = T0 + timedelta(days=1)
    assert registry.deliveries_hold() == (True, None)
    assert registry.next_due_at() is None  # nothing to wake for but the release
    assert registry.take_due(clock.now) == []

    registry.release_deliveries()
    assert heard == [None]
    assert [ticket.job_id for ticket in registry.take_due(clock.now)] == ["due"]
    registry.release_deliveries()  # not held: nothing to hear
    assert heard == [None]


# -- over HTTP -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_no_fault_is_in_force_by_default(emulator: RunningEmulator) -> None:
    response = await emulator.client(None).get("/_emulator/faults")
    assert response.status_code == 200
    assert response.json() == NO_FAULTS
    assert (await provision(emulator, "j")).status_code == 200


@pytest.mark.asyncio
async def test_unavailable_answers_503_to_agent_cron_calls_until_cleared(
    emulator: RunningEmulator,
) -> None:
    faults = await inject(emulator, agent_cron="unavailable", seconds=60)
    assert faults["deliveries"] is None
    assert faults["agent_cron"]["mode"] == "unavailable"
    assert faults["agent_cron"]["calls"] == ["cancel", "list", "provision"]
    assert 59 < faults["agent_cron"]["remaining_seconds"] <= 60

    refused = await provision(emulator, "j")
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["error"] == "unavailable"
    assert (await emulator.client().get("/api/agent-cron/list")).status_code == 503
    cancel = await emulator.client().post("/api/agent-cron/cancel", json={"job_id": "j"})
    assert cancel.status_code == 503
    # The emulator's own routes are not affected; nothing was armed.
    assert (await emulator.client(None).get("/_emulator/arms")).json() == {"arms": []}

    assert await clear(emulator) == NO_FAULTS
    assert (await provision(emulator, "j")).status_code == 200
    assert [arm["job_id"] for arm in await emulator.armed()] == ["j"]


@pytest.mark.asyncio
async def test_unavailable_can_target_some_calls_and_ends_by_itself(
    emulator: RunningEmulator,
) -> None:
    await inject(emulator, agent_cron="unavailable", calls=["provision"], seconds=0.5)

    assert (await provision(emulator, "j")).status_code == 503
    assert (await emulator.client().get("/api/agent-cron/list")).status_code == 200

    await asyncio.sleep(0.6)
    assert (await emulator.client(None).get("/_emulator/faults")).json() == NO_FAULTS
    assert (await provision(emulator, "j")).status_code == 200


@pytest.mark.asyncio
async def test_a_held_provision_takes_effect_when_the_hold_is_cleared(
    emulator: RunningEmulator,
) -> None:
    await inject(emulator, agent_cron="hold", calls=["provision"])
    held = asyncio.create_task(provision(emulator, "j"))
    await asyncio.sleep(0.3)

    assert not held.done()
    assert await emulator.armed() == []  # list is not held, and nothing is armed yet

    await clear(emulator)
    assert (await asyncio.wait_for(held, timeout=2)).status_code == 200
    assert [arm["job_id"] for arm in await emulator.armed()] == ["j"]


@pytest.mark.asyncio
async def test_a_timed_hold_delays_calls_until_it_ends(emulator: RunningEmulator) -> None:
    await inject(emulator, agent_cron="hold", seconds=0.5)
    started = time.monotonic()

    response = await emulator.client().get("/api/agent-cron/list")

    assert response.status_code == 200
    assert 0.4 <= time.monotonic() - started < 3


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),
        ({"seconds": 5}, "body"),
        ({"agent_cron": "down"}, "agent_cron"),
        ({"agent_cron": "hold", "calls": ["fire"]}, "calls"),
        ({"agent_cron": "hold", "calls": []}, "calls"),
        ({"deliveries": "hold", "calls": ["list"]}, "calls"),
        ({"deliveries": "drop"}, "deliveries"),
        ({"agent_cron": "hold", "seconds": 0}, "seconds"),
        ({"agent_cron": "hold", "for": 3}, "for"),
    ],
)
async def test_invalid_fault_bodies_are_400_naming_the_field(
    emulator: RunningEmulator, body: dict[str, Any], field: str
) -> None:
    response = await emulator.client(None).post("/_emulator/faults", json=body)

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert response.json()["detail"].startswith(field), response.json()["detail"]
    assert (await emulator.client(None).get("/_emulator/faults")).json() == NO_FAULTS


@pytest.mark.asyncio
async def test_held_deliveries_go_out_when_cleared(
    emulator: RunningEmulator, receiver: AgentReceiver
) -> None:
    faults = await inject(emulator, deliveries="hold")
    assert faults == {"agent_cron": None, "deliveries": {"mode": "hold", "remaining_seconds": None}}
    body = provision_body("due", iso_in(-1), receiver.url)
    assert (await emulator.client().post("/api/agent-cron/provision", json=body)).status_code == 200
    await asyncio.sleep(0.3)

    assert receiver.calls_for("due") == []
    [arm] = await emulator.all_arms()
    assert (arm["state"], arm["attempts"]) == ("scheduled", 0)

    await clear(emulator)
    await receiver.wait_for_calls(1, "due", timeout=2)


@pytest.mark.asyncio
async def test_a_timed_delivery_hold_follows_the_emulator_clock(
    start_driven_emulator: StartDrivenEmulator, receiver: AgentReceiver
) -> None:
    emulator = await start_driven_emulator()
    await inject(emulator, deliveries="hold", seconds=30)
    body = provision_body("due", emulator.iso_in(10), receiver.url)
    assert (await emulator.client().post("/api/agent-cron/provision", json=body)).status_code == 200

    emulator.advance(29)
    await asyncio.sleep(0.2)
    assert receiver.calls_for("due") == []

    emulator.advance(1)
    await receiver.wait_for_calls(1, "due")
    await emulator.settle()
    assert [r["outcome"] for r in await emulator.deliveries("due")] == ["delivered"]

"""Reconcile: NAS arms made to match the store, through `POST /api/reconcile`, against a real
NAS emulator on loopback."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.version import VERSION
from tests.support.agent import Agent, FaultyNasTransport, NasFaults, RunningNas, run_agent
from tests.support.servers import wait_until

pytestmark = pytest.mark.asyncio

TRUE = {"type": "command", "argv": ["true"]}
REPORT_KEYS = {
    "errors",
    "ok",
    "armed",
    "cancelled",
    "missed",
    "in_sync",
    "pending",
    "list_error",
    "list_supported",
}


class MovableClock:
    """The agent's clock: real time plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


async def reconcile(agent: Agent) -> dict[str, Any]:
    response = await agent.client.post("/api/reconcile", headers=agent.admin_headers)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    assert report.keys() == REPORT_KEYS
    return report


async def arm_directly(agent: Agent, job_id: str, fire_at: datetime) -> None:
    """Arm `job_id` at the emulator as this agent, behind the agent's back."""
    fire_text = fire_at.astimezone(UTC).isoformat()
    async with agent.nas.client() as nas_client:
        response = await nas_client.post(
            "/api/agent-cron/provision",
            json={
                "job_id": job_id,
                "fire_at": fire_text,
                "agent_callback_url": "http://127.0.0.1:9",
                "dedup_key": f"{job_id}:{fire_text}",
            },
        )
    assert response.status_code == 200, response.text


def in_hours(hours: float) -> datetime:
    return (datetime.now(UTC) + timedelta(hours=hours)).replace(microsecond=0)


async def test_reconcile_in_sync_reports_and_changes_nothing(agent: Agent) -> None:
    job = await agent.create_job(schedule="every 1h", target=TRUE)
    calls = len(agent.faults.calls)
    report = await reconcile(agent)
    assert report == {
        "ok": True,
        "armed": [],
        "cancelled": [],
        "missed": [],
        "errors": [],
        "in_sync": 1,
        "pending": 0,
        "list_error": None,
        "list_supported": True,
    }
    assert agent.faults.calls[calls:] == ["list"]
    assert (await agent.nas.armed()) == {job["id"]: job["next_run_at"]}


async def test_reconcile_rearms_every_scheduled_job_after_nas_lost_its_arms(agent: Agent) -> None:
    jobs = [
        await agent.create_job(schedule=schedule, target=TRUE)
        for schedule in ("every 1h", "in 2h", "30 4 * * *")
    ]
    await agent.nas.clear()
    assert await agent.nas.armed() == {}
    report = await reconcile(agent)
    assert report["ok"] is True
    assert sorted(report["armed"]) == sorted(j["id"] for j in jobs)
    assert report["missed"] == [] and report["cancelled"] == []
    assert await agent.nas.armed() == {j["id"]: j["next_run_at"] for j in jobs}
    # Idempotent: a second pass finds everything in sync.
    again = await reconcile(agent)
    assert again["armed"] == [] and again["in_sync"] == 3


async def test_reconcile_fixes_an_arm_at_the_wrong_time(agent: Agent) -> None:
    job = await agent.create_job(schedule="every 1h", target=TRUE)
    await arm_directly(agent, job["id"], in_hours(5))
    report = await reconcile(agent)
    assert report["armed"] == [job["id"]]
    assert (await agent.nas.armed())[job["id"]] == job["next_run_at"]


async def test_reconcile_cancels_an_orphan_arm(agent: Agent) -> None:
    job = await agent.create_job(schedule="every 1h", target=TRUE)
    await arm_directly(agent, "ghost", in_hours(2))
    assert "ghost" in await agent.nas.armed()
    report = await reconcile(agent)
    assert report["ok"] is True
    assert report["cancelled"] == ["ghost"]
    assert report["in_sync"] == 1
    assert await agent.nas.armed() == {job["id"]: job["next_run_at"]}


async def test_paused_jobs_are_never_armed_and_their_stray_arms_are_cancelled(agent: Agent) -> None:
    paused = await agent.create_job(schedule="every 1h", target=TRUE)
    await agent.client.post(f"/api/jobs/{paused['id']}/pause", headers=agent.admin_headers)
    assert paused["id"] not in await agent.nas.armed()

    await arm_directly(agent, paused["id"], datetime.fromisoformat(paused["next_run_at"]))
    report = await reconcile(agent)
    assert report["cancelled"] == [paused["id"]]
    assert paused["id"] not in report["armed"]
    assert paused["id"] not in await agent.nas.armed()

    await agent.nas.clear()
    report = await reconcile(agent)
    assert report["armed"] == [] and report["cancelled"] == []
    assert await agent.nas.armed() == {}
    assert (await agent.job(paused["id"]))["state"] == "paused"


async def test_a_fire_that_passed_unarmed_is_recorded_missed_and_the_next_one_armed(
    database_url: str, nas: RunningNas
) -> None:
    clock = MovableClock()
    async with run_agent(database_url, nas, clock=clock) as agent:
        job = await agent.create_job(schedule="every 1h", target=TRUE, catchup="skip")
        missed_at = job["next_run_at"]
        # NAS lost the arm, and the agent's time runs past the fire (3.5 slots).
        await agent.nas.clear()
        clock.offset = timedelta(hours=3, minutes=30)

        report = await reconcile(agent)
        assert report["ok"] is True
        assert report["missed"] == [job["id"]]
        assert report["armed"] == [job["id"]]

        after = await agent.job(job["id"])
        expected_next = datetime.fromisoformat(missed_at) + timedelta(hours=3)
        assert after["next_run_at"] == expected_next.isoformat()  # next future slot, in phase
        assert datetime.fromisoformat(after["next_run_at"]) > clock()
        assert after["state"] == "scheduled"
        assert after["last_status"] == "missed"
        assert (await agent.nas.armed()) == {job["id"]: after["next_run_at"]}

        [run] = await agent.runs(job["id"])  # one record for the passed slots, never silence
        assert run["status"] == "missed"
        assert run["fire_at"] == missed_at
        assert run["finished_at"] is not None
        assert run["error"]

        # NAS delivering the missed fire late: a duplicate, never a run.
        late = await agent.fire(job["id"], missed_at)
        assert late.status_code == 200
        assert late.json()["status"] == "duplicate"
        assert late.json()["run_status"] == "missed"
        await agent.idle()
        assert len(await agent.runs(job["id"])) == 1

        # Reconciling again records nothing more.
        again = await reconcile(agent)
        assert again["missed"] == [] and again["in_sync"] == 1


async def test_a_missed_fire_with_the_default_catchup_runs_once_now(
    database_url: str, nas: RunningNas
) -> None:
    clock = MovableClock()
    async with run_agent(database_url, nas, clock=clock) as agent:
        job = await agent.create_job(schedule="every 1h", target=TRUE)
        missed_at = job["next_run_at"]
        await agent.nas.clear()
        clock.offset = timedelta(hours=2, minutes=30)
        report = await reconcile(agent)
        assert report["missed"] == [job["id"]] and report["armed"] == [job["id"]]
        await agent.idle()
        runs = await agent.runs(job["id"])
        assert sorted((r["kind"], r["status"]) for r in runs) == [
            ("catchup", "succeeded"),
            ("scheduled", "missed"),
        ]
        [missed] = [r for r in runs if r["status"] == "missed"]
        assert missed["fire_at"] == missed_at
        after = await agent.job(job["id"])
        assert (
            after["next_run_at"]
            == (datetime.fromisoformat(missed_at) + timedelta(hours=2)).isoformat()
        )
        assert (await agent.nas.armed()) == {job["id"]: after["next_run_at"]}
        late = await agent.fire(job["id"], missed_at)
        assert late.json()["status"] == "duplicate" and late.json()["run_status"] == "missed"
        await agent.idle()
        assert len(await agent.runs(job["id"])) == 2


async def test_a_missed_one_shot_is_recorded_and_completes(
    database_url: str, nas: RunningNas
) -> None:
    clock = MovableClock()
    async with run_agent(database_url, nas, clock=clock) as agent:
        job = await agent.create_job(schedule="in 1h", target=TRUE, catchup="skip")
        await agent.nas.clear()
        clock.offset = timedelta(hours=2)
        report = await reconcile(agent)
        assert report["missed"] == [job["id"]]
        assert report["armed"] == []
        after = await agent.job(job["id"])
        assert after["state"] == "completed" and after["next_run_at"] is None
        assert await agent.nas.armed() == {}
        assert [r["status"] for r in await agent.runs(job["id"])] == ["missed"]


async def test_a_past_fire_still_armed_at_nas_is_not_missed(
    database_url: str, nas: RunningNas
) -> None:
    clock = MovableClock()
    async with run_agent(database_url, nas, clock=clock) as agent:
        job = await agent.create_job(schedule="every 1h", target=TRUE)
        clock.offset = timedelta(hours=2)  # NAS still holds the arm and will deliver it
        report = await reconcile(agent)
        assert report["missed"] == [] and report["in_sync"] == 1
        assert await agent.runs(job["id"]) == []
        accepted = await agent.fire(job["id"], job["next_run_at"])
        assert accepted.status_code == 202
        await agent.idle()


class ListFails(FaultyNasTransport):
    """NAS answers 503 to `list` only; provision and cancel work."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/api/agent-cron/list"):
            self.faults.calls.append("list")
            return httpx.Response(503, json={"error": "unavailable"}, headers={"Retry-After": "0"})
        return await super().handle_async_request(request)


async def test_a_failed_list_cancels_nothing_but_still_arms(
    database_url: str, nas: RunningNas
) -> None:
    async with run_agent(database_url, nas, transport=ListFails) as agent:
        job = await agent.create_job(schedule="every 1h", target=TRUE)
        await agent.nas.clear()
        await arm_directly(agent, "ghost", in_hours(2))
        report = await reconcile(agent)
        assert report["ok"] is False
        assert "503" in report["list_error"]
        assert report["cancelled"] == []
        assert report["armed"] == [job["id"]]
        assert report["pending"] == 0
        armed = await agent.nas.armed()
        assert armed == {job["id"]: job["next_run_at"], "ghost": armed["ghost"]}
        assert "cancel" not in agent.faults.calls
        assert agent.faults.calls.count("list") == agent.settings.nas_retry_attempts


async def test_reconcile_while_nas_fails_keeps_everything_queued(agent: Agent) -> None:
    job = await agent.create_job(schedule="every 1h", target=TRUE)
    await agent.nas.clear()
    await arm_directly(agent, "ghost", in_hours(2))
    agent.faults.mode = "503"
    report = await reconcile(agent)
    assert report["ok"] is False
    assert report["list_error"] and "503" in report["list_error"]
    assert report["cancelled"] == []
    assert report["pending"] == 1
    assert (await agent.job(job["id"]))["nas_pending"] == "provision"
    assert "cancel" not in agent.faults.calls
    assert set(await agent.nas.armed()) == {"ghost"}

    agent.faults.mode = None
    report = await reconcile(agent)
    assert report["ok"] is True
    assert report["cancelled"] == ["ghost"]
    assert await agent.nas.armed() == {job["id"]: job["next_run_at"]}
    assert (await agent.job(job["id"]))["nas_pending"] is None


class ConcurrencyProbe(FaultyNasTransport):
    """Counts provisions in flight at once; each takes a little while at "NAS"."""

    def __init__(self, faults: NasFaults) -> None:
        super().__init__(faults)
        self.in_flight = 0
        self.max_in_flight = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not request.url.path.endswith("/provision"):
            return await super().handle_async_request(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.05)
            return await super().handle_async_request(request)
        finally:
            self.in_flight -= 1


async def test_reconcile_arms_with_bounded_concurrency(database_url: str, nas: RunningNas) -> None:
    probes: list[ConcurrencyProbe] = []

    def probe(faults: NasFaults) -> ConcurrencyProbe:
        probes.append(ConcurrencyProbe(faults))
        return probes[-1]

    async with run_agent(database_url, nas, transport=probe, reconcile_concurrency=4) as agent:
        jobs = [await agent.create_job(schedule="every 1h", target=TRUE) for _ in range(20)]
        [transport] = probes
        assert transport.max_in_flight == 1  # each create arms its own job
        await agent.nas.clear()
        transport.max_in_flight = 0
        calls = len(agent.faults.calls)

        report = await reconcile(agent)
        assert report["ok"] is True
        assert len(report["armed"]) == 20
        assert await agent.nas.armed() == {j["id"]: j["next_run_at"] for j in jobs}
        assert 1 < transport.max_in_flight <= 4
        made = agent.faults.calls[calls:]
        assert made.count("list") == 1
        assert made.count("provision") == 20
        assert len(made) == 21


async def test_reconcile_drains_the_outbox(agent: Agent) -> None:
    agent.faults.mode = "down"
    job = await agent.create_job(schedule="every 1h", target=TRUE)
    gone = await agent.create_job(schedule="every 1h", target=TRUE)
    await agent.client.delete(f"/api/jobs/{gone['id']}", headers=agent.admin_headers)
    assert job["nas_pending"] == "provision"
    assert await agent.nas.armed() == {}

    agent.faults.mode = None
    report = await reconcile(agent)
    assert report["ok"] is True and report["pending"] == 0
    assert await agent.nas.armed() == {job["id"]: job["next_run_at"]}
    assert (await agent.job(job["id"]))["nas_pending"] is None
    async with agent.services.store.transaction() as tx:
        assert await tx.outbox.list_all() == []


async def test_concurrent_reconciles_agree(agent: Agent) -> None:
    jobs = [await agent.create_job(schedule="every 1h", target=TRUE) for _ in range(5)]
    await agent.nas.clear()
    reports = await asyncio.gather(*(reconcile(agent) for _ in range(3)))
    assert sum(len(r["armed"]) for r in reports) == 5  # one pass armed them, the others saw it
    assert all(r["ok"] for r in reports)
    assert await agent.nas.armed() == {j["id"]: j["next_run_at"] for j in jobs}


async def test_a_fired_one_shot_is_not_rearmed_by_its_stale_queued_provision(agent: Agent) -> None:
    agent.faults.mode = "down"
    job = await agent.create_job(schedule="in 1h", target=TRUE)
    assert job["nas_pending"] == "provision"
    # NAS delivers anyway (the arm got through before the outage was noticed, say).
    assert (await agent.fire(job["id"], job["next_run_at"])).status_code == 202
    await agent.idle()
    assert (await agent.job(job["id"]))["state"] == "completed"

    agent.faults.mode = None
    report = await reconcile(agent)
    assert report["ok"] is True
    assert job["id"] not in await agent.nas.armed()


async def test_the_maintenance_loop_reconciles_periodically(
    database_url: str, nas: RunningNas
) -> None:
    async with run_agent(
        database_url, nas, outbox_drain_interval_seconds=0.1, reconcile_interval_seconds=0.3
    ) as agent:
        job = await agent.create_job(schedule="every 1h", target=TRUE)
        await agent.nas.clear()  # NAS lost the arm while the agent kept running

        async def rearmed() -> bool:
            return job["id"] in await agent.nas.armed()

        await wait_until(rearmed, timeout=10, what="the periodic reconcile to re-arm the job")
        assert (await agent.nas.armed())[job["id"]] == job["next_run_at"]


async def test_a_nas_without_list_gets_every_arm_and_readiness_does_not_wait(
    database_url: str, nas: RunningNas
) -> None:
    faults = NasFaults()
    faults.mode = "no-list"
    async with run_agent(database_url, nas, faults=faults, reconcile_on_startup=True) as agent:
        jobs = [await agent.create_job(schedule=s, target=TRUE) for s in ("every 1h", "in 2h")]
        await agent.nas.clear()  # NAS lost them; without a list the agent cannot see that
        report = await reconcile(agent)
        assert report["list_supported"] is False and report["list_error"] is None
        assert sorted(report["armed"]) == sorted(j["id"] for j in jobs)
        assert report["cancelled"] == []  # orphans cannot be seen, so none is cancelled
        assert await agent.nas.armed() == {j["id"]: j["next_run_at"] for j in jobs}

        async def ready() -> bool:
            return (await agent.client.get("/readyz")).status_code == 200

        await wait_until(ready, timeout=10, what="/readyz 200 without a NAS list")


async def test_every_nas_call_names_chronos(agent: Agent) -> None:
    await agent.create_job(schedule="every 1h", target=TRUE)
    await reconcile(agent)
    assert agent.faults.user_agents, "no NAS request was seen"
    assert {ua for ua in agent.faults.user_agents} == {f"chronos/{VERSION}"}

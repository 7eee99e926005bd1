"""`GET /metrics` through the real app, against a real NAS emulator: who may read it, that
Prometheus can parse it, and that fires, runs, NAS calls and the store move its figures."""

from __future__ import annotations

import sys
import uuid
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.version import VERSION
from tests.metrics.scrape import samples, scrape, value
from tests.support.agent import ADMIN_TOKEN, Agent, RunningNas, run_agent

pytestmark = pytest.mark.asyncio


def command(*argv: str) -> dict[str, Any]:
    return {"type": "command", "argv": list(argv)}


async def hourly(agent: Agent, *argv: str) -> dict[str, Any]:
    """A new hourly job under a name of its own (names are unique)."""
    return await agent.create_job(
        name=f"metrics-{uuid.uuid4().hex[:8]}",
        schedule="every 1h",
        target=command(*(argv or ("true",))),
    )


# -- access ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-of-the-right-length!"},
        {"Authorization": "Bearer "},
    ],
    ids=["none", "wrong", "empty"],
)
async def test_without_the_admin_token_is_401(agent: Agent, headers: dict[str, str]) -> None:
    response = await agent.client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert "chronos_" not in response.text


async def test_with_the_admin_token_is_200_in_prometheus_text_format(agent: Agent) -> None:
    response = await agent.client.get("/metrics", headers=agent.admin_headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {
        "chronos_fires",
        "chronos_fire_admission_seconds",
        "chronos_runs",
        "chronos_run_duration_seconds",
        "chronos_run_lateness_seconds",
        "chronos_runs_in_flight",
        "chronos_nas_requests",
        "chronos_nas_request_seconds",
        "chronos_outbox_pending",
        "chronos_outbox_oldest_age_seconds",
        "chronos_lease_takeovers",
        "chronos_reconcile_seconds",
        "chronos_reconcile_actions",
        "chronos_jwks_refreshes",
        "chronos_jobs",
        "chronos_build_info",
        "chronos_fires_shed",
        "chronos_fires_waiting",
        "chronos_outbox_acks",
        "chronos_arm_audits",
        "chronos_run_outcomes_waiting",
    } <= names


async def test_public_metrics_need_no_token(database_url: str, nas: RunningNas) -> None:
    async with run_agent(database_url, nas, metrics_public=True, admin_token=None) as agent:
        response = await agent.client.get("/metrics")
        assert response.status_code == 200
        assert value(response.text, "chronos_build_info", version=VERSION) == 1
        # The admin API stays closed: only the metrics became public.
        assert (await agent.client.get("/api/jobs")).status_code == 403


async def test_without_an_admin_token_configured_metrics_are_403(
    database_url: str, nas: RunningNas
) -> None:
    async with run_agent(database_url, nas, admin_token=None) as agent:
        response = await agent.client.get(
            "/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        assert response.status_code == 403


async def test_build_info_carries_the_version(agent: Agent) -> None:
    text = await scrape(agent)
    assert value(text, "chronos_build_info", version=VERSION) == 1


# -- fires -------------------------------------------------------------------------------


async def test_fire_answers_are_counted_by_outcome(agent: Agent) -> None:
    job = await hourly(agent)
    before = await scrape(agent)
    assert value(before, "chronos_fires_total", outcome="accepted") == 0

    first = await agent.fire(job["id"], job["next_run_at"])
    assert first.status_code == 202, first.text
    again = await agent.fire(job["id"], job["next_run_at"])
    assert again.json()["status"] == "duplicate"
    bad = await agent.fire(
        job["id"], job["next_run_at"], token=agent.nas.mint(aud="agent:someone-else")
    )
    assert bad.status_code == 401
    unknown = await agent.fire("no-such-job", job["next_run_at"])
    assert unknown.json()["reason"] == "unknown_job"
    malformed = await agent.client.post(
        "/api/cron/fire",
        json={"job_id": job["id"], "fire_at": "not a time"},
        headers={"Authorization": f"Bearer {agent.nas.mint()}"},
    )
    assert malformed.status_code == 400
    await agent.idle()

    text = await scrape(agent)
    for outcome, count in {
        "accepted": 1,
        "duplicate": 1,
        "rejected_401": 1,
        "ignored_unknown_job": 1,
        "rejected_400": 1,
        "unavailable": 0,
        "error": 0,
    }.items():
        assert value(text, "chronos_fires_total", outcome=outcome) == count, outcome
    assert value(text, "chronos_fire_admission_seconds_count") == 5
    assert (value(text, "chronos_fire_admission_seconds_sum") or 0) > 0


async def test_fires_while_draining_count_as_unavailable(agent: Agent) -> None:
    job = await hourly(agent)
    agent.services.drain.draining = True  # as `begin()` does, without stopping the tasks
    try:
        response = await agent.fire(job["id"], job["next_run_at"])
        assert response.status_code == 503
        text = await scrape(agent)
    finally:
        agent.services.drain.draining = False
    assert value(text, "chronos_fires_total", outcome="unavailable") == 1
    assert value(text, "chronos_fires_total", outcome="accepted") == 0


# -- runs --------------------------------------------------------------------------------


async def test_runs_are_counted_timed_and_their_lateness_observed(agent: Agent) -> None:
    ok = await hourly(agent)
    failing = await hourly(agent, sys.executable, "-c", "raise SystemExit(3)")
    for job in (ok, failing):
        assert (await agent.fire(job["id"], job["next_run_at"])).status_code == 202
    await agent.idle()

    text = await scrape(agent)
    assert value(text, "chronos_runs_total", kind="scheduled", status="succeeded") == 1
    assert value(text, "chronos_runs_total", kind="scheduled", status="failed") == 1
    assert value(text, "chronos_runs_total", kind="manual", status="succeeded") == 0
    assert value(text, "chronos_run_duration_seconds_count", target_type="command") == 2
    assert (value(text, "chronos_run_duration_seconds_sum", target_type="command") or 0) > 0
    assert value(text, "chronos_run_lateness_seconds_count") == 2
    assert value(text, "chronos_runs_in_flight") == 0


async def test_a_manual_run_is_counted_as_manual(agent: Agent) -> None:
    job = await hourly(agent)
    response = await agent.client.post(
        f"/api/jobs/{job['id']}/trigger", headers=agent.admin_headers
    )
    assert response.status_code in (200, 201, 202), response.text
    await agent.idle()
    text = await scrape(agent)
    assert value(text, "chronos_runs_total", kind="manual", status="succeeded") == 1
    assert value(text, "chronos_runs_total", kind="scheduled", status="succeeded") == 0


# -- NAS, JWKS, reconcile ----------------------------------------------------------------


async def test_nas_requests_are_counted_by_op_and_result(agent: Agent) -> None:
    await hourly(agent)  # provisioned at NAS
    agent.faults.mode = "503"
    await hourly(agent)  # NAS answers 503: transient, retried within the arm budget
    agent.faults.mode = None

    text = await scrape(agent)
    assert value(text, "chronos_nas_requests_total", op="provision", result="ok") == 1
    assert (value(text, "chronos_nas_requests_total", op="provision", result="transient") or 0) >= 1
    assert value(text, "chronos_nas_requests_total", op="cancel", result="ok") == 0
    assert (value(text, "chronos_nas_request_seconds_count", op="provision") or 0) >= 2


async def test_the_jwks_fetch_is_counted(agent: Agent) -> None:
    job = await hourly(agent)
    assert (await agent.fire(job["id"], job["next_run_at"])).status_code == 202
    text = await scrape(agent)
    assert value(text, "chronos_jwks_refreshes_total", result="ok") == 1
    assert value(text, "chronos_jwks_refreshes_total", result="error") == 0


async def test_a_reconcile_is_timed_and_its_actions_counted(agent: Agent) -> None:
    await hourly(agent)
    await agent.nas.clear()  # NAS lost the arm: the reconcile arms it again
    response = await agent.client.post("/api/reconcile", headers=agent.admin_headers)
    assert response.status_code == 200, response.text

    text = await scrape(agent)
    assert value(text, "chronos_reconcile_seconds_count") == 1
    assert value(text, "chronos_reconcile_actions_total", action="armed") == 1
    assert value(text, "chronos_reconcile_actions_total", action="cancelled") == 0
    assert (value(text, "chronos_nas_requests_total", op="list", result="ok") or 0) >= 1


# -- gauges from the store and from the services ------------------------------------------


async def test_jobs_by_state_and_the_outbox_come_from_the_store(agent: Agent) -> None:
    await hourly(agent)
    paused = await hourly(agent)
    response = await agent.client.post(
        f"/api/jobs/{paused['id']}/pause", headers=agent.admin_headers
    )
    assert response.status_code == 200, response.text
    agent.faults.mode = "down"
    await hourly(agent)  # NAS unreachable: its provision waits in the outbox
    agent.faults.mode = None

    text = await scrape(agent)
    assert value(text, "chronos_jobs", state="scheduled") == 2
    assert value(text, "chronos_jobs", state="paused") == 1
    assert value(text, "chronos_jobs", state="completed") == 0
    assert value(text, "chronos_outbox_pending") == 1
    assert value(text, "chronos_outbox_parked") == 0
    assert (value(text, "chronos_outbox_oldest_age_seconds") or -1) >= 0


async def test_the_services_own_counters_are_exposed(agent: Agent) -> None:
    job = await hourly(agent)
    assert (await agent.fire(job["id"], job["next_run_at"])).status_code == 202
    await agent.idle()
    await agent.services.pusher.acks.close()

    text = await scrape(agent)
    acks = agent.services.pusher.acks
    assert acks.written >= 1
    assert value(text, "chronos_outbox_acks_total") == acks.written
    assert value(text, "chronos_outbox_ack_batches_total") == acks.batches
    assert value(text, "chronos_fires_shed_total") == 0
    assert value(text, "chronos_fires_waiting") == 0
    assert value(text, "chronos_run_outcomes_waiting") == 0


# -- cardinality -------------------------------------------------------------------------


async def test_no_label_carries_a_job_id(agent: Agent) -> None:
    jobs = [await hourly(agent) for _ in range(3)]
    for job in jobs:
        assert (await agent.fire(job["id"], job["next_run_at"])).status_code == 202
    await agent.fire("no-such-job", jobs[0]["next_run_at"])
    await agent.idle()

    text = await scrape(agent)
    ids = [job["id"] for job in jobs] + ["no-such-job"]
    label_values = {v for s in samples(text) for v in s.labels.values()}
    assert label_values  # the check below looked at something
    assert not [v for v in label_values if any(job_id in v for job_id in ids)]
    assert not any(job_id in text for job_id in ids)

"""NAS refuses (503) and then hangs while a fire waits for its next arm.

The agent admits the fire once and runs it once; while NAS cannot take the next arm, every
delivery of the fire is answered 503 with `Retry-After` within the arm budget (never held
until NAS gives up on the agent); once NAS recovers, a re-delivery is a duplicate and the next
fire is armed where it belongs, and the chain goes on.

NAS's own deliveries are held (`/_emulator/faults`) while the test delivers the fire itself,
so that each delivery is one the test can time and read.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.deployment import deployment, eventually
from tests.support.run_notes import noting_target, starts

pytestmark = [pytest.mark.faults, pytest.mark.e2e]

ARM_MAX_SECONDS = 2.0
RETRY_AFTER_SECONDS = 2
SLACK_SECONDS = 1.5  # process scheduling on a loaded machine


def timed_fire(fire: Any) -> tuple[httpx.Response, float]:
    began = time.monotonic()
    answer = fire()
    return answer, time.monotonic() - began


def test_fires_during_a_nas_outage_answer_503_within_budget_and_run_once(
    tmp_path: Path, database_url: str
) -> None:
    notes = tmp_path / "runs.txt"
    with (
        deployment(tmp_path, database_url) as d,
        d.start_agent(
            CHRONOS_FIRE_ARM_MAX_SECONDS=str(ARM_MAX_SECONDS),
            CHRONOS_RETRY_AFTER_SECONDS=str(RETRY_AFTER_SECONDS),
            CHRONOS_OUTBOX_DRAIN_INTERVAL_SECONDS="1",
        ) as agent,
        d.admin() as admin,
    ):
        d.faults(deliveries="hold")  # only the test delivers, until the end
        created = admin.post(
            "/api/jobs",
            json={"name": "outage", "schedule": "every 3s", "target": noting_target(notes, 0)},
        )
        assert created.status_code == 201, created.text
        job = created.json()
        job_id, fire_at = job["id"], job["next_run_at"]
        assert d.all_arms()[job_id] == fire_at

        # NAS refuses every provision; the fire comes due.
        d.faults(agent_cron="unavailable", calls=["provision"])
        time.sleep(max(datetime.fromisoformat(fire_at).timestamp() - time.time(), 0) + 0.1)
        refused, took = timed_fire(lambda: d.fire(job_id, fire_at))
        assert refused.status_code == 503, refused.text
        assert refused.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
        assert took <= ARM_MAX_SECONDS + SLACK_SECONDS, f"answered after {took:.2f}s"
        print(f"\nNAS refusing: fire answered 503 after {took:.2f}s")
        eventually(lambda: starts(notes), timeout=10, what="the admitted fire to run")

        # NAS now hangs on provision: the answer still comes within the budget.
        d.faults(agent_cron="hold", calls=["provision"])
        held, took = timed_fire(lambda: d.fire(job_id, fire_at))
        assert held.status_code == 503, held.text
        assert held.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
        assert took <= ARM_MAX_SECONDS + SLACK_SECONDS, f"answered after {took:.2f}s"
        print(f"NAS hanging: fire answered 503 after {took:.2f}s")

        # NAS recovers and delivers again: the fire is a duplicate (NAS's held delivery and
        # the test's), and the next one is armed in its place.
        d.faults()
        recovered = d.fire(job_id, fire_at)
        for _ in range(5):  # NAS re-delivers any 503 (the released arm may still be landing)
            if recovered.status_code != 503:
                break
            time.sleep(float(recovered.headers.get("Retry-After", "1")))
            recovered = d.fire(job_id, fire_at)
        assert recovered.status_code == 200, recovered.text
        assert recovered.json()["status"] == "duplicate"

        def next_armed() -> bool:
            wanted = admin.get(f"/api/jobs/{job_id}").json()["next_run_at"]
            later = datetime.fromisoformat(wanted) > datetime.fromisoformat(fire_at)
            return later and d.all_arms().get(job_id) == wanted

        eventually(next_armed, timeout=15, what="the next fire armed at NAS")

        # NAS's held delivery of that fire goes out once released, unless the agent's new arm
        # replaced it first (NAS keeps one arm per job): either way, whatever NAS delivered of
        # it was answered as a duplicate.
        time.sleep(2)
        answered = [
            x
            for x in d.deliveries(job_id)
            if x["fire_at"] == fire_at and x["status_code"] is not None
        ]
        for delivery in answered:
            assert delivery["status_code"] == 200, delivery
            assert '"duplicate"' in delivery["response_body"]

        one_run = [n for n in starts(notes) if n.key.endswith(fire_at_key(fire_at))]
        assert len(one_run) == 1, one_run
        before = len(starts(notes))
        eventually(lambda: len(starts(notes)) >= before + 2, timeout=20, what="the chain to go on")
        keys = [n.key for n in starts(notes)]
        assert len(keys) == len(set(keys)), f"a fire ran twice: {keys}"
        runs = admin.get(f"/api/jobs/{job_id}/runs").json()
        assert [r["attempt"] for r in runs if r["key"].endswith(fire_at_key(fire_at))] == [1]
        assert agent.poll() is None


def fire_at_key(fire_at: str) -> str:
    """The `{fire_at}` part of a run key, as the agent writes it (UTC ISO 8601)."""
    return datetime.fromisoformat(fire_at).astimezone(UTC).isoformat()

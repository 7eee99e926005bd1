"""Scale to zero: no agent runs when a fire comes due, and NAS's delivery wakes one.

NAS re-delivers with backoff while nothing answers. The agent starts, its startup reconcile
finds the fire still armed at NAS and adds no run of its own (NAS's deliveries are held until
the agent is ready, so the reconcile surely comes first); the first delivery after the start is
admitted once, and any later delivery of the fire is a duplicate.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.deployment import deployment, eventually
from tests.support.run_notes import noting_target, starts

pytestmark = [pytest.mark.faults, pytest.mark.e2e]

NAS_ENV = {
    "NAS_EMULATOR_REDELIVERY_INITIAL_SECONDS": "0.5",
    "NAS_EMULATOR_REDELIVERY_MAX_SECONDS": "1",
    "NAS_EMULATOR_REDELIVERY_MAX_ATTEMPTS": "1000",
}


def test_a_fire_delivered_while_no_agent_runs_is_admitted_once_after_start(
    tmp_path: Path, database_url: str
) -> None:
    notes = tmp_path / "runs.txt"
    with deployment(tmp_path, database_url, nas_env=NAS_ENV) as d:
        with d.start_agent(), d.admin() as admin:
            created = admin.post(
                "/api/jobs",
                json={"name": "wake", "schedule": "in 3s", "target": noting_target(notes, 0)},
            )
            assert created.status_code == 201, created.text
            job = created.json()
        job_id, fire_at = job["id"], job["next_run_at"]
        assert d.all_arms()[job_id] == fire_at

        # Scaled to zero: the fire comes due and NAS's deliveries find nobody.
        def unanswered() -> list[dict[str, Any]] | None:
            failed = [x for x in d.deliveries(job_id) if x["status_code"] is None]
            return failed if len(failed) >= 2 else None

        eventually(unanswered, timeout=20, what="NAS to re-deliver to no agent")
        assert d.all_arms()[job_id] == fire_at  # still armed while NAS retries

        d.faults(deliveries="hold")  # the next delivery waits until the agent is ready
        with d.start_agent() as agent, d.admin() as admin:
            assert admin.get(f"/api/jobs/{job_id}/runs").json() == []  # reconcile added none
            assert d.all_arms().get(job_id) == fire_at
            woken_at = time.monotonic()
            d.faults()

            def delivered() -> list[dict[str, Any]] | None:
                done = [x for x in d.deliveries(job_id) if x["status_code"] is not None]
                return done or None

            first = eventually(delivered, timeout=15, what="the first delivery after start")[0]
            assert first["status_code"] == 202, first
            assert '"accepted"' in (first["response_body"] or "")

            def ran() -> list[dict[str, Any]] | None:
                runs: list[dict[str, Any]] = admin.get(f"/api/jobs/{job_id}/runs").json()
                return runs if runs and runs[0]["status"] == "succeeded" else None

            runs = eventually(ran, timeout=15, what="the woken fire to run")
            print(
                f"\nwoken: the fire ran {time.monotonic() - woken_at:.2f}s after delivery resumed"
            )
            assert len(runs) == 1, runs
            assert runs[0]["kind"] == "scheduled"
            assert runs[0]["attempt"] == 1
            assert datetime.fromisoformat(runs[0]["fire_at"]) == datetime.fromisoformat(fire_at)

            again = d.fire(job_id, fire_at)  # a late re-delivery of the same fire
            assert again.status_code == 200, again.text
            assert again.json()["status"] == "duplicate"
            assert len(starts(notes)) == 1
            assert len(admin.get(f"/api/jobs/{job_id}/runs").json()) == 1
            assert agent.poll() is None

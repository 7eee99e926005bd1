"""End to end with real processes on loopback: `chronos nas-emulator` + `chronos serve`.

A job `every 2s` appends one line per fire to a file; every fire must run exactly once and be
followed by the next arm. Then the agent is stopped, NAS loses its arms, the agent starts
again, and its startup reconcile re-arms the job.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.deployment import APPEND_LINE, Deployment, deployment, eventually

pytestmark = pytest.mark.e2e


@pytest.fixture(name="deployment")
def running_deployment(tmp_path: Path, database_url: str) -> Iterator[Deployment]:
    with deployment(tmp_path, database_url) as running:
        yield running


def test_every_fire_runs_once_and_is_followed_by_the_next_arm(deployment: Deployment) -> None:
    out_file = deployment.tmp_path / "fires.txt"
    with deployment.start_agent(), deployment.admin() as admin:
        created = admin.post(
            "/api/jobs",
            json={
                "name": "e2e",
                "schedule": "every 2s",
                "target": {
                    "type": "command",
                    "argv": [sys.executable, "-c", APPEND_LINE, str(out_file)],
                },
            },
        )
        assert created.status_code == 201, created.text
        job = created.json()
        job_id = job["id"]
        assert deployment.armed()[job_id] == job["next_run_at"]

        def three_runs() -> list[dict[str, Any]] | None:
            runs = admin.get(f"/api/jobs/{job_id}/runs").json()
            done = [r for r in runs if r["status"] == "succeeded"]
            return done if len(done) >= 3 else None

        runs = eventually(three_runs, timeout=30, what="three successful runs")
        fired = sorted(r["fire_at"] for r in runs)
        lines = out_file.read_text().splitlines()
        # One line per fire: nothing ran twice, nothing admitted was skipped.
        assert len(lines) == len(set(lines))
        assert set(fired) <= set(lines)
        # Fires keep their 2 s phase from the first one.
        first = datetime.fromisoformat(job["next_run_at"])
        for fire_at in fired:
            assert (datetime.fromisoformat(fire_at) - first).total_seconds() % 2 == 0

        # Each fire was followed by the next arm: NAS delivered every one of them.
        with deployment.nas() as nas:
            deliveries = nas.get("/_emulator/deliveries", params={"job_id": job_id}).json()[
                "deliveries"
            ]
        delivered = {d["fire_at"] for d in deliveries if d["status_code"] == 202}
        for fire_at in fired:
            assert datetime.fromisoformat(fire_at) in {datetime.fromisoformat(d) for d in delivered}
        current = admin.get(f"/api/jobs/{job_id}").json()
        armed_at = datetime.fromisoformat(deployment.armed()[job_id])
        assert armed_at > datetime.fromisoformat(max(fired))
        assert armed_at - datetime.fromisoformat(current["next_run_at"]) <= timedelta(seconds=2)


def test_restart_after_nas_lost_its_arms_rearms_the_job(deployment: Deployment) -> None:
    out_file = deployment.tmp_path / "fires.txt"
    with deployment.start_agent(), deployment.admin() as admin:
        job = admin.post(
            "/api/jobs",
            json={
                "name": "restart",
                "schedule": "every 2s",
                "target": {
                    "type": "command",
                    "argv": [sys.executable, "-c", APPEND_LINE, str(out_file)],
                },
            },
        ).json()
    job_id = job["id"]
    assert job_id in deployment.armed()

    # The agent is down and NAS loses every arm: nothing would ever wake the agent again.
    with deployment.nas() as nas:
        assert nas.delete("/_emulator/arms").status_code == 200
    assert deployment.armed() == {}
    time.sleep(2.5)  # the job's next fire passes while nothing is armed

    with deployment.start_agent(), deployment.admin() as admin:
        # readyz is 200 only once the startup reconcile finished: the job is armed again.
        armed = deployment.armed()
        assert job_id in armed
        current = admin.get(f"/api/jobs/{job_id}").json()
        assert armed[job_id] == current["next_run_at"]
        runs = admin.get(f"/api/jobs/{job_id}/runs").json()
        assert any(r["status"] == "missed" for r in runs)

        def a_run_after_restart() -> bool:
            return any(
                r["status"] == "succeeded" for r in admin.get(f"/api/jobs/{job_id}/runs").json()
            )

        eventually(a_run_after_restart, timeout=20, what="a fire after the restart")

"""End to end with real processes on loopback: `chronos nas-emulator` + `chronos serve`.

A job `every 2s` appends one line per fire to a file; every fire must run exactly once and be
followed by the next arm. Then the agent is stopped, NAS loses its arms, the agent starts
again, and its startup reconcile re-arms the job.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.support.keys import nas_signing_key, write_private_key
from tests.support.processes import base_env, chronos_process
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e

NAS_TOKEN = "e2e-nas-token-0123456789"
ADMIN_TOKEN = "e2e-admin-token-0123456789"
APPEND_LINE = "import os, sys; open(sys.argv[1], 'a').write(os.environ['CHRONOS_FIRE_AT'] + '\\n')"

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], *, timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


@dataclass
class Deployment:
    tmp_path: Path
    database_url: str
    nas_url: str
    agent_port: int
    stack: ExitStack

    @property
    def agent_url(self) -> str:
        return f"http://127.0.0.1:{self.agent_port}"

    def start_agent(self) -> Any:
        env = base_env(
            CHRONOS_ENV="dev",
            CHRONOS_DATABASE_URL=self.database_url,
            CHRONOS_HOST="127.0.0.1",
            CHRONOS_PORT=str(self.agent_port),
            CHRONOS_PORTAL_URL=self.nas_url,
            CHRONOS_CALLBACK_URL=self.agent_url,
            CHRONOS_EXPECTED_AUDIENCE="agent:e2e",
            CHRONOS_NAS_JWKS_URL=f"{self.nas_url}/.well-known/jwks.json",
            CHRONOS_NAS_TOKEN=NAS_TOKEN,
            CHRONOS_ADMIN_TOKEN=ADMIN_TOKEN,
        )
        return chronos_process(
            ["serve"],
            env=env,
            cwd=self.tmp_path,
            log=self.tmp_path / "agent.log",
            ready_url=f"{self.agent_url}/readyz",
        )

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.agent_url,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=10,
        )

    def nas(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.nas_url, headers={"Authorization": f"Bearer {NAS_TOKEN}"}, timeout=10
        )

    def armed(self) -> dict[str, str]:
        with self.nas() as nas:
            return {
                a["job_id"]: a["fire_at"] for a in nas.get("/api/agent-cron/list").json()["armed"]
            }


@pytest.fixture
def deployment(tmp_path: Path, database_url: str) -> Iterator[Deployment]:
    nas_port = free_port()
    nas_url = f"http://127.0.0.1:{nas_port}"
    env = base_env(
        NAS_EMULATOR_PUBLIC_URL=nas_url,
        NAS_EMULATOR_AGENT_TOKEN=NAS_TOKEN,
        NAS_EMULATOR_INSTANCE_ID="e2e",
        # The session's NAS key, so the emulator loads a key instead of generating one.
        NAS_EMULATOR_KEY_FILE=str(write_private_key(nas_signing_key(), tmp_path / "nas-key.pem")),
        NAS_EMULATOR_REDELIVERY_INITIAL_SECONDS="0.5",
        NAS_EMULATOR_REDELIVERY_MAX_SECONDS="2",
    )
    with ExitStack() as stack:
        stack.enter_context(
            chronos_process(
                ["nas-emulator", "--port", str(nas_port)],
                env=env,
                cwd=tmp_path,
                log=tmp_path / "nas.log",
                ready_url=f"{nas_url}/healthz",
            )
        )
        yield Deployment(tmp_path, database_url, nas_url, free_port(), stack)


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

"""Two replicas on one PostgreSQL, as the deploy kit runs them: two `chronos serve` processes
behind a round-robin proxy whose URL is the one callback URL NAS knows, and the NAS emulator
delivering every fire there.

Several `every 1s` jobs fire for a few seconds; the fires must land on both replicas, and each
(job_id, fire_at) must run exactly once, whichever replica NAS's delivery (or re-delivery)
reached. Each run appends `job_id fire_at pid-of-its-agent` to one shared file.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.chaos.proxy import RoundRobinProxy
from tests.support.deployment import Deployment, deployment, eventually
from tests.support.servers import free_port

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not os.environ.get("CHRONOS_TEST_DATABASE_URL", "").startswith("postgresql"),
        reason="replicas share a PostgreSQL database: set CHRONOS_TEST_DATABASE_URL",
    ),
]

JOBS = 4
RUNS_PER_JOB = 4
RECORD_RUN = (
    "import os, sys; open(sys.argv[1], 'a').write("
    "f\"{os.environ['CHRONOS_JOB_ID']} {os.environ['CHRONOS_FIRE_AT']} {os.getppid()}\\n\")"
)


@pytest.fixture(name="deployment")
def running_deployment(tmp_path: Path, database_url: str) -> Iterator[Deployment]:
    with deployment(tmp_path, database_url) as running:
        yield running


@pytest.fixture(name="proxy")
def running_proxy() -> Iterator[RoundRobinProxy]:
    proxy = RoundRobinProxy([free_port(), free_port()])
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


def succeeded_runs(admin: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = admin.get(f"/api/jobs/{job_id}/runs").json()
    return [run for run in runs if run["status"] == "succeeded"]


def test_fires_reach_both_replicas_and_each_runs_exactly_once(
    deployment: Deployment, proxy: RoundRobinProxy
) -> None:
    out_file = deployment.tmp_path / "runs.txt"
    port_a, port_b = proxy.upstream_ports
    replica = {
        "CHRONOS_CALLBACK_URL": proxy.url,
        # Queued operations and expired leases are looked at every second.
        "CHRONOS_OUTBOX_DRAIN_INTERVAL_SECONDS": "1",
    }
    with (
        deployment.start_agent(port=port_a, log_name="agent-a.log", **replica) as agent_a,
        deployment.start_agent(port=port_b, log_name="agent-b.log", **replica) as agent_b,
        # The admin API straight to one replica: the proxy's turns go to fires alone, which
        # it then alternates between the replicas.
        deployment.admin(f"http://127.0.0.1:{port_a}") as admin,
    ):
        job_ids = []
        for index in range(JOBS):
            created = admin.post(
                "/api/jobs",
                json={
                    "name": f"replicas-{index}",
                    "schedule": "every 1s",
                    "target": {
                        "type": "command",
                        "argv": [sys.executable, "-c", RECORD_RUN, str(out_file)],
                    },
                },
            )
            assert created.status_code == 201, created.text
            job_ids.append(created.json()["id"])

        def enough_runs() -> bool:
            return all(len(succeeded_runs(admin, j)) >= RUNS_PER_JOB for j in job_ids)

        eventually(enough_runs, timeout=20, what=f"{RUNS_PER_JOB} runs of each job")
        for job_id in job_ids:
            assert admin.post(f"/api/jobs/{job_id}/pause").status_code == 200

        def settled() -> bool:
            runs = [r for j in job_ids for r in admin.get(f"/api/jobs/{j}/runs").json()]
            return all(r["status"] not in {"running", "queued", "retrying"} for r in runs)

        eventually(settled, timeout=10, what="the last runs to end")

        lines = [line.split() for line in out_file.read_text().splitlines()]
        ran = Counter((job_id, fire_at) for job_id, fire_at, _ in lines)
        # Exactly once: no (job_id, fire_at) ran twice ...
        assert [key for key, count in ran.items() if count > 1] == []
        # ... and every fire recorded as succeeded is one that ran, and the other way round.
        for job_id in job_ids:
            recorded = {run["fire_at"] for run in succeeded_runs(admin, job_id)}
            assert recorded == {fire_at for j, fire_at in ran if j == job_id}
        # Every fire NAS was answered 2xx for ran.
        answered = {
            (job_id, datetime.fromisoformat(delivery["fire_at"]))
            for job_id in job_ids
            for delivery in deployment.deliveries(job_id)
            if 200 <= (delivery["status_code"] or 0) < 300
        }
        assert answered
        assert answered <= {(j, datetime.fromisoformat(fire_at)) for j, fire_at in ran}

        # Both replicas took fires: by the agents the runs were children of, by their logs,
        # and by the connections the proxy passed to each.
        runners = Counter(int(pid) for _, _, pid in lines)
        assert set(runners) == {agent_a.pid, agent_b.pid}, runners
        for log_name in ("agent-a.log", "agent-b.log"):
            log = (deployment.tmp_path / log_name).read_text()
            assert "fire admitted" in log, f"{log_name} admitted no fire"
        assert proxy.forwarded[port_a] > 0
        assert proxy.forwarded[port_b] > 0

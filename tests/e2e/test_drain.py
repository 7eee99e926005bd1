"""Graceful drain with real processes (issue 9, part 5): `chronos serve` gets SIGTERM while a
run is going. `/readyz` turns 503 at once, a fire posted meanwhile gets 503 + `Retry-After`,
the run gets `CHRONOS_SHUTDOWN_GRACE_SECONDS`, is then stopped and its lease released, the
process exits 0, and the next agent takes the run over at its first housekeeping round
(attempt 2, same `CHRONOS_DEDUP_KEY`)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.domain.records import FireRecord
from app.emulator import load_signing_key
from app.store import Store
from tests.support.deployment import Deployment, deployment, eventually

pytestmark = pytest.mark.e2e

GRACE = 3.0
SETTLE = 1.0
HOUSEKEEPING = 1.0
# The first attempt writes its pid and key then sleeps far past the grace; a later one ends.
FIRST_SLEEPS = (
    "import os, sys, time; first = not os.path.exists(sys.argv[1]); "
    "open(sys.argv[1], 'a').write(f\"{os.getpid()} {os.environ['CHRONOS_DEDUP_KEY']}\\n\"); "
    "time.sleep(60 if first else 0)"
)


@pytest.fixture(name="deployment")
def running_deployment(tmp_path: Path, database_url: str) -> Iterator[Deployment]:
    with deployment(tmp_path, database_url) as running:
        yield running


def post_fire(d: Deployment, job_id: str, fire_at: str) -> httpx.Response:
    """A fire as NAS sends it, its token signed with the emulator's key."""
    now = int(time.time())
    token = load_signing_key(str(d.tmp_path / "nas-key.pem")).sign(
        {
            "iss": d.nas_url,
            "aud": "agent:e2e",
            "purpose": "cron_fire",
            "iat": now,
            "nbf": now,
            "exp": now + 90,
            "jti": uuid.uuid4().hex,
            "job_id": job_id,
            "fire_at": fire_at,
        }
    )
    return httpx.post(
        f"{d.agent_url}/api/cron/fire",
        json={"job_id": job_id, "fire_at": fire_at},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def start_replica(d: Deployment, node_id: str) -> Any:
    return d.start_agent(
        CHRONOS_NODE_ID=node_id,
        CHRONOS_SHUTDOWN_GRACE_SECONDS=str(GRACE),
        CHRONOS_DRAIN_SETTLE_SECONDS=str(SETTLE),
        CHRONOS_OUTBOX_DRAIN_INTERVAL_SECONDS=str(HOUSEKEEPING),
    )


def stored_fires(database_url: str, job_id: str) -> list[FireRecord]:
    async def read() -> list[FireRecord]:
        store = Store.from_url(database_url)
        try:
            async with store.transaction() as tx:
                return await tx.fires.list_for_job(job_id)
        finally:
            await store.close()

    return asyncio.run(read())


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_drains_stops_the_run_releases_its_lease_and_the_next_agent_resumes_it(
    deployment: Deployment,
) -> None:
    d = deployment
    out_file = d.tmp_path / "attempts.txt"
    with start_replica(d, "replica-1") as agent, d.admin() as admin:
        created = admin.post(
            "/api/jobs",
            json={
                "name": "drain",
                "schedule": "in 1h",
                "target": {
                    "type": "command",
                    "argv": [sys.executable, "-c", FIRST_SLEEPS, str(out_file)],
                },
            },
        )
        assert created.status_code == 201, created.text
        job: dict[str, Any] = created.json()
        job_id, fire_at = job["id"], job["next_run_at"]
        fired = post_fire(d, job_id, fire_at)
        assert fired.status_code == 202, fired.text

        def first_line() -> str | None:
            return out_file.read_text() if out_file.exists() else None

        pid, key = eventually(first_line, timeout=10, what="the run to start").split()

        agent.send_signal(signal.SIGTERM)
        signalled = time.monotonic()

        def not_ready() -> httpx.Response | None:
            response = httpx.get(f"{d.agent_url}/readyz", timeout=2)
            return response if response.status_code == 503 else None

        readyz = eventually(not_ready, timeout=1, what="/readyz 503")
        assert readyz.json() == {"status": "unavailable", "reason": "draining"}
        refused = post_fire(d, job_id, fire_at)
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"] == "draining"
        assert int(refused.headers["Retry-After"]) > 0
        assert time.monotonic() - signalled < GRACE  # all of it seen while draining

        try:
            code = agent.wait(timeout=GRACE + 15)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the agent did not exit:\n{(d.tmp_path / 'agent.log').read_text()}")
        drain_seconds = time.monotonic() - signalled
        assert code == 0, (d.tmp_path / "agent.log").read_text()
    print(f"drain: {drain_seconds:.2f}s (grace {GRACE:g}s)")
    assert GRACE <= drain_seconds < GRACE + 10

    # The run was stopped (its process is gone) and its lease released, not left to expire.
    eventually(lambda: not pid_alive(int(pid)), timeout=5, what="the run's process to end")
    [fire] = stored_fires(d.database_url, job_id)
    assert (fire.status, fire.attempt, fire.lease_owner) == ("running", 1, "replica-1")
    assert fire.lease_expires_at is None

    # The next agent takes it over at its first housekeeping round: attempt 2, same key.
    with start_replica(d, "replica-2"):
        started = time.monotonic()

        def resumed() -> FireRecord | None:
            [fire] = stored_fires(d.database_url, job_id)
            return fire if fire.status == "succeeded" else None

        done = eventually(resumed, timeout=HOUSEKEEPING + 15, what="the run resumed")
        takeover_seconds = time.monotonic() - started
    print(f"takeover after restart: {takeover_seconds:.2f}s")
    assert (done.attempt, done.lease_owner) == (2, None)
    lines = out_file.read_text().splitlines()
    assert [line.split()[1] for line in lines] == [key, key]
    assert "run stopped by shutdown" in (d.tmp_path / "agent.log").read_text()


def test_a_run_that_ends_within_the_grace_is_recorded_and_the_agent_exits_0(
    deployment: Deployment,
) -> None:
    d = deployment
    out_file = d.tmp_path / "ran.txt"
    with (
        d.start_agent(
            CHRONOS_SHUTDOWN_GRACE_SECONDS="20", CHRONOS_DRAIN_SETTLE_SECONDS="0.5"
        ) as agent,
        d.admin() as admin,
    ):
        script = "import sys, time; time.sleep(2); open(sys.argv[1], 'w').write('done')"
        created = admin.post(
            "/api/jobs",
            json={
                "name": "clean-drain",
                "schedule": "in 1h",
                "target": {
                    "type": "command",
                    "argv": [sys.executable, "-c", script, str(out_file)],
                },
            },
        )
        assert created.status_code == 201, created.text
        job_id, fire_at = created.json()["id"], created.json()["next_run_at"]
        assert post_fire(d, job_id, fire_at).status_code == 202
        agent.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        code = agent.wait(timeout=20)
        drain_seconds = time.monotonic() - signalled
        assert code == 0, (d.tmp_path / "agent.log").read_text()
    print(f"clean drain: {drain_seconds:.2f}s")
    assert drain_seconds < 10
    assert out_file.read_text() == "done"
    [fire] = stored_fires(d.database_url, job_id)
    assert (fire.status, fire.attempt) == ("succeeded", 1)

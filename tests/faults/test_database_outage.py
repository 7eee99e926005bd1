"""The database goes away under a running agent, with a run in flight, and comes back.

The agent reaches its PostgreSQL through a TCP forwarder the test cuts (every connection reset,
new ones refused: what a stopped server looks like from the agent) for longer than a lease.
While it is down: fires are answered 503 with `Retry-After`, `/healthz` stays 200, `/readyz`
turns 503. When it is back, the same process recovers without a restart, the run that ended
during the outage is recorded once, and no fire runs twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.support.deployment import deployment, eventually
from tests.support.run_notes import noting_target, read_notes, starts
from tests.support.tcp_cut import CuttableTcpProxy

pytestmark = [pytest.mark.faults, pytest.mark.e2e]

LEASE_SECONDS = 5
OUTAGE_SECONDS = 9.0  # longer than a lease and a half: a takeover would have happened by now


@pytest.fixture
def cuttable_database(postgres_url: str) -> Iterator[tuple[str, CuttableTcpProxy]]:
    """This test's database URL through a forwarder the test can cut."""
    url = make_url(postgres_url)
    proxy = CuttableTcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.start()
    try:
        proxied = url.set(host="127.0.0.1", port=proxy.port)
        yield proxied.render_as_string(hide_password=False), proxy
    finally:
        proxy.stop()


def status(url: str) -> int:
    return httpx.get(url, timeout=5).status_code


def test_a_database_outage_answers_503_and_recovers_without_a_duplicate_run(
    tmp_path: Path, cuttable_database: tuple[str, CuttableTcpProxy]
) -> None:
    database_url, database = cuttable_database
    notes = tmp_path / "runs.txt"
    with (
        deployment(tmp_path, database_url) as d,
        d.start_agent(
            CHRONOS_LEASE_SECONDS=str(LEASE_SECONDS), CHRONOS_OUTBOX_DRAIN_INTERVAL_SECONDS="1"
        ) as agent,
        d.admin() as admin,
    ):
        created = admin.post(
            "/api/jobs",
            json={"name": "db-outage", "schedule": "every 2s", "target": noting_target(notes, 2)},
        )
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]

        in_flight = eventually(lambda: starts(notes), timeout=20, what="a run")[0]
        cut_at = time.monotonic()
        database.cut()  # the run ends while the database is away
        try:
            eventually(
                lambda: status(f"{d.agent_url}/readyz") == 503, timeout=10, what="/readyz 503"
            )
            assert status(f"{d.agent_url}/healthz") == 200
            armed = d.all_arms()[job_id]  # NAS still holds a fire: deliver it now
            refused = d.fire(job_id, armed)
            assert refused.status_code == 503, refused.text
            assert "Retry-After" in refused.headers
            time.sleep(max(cut_at + OUTAGE_SECONDS - time.monotonic(), 0))
            assert status(f"{d.agent_url}/healthz") == 200
            assert status(f"{d.agent_url}/readyz") == 503
        finally:
            database.restore()
        restored_at = time.monotonic()

        eventually(lambda: status(f"{d.agent_url}/readyz") == 200, timeout=20, what="/readyz 200")
        ready_after = time.monotonic() - restored_at
        before = len(starts(notes))
        eventually(lambda: len(starts(notes)) > before, timeout=20, what="a run after recovery")
        ran_after = time.monotonic() - restored_at
        print(
            f"\ndatabase back -> /readyz 200 after {ready_after:.2f}s, a run after {ran_after:.2f}s"
        )

        def in_flight_recorded() -> bool:
            runs = admin.get(f"/api/jobs/{job_id}/runs").json()
            return any(r["key"] == in_flight.key and r["status"] == "succeeded" for r in runs)

        eventually(in_flight_recorded, timeout=20, what="the run that ended meanwhile recorded")
        eventually(lambda: len(starts(notes)) >= before + 2, timeout=20, what="the chain")

        runs = admin.get(f"/api/jobs/{job_id}/runs").json()
        ran = [r for r in runs if r["started_at"] is not None]
        assert [r["attempt"] for r in ran if r["attempt"] != 1] == [], ran
        keys = [r["key"] for r in runs]
        assert len(keys) == len(set(keys))
        started = [n.key for n in starts(notes)]
        assert len(started) == len(set(started)), f"a fire ran twice: {started}"
        ended = [n.key for n in read_notes(notes) if n.event == "end"]
        assert in_flight.key in ended
        assert agent.poll() is None  # recovered without a restart
    assert "resuming a run whose lease expired" not in (tmp_path / "agent.log").read_text()

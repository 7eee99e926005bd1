"""A replica dies with a run in flight: the run must neither be lost nor run twice at once.

Two replicas share one PostgreSQL behind a round-robin balancer (the callback URL NAS knows).
The replica running a job is killed with SIGKILL: the other takes the fire over once the lease
expired (same `CHRONOS_DEDUP_KEY`, next attempt), the chain of fires goes on, a re-delivery of
the fire is a duplicate, and the dead replica's run does not go on beside the new attempt (it
dies with its agent). A replica frozen past its lease finds another attempt owns the fire when
it wakes, and kills its run's process group at once.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.chaos.proxy import RoundRobinProxy
from tests.support.deployment import Deployment, deployment, eventually
from tests.support.run_notes import RunNote, noting_target, process_gone, read_notes, starts
from tests.support.servers import free_port

pytestmark = [pytest.mark.faults, pytest.mark.e2e]

LEASE_SECONDS = 5


def runs(admin: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    answer = admin.get(f"/api/jobs/{job_id}/runs")
    answer.raise_for_status()
    result: list[dict[str, Any]] = answer.json()
    return result


def first_start(notes: Path, timeout: float) -> RunNote:
    return eventually(lambda: next(iter(starts(notes)), None), timeout=timeout, what="a run")


def assert_no_fire_started_twice_at_once(notes: Path) -> None:
    """Each attempt of each fire started once; a fire started again only as a later attempt."""
    seen = [(note.key, note.attempt, note.agent_pid) for note in starts(notes)]
    assert len(seen) == len(set(seen)), f"an attempt started twice: {seen}"


def test_a_command_run_dies_with_its_agent(tmp_path: Path, database_url: str) -> None:
    """SIGKILL of the agent takes the run's program with it (PR_SET_PDEATHSIG)."""
    notes = tmp_path / "runs.txt"
    with (
        deployment(tmp_path, database_url) as d,
        d.start_agent(
            CHRONOS_LEASE_SECONDS=str(LEASE_SECONDS), CHRONOS_OUTBOX_DRAIN_INTERVAL_SECONDS="1"
        ) as agent,
        d.admin() as admin,
    ):
        job = admin.post(
            "/api/jobs",
            json={"name": "dies", "schedule": "in 1s", "target": noting_target(notes, 30)},
        )
        assert job.status_code == 201, job.text
        run = first_start(notes, timeout=20)
        assert run.agent_pid == agent.pid
        agent.send_signal(signal.SIGKILL)
        agent.wait(timeout=10)
        eventually(lambda: process_gone(run.pid), timeout=5, what="the run to die")


@pytest.fixture
def replicas(
    tmp_path: Path, postgres_url: str
) -> Iterator[tuple[Deployment, RoundRobinProxy, list[int]]]:
    """The emulator, and a balancer over two replica ports (the replicas are not started)."""
    with deployment(
        tmp_path, postgres_url, nas_env={"NAS_EMULATOR_REDELIVERY_MAX_ATTEMPTS": "100000"}
    ) as d:
        ports = [free_port(), free_port()]
        balancer = RoundRobinProxy(ports)
        balancer.start()
        try:
            yield d, balancer, ports
        finally:
            balancer.stop()


def start_replica(d: Deployment, balancer: RoundRobinProxy, ports: list[int], index: int) -> Any:
    return d.start_agent(
        port=ports[index],
        log_name=f"replica-{index}.log",
        CHRONOS_CALLBACK_URL=balancer.url,
        CHRONOS_NODE_ID=f"faults-r{index}",
        CHRONOS_LEASE_SECONDS=str(LEASE_SECONDS),
        CHRONOS_OUTBOX_DRAIN_INTERVAL_SECONDS="1",
    )


def test_kill_9_of_the_replica_running_a_job_is_taken_over_once(
    replicas: tuple[Deployment, RoundRobinProxy, list[int]], tmp_path: Path
) -> None:
    d, balancer, ports = replicas
    notes = tmp_path / "runs.txt"
    with (
        start_replica(d, balancer, ports, 0) as first,
        start_replica(d, balancer, ports, 1) as second,
        d.admin(balancer.url) as admin,
    ):
        by_pid = {first.pid: (first, ports[0]), second.pid: (second, ports[1])}
        created = admin.post(
            "/api/jobs",
            json={"name": "takeover", "schedule": "every 2s", "target": noting_target(notes, 4)},
        )
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]

        run = first_start(notes, timeout=20)
        victim, _ = by_pid[run.agent_pid]
        survivor, survivor_port = next(v for pid, v in by_pid.items() if pid != run.agent_pid)
        killed_at = time.time()
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)

        # The dead replica's run does not go on beside the next attempt.
        eventually(lambda: process_gone(run.pid), timeout=5, what="the dead replica's run to die")
        gone_after = time.time() - killed_at

        def taken_over() -> RunNote | None:
            return next(
                (n for n in starts(notes) if n.key == run.key and n.agent_pid == survivor.pid),
                None,
            )

        resumed = eventually(taken_over, timeout=30, what="the survivor to take the fire over")
        takeover = resumed.at - killed_at
        print(f"\nkill -9 -> run dead {gone_after:.2f}s, -> attempt 2 started {takeover:.2f}s")
        assert takeover >= LEASE_SECONDS - 1  # not before the lease could expire
        assert resumed.key == run.key
        if resumed.attempt != "-":  # CHRONOS_ATTEMPT, once the agent sets it (part 6)
            assert (run.attempt, resumed.attempt) == ("1", "2")

        survivor_url = f"http://127.0.0.1:{survivor_port}"
        with d.admin(survivor_url) as survivor_admin:

            def resumed_run_done() -> dict[str, Any] | None:
                found = [r for r in runs(survivor_admin, job_id) if r["key"] == run.key]
                return found[0] if found and found[0]["status"] == "succeeded" else None

            record = eventually(resumed_run_done, timeout=20, what="attempt 2 to succeed")
            assert record["attempt"] == 2

            # The chain goes on: a later fire runs, on the survivor.
            taken_fire_at = datetime.fromisoformat(record["fire_at"])

            def a_later_run() -> bool:
                return any(
                    r["status"] == "succeeded"
                    and datetime.fromisoformat(r["fire_at"]) > taken_fire_at
                    for r in runs(survivor_admin, job_id)
                )

            eventually(a_later_run, timeout=20, what="a later fire to run")

            # A re-delivery of the taken-over fire is a duplicate.
            again = d.fire(job_id, record["fire_at"], url=survivor_url)
            assert again.status_code == 200, again.text
            assert again.json()["status"] == "duplicate"

            keys = [r["key"] for r in runs(survivor_admin, job_id)]
            assert len(keys) == len(set(keys))

        assert_no_fire_started_twice_at_once(notes)
        # The dead replica's attempt never ended: it did not run on beside the next one.
        assert not [n for n in notes_of(notes, run.pid) if n.event == "end"]


def notes_of(notes: Path, pid: int) -> list[RunNote]:
    return [note for note in read_notes(notes) if note.pid == pid]


def test_a_replica_that_lost_its_lease_kills_its_run(
    replicas: tuple[Deployment, RoundRobinProxy, list[int]], tmp_path: Path
) -> None:
    """A replica frozen (SIGSTOP) past its lease: the other takes the fire over; when the frozen
    one wakes, its renewal finds another attempt owns the fire and its run is killed."""
    d, balancer, ports = replicas
    notes = tmp_path / "runs.txt"
    with (
        start_replica(d, balancer, ports, 0) as first,
        start_replica(d, balancer, ports, 1) as second,
        d.admin(balancer.url) as admin,
    ):
        by_pid = {first.pid: first, second.pid: second}
        created = admin.post(
            "/api/jobs",
            json={"name": "frozen", "schedule": "in 1s", "target": noting_target(notes, 14)},
        )
        assert created.status_code == 201, created.text
        run = first_start(notes, timeout=20)
        frozen = by_pid[run.agent_pid]
        survivor = next(p for pid, p in by_pid.items() if pid != run.agent_pid)
        frozen.send_signal(signal.SIGSTOP)
        try:

            def taken_over() -> RunNote | None:
                return next(
                    (n for n in starts(notes) if n.key == run.key and n.agent_pid == survivor.pid),
                    None,
                )

            eventually(taken_over, timeout=30, what="the other replica to take the fire over")
            assert not process_gone(run.pid)  # the frozen replica's run still goes on
        finally:
            frozen.send_signal(signal.SIGCONT)
        woke_at = time.time()
        eventually(lambda: process_gone(run.pid), timeout=10, what="the stale run to be killed")
        print(f"\nlease lost -> stale run killed {time.time() - woke_at:.2f}s after waking")
        assert frozen.poll() is None

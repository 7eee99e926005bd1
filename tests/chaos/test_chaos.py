"""Chaos: three replicas on one PostgreSQL behind a round-robin balancer, the NAS emulator
delivering to them, and a seeded schedule of faults (replicas killed or stopped and restarted,
PostgreSQL stopped, NAS failing or holding its calls). Then a quiet period, and the promises of
the contract are checked (see `checks.py`).

Run it with `make chaos` (`CHAOS_SECONDS`, default 120; `CHAOS_SEED`, default 1;
`CHAOS_QUIET_SECONDS`, default 20). The same seed plans the same jobs and the same faults; the
run prints the plan, each fault as it is applied, and a one-line summary.
"""

from __future__ import annotations

import os
import random
import shlex
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.chaos.checks import Observations, Report, judge, read_run_lines
from tests.chaos.deployment import INSTANCE_ID, Deployment, deployment
from tests.chaos.faults import FaultInjector, plan_faults

pytestmark = pytest.mark.chaos

SECONDS = float(os.environ.get("CHAOS_SECONDS", "120"))
SEED = int(os.environ.get("CHAOS_SEED", "1"))
QUIET_SECONDS = float(os.environ.get("CHAOS_QUIET_SECONDS", "20"))
REPLICAS = 3
JOBS = (30, 50)
EVERY_SECONDS = (2, 10)
# How long a job's target runs after writing its line: most return at once, some run across
# a lease renewal (CHRONOS_LEASE_SECONDS=5) or longer than the lease, so faults hit runs.
RUN_SECONDS = (0, 0, 0, 1, 3, 7)
IN_FLIGHT_TIMEOUT = 30.0  # deliveries in flight when NAS stops delivering
DRAIN_TIMEOUT = 120.0  # the outboxes' backoff grows to 2^attempts seconds after a failure
SETTLE_TIMEOUT = 30.0  # runs to end or be taken over; arms to match next_run_at
DELIVERY_LOG_SIZE = 10_000  # the emulator keeps this many attempts

T = TypeVar("T")


def say(text: str) -> None:
    print(f"[chaos] {text}", flush=True)


def poll(probe: Callable[[], T], done: Callable[[T], bool], timeout: float) -> tuple[T, float]:
    """Call `probe` until `done` holds for its result or `timeout` passes; return the last
    result and the seconds waited (failing is the caller's business)."""
    started = time.monotonic()
    while True:
        result = probe()
        waited = time.monotonic() - started
        if done(result) or waited >= timeout:
            return result, waited
        time.sleep(0.5)


def create_jobs(system: Deployment, rng: random.Random, run_file: Path) -> list[dict[str, Any]]:
    """`every 2s` to `every 10s` jobs whose target appends `job_id fire_at replica-pid time`
    to `run_file` when it starts ($PPID of `sh` is the replica that runs it)."""
    line = '"$CHRONOS_JOB_ID $CHRONOS_FIRE_AT $PPID $(date +%s.%N)"'
    created = []
    with system.admin() as admin:
        for number in range(rng.randint(*JOBS)):
            command = f"echo {line} >> {shlex.quote(str(run_file))}"
            if run_seconds := rng.choice(RUN_SECONDS):
                command += f"; sleep {run_seconds}"
            response = admin.post(
                "/api/jobs",
                json={
                    "name": f"chaos-{number:02d}",
                    "schedule": f"every {rng.randint(*EVERY_SECONDS)}s",
                    "target": {"type": "command", "argv": ["sh", "-c", command]},
                },
            )
            assert response.status_code == 201, response.text
            created.append(response.json())
    return created


def observe(system: Deployment, injector: FaultInjector, run_file: Path) -> Observations:
    """Stop NAS delivering, let the agents finish what they started, and gather the facts."""
    system.nas.faults(deliveries="hold")

    def arms() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = system.nas.get("/_emulator/arms")["arms"]
        return found

    _, waited = poll(
        arms, lambda found: all(a["state"] != "delivering" for a in found), IN_FLIGHT_TIMEOUT
    )
    say(f"deliveries held; the last ones in flight ended within {waited:.1f}s")

    cluster = system.cluster
    outbox, drain_seconds = poll(
        lambda: cluster.query(
            "SELECT job_id, op, attempts, last_error FROM outbox ORDER BY job_id"
        ),
        lambda rows: not rows,
        DRAIN_TIMEOUT,
    )
    say(f"outboxes: {len(outbox)} operation(s) left after {drain_seconds:.1f}s")

    open_fires, waited = poll(
        lambda: cluster.query(
            "SELECT job_id, fire_at, status, attempt, lease_owner, lease_expires_at"
            " FROM fires WHERE status IN ('running', 'buffered') ORDER BY job_id, fire_at"
        ),
        lambda rows: not rows,
        SETTLE_TIMEOUT,
    )
    say(f"runs: {len(open_fires)} still open after {waited:.1f}s")

    def jobs_and_arms() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        jobs: list[dict[str, Any]] = []
        params: dict[str, str | int] = {"limit": 1000}
        with system.admin() as admin:
            while True:
                response = admin.get("/api/jobs", params=params)
                response.raise_for_status()
                jobs.extend(response.json()["jobs"])
                if response.json()["next_cursor"] is None:
                    break
                params["cursor"] = response.json()["next_cursor"]
        return jobs, arms()

    def converged(seen: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> bool:
        jobs, found = seen
        armed = {a["job_id"]: a["fire_at_utc"] for a in found if a["instance_id"] == INSTANCE_ID}
        wanted = {job["id"]: job["next_run_at"] for job in jobs if job["state"] == "scheduled"}
        return armed.keys() == wanted.keys() and all(
            _same_instant(armed[job_id], at) for job_id, at in wanted.items()
        )

    (jobs, final_arms), waited = poll(jobs_and_arms, converged, SETTLE_TIMEOUT)
    say(f"arms {'match' if converged((jobs, final_arms)) else 'still differ'} after {waited:.1f}s")

    deliveries: list[dict[str, Any]] = system.nas.get("/_emulator/deliveries")["deliveries"]
    return Observations(
        instance_id=INSTANCE_ID,
        deliveries=deliveries,
        delivery_log_full=len(deliveries) >= DELIVERY_LOG_SIZE,
        runs=read_run_lines(run_file),
        kills=list(injector.kills),
        faults=list(injector.applied),
        jobs=jobs,
        arms=final_arms,
        expired_running=cluster.query(
            "SELECT job_id, fire_at, attempt, lease_owner, lease_expires_at FROM fires"
            " WHERE status = 'running' AND lease_expires_at < now() ORDER BY job_id, fire_at"
        ),
        open_fires=open_fires,
        outbox=outbox,
        drain_seconds=round(drain_seconds, 1),
    )


def _same_instant(left: str, right: str | None) -> bool:
    return right is not None and datetime.fromisoformat(left) == datetime.fromisoformat(right)


def test_promises_hold_through_chaos(tmp_path: Path) -> None:
    plan = plan_faults(SEED, SECONDS, REPLICAS)
    run_file = tmp_path / "runs.txt"
    say(f"seed {SEED}: {SECONDS:g}s of faults, then {QUIET_SECONDS:g}s quiet; files in {tmp_path}")
    for fault in plan:
        say(f"planned +{fault.at:5.1f}s {fault.describe()}")

    with deployment(tmp_path, replicas=REPLICAS) as system:
        jobs = create_jobs(system, random.Random(f"chronos-chaos-jobs:{SEED}"), run_file)
        say(
            f"{len(jobs)} jobs on {REPLICAS} replicas "
            f"(pids {', '.join(str(r.pid) for r in system.replicas)}), behind {system.proxy.url}"
        )
        injector = FaultInjector(system, say)
        injector.run(plan, window=SECONDS)

        system.nas.faults()
        system.check_alive()
        say(f"faults over; quiet for {QUIET_SECONDS:g}s")
        time.sleep(QUIET_SECONDS)
        seen = observe(system, injector, run_file)
        say(
            f"balancer: {dict(system.proxy.forwarded)} connections per replica port, "
            f"{sum(system.proxy.refused.values())} refused, {system.proxy.unserved} unserved"
        )

    report = judge(seen, Report(seed=SEED, window=SECONDS, faults=len(plan)))
    say(report.summary())
    problems = report.problems()
    assert not problems, "\n".join(
        [report.summary(), *problems, f"(seed {SEED}; {system.logs()}, runs in {run_file.name})"]
    )

"""The chaos harness's own logic, without processes: the seeded plan, the balancer's header
rewrite and round robin, and the judgement of what was observed. Runs with the normal suite."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.checks import Observations, Report, RunLine, judge, read_run_lines
from tests.chaos.faults import Applied, Fault, FaultKind, Kill, plan_faults
from tests.chaos.proxy import RoundRobinProxy, close_after_response
from tests.support.servers import free_port

T0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


# -- the plan ------------------------------------------------------------------------------------


def test_the_same_seed_plans_the_same_faults() -> None:
    assert plan_faults(7, 600, 3) == plan_faults(7, 600, 3)
    assert plan_faults(7, 600, 3) != plan_faults(8, 600, 3)


def test_faults_come_one_at_a_time_every_10_to_30_seconds_within_the_window() -> None:
    plan = plan_faults(3, 3600, 3)
    starts = [fault.at for fault in plan]
    assert 10 <= starts[0] <= 30 and starts[-1] < 3600
    assert all(10 <= later - earlier <= 30.1 for earlier, later in pairwise(starts))
    assert {fault.kind for fault in plan} == set(FaultKind)
    for fault in plan:
        if fault.kind in (FaultKind.KILL, FaultKind.TERM):
            assert fault.replica in (0, 1, 2) and 1 <= fault.seconds <= 5
        else:
            assert fault.replica is None and 3 <= fault.seconds <= 10


# -- the balancer --------------------------------------------------------------------------------


def test_every_request_asks_for_its_connection_to_be_closed() -> None:
    head = b"POST /api/cron/fire HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nA: b\r\n\r\n"
    assert close_after_response(head) == (
        b"POST /api/cron/fire HTTP/1.1\r\nHost: x\r\nA: b\r\nConnection: close\r\n\r\n"
    )


async def _answer(name: bytes, requests: list[bytes]) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(name), name))
        await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


@pytest.mark.asyncio
async def test_the_balancer_takes_turns_and_skips_a_replica_that_is_down() -> None:
    requests: list[bytes] = []
    servers = [await _answer(b"a", requests), await _answer(b"b", requests)]
    ports = [
        servers[0].sockets[0].getsockname()[1],
        free_port(),
        servers[1].sockets[0].getsockname()[1],
    ]
    proxy = RoundRobinProxy(ports)
    proxy.start()
    try:
        answers = []
        for _ in range(4):
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(b"GET / HTTP/1.1\r\nHost: lb\r\nConnection: keep-alive\r\n\r\n")
            answers.append((await reader.read()).rsplit(b"\r\n", 1)[-1])
            writer.close()
    finally:
        proxy.stop()
        for server in servers:
            server.close()
    assert answers == [b"a", b"b", b"b", b"a"]  # the port that is down passes its turn on
    assert all(request.endswith(b"Connection: close\r\n\r\n") for request in requests)
    assert proxy.refused[ports[1]] == 1 and proxy.unserved == 0


# -- the judgement -------------------------------------------------------------------------------


def delivery(
    job_id: str, at: datetime, code: int | None, body: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "instance_id": "chaos",
        "job_id": job_id,
        "fire_at": at.isoformat(),
        "attempt": 1,
        "status_code": code,
        "response_body": json.dumps(body) if body is not None else None,
    }


def observations(**overrides: Any) -> Observations:
    values: dict[str, Any] = {
        "instance_id": "chaos",
        "deliveries": [],
        "delivery_log_full": False,
        "runs": [],
        "kills": [],
        "faults": [],
        "jobs": [],
        "arms": [],
        "expired_running": [],
        "open_fires": [],
        "outbox": [],
        "drain_seconds": 0.0,
    }
    values.update(overrides)
    return Observations(**values)


def report_for(seen: Observations) -> Report:
    return judge(seen, Report(seed=1, window=60, faults=0))


def test_a_fire_admitted_by_its_final_answer_must_have_run() -> None:
    later = T0 + timedelta(seconds=5)
    seen = observations(
        deliveries=[
            delivery("ran", T0, 202, {"status": "accepted"}),
            delivery("lost", T0, 503, {"error": "arm_pending"}),
            delivery("lost", T0, 200, {"status": "duplicate", "run_status": "succeeded"}),
            delivery("missed", T0, 200, {"status": "duplicate", "run_status": "missed"}),
            delivery("stale", T0, 200, {"status": "ignored", "reason": "stale"}),
            delivery("failing", later, 503, {"error": "store_unavailable"}),
        ],
        runs=[RunLine("ran", T0, 10, 1.0)],
    )
    report = report_for(seen)
    assert report.fires == 2
    assert [line.split(": ")[0] for line in report.lost] == [f"job lost fire_at {T0.isoformat()}"]
    assert "lost=1" in report.summary()


def test_a_second_run_is_excused_only_by_a_kill_of_the_first_runs_replica_in_between() -> None:
    kill = Kill(replica=0, pid=10, cause="kill -9", sent_at=100.0, exited_at=100.1)
    outage = Applied(Fault(0, FaultKind.POSTGRES_DOWN, 5.5), 100.0, 106.0, "over")
    seen = observations(
        faults=[outage],
        runs=[
            RunLine("killed", T0, 10, 99.0),
            RunLine("killed", T0, 11, 106.0),
            RunLine("unexplained", T0, 11, 99.0),
            RunLine("unexplained", T0, 12, 106.0),
            RunLine("killed-before", T0, 10, 101.0),  # ran after its replica died: impossible
            RunLine("killed-before", T0, 11, 107.0),
        ],
        kills=[kill],
        deliveries=[delivery("killed", T0, 202, {"status": "accepted"})],
    )
    report = report_for(seen)
    assert report.twice_causes == {"kill -9": 1}
    assert [problem.split(": ")[0] for problem in report.unexplained_twice] == [
        f"job killed-before fire_at {T0.isoformat()}",
        f"job unexplained fire_at {T0.isoformat()}",
    ]
    assert report.unexplained_twice[1].endswith(
        "pid 11 at 99.000, pid 12 at 106.000; faults meanwhile: postgres down for 5.5s at 100.000"
    )
    assert "twice=3 (kill -9: 1, no kill to explain it: 2)" in report.summary()


def test_every_scheduled_job_needs_exactly_its_next_arm() -> None:
    def job(job_id: str, next_run_at: datetime) -> dict[str, Any]:
        return {"id": job_id, "state": "scheduled", "next_run_at": next_run_at.isoformat()}

    def arm(job_id: str, fire_at: datetime) -> dict[str, Any]:
        return {"instance_id": "chaos", "job_id": job_id, "fire_at_utc": fire_at.isoformat()}

    later = T0 + timedelta(seconds=2)
    seen = observations(
        jobs=[job("ok", T0), job("missing", T0), job("moved", T0)],
        arms=[arm("ok", T0.astimezone(UTC)), arm("moved", later), arm("orphan", T0)],
    )
    stranded = report_for(seen).stranded
    assert stranded == [
        f"job missing: next_run_at {T0.isoformat()}, nothing armed at NAS",
        f"job moved: next_run_at {T0.isoformat()}, NAS holds {later.isoformat()}",
        f"NAS holds an arm for unknown job orphan at {T0.isoformat()}",
    ]


def test_only_503_is_an_acceptable_5xx_and_nothing_admitted_is_a_broken_run() -> None:
    seen = observations(
        deliveries=[
            delivery("a", T0, 503, {"error": "unavailable"}),
            delivery("a", T0, 500, {"error": "internal"}),
            delivery("a", T0, None, None),
        ]
    )
    report = report_for(seen)
    assert report.count_503 == 1 and len(report.other_5xx) == 1
    assert [problem.split(" (")[0] for problem in report.problems()] == [
        "harness",
        "5xx answers other than 503 in the delivery log",
    ]


def test_run_lines_are_read_back(tmp_path: Path) -> None:
    path = tmp_path / "runs.txt"
    path.write_text(f"job-1 {T0.isoformat()} 4242 1767258000.123456789\n")
    assert read_run_lines(path) == [RunLine("job-1", T0, 4242, 1767258000.123456789)]
    path.write_text("garbage\n")
    with pytest.raises(AssertionError, match="not a run line"):
        read_run_lines(path)

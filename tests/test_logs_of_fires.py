"""What the logs say while the agent handles fires, as `chronos serve` writes them: every line
of a fire carries its context, run outcomes that need an operator's eye are WARNING lines
that name the job and the reason, and a reconcile says how many, not which."""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from tests.runner.sample_callables import GATES
from tests.support.agent import RunningNas, run_agent
from tests.support.logs import configured_logging, json_lines

pytestmark = pytest.mark.asyncio

FAILING = {"type": "python", "callable": "tests.runner.sample_callables:explode"}
RUN_FIELDS = ("job_id", "fire_at", "attempt", "run_key")


@pytest.fixture
def serve_log() -> Iterator[io.StringIO]:
    """Every line any logger writes at DEBUG and above, as JSON lines."""
    with configured_logging("DEBUG") as buffer:
        yield buffer


def ours(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The agent's own lines (the NAS emulator runs in this process too, in its own server)."""
    return [e for e in entries if e["logger"].startswith("app.") and "emulator" not in e["logger"]]


def since(buffer: io.StringIO, mark: int) -> list[dict[str, Any]]:
    return json_lines(buffer)[mark:]


async def test_every_line_of_a_fire_carries_its_context(
    serve_log: io.StringIO, database_url: str, nas: RunningNas
) -> None:
    async with run_agent(database_url, nas, log_level="DEBUG") as agent:
        job = await agent.create_job(name="nightly", schedule="every 1h", target=FAILING)
        mark = len(json_lines(serve_log))
        response = await agent.fire(job["id"], job["next_run_at"])
        assert response.status_code == 202, response.text
        await agent.idle()
        runs = await agent.runs(job["id"])

    (run,) = runs
    lines = ours(since(serve_log, mark))
    loggers = {e["logger"] for e in lines}
    assert {"app.fire.admission", "app.runner.executor"} <= loggers  # the fire and its run
    for entry in lines:
        assert entry["job_id"] == job["id"], entry
        assert entry["fire_at"] == job["next_run_at"].replace("Z", "+00:00"), entry
    run_lines = [e for e in lines if e["logger"].startswith("app.runner")]
    assert len(run_lines) >= 2  # the target's end and the run's end
    for entry in run_lines:
        assert entry["attempt"] == run["attempt"] == 1, entry
        assert entry["run_key"] == f"{job['id']}:{entry['fire_at']}", entry
        assert list(entry)[4:8] == list(RUN_FIELDS), entry  # right after the head, in order


async def test_a_failed_run_is_a_warning_naming_the_job_and_the_reason(
    serve_log: io.StringIO, database_url: str, nas: RunningNas
) -> None:
    async with run_agent(database_url, nas) as agent:
        job = await agent.create_job(name="nightly-export", schedule="every 1h", target=FAILING)
        await agent.fire(job["id"], job["next_run_at"])
        await agent.idle()

    ends = [e for e in json_lines(serve_log) if e["msg"].startswith("run f")]
    assert [(e["level"], e["msg"]) for e in ends] == [("warning", "run failed")]
    (end,) = ends
    assert end["job"] == "nightly-export"
    assert end["reason"] == "ValueError: kaboom"
    assert end["status"] == "failed"
    assert end["job_id"] == job["id"] and end["attempt"] == 1


async def test_a_run_that_succeeds_ends_on_an_info_line(
    serve_log: io.StringIO, database_url: str, nas: RunningNas
) -> None:
    target = {"type": "python", "callable": "tests.runner.sample_callables:nothing"}
    async with run_agent(database_url, nas) as agent:
        job = await agent.create_job(name="quiet", schedule="every 1h", target=target)
        await agent.fire(job["id"], job["next_run_at"])
        await agent.idle()

    ends = [e for e in json_lines(serve_log) if e["msg"].startswith("run f")]
    assert [(e["level"], e["msg"], e["status"]) for e in ends] == [
        ("info", "run finished", "succeeded")
    ]
    assert "reason" not in ends[0]


async def test_a_fire_skipped_for_overlap_is_a_warning_naming_the_job_and_the_reason(
    serve_log: io.StringIO, database_url: str, nas: RunningNas
) -> None:
    gate = f"overlap-{id(serve_log)}"
    target = {
        "type": "python",
        "callable": "tests.runner.sample_callables:gated",
        "kwargs": {"name": gate},
    }
    async with run_agent(database_url, nas) as agent:
        job = await agent.create_job(
            name="slow-report", schedule="every 1h", target=target, overlap="skip"
        )
        first = await agent.fire(job["id"], job["next_run_at"])
        assert first.status_code == 202, first.text
        second_at = (await agent.job(job["id"]))["next_run_at"]
        second = await agent.fire(job["id"], second_at)  # the first run is still going
        assert second.json()["status"] == "skipped", second.text
        GATES.setdefault(gate, asyncio.Event()).set()
        await agent.idle()

    skipped = [e for e in json_lines(serve_log) if e.get("status") == "skipped"]
    assert [(e["level"], e["msg"]) for e in skipped] == [("warning", "fire skipped")]
    assert skipped[0]["job"] == "slow-report"
    assert skipped[0]["reason"] == "the previous run is still going"
    assert skipped[0]["fire_at"] == second_at.replace("Z", "+00:00")


async def test_reconcile_logs_counts_not_job_ids(
    serve_log: io.StringIO, database_url: str, nas: RunningNas
) -> None:
    async with run_agent(database_url, nas) as agent:
        jobs = [
            await agent.create_job(name=f"job-{i}", schedule="every 1h", target=FAILING)
            for i in range(3)
        ]
        await nas.clear()  # NAS lost every arm: reconcile arms the three again
        report = await agent.services.reconciler.reconcile()

    assert len(report.armed) == 3
    (line,) = [e for e in json_lines(serve_log) if e["msg"] == "reconcile finished"]
    assert line["armed"] == 3 and line["errors"] == 0 and line["missed"] == 0
    assert line["level"] == "info"
    assert not any(job["id"] in str(line) for job in jobs)


async def test_a_command_run_that_fails_names_its_last_error_line(
    serve_log: io.StringIO, database_url: str, nas: RunningNas
) -> None:
    script = "import sys; sys.stderr.write('loading\\nerror: disk full\\n'); sys.exit(2)"
    target = {"type": "command", "argv": [sys.executable, "-c", script]}
    async with run_agent(database_url, nas) as agent:
        job = await agent.create_job(name="backup", schedule="every 1h", target=target)
        await agent.fire(job["id"], job["next_run_at"])
        await agent.idle()

    (end,) = [e for e in json_lines(serve_log) if e["msg"] == "run failed"]
    assert (end["level"], end["job"], end["reason"]) == ("warning", "backup", "error: disk full")


async def test_a_failed_attempt_that_will_be_retried_says_when(
    serve_log: io.StringIO, database_url: str, nas: RunningNas
) -> None:
    async with run_agent(database_url, nas) as agent:
        job = await agent.create_job(
            name="flaky", schedule="every 1h", target=FAILING, retry={"max_attempts": 2}
        )
        await agent.fire(job["id"], job["next_run_at"])
        await agent.idle()

    (end,) = [e for e in json_lines(serve_log) if e["msg"].startswith("run failed")]
    assert end["msg"] == "run failed; its next attempt waits for its retry time"
    assert (end["level"], end["job"], end["reason"]) == ("warning", "flaky", "ValueError: kaboom")
    assert end["attempt"] == 1
    assert datetime.fromisoformat(end["retry_at"]) > datetime.fromisoformat(end["ts"])

"""`chronos apply -f FILE`, in-process, against the real app served on a loopback port (its
store SQLite or PostgreSQL, its NAS the emulator): the CLI talks to it over real HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import uvicorn

from tests.cli.invoke import Ran, run_chronos
from tests.cli.served_agent import ServedAgent
from tests.support.agent import Agent
from tests.support.servers import bind_loopback, running

pytestmark = pytest.mark.asyncio

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "jobs.yaml"

FILE = """\
jobs:
  - name: backup
    schedule: "30 2 * * *"
    timezone: Europe/Paris
    target: {type: command, argv: [/usr/local/bin/backup]}
  - name: heartbeat
    schedule: every 5m
    target: {type: http, url: "https://hooks.example.com/beat"}
"""


@dataclass
class Served:
    agent: Agent
    url: str
    cwd: Path

    async def run(self, *args: str, stdin: str | None = None) -> Ran:
        """`chronos ARGS` in a worker thread: the agent answers on this event loop."""
        env = ServedAgent(url=self.url, cwd=self.cwd).env()
        return await asyncio.to_thread(run_chronos, args, env=env, cwd=self.cwd, stdin=stdin)

    async def ok(self, *args: str, stdin: str | None = None) -> str:
        result = await self.run(*args, stdin=stdin)
        assert result.returncode == 0, f"{args}: {result.stderr}"
        return result.stdout

    async def json(self, *args: str, stdin: str | None = None) -> Any:
        return json.loads(await self.ok(*args, "--json", stdin=stdin))

    def write(self, name: str, text: str) -> str:
        path = self.cwd / name
        path.write_text(text, encoding="utf-8")
        return str(path)


@pytest_asyncio.fixture
async def served(agent: Agent, tmp_path: Path) -> AsyncIterator[Served]:
    sock = bind_loopback()
    config = uvicorn.Config(agent.app, log_level="warning", lifespan="off")
    async with running(uvicorn.Server(config), sock):
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        yield Served(agent=agent, url=url, cwd=tmp_path)


def rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line.strip()]


async def test_apply_creates_then_a_second_apply_changes_nothing(served: Served) -> None:
    path = served.write("jobs.yaml", FILE)
    first = await served.ok("apply", "-f", path)
    assert rows(first)[:2] == [["+", "backup", "create"], ["+", "heartbeat", "create"]]
    assert "applied: 2 created, 0 updated, 0 unchanged, 0 deleted" in first
    armed = await served.agent.nas.armed()
    calls = list(served.agent.faults.calls)

    again = await served.json("apply", "-f", path)
    assert again["unchanged"] == ["backup", "heartbeat"] and again["created"] == []
    assert {job["id"]: job["next_run_at"] for job in again["jobs"]} == armed
    assert served.agent.faults.calls == calls


async def test_dry_run_shows_the_diff_and_changes_nothing(served: Served) -> None:
    await served.ok("apply", "-f", served.write("jobs.yaml", FILE))
    stray = await served.agent.create_job(
        name="stray", schedule="every 1h", target={"type": "command", "argv": ["true"]}
    )
    calls = list(served.agent.faults.calls)
    changed = FILE.replace("every 5m", "every 10m") + (
        "  - name: report\n    schedule: '@daily'\n    target: {type: command, argv: ['true']}\n"
    )
    path = served.write("changed.yaml", changed)

    shown = await served.ok("apply", "-f", path, "--dry-run", "--prune")
    assert rows(shown)[:4] == [
        ["=", "backup", "unchanged"],
        ["~", "heartbeat", "update:", "schedule"],
        ["+", "report", "create"],
        ["-", "stray", "delete"],
    ]
    assert "dry run: 1 to create, 1 to update, 1 unchanged, 1 to delete; nothing changed" in shown
    assert served.agent.faults.calls == calls
    assert (await served.agent.job(stray["id"]))["name"] == "stray"

    done = await served.json("apply", "-f", path, "--prune")
    assert (done["created"], done["updated"], done["deleted"]) == (
        ["report"],
        ["heartbeat"],
        ["stray"],
    )
    assert stray["id"] not in await served.agent.nas.armed()


async def test_json_from_stdin(served: Served) -> None:
    jobs = [
        {
            "name": "from-stdin",
            "schedule": "every 1h",
            "target": {"type": "command", "argv": ["true"]},
        }
    ]
    answer = await served.json("apply", "-f", "-", stdin=json.dumps(jobs))
    assert answer["created"] == ["from-stdin"] and answer["dry_run"] is False


async def test_a_refused_apply_lists_each_problem_by_index_and_name(served: Served) -> None:
    broken = FILE + (
        "  - name: broken\n    schedule: every whenever\n    target: {type: command, argv: [x]}\n"
        "  - name: backup\n    schedule: every 1h\n    target: {type: command, argv: [x]}\n"
    )
    result = await served.run("apply", "-f", served.write("broken.yaml", broken))
    assert result.returncode == 1
    text = " ".join(result.stderr.split())
    assert "jobs[2] (broken).schedule: cannot parse schedule" in text
    assert "jobs[3] (backup).name: jobs[0] has this name too" in text
    assert "HTTP 400: 2 of 4 jobs invalid, nothing changed" in text
    assert served.agent.faults.calls == []


async def test_an_unreadable_file_is_refused_before_any_call(served: Served) -> None:
    missing = await served.run("apply", "-f", str(served.cwd / "nope.yaml"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    bad = await served.run("apply", "-f", served.write("bad.yaml", "jobs: [unclosed"))
    assert bad.returncode == 2 and "neither JSON nor YAML" in bad.stderr
    scalar = await served.run("apply", "-f", served.write("scalar.yaml", "just text"))
    assert scalar.returncode == 2 and "expected a list of jobs" in scalar.stderr


async def test_unquoted_yaml_times_are_sent_as_text(served: Served) -> None:
    text = (
        "- name: once\n  schedule: 2099-01-01T09:00:00+01:00\n"
        "  target: {type: command, argv: [x]}\n"
    )
    answer = await served.json("apply", "-f", served.write("once.yaml", text))
    assert answer["jobs"][0]["next_run_at"] == "2099-01-01T08:00:00+00:00"


async def test_the_example_file_applies_cleanly(served: Served) -> None:
    first = await served.json("apply", "-f", str(EXAMPLE))
    assert first["created"] == ["nightly-backup", "heartbeat", "monthly-report"]
    again = await served.ok("apply", "-f", str(EXAMPLE))
    assert "applied: 0 created, 0 updated, 3 unchanged, 0 deleted" in again

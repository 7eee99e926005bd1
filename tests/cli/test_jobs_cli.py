"""`chronos jobs …`, in-process, against a real `chronos dev` (agent + NAS emulator) on
loopback ports: the CLI talks to the agent over real HTTP."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.invoke import Ran, run_chronos
from tests.support.processes import chronos_process
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e


@dataclass
class DevAgent:
    url: str
    nas_url: str
    admin_token: str
    cwd: Path

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.cwd),
            "LANG": "C.UTF-8",
            "COLUMNS": "250",
            "CHRONOS_API_URL": self.url,
            "CHRONOS_ADMIN_TOKEN": self.admin_token,
            **extra,
        }

    def run(self, *args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Ran:
        return run_chronos(
            args,
            env=env if env is not None else self.env(),
            cwd=self.cwd,  # no .env and no data/dev/admin-token fallback here
            stdin=stdin,
        )

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.returncode == 0, f"{args}: {result.stderr}"
        return result.stdout

    def json(self, *args: str) -> Any:
        """`chronos jobs <command> --json …`: the option goes before any `--`."""
        return json.loads(self.ok(*args[:2], "--json", *args[2:]))


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevAgent]:
    cwd = tmp_path_factory.mktemp("cli")
    data = cwd / "dev"
    port, nas_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["dev", "--port", str(port), "--nas-port", str(nas_port), "--data", str(data)]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd), "LANG": "C.UTF-8"}
    with chronos_process(args, env=env, cwd=cwd, log=cwd / "dev.log", ready_url=f"{url}/readyz"):
        token = (data / "admin-token").read_text().strip()
        yield DevAgent(url=url, nas_url=f"http://127.0.0.1:{nas_port}", admin_token=token, cwd=cwd)


def nas_armed(dev: DevAgent) -> dict[str, str]:
    nas_token = (dev.cwd / "dev" / "nas-token").read_text().strip()
    response = httpx.get(
        f"{dev.nas_url}/api/agent-cron/list", headers={"Authorization": f"Bearer {nas_token}"}
    )
    response.raise_for_status()
    return {a["job_id"]: a["fire_at"] for a in response.json()["armed"]}


def add(dev: DevAgent, name: str, *args: str) -> dict[str, Any]:
    job: dict[str, Any] = dev.json("jobs", "add", "every 1h", "--name", name, *args, "--", "true")
    return job


def test_add_prints_a_table_and_arms_the_job(dev: DevAgent) -> None:
    out = dev.ok("jobs", "add", "every 1h", "--name", "cli-table-job", "--", "true")
    assert "cli-table-job" in out
    assert "every 1h" in out
    assert "scheduled" in out
    [job] = [j for j in dev.json("jobs", "list") if j["name"] == "cli-table-job"]
    assert job["target"]["argv"] == ["true"]
    assert job["id"] in out
    assert nas_armed(dev)[job["id"]] == job["next_run_at"]


def test_list_json(dev: DevAgent) -> None:
    job = add(dev, "cli-list-job")
    listed = dev.json("jobs", "list")
    assert isinstance(listed, list)
    assert job["id"] in {j["id"] for j in listed}
    assert "cli-list-job" in dev.ok("jobs", "list")


def test_show_pause_resume(dev: DevAgent) -> None:
    job = add(dev, "cli-pause-job")
    shown = dev.ok("jobs", "show", job["id"])
    assert job["id"] in shown and "cli-pause-job" in shown

    paused = dev.json("jobs", "pause", job["id"])
    assert paused["state"] == "paused"
    assert job["id"] not in nas_armed(dev)
    card = dev.ok("jobs", "show", job["id"])
    assert "paused" in card
    # A paused job has no next run: the time it would have had is not shown as one.
    assert paused["next_run_at"].replace("+00:00", "Z") not in card
    next_run_line = next(line for line in card.splitlines() if line.startswith("next run"))
    assert next_run_line.split()[-1] == "-"

    resumed = dev.json("jobs", "resume", job["id"])
    assert resumed["state"] == "scheduled"
    assert nas_armed(dev)[job["id"]] == resumed["next_run_at"]


def test_trigger_and_runs(dev: DevAgent, tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    code = f"open({str(marker)!r}, 'a').write('ran\\n')"
    job: dict[str, Any] = dev.json(
        "jobs", "add", "every 1h", "--name", "cli-trigger-job", "--", sys.executable, "-c", code
    )
    assert job["target"]["argv"] == [sys.executable, "-c", code]

    out = dev.ok("jobs", "trigger", job["id"])
    assert "manual" in out
    deadline = time.monotonic() + 20
    while True:
        runs = dev.json("jobs", "runs", job["id"])
        if runs and runs[0]["status"] != "running":
            break
        assert time.monotonic() < deadline, runs
        time.sleep(0.2)
    [run] = runs
    assert run["kind"] == "manual" and run["status"] == "succeeded"
    assert marker.read_text() == "ran\n"
    table = dev.ok("jobs", "runs", job["id"])
    assert "manual" in table and "succeeded" in table
    assert dev.json("jobs", "show", job["id"])["next_run_at"] == job["next_run_at"]


def test_rm(dev: DevAgent) -> None:
    job = add(dev, "cli-rm-job")
    assert job["id"] in nas_armed(dev)
    out = dev.ok("jobs", "rm", job["id"])
    assert f"deleted {job['id']}" in out
    assert job["id"] not in nas_armed(dev)
    gone = dev.run("jobs", "show", job["id"])
    assert gone.returncode == 1
    assert f"no job with id or name {job['id']!r}" in " ".join(gone.stderr.split())


def test_rm_json(dev: DevAgent) -> None:
    job = add(dev, "cli-rm-json-job")
    assert dev.json("jobs", "rm", job["id"]) == {"deleted": job["id"]}
    assert job["id"] not in nas_armed(dev)


def test_other_targets(dev: DevAgent) -> None:
    http_job: dict[str, Any] = dev.json(
        "jobs", "add", "in 2h", "--name", "cli-http-job", "--http", "https://example.com/hook"
    )
    assert http_job["target"]["type"] == "http"
    assert http_job["target"]["url"] == "https://example.com/hook"
    assert http_job["repeat"] == 1
    target = json.dumps({"type": "command", "argv": ["true"], "timeout_seconds": 5})
    json_job: dict[str, Any] = dev.json(
        "jobs", "add", "every 2h", "--name", "cli-json-job", "--target", target, "--repeat", "3"
    )
    assert json_job["target"]["timeout_seconds"] == 5
    assert json_job["repeat"] == 3


def test_reconcile(dev: DevAgent) -> None:
    add(dev, "cli-reconcile-job")
    report = json.loads(dev.ok("reconcile"))
    assert report["ok"] is True
    assert report["list_error"] is None
    assert dev.json("reconcile")["ok"] is True


def test_a_bad_schedule_fails_with_the_servers_detail(dev: DevAgent) -> None:
    before = dev.json("jobs", "list")
    result = dev.run("jobs", "add", "every whenever", "--name", "cli-bad", "--", "true")
    assert result.returncode != 0
    message = " ".join(result.stderr.split())
    assert "400" in message
    assert "schedule: cannot parse schedule" in message
    assert result.stdout == ""
    assert dev.json("jobs", "list") == before


def test_no_target_is_refused_before_calling_the_agent(dev: DevAgent) -> None:
    result = dev.run("jobs", "add", "every 1h", env=dev.env(CHRONOS_API_URL="http://127.0.0.1:9"))
    assert result.returncode != 0
    assert "target" in result.stderr
    assert "-- ARGV" in result.stderr  # the command syntax as it really is


def test_a_wrong_admin_token_fails(dev: DevAgent) -> None:
    result = dev.run(
        "jobs", "list", env=dev.env(CHRONOS_ADMIN_TOKEN="wrong-token-0123456789abcdef")
    )
    assert result.returncode != 0
    assert "401" in result.stderr


def test_no_admin_token_is_named(dev: DevAgent) -> None:
    env = dev.env()
    del env["CHRONOS_ADMIN_TOKEN"]
    result = dev.run("jobs", "list", env=env)
    assert result.returncode != 0
    assert "CHRONOS_ADMIN_TOKEN" in result.stderr


def test_an_unreachable_agent_is_reported(dev: DevAgent) -> None:
    result = dev.run("jobs", "list", env=dev.env(CHRONOS_API_URL="http://127.0.0.1:9"))
    assert result.returncode != 0
    assert "cannot reach the agent" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


def test_the_jobs_table_is_readable_at_80_columns(dev: DevAgent) -> None:
    job = add(dev, "nightly-backup")
    result = dev.run("jobs", "show", job["id"], env=dev.env(COLUMNS="80"))
    assert result.returncode == 0
    assert "nightly-backup" in result.stdout
    assert "every 1h" in result.stdout
    assert "scheduled" in result.stdout


def test_dev_picks_up_an_agent_token_the_emulator_rotated(dev: DevAgent) -> None:
    token_file = dev.cwd / "dev" / "nas-token"
    old = token_file.read_text().strip()
    rotated = httpx.post(f"{dev.nas_url}/_emulator/agent-tokens", json={"revoke_others": True})
    assert rotated.status_code in (200, 201), rotated.text
    new = rotated.json()["token"]
    assert new != old and token_file.read_text().strip() == new
    # The agent reads the rewritten file on its next NAS call: no restart.
    job = add(dev, "cli-after-rotation")
    assert job["nas_pending"] is None
    assert nas_armed(dev)[job["id"]] == job["next_run_at"]


# -- jobs import ------------------------------------------------------------------------------


def test_import_creates_every_job_of_a_file_and_arms_them(dev: DevAgent) -> None:
    jobs = [
        {
            "name": f"cli-import-{n}",
            "schedule": "every 1h",
            "target": {"type": "command", "argv": ["true"]},
        }
        for n in range(3)
    ]
    path = dev.cwd / "import-list.json"
    path.write_text(json.dumps(jobs))
    out = dev.ok("jobs", "import", str(path))
    assert "created 3 jobs" in out
    listed = {j["name"]: j for j in dev.json("jobs", "list")}
    armed = nas_armed(dev)
    for job in jobs:
        created = listed[job["name"]]
        assert armed[created["id"]] == created["next_run_at"]


def test_import_reads_a_jobs_object_on_stdin_and_answers_json(dev: DevAgent) -> None:
    body = {
        "jobs": [
            {
                "name": "cli-import-stdin",
                "schedule": "in 2h",
                "target": {"type": "http", "url": "https://u:pw@example.com/x"},
            }
        ]
    }
    result = dev.run("jobs", "import", "--json", "-", stdin=json.dumps(body))
    assert result.returncode == 0, result.stderr
    [job] = json.loads(result.stdout)
    assert job["name"] == "cli-import-stdin"
    assert job["target"]["url"] == "https://u:***@example.com/x"


def test_import_of_an_invalid_item_creates_nothing_and_names_it(dev: DevAgent) -> None:
    before = dev.json("jobs", "list")
    jobs = [
        {
            "name": "cli-import-ok",
            "schedule": "every 1h",
            "target": {"type": "command", "argv": ["true"]},
        },
        {
            "name": "cli-import-bad",
            "schedule": "every whenever",
            "target": {"type": "command", "argv": ["true"]},
        },
        {"name": "cli-import-bad2", "schedule": "every 1h", "target": {"type": "ftp"}},
    ]
    path = dev.cwd / "import-bad.json"
    path.write_text(json.dumps(jobs))
    result = dev.run("jobs", "import", str(path))
    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert "HTTP 400" in message
    assert "jobs[1].schedule: cannot parse schedule" in message
    assert "jobs[2].target.type: must be one of" in message
    assert result.stdout == ""
    assert dev.json("jobs", "list") == before


def test_import_refuses_a_file_that_is_not_a_list_of_jobs(dev: DevAgent) -> None:
    path = dev.cwd / "import-not-jobs.json"
    for text in ("{not json", '{"name": "x"}', "[]"):
        path.write_text(text)
        result = dev.run("jobs", "import", str(path))
        assert result.returncode == 2, text
        assert str(path) in " ".join(result.stderr.split())
    missing = dev.run("jobs", "import", str(dev.cwd / "no-such-file.json"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr

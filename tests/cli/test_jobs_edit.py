"""`chronos jobs edit`, jobs named by name, `jobs list` filters and pages, and `jobs runs show`,
in-process against a real `chronos dev` (agent + NAS emulator) on loopback ports."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import typer

from app.cli.resolve import resolve_job
from tests.cli.test_jobs_cli import DevAgent, add, nas_armed
from tests.cli.test_jobs_cli import dev as dev  # this module's own `chronos dev`

pytestmark = pytest.mark.e2e


def wait_for_run(dev: DevAgent, job: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        runs: list[dict[str, Any]] = dev.json("jobs", "runs", job)
        if runs and runs[0]["status"] not in ("running", "queued", "buffered"):
            return runs[0]
        assert time.monotonic() < deadline, runs
        time.sleep(0.2)


def test_edit_changes_the_schedule_and_rearms_the_next_fire(dev: DevAgent) -> None:
    job = add(dev, "cli-edit-job")
    assert nas_armed(dev)[job["id"]] == job["next_run_at"]
    edited = dev.json("jobs", "edit", job["id"], "--schedule", "0 3 * * *", "--tz", "Asia/Tokyo")
    assert edited["schedule"] == "0 3 * * *" and edited["timezone"] == "Asia/Tokyo"
    assert edited["next_run_at"] != job["next_run_at"]
    assert edited["next_run_at"].endswith("T18:00:00+00:00")  # 03:00 in Tokyo
    assert nas_armed(dev)[job["id"]] == edited["next_run_at"]

    card = dev.ok("jobs", "edit", "cli-edit-job", "--repeat", "5", "--overlap", "allow")
    assert "0 3 * * * [Asia/Tokyo]" in card and "allow" in card
    shown = dev.json("jobs", "show", "cli-edit-job")
    assert (shown["repeat"], shown["overlap"]) == (5, "allow")
    assert shown["next_run_at"] == edited["next_run_at"]  # no schedule change: no re-arm


def test_edit_by_name_renames_policies_and_target(dev: DevAgent) -> None:
    add(dev, "cli-edit-by-name", "--repeat", "3", "--misfire-grace", "30")
    edited = dev.json(
        "jobs",
        "edit",
        "cli-edit-by-name",
        "--name",
        "cli-edit-renamed",
        "--repeat",
        "unlimited",
        "--misfire-grace",
        "unlimited",
        "--catchup",
        "skip",
        "--",
        "echo",
        "hello",
    )
    assert edited["name"] == "cli-edit-renamed"
    assert edited["repeat"] is None and edited["misfire_grace_seconds"] is None
    assert edited["catchup"] == "skip"
    assert edited["target"]["argv"] == ["echo", "hello"]
    assert dev.json("jobs", "show", "cli-edit-renamed")["id"] == edited["id"]
    gone = dev.run("jobs", "show", "cli-edit-by-name")
    assert gone.returncode == 1
    assert "no job with id or name 'cli-edit-by-name'" in " ".join(gone.stderr.split())


def test_an_edit_without_a_change_or_with_a_bad_value_is_refused(dev: DevAgent) -> None:
    job = add(dev, "cli-edit-nothing")
    nothing = dev.run("jobs", "edit", job["id"])
    assert nothing.returncode == 2
    assert "nothing to edit" in nothing.stderr
    bad = dev.run("jobs", "edit", job["id"], "--repeat", "lots")
    assert bad.returncode == 2 and "--repeat" in bad.stderr
    refused = dev.run("jobs", "edit", job["id"], "--schedule", "every whenever")
    assert refused.returncode == 1
    assert "schedule: cannot parse schedule" in " ".join(refused.stderr.split())
    assert dev.json("jobs", "show", job["id"])["schedule"] == "every 1h"
    lone_timeout = dev.run("jobs", "edit", job["id"], "--timeout", "5")
    assert lone_timeout.returncode == 2 and "--timeout" in lone_timeout.stderr


def test_every_job_command_takes_a_name(dev: DevAgent, tmp_path: Any) -> None:
    marker = tmp_path / "ran.txt"
    code = f"open({str(marker)!r}, 'a').write('ran')"
    dev.json("jobs", "add", "every 1h", "--name", "cli-named", "--", sys.executable, "-c", code)
    assert dev.json("jobs", "pause", "cli-named")["state"] == "paused"
    assert dev.json("jobs", "resume", "cli-named")["state"] == "scheduled"
    run = dev.json("jobs", "trigger", "cli-named")
    assert run["kind"] == "manual"
    assert wait_for_run(dev, "cli-named")["status"] == "succeeded"
    assert marker.read_text() == "ran"
    job_id = dev.json("jobs", "show", "cli-named")["id"]
    assert dev.json("jobs", "rm", "cli-named") == {"deleted": job_id}
    assert job_id not in nas_armed(dev)


@pytest.mark.parametrize("command", ["show", "pause", "resume", "rm", "trigger", "runs"])
def test_an_unknown_id_or_name_fails_with_exit_1(dev: DevAgent, command: str) -> None:
    result = dev.run("jobs", command, "no-such-job-or-name")
    assert result.returncode == 1
    assert "no job with id or name 'no-such-job-or-name'" in " ".join(result.stderr.split())
    edit = dev.run("jobs", "edit", "no-such-job-or-name", "--name", "x")
    assert edit.returncode == 1 and "no job with id or name" in edit.stderr


def test_an_id_wins_over_a_name_and_a_glob_name_is_exact(dev: DevAgent) -> None:
    first = add(dev, "cli-first")
    named_like_the_id = add(dev, first["id"])
    assert dev.json("jobs", "show", first["id"])["name"] == "cli-first"
    assert dev.json("jobs", "show", named_like_the_id["id"])["name"] == first["id"]
    star = add(dev, "cli-st*r")
    add(dev, "cli-stAr")
    assert dev.json("jobs", "show", "cli-st*r")["id"] == star["id"]


def mock_agent(jobs: list[dict[str, Any]]) -> Callable[[httpx.Request], httpx.Response]:
    """An admin API with these jobs, for what a real agent cannot hold (names are unique)."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/jobs":
            name = request.url.params.get("name")
            found = [j for j in jobs if j["name"] == name]
            return httpx.Response(200, json={"jobs": found, "next_cursor": None})
        job_id = request.url.path.rsplit("/", 1)[-1]
        if any(j["id"] == job_id for j in jobs):
            return httpx.Response(200, json={"id": job_id})
        return httpx.Response(404, json={"error": "not_found", "detail": "no job"})

    return answer


def test_two_jobs_with_one_name_are_named_with_their_ids(
    capsys: pytest.CaptureFixture[str],
) -> None:
    jobs = [{"id": "aaa111", "name": "twin"}, {"id": "bbb222", "name": "twin"}]
    transport = httpx.MockTransport(mock_agent(jobs))
    with httpx.Client(transport=transport, base_url="http://agent") as client:
        assert resolve_job(client, "aaa111") == "aaa111"
        with pytest.raises(typer.Exit) as exc_info:
            resolve_job(client, "twin")
    assert exc_info.value.exit_code == 1
    message = " ".join(capsys.readouterr().err.split())
    assert "2 jobs are named 'twin': aaa111, bbb222" in message


def test_list_filters_and_pages(dev: DevAgent) -> None:
    for name in ("cli-page_a", "cli-pageXb", "cli-page%c", "cli-page_d"):
        add(dev, name)
    dev.json("jobs", "pause", "cli-page_d")
    everything = dev.json("jobs", "list")
    assert isinstance(everything, list)
    mine = [j["name"] for j in everything if j["name"].startswith("cli-page")]
    assert dev.json("jobs", "list", "--name", "cli-page*") == [
        j for j in everything if j["name"] in mine
    ]
    glob = [j["name"] for j in dev.json("jobs", "list", "--name", "cli-page_*")]
    assert glob == ["cli-page_a", "cli-page_d"]
    assert [j["name"] for j in dev.json("jobs", "list", "--name", "cli-page%*")] == ["cli-page%c"]
    paused = dev.json("jobs", "list", "--state", "paused", "--name", "cli-page*")
    assert [j["name"] for j in paused] == ["cli-page_d"]

    seen: list[str] = []
    page = dev.json("jobs", "list", "--name", "cli-page*", "--limit", "3")
    seen += [j["name"] for j in page["jobs"]]
    assert page["next_cursor"]
    table = dev.run("jobs", "list", "--name", "cli-page*", "--limit", "3")
    assert f"--cursor {page['next_cursor']}" in table.stderr
    last = dev.json(
        "jobs", "list", "--name", "cli-page*", "--limit", "3", "--cursor", page["next_cursor"]
    )
    seen += [j["name"] for j in last["jobs"]]
    assert last["next_cursor"] is None
    assert seen == mine
    bad = dev.run("jobs", "list", "--cursor", "nonsense")
    assert bad.returncode == 1 and "cursor" in bad.stderr
    wrong_state = dev.run("jobs", "list", "--state", "active")
    assert wrong_state.returncode == 2


@pytest.mark.parametrize("group", [("jobs", "runs"), ("runs",)])
def test_runs_show_prints_the_whole_output_and_error(dev: DevAgent, group: tuple[str, ...]) -> None:
    name = f"cli-runs-show-{len(group)}"
    out_text = "\n".join(f"line {n} " + "o" * 150 for n in range(20)) + "\nOUTPUT-END"
    err_text = "E" * 1500 + " ERROR-END"
    code = f"import sys; print({out_text!r}); sys.stderr.write({err_text!r}); sys.exit(4)"
    dev.json("jobs", "add", "every 1h", "--name", name, "--", sys.executable, "-c", code)
    dev.json("jobs", "trigger", name)
    run = wait_for_run(dev, name)
    assert run["status"] == "failed"
    listed = dev.ok(*group, name)
    assert str(run["id"]) in listed and "ERROR-END" not in listed  # the table cuts the error

    shown = dev.run(*group, "show", name, str(run["id"]), env=dev.env(COLUMNS="80"))
    assert shown.returncode == 0, shown.stderr
    assert out_text in shown.stdout
    assert err_text in shown.stdout
    for field in ("status", "failed", "attempt", "lateness", "duration", "exit 4"):
        assert field in shown.stdout
    as_json = json.loads(dev.ok(*group, "show", name, run["key"], "--json"))
    assert as_json["output"] == out_text + "\n" and as_json["error"] == err_text
    missing = dev.run(*group, "show", name, "999999")
    assert missing.returncode == 1 and "has no run" in " ".join(missing.stderr.split())

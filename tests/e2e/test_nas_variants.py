"""End to end with real processes: Chronos keeps firing against every NAS we might meet.

Each variant is a setting of `chronos nas-emulator`; an `every 2s` job must keep firing, each
fire running once, with no restart."""

from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.deployment import NAS_TOKEN, Deployment, deployment, eventually
from tests.support.jwks_server import serve_jwks
from tests.support.keys import SigningKey

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("nas_env", "agent_env"),
    [
        # NAS cleans up by job id after a 2xx: the arm just made is deleted; the audit repairs it.
        ({"NAS_EMULATOR_CONSUME": "job"}, {"CHRONOS_ARM_AUDIT_DELAY_SECONDS": "0.5"}),
        # The fire body carries only job_id.
        ({"NAS_EMULATOR_FIRE_AT": "omitted"}, {}),
        # No list endpoint: reconcile provisions everything, readiness does not wait.
        ({"NAS_EMULATOR_LIST": "off"}, {}),
        # A provision answered with an empty object.
        ({"NAS_EMULATOR_PROVISION_ANSWER": "empty"}, {}),
    ],
    ids=["consume-job", "fire-at-omitted", "list-off", "provision-answer-empty"],
)
def test_an_every_2s_job_keeps_firing_once_per_fire(
    tmp_path: Path, database_url: str, nas_env: dict[str, str], agent_env: dict[str, str]
) -> None:
    with deployment(tmp_path, database_url, nas_env=nas_env) as d:
        d.agent_env.update(agent_env)
        keeps_firing(d, tmp_path / "fires.txt")


def keeps_firing(d: Deployment, out_file: Path) -> None:
    with d.start_agent(), d.admin() as admin:
        job = d.add_job(admin, "variant", out_file)
        d.runs_once_each(admin, job["id"], out_file, at_least=3, timeout=45)
        assert_still_armed(d, admin, job["id"])


def assert_still_armed(d: Deployment, admin: httpx.Client, job_id: str) -> None:
    """NAS holds the job's next fire (after any clean-up and audit): nothing is stranded."""

    def armed_as_wanted() -> bool:
        wanted: str = admin.get(f"/api/jobs/{job_id}").json()["next_run_at"]
        return d.all_arms().get(job_id) == wanted

    eventually(armed_as_wanted, timeout=15, what="the job's next fire to be armed at NAS")


# -- credentials that rotate without a restart ------------------------------------------------


def rotate(d: Deployment) -> str:
    """Ask the emulator for a new agent token; every older one is refused from now on."""
    with httpx.Client(base_url=d.nas_url, timeout=10) as nas:
        response = nas.post("/_emulator/agent-tokens", json={"revoke_others": True})
        assert response.status_code in (200, 201), response.text
        token: str = response.json()["token"]
    assert token != NAS_TOKEN
    d.nas_token = token
    return token


def refused_before(d: Deployment, old_token: str) -> None:
    with httpx.Client(base_url=d.nas_url, timeout=10) as nas:
        answer = nas.get("/api/agent-cron/list", headers={"Authorization": f"Bearer {old_token}"})
    assert answer.status_code == 401


def test_a_token_rotated_through_the_token_file_is_picked_up_without_restart(
    tmp_path: Path, database_url: str
) -> None:
    token_file = tmp_path / "nas-token"
    token_file.write_text(NAS_TOKEN + "\n")
    out_file = tmp_path / "fires.txt"
    with (
        deployment(
            tmp_path,
            database_url,
            nas_env={
                "NAS_EMULATOR_AGENT_TOKEN_FILE": str(token_file),
                "NAS_EMULATOR_AGENT_TOKEN": "",
            },
        ) as d,
        d.start_agent(CHRONOS_NAS_TOKEN="", CHRONOS_NAS_TOKEN_FILE=str(token_file)) as agent,
        d.admin() as admin,
    ):
        job = d.add_job(admin, "rotating-file", out_file)
        d.runs_once_each(admin, job["id"], out_file, at_least=2, timeout=30)
        rotate(d)  # the emulator writes the new token into the file
        refused_before(d, NAS_TOKEN)
        assert token_file.read_text().strip() == d.nas_token
        before = len(out_file.read_text().splitlines())
        d.runs_once_each(admin, job["id"], out_file, at_least=before + 3, timeout=45)
        assert_still_armed(d, admin, job["id"])
        assert agent.poll() is None  # the same process throughout
    assert d.nas_token not in (tmp_path / "agent.log").read_text()


def test_a_token_from_a_command_is_refreshed_when_nas_refuses_it(
    tmp_path: Path, database_url: str
) -> None:
    source = tmp_path / "current-token"
    source.write_text(NAS_TOKEN)
    script = tmp_path / "print-token"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, pathlib\n"
        f"print(json.dumps({{'token': pathlib.Path({str(source)!r}).read_text().strip()}}))\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    out_file = tmp_path / "fires.txt"
    with (
        deployment(tmp_path, database_url) as d,
        d.start_agent(
            CHRONOS_NAS_TOKEN="",
            CHRONOS_NAS_TOKEN_COMMAND=str(script),
            CHRONOS_NAS_TOKEN_COMMAND_TTL_SECONDS="3600",  # only a refusal makes it run again
        ) as agent,
        d.admin() as admin,
    ):
        job = d.add_job(admin, "rotating-command", out_file)
        d.runs_once_each(admin, job["id"], out_file, at_least=2, timeout=30)
        source.write_text(rotate(d))
        before = len(out_file.read_text().splitlines())
        d.runs_once_each(admin, job["id"], out_file, at_least=before + 3, timeout=45)
        assert_still_armed(d, admin, job["id"])
        assert agent.poll() is None
    assert d.nas_token not in (tmp_path / "agent.log").read_text()


# -- a key removed from the JWKS stops verifying ---------------------------------------------


def test_a_key_removed_from_the_jwks_stops_verifying_after_the_max_age(
    tmp_path: Path, database_url: str
) -> None:
    key = SigningKey.rsa(kid="e2e-removed-key")
    with (
        serve_jwks([key]) as jwks,
        deployment(tmp_path, database_url) as d,
        d.start_agent(CHRONOS_NAS_JWKS_URL=jwks.url, CHRONOS_JWKS_MAX_AGE_SECONDS="1"),
        httpx.Client(base_url=d.agent_url, timeout=10) as agent,
    ):

        def fire() -> int:
            claims: dict[str, Any] = {
                "aud": "agent:e2e",
                "iss": d.nas_url,
                "purpose": "cron_fire",
                "iat": int(time.time()),
                "exp": int(time.time()) + 60,
            }
            response = agent.post(
                "/api/cron/fire",
                json={"job_id": f"no-such-job-{os.urandom(4).hex()}"},
                headers={"Authorization": f"Bearer {key.mint(claims)}"},
            )
            return response.status_code

        assert fire() == 200  # verified: answered `ignored` (unknown job)
        jwks.keys = [SigningKey.rsa(kid="e2e-next-key")]  # NAS withdraws the key
        time.sleep(1.5)
        assert fire() == 401

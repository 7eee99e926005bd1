"""A deployment of real processes on loopback for end-to-end tests: `chronos nas-emulator`
(configured like one of the NAS variants we might meet) and `chronos serve` against it."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.support.keys import fire_claims, nas_signing_key, write_private_key
from tests.support.processes import base_env, chronos_process
from tests.support.servers import free_port

NAS_TOKEN = "e2e-nas-token-0123456789"
ADMIN_TOKEN = "e2e-admin-token-0123456789"
APPEND_LINE = "import os, sys; open(sys.argv[1], 'a').write(os.environ['CHRONOS_FIRE_AT'] + '\\n')"

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], *, timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


@dataclass
class Deployment:
    tmp_path: Path
    database_url: str
    nas_url: str
    agent_port: int
    stack: ExitStack
    nas_token: str = NAS_TOKEN
    agent_env: dict[str, str] = field(default_factory=dict)

    @property
    def agent_url(self) -> str:
        return f"http://127.0.0.1:{self.agent_port}"

    def start_agent(
        self, *, port: int | None = None, log_name: str = "agent.log", **extra: str
    ) -> Any:
        """`chronos serve` against the emulator; `extra` CHRONOS_* variables win (set one to ""
        to leave it out). `port` (default `agent_port`) and `log_name` start another replica."""
        port = port or self.agent_port
        url = f"http://127.0.0.1:{port}"
        values = {
            "CHRONOS_ENV": "dev",
            "CHRONOS_DATABASE_URL": self.database_url,
            "CHRONOS_HOST": "127.0.0.1",
            "CHRONOS_PORT": str(port),
            "CHRONOS_PORTAL_URL": self.nas_url,
            "CHRONOS_CALLBACK_URL": url,
            "CHRONOS_EXPECTED_AUDIENCE": "agent:e2e",
            "CHRONOS_NAS_JWKS_URL": f"{self.nas_url}/.well-known/jwks.json",
            "CHRONOS_NAS_TOKEN": NAS_TOKEN,
            "CHRONOS_ADMIN_TOKEN": ADMIN_TOKEN,
            # Stopping a test's agent need not wait for a load balancer to notice the drain.
            "CHRONOS_DRAIN_SETTLE_SECONDS": "0",
            **self.agent_env,
            **extra,
        }
        return chronos_process(
            ["serve"],
            env=base_env(**{k: v for k, v in values.items() if v}),
            cwd=self.tmp_path,
            log=self.tmp_path / log_name,
            ready_url=f"{url}/readyz",
        )

    def admin(self, url: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=url or self.agent_url,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=10,
        )

    def nas(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.nas_url,
            headers={"Authorization": f"Bearer {self.nas_token}"},
            timeout=10,
        )

    def armed(self) -> dict[str, str]:
        """What NAS's `list` shows the agent: job id -> fire_at."""
        with self.nas() as nas:
            armed = nas.get("/api/agent-cron/list").json()["armed"]
        return {a["job_id"]: a["fire_at"] for a in armed}

    def all_arms(self) -> dict[str, str]:
        """What NAS holds, read from the emulator's own view (works with list off)."""
        with self.nas() as nas:
            response = nas.get("/_emulator/arms")
            response.raise_for_status()
            data = response.json()
        arms = data["arms"] if isinstance(data, dict) else data
        return {a["job_id"]: a["fire_at"] for a in arms}

    def faults(self, **body: Any) -> None:
        """`POST /_emulator/faults` with `body`, or `DELETE` every fault without one."""
        with self.nas() as nas:
            response = (
                nas.post("/_emulator/faults", json=body)
                if body
                else nas.delete("/_emulator/faults")
            )
        response.raise_for_status()

    def fire(self, job_id: str, fire_at: str, *, url: str | None = None) -> httpx.Response:
        """Deliver the fire `(job_id, fire_at)` to the agent (or `url`) as NAS would: a fresh
        token (its own `jti`) signed with the emulator's key, so it counts as a re-delivery."""
        with httpx.Client(timeout=30) as client:
            kid = client.get(f"{self.nas_url}/.well-known/jwks.json").json()["keys"][0]["kid"]
            claims = fire_claims(
                "agent:e2e", self.nas_url, jti=uuid.uuid4().hex, job_id=job_id, fire_at=fire_at
            )
            token = nas_signing_key().with_kid(kid).mint(claims)
            return client.post(
                f"{url or self.agent_url}/api/cron/fire",
                json={"job_id": job_id, "fire_at": fire_at},
                headers={"Authorization": f"Bearer {token}"},
            )

    def deliveries(self, job_id: str) -> list[dict[str, Any]]:
        with self.nas() as nas:
            response = nas.get("/_emulator/deliveries", params={"job_id": job_id})
            response.raise_for_status()
            result: list[dict[str, Any]] = response.json()["deliveries"]
            return result

    def add_job(self, admin: httpx.Client, name: str, out_file: Path, **extra: Any) -> Any:
        created = admin.post(
            "/api/jobs",
            json={
                "name": name,
                "schedule": "every 2s",
                "target": {
                    "type": "command",
                    "argv": [sys.executable, "-c", APPEND_LINE, str(out_file)],
                },
                **extra,
            },
        )
        assert created.status_code == 201, created.text
        return created.json()

    def runs_once_each(
        self, admin: httpx.Client, job_id: str, out_file: Path, *, at_least: int, timeout: float
    ) -> list[dict[str, Any]]:
        """Wait for `at_least` successful runs; check that no fire ran twice."""

        def enough() -> list[dict[str, Any]] | None:
            runs: list[dict[str, Any]] = admin.get(f"/api/jobs/{job_id}/runs").json()
            done = [r for r in runs if r["status"] == "succeeded"]
            return done if len(done) >= at_least else None

        runs = eventually(enough, timeout=timeout, what=f"{at_least} successful runs")
        lines = out_file.read_text().splitlines()
        assert len(lines) == len(set(lines)), f"a fire ran twice: {lines}"
        keys = [r["key"] for r in runs]
        assert len(keys) == len(set(keys))
        fired = {datetime.fromisoformat(r["fire_at"]) for r in runs}
        assert fired <= {datetime.fromisoformat(line) for line in lines}
        return runs


@contextmanager
def deployment(
    tmp_path: Path, database_url: str, *, nas_env: dict[str, str] | None = None
) -> Iterator[Deployment]:
    """The emulator running (with `nas_env` NAS_EMULATOR_* settings); the agent not yet."""
    nas_port = free_port()
    nas_url = f"http://127.0.0.1:{nas_port}"
    values = {
        "NAS_EMULATOR_PUBLIC_URL": nas_url,
        "NAS_EMULATOR_AGENT_TOKEN": NAS_TOKEN,
        "NAS_EMULATOR_INSTANCE_ID": "e2e",
        # The session's NAS key, so the emulator loads a key instead of generating one.
        "NAS_EMULATOR_KEY_FILE": str(
            write_private_key(nas_signing_key(), tmp_path / "nas-key.pem")
        ),
        "NAS_EMULATOR_REDELIVERY_INITIAL_SECONDS": "0.5",
        "NAS_EMULATOR_REDELIVERY_MAX_SECONDS": "2",
        **(nas_env or {}),  # a variable set to "" is left out
    }
    env = base_env(**{name: value for name, value in values.items() if value})
    with ExitStack() as stack:
        stack.enter_context(
            chronos_process(
                ["nas-emulator", "--port", str(nas_port)],
                env=env,
                cwd=tmp_path,
                log=tmp_path / "nas.log",
                ready_url=f"{nas_url}/healthz",
            )
        )
        yield Deployment(tmp_path, database_url, nas_url, free_port(), stack)

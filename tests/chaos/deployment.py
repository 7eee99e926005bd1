"""The system under chaos: a private PostgreSQL, the NAS emulator (`chronos nas-emulator`), three
`chronos serve` replicas sharing the database, and the round-robin proxy all replicas give NAS
as their callback URL. `deployment()` starts it all and always stops it all."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.chaos.cluster import PrivateCluster, private_cluster
from tests.chaos.proxy import RoundRobinProxy
from tests.support.keys import nas_signing_key, write_private_key
from tests.support.processes import CHRONOS, base_env, stop
from tests.support.servers import free_port

NAS_TOKEN = "chaos-nas-token-0123456789"
ADMIN_TOKEN = "chaos-admin-token-0123456789"
INSTANCE_ID = "chaos"
READY_TIMEOUT = 60.0
LEASE_SECONDS = 5
OUTBOX_DRAIN_INTERVAL_SECONDS = 1


class Service:
    """One `chronos` process that can be started, signalled, and started again."""

    def __init__(self, name: str, args: list[str], *, cwd: Path, ready_url: str) -> None:
        self.name = name
        self.args = args
        self.cwd = cwd
        self.ready_url = ready_url
        self.log = cwd / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def environment(self) -> dict[str, str]:
        raise NotImplementedError

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was never started"
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start the process and wait until `ready_url` answers 200."""
        self.starts += 1
        with self.log.open("ab") as log:
            log.write(f"\n===== start #{self.starts} of {self.name} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [CHRONOS, *self.args],
                env=self.environment(),
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                if httpx.get(self.ready_url, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self.name} not ready after {READY_TIMEOUT:g}s:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def signal(self, signum: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait_exit(self, timeout: float) -> bool:
        assert self.proc is not None
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class Emulator(Service):
    def __init__(self, cwd: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(
            "nas-emulator",
            ["nas-emulator", "--port", str(self.port)],
            cwd=cwd,
            ready_url=f"{self.url}/healthz",
        )
        self.key_file = write_private_key(nas_signing_key(), cwd / "nas-key.pem")

    def environment(self) -> dict[str, str]:
        return base_env(
            NAS_EMULATOR_PUBLIC_URL=self.url,
            NAS_EMULATOR_AGENT_TOKEN=NAS_TOKEN,
            NAS_EMULATOR_INSTANCE_ID=INSTANCE_ID,
            NAS_EMULATOR_KEY_FILE=str(self.key_file),
            NAS_EMULATOR_REDELIVERY_INITIAL_SECONDS="0.5",
            NAS_EMULATOR_REDELIVERY_MAX_SECONDS="5",
            # Never abandon a fire during the test: a stranded job is then the agent's doing.
            NAS_EMULATOR_REDELIVERY_MAX_ATTEMPTS="100000",
        )

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10)

    def get(self, path: str) -> Any:
        with self.client() as client:
            response = client.get(path)
        response.raise_for_status()
        return response.json()

    def faults(self, **body: Any) -> None:
        """`POST /_emulator/faults` with `body`, or `DELETE` it without one."""
        with self.client() as client:
            if body:
                response = client.post("/_emulator/faults", json=body)
            else:
                response = client.delete("/_emulator/faults")
        response.raise_for_status()


class Replica(Service):
    def __init__(
        self, index: int, port: int, cwd: Path, *, database_url: str, nas: Emulator, callback: str
    ) -> None:
        self.index = index
        self.port = port
        self.database_url = database_url
        self.nas = nas
        self.callback = callback
        super().__init__(
            f"replica-{index}",
            ["serve"],
            cwd=cwd,
            ready_url=f"http://127.0.0.1:{self.port}/readyz",
        )

    @property
    def node_id(self) -> str:
        # A new name per start, as the default (hostname + random) gives a restarted process.
        return f"chaos-r{self.index}-{self.starts}"

    def environment(self) -> dict[str, str]:
        return base_env(
            CHRONOS_ENV="dev",
            CHRONOS_DATABASE_URL=self.database_url,
            CHRONOS_HOST="127.0.0.1",
            CHRONOS_PORT=str(self.port),
            CHRONOS_NODE_ID=self.node_id,
            CHRONOS_PORTAL_URL=self.nas.url,
            CHRONOS_CALLBACK_URL=self.callback,
            CHRONOS_EXPECTED_AUDIENCE=f"agent:{INSTANCE_ID}",
            CHRONOS_NAS_JWKS_URL=f"{self.nas.url}/.well-known/jwks.json",
            CHRONOS_NAS_TOKEN=NAS_TOKEN,
            CHRONOS_ADMIN_TOKEN=ADMIN_TOKEN,
            CHRONOS_LEASE_SECONDS=str(LEASE_SECONDS),
            CHRONOS_OUTBOX_DRAIN_INTERVAL_SECONDS=str(OUTBOX_DRAIN_INTERVAL_SECONDS),
        )

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=30,
        )


@dataclass
class Deployment:
    work: Path
    cluster: PrivateCluster
    nas: Emulator
    proxy: RoundRobinProxy
    replicas: list[Replica] = field(default_factory=list)

    def admin(self) -> httpx.Client:
        """The admin API through the balancer, as any client of the deployment reaches it."""
        return httpx.Client(
            base_url=self.proxy.url,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=30,
        )

    def check_alive(self) -> None:
        """Fail when a replica or the emulator died without our doing."""
        for service in (self.nas, *self.replicas):
            if not service.alive():
                raise AssertionError(
                    f"{service.name} (pid {service.pid}) died on its own:\n{service.log_tail()}"
                )
        if not self.cluster.running():
            raise AssertionError(f"PostgreSQL is down:\n{self.cluster.log_tail()}")

    def logs(self) -> str:
        names = [self.nas.log, *(replica.log for replica in self.replicas)]
        return f"logs in {self.work}: " + ", ".join(path.name for path in names)


@contextmanager
def deployment(work: Path, replicas: int = 3) -> Iterator[Deployment]:
    """Everything up and ready; on the way out (failure included) everything is stopped."""
    with ExitStack() as stack:
        cluster = stack.enter_context(private_cluster())
        nas = Emulator(work)
        stack.callback(nas.stop)
        nas.start()
        ports = [free_port() for _ in range(replicas)]
        proxy = RoundRobinProxy(ports)
        proxy.start()
        stack.callback(proxy.stop)
        running = Deployment(work=work, cluster=cluster, nas=nas, proxy=proxy)
        for index, port in enumerate(ports):
            replica = Replica(
                index, port, work, database_url=cluster.url, nas=nas, callback=proxy.url
            )
            stack.callback(replica.stop)
            replica.start()
            running.replicas.append(replica)
        yield running

"""A private PostgreSQL cluster for the chaos test: its own data directory, port and socket
directory, trust authentication on 127.0.0.1, stopped and started at will, always removed.

`initdb` and `pg_ctl` refuse to run as root: as root, they run as the `postgres` user, in a
directory that user owns. The shared cluster on 5432 is never touched.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from tests.support.servers import free_port

DATABASE = "chronos"
SUPERUSER = "postgres"


def find_bin_dir() -> Path:
    """Where `initdb` and `pg_ctl` live: `$CHAOS_PG_BIN`, the newest
    /usr/lib/postgresql/*/bin, or the directory of `initdb` on PATH."""
    if configured := os.environ.get("CHAOS_PG_BIN"):
        return Path(configured)
    installed = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    if installed:
        return installed[-1]
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError("PostgreSQL binaries not found: set CHAOS_PG_BIN to their directory")
    return Path(initdb).parent


@dataclass
class PrivateCluster:
    bin_dir: Path
    root: Path  # owned by the user PostgreSQL runs as: data/, the socket and the server log
    port: int

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    @property
    def url(self) -> str:
        """The agents' CHRONOS_DATABASE_URL."""
        return f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def dsn(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, program: str, *args: str, timeout: float = 60) -> None:
        command = [str(self.bin_dir / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SUPERUSER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(
                f"{program} {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout}{done.stderr}\n{self.log_tail()}"
            )

    def init(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        )

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
            " -c fsync=off -c max_connections=200"  # only ever stopped cleanly: no fsync needed
        )
        self._run(
            "pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_file), "-w",
            "-t", "60", "-o", options,
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", mode, "-w", "-t", "60")

    def running(self) -> bool:
        return (self.data_dir / "postmaster.pid").exists()

    def create_database(self) -> None:
        async def create() -> None:
            conn = await asyncpg.connect(
                f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres", timeout=10
            )
            try:
                await conn.execute(f'CREATE DATABASE "{DATABASE}"')
            finally:
                await conn.close()

        asyncio.run(create())

    def query(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        """Rows of one query on the agents' database, as dicts."""

        async def fetch() -> list[dict[str, Any]]:
            conn = await asyncpg.connect(self.dsn, timeout=10)
            try:
                return [dict(row) for row in await conn.fetch(sql, *args)]
            finally:
                await conn.close()

        return asyncio.run(fetch())

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])

    def destroy(self) -> None:
        """Stop the server however it can be stopped (this cluster's own postmaster only), then
        remove every file."""
        if self.running():
            try:
                self.stop("immediate")
            except (RuntimeError, subprocess.TimeoutExpired):
                self._kill_postmaster()
        shutil.rmtree(self.root, ignore_errors=True)

    def _kill_postmaster(self) -> None:
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@contextmanager
def private_cluster() -> Iterator[PrivateCluster]:
    """A fresh cluster with the agents' database, running; destroyed when the block ends."""
    root = Path(tempfile.mkdtemp(prefix="chronos-chaos-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, user=SUPERUSER, group=SUPERUSER)
    cluster = PrivateCluster(bin_dir=find_bin_dir(), root=root, port=free_port())
    try:
        cluster.init()
        cluster.start()
        cluster.create_database()
        yield cluster
    finally:
        cluster.destroy()

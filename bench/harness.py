"""What every measurement of the bench shares: the processes it starts (agent, bare app, NAS stub
control), waiting for them, fresh PostgreSQL databases, and creating jobs through the admin API.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.tokens import BenchKey

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
CHRONOS = str(Path(sys.executable).parent / "chronos")
INSTANCE_ID = "bench"
AUDIENCE = f"agent:{INSTANCE_ID}"
NAS_TOKEN = "bench-nas-token-0123456789"  # noqa: S105 - a loopback test value
ADMIN_TOKEN = "bench-admin-token-0123456789"  # noqa: S105 - a loopback test value
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BATCH_SIZE = 1000  # jobs per `POST /api/jobs/batch`, the route's limit


def log(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def process(
    argv: list[str], *, env: dict[str, str] | None = None, cwd: Path, log_file: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `argv` until the block ends; SIGTERM, then SIGKILL after 15 s."""
    with log_file.open("ab") as out:
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def wait_for(probe: Callable[[], bool], *, timeout: float, what: str, step: float = 0.005) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


def answers(url: str, *, method: str = "GET", ok: tuple[int, ...] = (200,), **kw: Any) -> bool:
    try:
        return httpx.request(method, url, timeout=2, **kw).status_code in ok
    except httpx.TransportError:
        return False


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank `p`th percentile of `values` (not empty)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100), at least 1
    return ordered[int(rank) - 1]


# -- the processes -------------------------------------------------------------------------------


@dataclass
class Bench:
    tmp: Path
    key: BenchKey
    nas_url: str
    script: Path
    results: dict[str, Any] = field(default_factory=dict)

    def agent_env(
        self, database_url: str, port: int, *, nas_url: str | None = None, **settings: str
    ) -> dict[str, str]:
        """The agent's environment: NAS at `nas_url` (the stub unless given), plus `settings`
        as `CHRONOS_<NAME>` variables."""
        nas = nas_url or self.nas_url
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHRONOS_")}
        env.update(
            CHRONOS_ENV="dev",
            CHRONOS_DATABASE_URL=database_url,
            CHRONOS_HOST="127.0.0.1",
            CHRONOS_PORT=str(port),
            CHRONOS_PORTAL_URL=nas,
            CHRONOS_CALLBACK_URL=f"http://127.0.0.1:{port}",
            CHRONOS_EXPECTED_AUDIENCE=AUDIENCE,
            CHRONOS_NAS_JWKS_URL=f"{nas}/.well-known/jwks.json",
            CHRONOS_NAS_TOKEN=NAS_TOKEN,
            CHRONOS_ADMIN_TOKEN=ADMIN_TOKEN,
            CHRONOS_DRAIN_SETTLE_SECONDS="0",
        )
        env.update({f"CHRONOS_{name.upper()}": value for name, value in settings.items()})
        return env

    @contextmanager
    def agent(
        self, database_url: str, name: str, *, nas_url: str | None = None, **settings: str
    ) -> Iterator[tuple[str, int]]:
        """`chronos serve` on a free port until the block ends; yields (URL, pid)."""
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with process(
            [CHRONOS, "serve"],
            env=self.agent_env(database_url, port, nas_url=nas_url, **settings),
            cwd=self.tmp,
            log_file=self.tmp / f"agent-{name}.log",
        ) as proc:
            wait_for(lambda: answers(f"{url}/readyz"), timeout=60, what="the agent", step=0.1)
            yield url, proc.pid

    @contextmanager
    def bare(self, name: str = "bare") -> Iterator[tuple[str, int]]:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with process(
            [PYTHON, "-m", "bench.baseline_app", str(port)],
            cwd=ROOT,
            log_file=self.tmp / f"{name}.log",
        ) as proc:
            wait_for(lambda: answers(f"{url}/docs"), timeout=30, what="the bare app", step=0.05)
            yield url, proc.pid

    def token(self, job_id: str, fire_at: str) -> str:
        return self.key.fire_token(AUDIENCE, self.nas_url, job_id, fire_at)

    def write_lines(self, path: Path, fires: list[tuple[str, str]]) -> Path:
        """One delivery per line: JSON body, tab, token (each with its own jti)."""
        with path.open("w") as out:
            for job_id, fire_at in fires:
                body = json.dumps({"job_id": job_id, "fire_at": fire_at}, separators=(",", ":"))
                out.write(f"{body}\t{self.token(job_id, fire_at)}\n")
        return path


class StubControl:
    """The NAS stub's bench-only control (`/_stub/...`)."""

    def __init__(self, nas_url: str) -> None:
        self.url = nas_url

    def reset(self) -> None:
        """Forget every arm and zero the counters: NAS holds nothing."""
        httpx.post(f"{self.url}/_stub/reset", timeout=10).raise_for_status()

    def latency(self, ms: float) -> None:
        httpx.post(f"{self.url}/_stub/latency", params={"ms": ms}, timeout=10).raise_for_status()

    def stats(self) -> dict[str, int]:
        """Calls counted since the last reset (`provision`, `cancel`, `list`) and `armed`."""
        response = httpx.get(f"{self.url}/_stub/stats", timeout=10)
        response.raise_for_status()
        stats: dict[str, int] = response.json()
        return stats


# -- jobs ----------------------------------------------------------------------------------------


def job_body(name: str, schedule: str, target_url: str) -> dict[str, Any]:
    return {
        "name": name,
        "schedule": schedule,
        "target": {"type": "http", "url": target_url, "method": "GET"},
    }


async def create_jobs(
    agent_url: str,
    nas_url: str,
    count: int,
    prefix: str,
    *,
    schedule: str = "every 1h",
    target_url: str | None = None,
    in_flight: int = 8,
) -> dict[str, str]:
    """`count` jobs (a GET HTTP target: the stub's no-op unless given) through `POST /api/jobs`,
    `in_flight` at a time; returns job id -> next_run_at."""
    created: dict[str, str] = {}
    limit = asyncio.Semaphore(in_flight)
    target = target_url or f"{nas_url}/target"
    async with httpx.AsyncClient(base_url=agent_url, headers=ADMIN_HEADERS, timeout=60) as client:

        async def create(index: int) -> None:
            async with limit:
                response = await client.post(
                    "/api/jobs", json=job_body(f"{prefix}-{index:05d}", schedule, target)
                )
            response.raise_for_status()
            job = response.json()
            created[job["id"]] = job["next_run_at"]

        await asyncio.gather(*(create(i) for i in range(count)))
    return created


@dataclass(frozen=True)
class Created:
    """Jobs created in bulk: id -> next_run_at, how, and how long it took."""

    jobs: dict[str, str]
    route: str  # "batch", or "one per call" when the batch route is missing
    seconds: float
    batch_status: int | None = None  # the batch route's answer when it was missing

    @property
    def per_second(self) -> float:
        return len(self.jobs) / self.seconds


def create_jobs_bulk(
    agent_url: str,
    nas_url: str,
    count: int,
    prefix: str,
    *,
    schedule: str = "every 1h",
    target_url: str | None = None,
) -> Created:
    """`count` jobs through `POST /api/jobs/batch`, `BATCH_SIZE` per call, one call at a time;
    when the route answers 404 or 405 (not built), through `POST /api/jobs`, 16 in flight."""
    target = target_url or f"{nas_url}/target"
    bodies = [job_body(f"{prefix}-{i:05d}", schedule, target) for i in range(count)]
    jobs: dict[str, str] = {}
    started = time.perf_counter()
    with httpx.Client(base_url=agent_url, headers=ADMIN_HEADERS, timeout=600) as client:
        for first in range(0, count, BATCH_SIZE):
            response = client.post(
                "/api/jobs/batch", json={"jobs": bodies[first : first + BATCH_SIZE]}
            )
            if response.status_code in (404, 405) and first == 0:
                log(f"POST /api/jobs/batch answered {response.status_code}: one job per call")
                started = time.perf_counter()
                one_by_one = asyncio.run(
                    create_jobs(
                        agent_url,
                        nas_url,
                        count,
                        prefix,
                        schedule=schedule,
                        target_url=target,
                        in_flight=16,
                    )
                )
                elapsed = time.perf_counter() - started
                return Created(one_by_one, "one per call", elapsed, response.status_code)
            if response.status_code != 201:
                raise RuntimeError(
                    f"POST /api/jobs/batch answered {response.status_code}: {response.text[:300]}"
                )
            jobs.update((job["id"], job["next_run_at"]) for job in response.json()["jobs"])
    return Created(jobs, "batch", time.perf_counter() - started)


def next_runs(agent_url: str) -> dict[str, str]:
    """Every job's current next_run_at, from `GET /api/jobs`, page after page."""
    found: dict[str, str] = {}
    params: dict[str, str | int] = {"limit": 1000}
    while True:
        response = httpx.get(
            f"{agent_url}/api/jobs", params=params, headers=ADMIN_HEADERS, timeout=120
        )
        response.raise_for_status()
        page = response.json()
        found.update((job["id"], job["next_run_at"]) for job in page["jobs"])
        if page["next_cursor"] is None:
            return found
        params["cursor"] = page["next_cursor"]


# -- PostgreSQL ----------------------------------------------------------------------------------


def postgres_url() -> str | None:
    url = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("PG_TEST_URL")
    return url if url and url.startswith("postgresql") else None


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _admin_sql(url: str, statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(_dsn(url), timeout=3)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextmanager
def fresh_postgres(url: str, suffix: str = "") -> Iterator[str | None]:
    """A database `bench_<pid>[_<suffix>]` on the server of `url`, dropped afterwards; None
    when the server is not reachable."""
    name = f"bench_{os.getpid()}" + (f"_{suffix}" if suffix else "")
    try:
        asyncio.run(_admin_sql(url, f"CREATE DATABASE {name}"))
    except (OSError, TimeoutError, ImportError) as exc:
        log(f"PostgreSQL at {url} not reachable ({exc!r}): skipped")
        yield None
        return
    except Exception as exc:  # asyncpg's errors (auth, permissions) have no common base here
        log(f"PostgreSQL at {url} refused CREATE DATABASE ({exc!r}): skipped")
        yield None
        return
    try:
        yield url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(_admin_sql(url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@contextmanager
def database(tmp: Path, label: str, name: str) -> Iterator[str | None]:
    """A fresh database for one measurement: a new SQLite file (`label` "sqlite") or a new
    PostgreSQL database; None when PostgreSQL is not reachable."""
    if label == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp / f'{name}.db'}"
        return
    pg = postgres_url()
    if pg is None:
        yield None
        return
    with fresh_postgres(pg, name) as url:
        yield url

"""`make bench`: today's figures of the agent against a bare FastAPI + uvicorn app, measured
alternately in one run, on SQLite and (when reachable) PostgreSQL.

Writes `bench/results/latest.md`, `latest.json` and, with matplotlib, `latest.png`.
Knobs (environment): BENCH_DATABASE_URL (PostgreSQL, postgresql+asyncpg://...; PG_TEST_URL
when unset), BENCH_JOBS, BENCH_ROUNDS, BENCH_SECONDS, BENCH_CONNECTIONS, BENCH_COLD_RUNS.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.loadgen import WrkResult, run_wrk, run_wrk_plain, write_script
from bench.tokens import BenchKey

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PYTHON = sys.executable
CHRONOS = str(Path(sys.executable).parent / "chronos")
AUDIENCE = "agent:bench"
NAS_TOKEN = "bench-nas-token-0123456789"  # noqa: S105 - a loopback test value
ADMIN_TOKEN = "bench-admin-token-0123456789"  # noqa: S105 - a loopback test value

JOBS = int(os.environ.get("BENCH_JOBS", "600"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "6"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
COLD_RUNS = int(os.environ.get("BENCH_COLD_RUNS", "5"))
# Fires per job per round: each round fires every job this many times (its next slots, 1 h
# apart), so a round holds JOBS * SLOTS distinct fires.
SLOTS = 2
X = "\N{MULTIPLICATION SIGN}"


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


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


# -- the processes -------------------------------------------------------------------------------


@dataclass
class Bench:
    tmp: Path
    key: BenchKey
    nas_url: str
    script: Path
    results: dict[str, Any] = field(default_factory=dict)

    def agent_env(self, database_url: str, port: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHRONOS_")}
        env.update(
            CHRONOS_ENV="dev",
            CHRONOS_DATABASE_URL=database_url,
            CHRONOS_HOST="127.0.0.1",
            CHRONOS_PORT=str(port),
            CHRONOS_PORTAL_URL=self.nas_url,
            CHRONOS_CALLBACK_URL=f"http://127.0.0.1:{port}",
            CHRONOS_EXPECTED_AUDIENCE=AUDIENCE,
            CHRONOS_NAS_JWKS_URL=f"{self.nas_url}/.well-known/jwks.json",
            CHRONOS_NAS_TOKEN=NAS_TOKEN,
            CHRONOS_ADMIN_TOKEN=ADMIN_TOKEN,
            CHRONOS_DRAIN_SETTLE_SECONDS="0",
        )
        return env

    @contextmanager
    def agent(self, database_url: str, name: str) -> Iterator[tuple[str, int]]:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with process(
            [CHRONOS, "serve"],
            env=self.agent_env(database_url, port),
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

    def wrk(self, url: str, lines: Path) -> WrkResult:
        time.sleep(1)  # let the previous run's stragglers finish before measuring the next
        return run_wrk(self.script, url, lines, seconds=SECONDS, connections=CONNECTIONS)


# -- jobs ----------------------------------------------------------------------------------------


async def create_jobs(agent_url: str, nas_url: str, count: int, prefix: str) -> dict[str, str]:
    """`count` jobs (`every 1h`, a no-op HTTP target at the stub) through `POST /api/jobs`,
    8 at a time; returns job id -> next_run_at."""
    created: dict[str, str] = {}
    limit = asyncio.Semaphore(8)
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx.AsyncClient(base_url=agent_url, headers=headers, timeout=60) as client:

        async def create(index: int) -> None:
            body = {
                "name": f"{prefix}-{index:05d}",
                "schedule": "every 1h",
                "target": {"type": "http", "url": f"{nas_url}/target", "method": "GET"},
            }
            async with limit:
                response = await client.post("/api/jobs", json=body)
            response.raise_for_status()
            job = response.json()
            created[job["id"]] = job["next_run_at"]

        await asyncio.gather(*(create(i) for i in range(count)))
    return created


def next_runs(agent_url: str) -> dict[str, str]:
    """Every job's current next_run_at, from `GET /api/jobs`."""
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    response = httpx.get(f"{agent_url}/api/jobs", headers=headers, timeout=60)
    response.raise_for_status()
    return {job["id"]: job["next_run_at"] for job in response.json()}


def settled_next_runs(agent_url: str) -> dict[str, str]:
    """`next_runs` once the previous run's stragglers are done: two reads 1 s apart agree."""
    current = next_runs(agent_url)
    while True:
        time.sleep(1)
        latest = next_runs(agent_url)
        if latest == current:
            return latest
        current = latest


def slot(next_run_at: str, hours: int) -> str:
    return (datetime.fromisoformat(next_run_at) + timedelta(hours=hours)).isoformat()


# -- one database --------------------------------------------------------------------------------


def bench_database(bench: Bench, bare_url: str, database_url: str, label: str) -> dict[str, Any]:
    """Distinct fires and duplicates, bare and agent alternately; returns the figures."""
    figures: dict[str, Any] = {"distinct": [], "duplicate": []}
    with bench.agent(database_url, label) as (agent_url, _pid):
        log(f"{label}: creating {JOBS} jobs through POST /api/jobs")
        started = time.perf_counter()
        jobs = asyncio.run(create_jobs(agent_url, bench.nas_url, JOBS, f"bench-{label}"))
        figures["jobs_created_per_s"] = JOBS / (time.perf_counter() - started)
        for r in range(ROUNDS):
            # Each round fires every job's next SLOTS slots, read afresh: a slot the previous
            # round did not reach stays the job's next fire.
            current = sorted(settled_next_runs(agent_url).items())
            lines = bench.write_lines(
                bench.tmp / f"{label}-distinct-{r}.txt",
                [(job_id, slot(nxt, k)) for k in range(SLOTS) for job_id, nxt in current],
            )
            bare = bench.wrk(bare_url, lines)
            agent = bench.wrk(agent_url, lines)
            figures["distinct"].append({"bare": wrk_dict(bare), "agent": wrk_dict(agent)})
            log(
                f"{label} round {r + 1}: bare {bare.per_second():,.0f}/s,"
                f" agent admitted {agent.per_second('202'):,.1f}/s"
                f" (answers {agent.statuses}, p99 {agent.latency_us['99'] / 1000:.0f} ms)"
            )
        # Re-deliveries, each with a fresh token, of the first fire of every job that moved on.
        moved = settled_next_runs(agent_url)
        fired = sorted((job_id, nxt) for job_id, nxt in jobs.items() if moved[job_id] != nxt)
        duplicates = bench.write_lines(bench.tmp / f"{label}-duplicate.txt", fired)
        for r in range(ROUNDS):
            bare = bench.wrk(bare_url, duplicates)
            agent = bench.wrk(agent_url, duplicates)
            figures["duplicate"].append({"bare": wrk_dict(bare), "agent": wrk_dict(agent)})
            log(
                f"{label} duplicates {r + 1}: bare {bare.per_second():,.0f}/s,"
                f" agent {agent.per_second('200'):,.1f}/s (answers {agent.statuses})"
            )
    return figures


def wrk_dict(result: WrkResult) -> dict[str, Any]:
    return {
        "seconds": result.seconds,
        "requests": result.requests,
        "per_second": result.per_second(),
        "admitted_per_second": result.per_second("202"),
        "duplicates_per_second": result.per_second("200"),
        "errors": result.errors,
        "wrapped": result.wrapped,
        "statuses": result.statuses,
        "latency_us": result.latency_us,
    }


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
def fresh_postgres(url: str) -> Iterator[str | None]:
    """A database `bench_<pid>` on the server of `url`, dropped afterwards; None when the
    server is not reachable."""
    name = f"bench_{os.getpid()}"
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


# -- token verification --------------------------------------------------------------------------


async def verify_costs(bench: Bench, count: int = 2000, repeats: int = 5) -> dict[str, float]:
    """Microseconds per token: the agent's `FireTokenVerifier.verify` (JWKS cached) vs a raw
    `jwt.decode` with the same key and checks; the median of `repeats` passes."""
    import jwt

    from app.auth import FireTokenVerifier, JwksCache

    fires = [(f"job-{i}", "2030-01-01T00:00:00+00:00") for i in range(count)]
    tokens = [(job_id, at, bench.token(job_id, at)) for job_id, at in fires]
    document = bench.key.jwks()
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=document))
    public_key = bench.key.private_key.public_key()
    async with httpx.AsyncClient(transport=transport) as http:
        verifier = FireTokenVerifier(
            JwksCache(http, "http://nas.invalid/jwks"), audience=AUDIENCE, issuer=bench.nas_url
        )
        fire_at = datetime.fromisoformat(fires[0][1])
        await verifier.verify(tokens[0][2], job_id=tokens[0][0], fire_at=fire_at)  # warm cache
        agent, raw = [], []
        for _ in range(repeats):
            started = time.perf_counter()
            for job_id, _at, token in tokens:
                await verifier.verify(token, job_id=job_id, fire_at=fire_at)
            agent.append((time.perf_counter() - started) / count * 1e6)
            started = time.perf_counter()
            for _job_id, _at, token in tokens:
                jwt.decode(
                    token, public_key, algorithms=["RS256"], audience=AUDIENCE, issuer=bench.nas_url
                )
            raw.append((time.perf_counter() - started) / count * 1e6)
    return {"agent_us": statistics.median(agent), "raw_us": statistics.median(raw)}


# -- cold start and idle memory -----------------------------------------------------------------


def first_answer(url: str, body: dict[str, str], token: str, ok: tuple[int, ...]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    wait_for(
        lambda: answers(f"{url}/api/cron/fire", method="POST", ok=ok, json=body, headers=headers),
        timeout=60,
        what="the first fire answer",
        step=0.002,
    )


def cold_starts(bench: Bench, database_url: str, jobs: dict[str, str]) -> dict[str, Any]:
    """Exec → first fire answered (bare: its 202; agent: a 2xx to a due job's fire), and RSS
    one second after that answer; alternately, `COLD_RUNS` times each."""
    bare_s, agent_s, bare_rss, agent_rss = [], [], [], []
    fires = sorted(jobs.items())
    for run in range(COLD_RUNS):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        job_id, nxt = fires[run]
        body = {"job_id": job_id, "fire_at": nxt}
        token = bench.token(job_id, nxt)
        started = time.perf_counter()
        with process(
            [PYTHON, "-m", "bench.baseline_app", str(port)],
            cwd=ROOT,
            log_file=bench.tmp / "cold-bare.log",
        ) as proc:
            first_answer(url, body, token, (202,))
            bare_s.append(time.perf_counter() - started)
            time.sleep(1)
            bare_rss.append(rss_mib(proc.pid))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        started = time.perf_counter()
        with process(
            [CHRONOS, "serve"],
            env=bench.agent_env(database_url, port),
            cwd=bench.tmp,
            log_file=bench.tmp / "cold-agent.log",
        ) as proc:
            first_answer(url, body, token, (200, 202))
            agent_s.append(time.perf_counter() - started)
            time.sleep(1)
            agent_rss.append(rss_mib(proc.pid))
        log(f"cold start {run + 1}: bare {bare_s[-1]:.2f} s, agent {agent_s[-1]:.2f} s")
    return {
        "bare_s": bare_s,
        "agent_s": agent_s,
        "bare_rss_mib": bare_rss,
        "agent_rss_mib": agent_rss,
    }


# -- the report ----------------------------------------------------------------------------------


def median_of(rounds: list[dict[str, Any]], side: str, key: str) -> float:
    return statistics.median(r[side][key] for r in rounds)


def row(
    figure: str,
    bare: float | None,
    agent: float | None,
    goal: tuple[str, float],
    fmt: str,
    unit: str = "",
) -> dict[str, Any]:
    """A table row; `goal` is (">=", x): Chronos/bare at least x, or ("<=", x): at most x."""
    ratio = agent / bare if bare and agent is not None else None
    op, limit = goal
    met = None if ratio is None else (ratio >= limit if op == ">=" else ratio <= limit)
    return {
        "figure": figure,
        "bare": None if bare is None else f"{bare:{fmt}}{unit}",
        "chronos": None if agent is None else f"{agent:{fmt}}{unit}",
        "ratio": None if ratio is None else f"{ratio:.3g}{X}",
        "goal": f"{'≥' if op == '>=' else '≤'} {limit}{X}",
        "met": None if met is None else ("yes" if met else "no"),
        "bare_value": bare,
        "chronos_value": agent,
        "ratio_value": ratio,
    }


def not_measured(figure: str, goal: str) -> dict[str, Any]:
    return {
        "figure": figure,
        "bare": "not measured yet",
        "chronos": "not measured yet",
        "ratio": "—",
        "goal": goal,
        "met": "—",
    }


def table_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for label, title in (("sqlite", "SQLite"), ("postgres", "PostgreSQL")):
        data = results.get(label)
        if data is None:
            rows.append(not_measured(f"distinct fires admitted/s, {title}", f"≥ 0.35{X}"))
            rows.append(not_measured(f"duplicate re-deliveries answered/s, {title}", f"≥ 0.5{X}"))
            continue
        distinct, duplicate = data["distinct"], data["duplicate"]
        p99 = statistics.median(r["agent"]["latency_us"]["99"] for r in distinct) / 1e3
        rows.append(
            row(
                f"distinct fires admitted/s, {title} (wrk, {CONNECTIONS} connections;"
                f" Chronos p99 {p99:,.0f} ms)",
                median_of(distinct, "bare", "per_second"),
                median_of(distinct, "agent", "admitted_per_second"),
                (">=", 0.35),
                ",.0f",
                "/s",
            )
        )
        rows.append(
            row(
                f"duplicate re-deliveries answered/s, {title}",
                median_of(duplicate, "bare", "per_second"),
                median_of(duplicate, "agent", "duplicates_per_second"),
                (">=", 0.5),
                ",.0f",
                "/s",
            )
        )
    verify = results["verify"]
    rows.append(
        row(
            "token verify, cached JWKS, vs raw `jwt.decode` (RS256)",
            verify["raw_us"],
            verify["agent_us"],
            ("<=", 1.2),
            ".0f",
            " µs",
        )
    )
    rows.append(
        not_measured(
            "reconcile 10,000 jobs, NAS empty, vs a sequential loop of provisions",
            f"≥ 10{X} faster at 20 ms NAS latency",
        )
    )
    cold = results["cold"]
    rows.append(
        row(
            "idle RSS after startup (1 s after the first answer)",
            statistics.median(cold["bare_rss_mib"]),
            statistics.median(cold["agent_rss_mib"]),
            ("<=", 1.3),
            ".0f",
            " MiB",
        )
    )
    rows.append(
        row(
            f"cold start: exec → first fire answered (median of {COLD_RUNS})",
            statistics.median(cold["bare_s"]),
            statistics.median(cold["agent_s"]),
            ("<=", 1.25),
            ".2f",
            " s",
        )
    )
    rows.append(
        not_measured("100 `every 1s` jobs, lateness p99 (NAS → target)", "p99 ≤ 25 ms, no 503")
    )
    sqlite = results.get("sqlite") or {}
    rows.append(
        {
            "figure": "creating jobs through `POST /api/jobs` (one per call, 8 in flight), SQLite",
            "bare": "—",
            "chronos": f"{sqlite.get('jobs_created_per_s', 0):,.0f} jobs/s",
            "ratio": "—",
            "goal": "≥ 1,000 jobs/s in bulk (`POST /api/jobs/batch`, not built yet)",
            "met": "no",
        }
    )
    return rows


def markdown(results: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    lines = [
        f"Measured {results['when']} on {results['machine']}; NAS stub alone:"
        f" {results['nas_stub_per_s']:,.0f} req/s.",
        "",
        "| figure | bare | Chronos | ratio | goal | met? |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [r["figure"], r["bare"], r["chronos"], r["ratio"], r["goal"], r["met"]]
        lines.append("| " + " | ".join("—" if c is None else str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> bool:
    """Latency percentiles of the distinct-fire runs, bare vs agent, per database."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, axis = plt.subplots(figsize=(7, 4))
    for label in ("sqlite", "postgres"):
        data = results.get(label)
        if data is None:
            continue
        for side in ("bare", "agent"):
            latency = data["distinct"][0][side]["latency_us"]
            points = sorted((float(p), us / 1e3) for p, us in latency.items())
            axis.plot(
                [p for p, _ in points],
                [ms for _, ms in points],
                marker="o",
                label=f"{'Chronos' if side == 'agent' else 'bare'}, {label}",
            )
    axis.set_xlabel("percentile")
    axis.set_ylabel("latency (ms, log)")
    axis.set_yscale("log")
    axis.set_title(f"Fire answer latency under wrk, {CONNECTIONS} connections")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


# -- main ----------------------------------------------------------------------------------------


def main() -> None:
    started = time.monotonic()
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chronos-bench-") as folder:
        tmp = Path(folder)
        key = BenchKey()
        jwks_file = tmp / "jwks.json"
        jwks_file.write_text(json.dumps(key.jwks()))
        nas_port = free_port()
        nas_url = f"http://127.0.0.1:{nas_port}"
        results: dict[str, Any] = {
            "when": datetime.now().astimezone().isoformat(timespec="seconds"),
            "machine": f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}",
            "settings": {
                "jobs": JOBS,
                "rounds": ROUNDS,
                "seconds": SECONDS,
                "connections": CONNECTIONS,
                "cold_runs": COLD_RUNS,
            },
        }
        with process(
            [PYTHON, "-m", "bench.nas_stub", str(nas_port), str(jwks_file)],
            cwd=ROOT,
            log_file=tmp / "nas.log",
        ):
            wait_for(lambda: answers(f"{nas_url}/healthz"), timeout=30, what="the NAS stub")
            bench = Bench(tmp, key, nas_url, write_script(tmp))
            stub = run_wrk_plain(
                f"{nas_url}/api/agent-cron/list", seconds=3, connections=CONNECTIONS
            )
            results["nas_stub_per_s"] = stub
            log(f"NAS stub alone: {stub:,.0f} req/s ({1e6 / stub:.0f} µs per call)")

            sqlite_url = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
            with bench.bare() as (bare_url, _pid):
                results["sqlite"] = bench_database(bench, bare_url, sqlite_url, "sqlite")
                pg = postgres_url()
                if pg is None:
                    log("no PostgreSQL URL (BENCH_DATABASE_URL, PG_TEST_URL): skipped")
                else:
                    with fresh_postgres(pg) as pg_url:
                        if pg_url is not None:
                            results["postgres"] = bench_database(
                                bench, bare_url, pg_url, "postgres"
                            )
            log("token verification")
            results["verify"] = asyncio.run(verify_costs(bench))
            log("cold starts (SQLite)")
            cold_jobs = {}
            with bench.agent(sqlite_url, "cold-setup") as (agent_url, _pid):
                cold_jobs = asyncio.run(create_jobs(agent_url, nas_url, COLD_RUNS, "bench-cold"))
            results["cold"] = cold_starts(bench, sqlite_url, cold_jobs)

    rows = table_rows(results)
    results["table"] = rows
    results["total_seconds"] = time.monotonic() - started
    table = markdown(results, rows)
    (RESULTS / "latest.md").write_text(table)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    if plot(results, RESULTS / "latest.png"):
        log("wrote bench/results/latest.png")
    print()
    print(table)
    log(f"wrote bench/results/latest.md and latest.json in {results['total_seconds']:.0f} s")


if __name__ == "__main__":
    main()

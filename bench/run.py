"""`make bench`: today's figures of the agent against a bare FastAPI + uvicorn app, measured
alternately in one run, on SQLite and (when reachable) PostgreSQL.

Writes `bench/results/latest.md`, `latest.json` and, with matplotlib, `latest.png`.
Knobs (environment): BENCH_DATABASE_URL (PostgreSQL, postgresql+asyncpg://...; PG_TEST_URL
when unset), BENCH_JOBS, BENCH_ROUNDS, BENCH_SECONDS, BENCH_CONNECTIONS, BENCH_COLD_RUNS; and
those of the measurements in their own modules: BENCH_RECONCILE_JOBS, BENCH_NAS_LATENCY_MS,
BENCH_LOOP_SAMPLE (`reconcile.py`), BENCH_BURST_JOBS (`burst.py`), BENCH_LATENESS_JOBS,
BENCH_LATENESS_SECONDS (`lateness.py`).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench import burst, lateness, reconcile
from bench.harness import (
    AUDIENCE,
    CHRONOS,
    PYTHON,
    ROOT,
    Bench,
    answers,
    create_jobs,
    free_port,
    fresh_postgres,
    log,
    next_runs,
    postgres_url,
    process,
    wait_for,
)
from bench.loadgen import WrkResult, run_wrk, run_wrk_plain, write_script
from bench.table import DATABASES, X, not_measured, row, text_row
from bench.tokens import BenchKey

RESULTS = ROOT / "bench" / "results"

JOBS = int(os.environ.get("BENCH_JOBS", "600"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "6"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
COLD_RUNS = int(os.environ.get("BENCH_COLD_RUNS", "5"))
# Fires per job per round: each round fires every job this many times (its next slots, 1 h
# apart), so a round holds JOBS * SLOTS distinct fires.
SLOTS = 2


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


# -- jobs ----------------------------------------------------------------------------------------


def settled_next_runs(agent_url: str) -> dict[str, str]:
    """`next_runs` once the previous run's stragglers are done: two reads 1 s apart agree."""
    current = next_runs(agent_url)
    while True:
        time.sleep(1)
        latest = next_runs(agent_url)
        if latest == current:
            return latest
        current = latest


def wrk(bench: Bench, url: str, lines: Path) -> WrkResult:
    time.sleep(1)  # let the previous run's stragglers finish before measuring the next
    return run_wrk(bench.script, url, lines, seconds=SECONDS, connections=CONNECTIONS)


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
            bare = wrk(bench, bare_url, lines)
            agent = wrk(bench, agent_url, lines)
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
            bare = wrk(bench, bare_url, duplicates)
            agent = wrk(bench, agent_url, duplicates)
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
    # An installed image has its bytecode compiled (pip compiles what it installs); an editable
    # checkout under PYTHONDONTWRITEBYTECODE=1 would compile the app at every start instead.
    subprocess.run(
        [PYTHON, "-m", "compileall", "-q", str(ROOT / "app"), str(ROOT / "bench")],
        check=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": ""},
    )
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
    return float(statistics.median(r[side][key] for r in rounds))


def table_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for label, title in DATABASES:
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
    rows.extend(burst.rows(results))
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
    rows.extend(reconcile.rows(results))
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
    rows.extend(lateness.rows(results))
    sqlite = results.get("sqlite") or {}
    rows.append(
        text_row(
            "creating jobs through `POST /api/jobs` (one per call, 8 in flight), SQLite",
            "—",
            f"{sqlite.get('jobs_created_per_s', 0):,.0f} jobs/s",
            "— (the bulk rows below carry the goal)",
            None,
        )
    )
    rows.extend(reconcile.bulk_rows(results))
    return rows


def markdown(results: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    provisions = results["nas_stub_provisions_per_s"]
    latency = f"{reconcile.LATENCY_MS:g}"
    lines = [
        f"Measured {results['when']} on {results['machine']}; NAS stub alone:"
        f" {results['nas_stub_per_s']:,.0f} list calls/s, {provisions['0']:,.0f} provisions/s;"
        f" {provisions[latency]:,.0f} provisions/s at {latency} ms latency"
        f" ({CONNECTIONS} connections each).",
        "",
        "| figure | bare | Chronos | ratio | goal | met? |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [r["figure"], r["bare"], r["chronos"], r["ratio"], r["goal"], r["met"]]
        lines.append("| " + " | ".join("—" if c is None else str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> bool:
    """Left: latency percentiles of the distinct-fire runs, bare vs agent, per database.
    Right: the lateness CDF of the `every 1s` jobs, per database."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, (axis, right) = plt.subplots(1, 2, figsize=(13, 4.5))
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
    if not lateness.plot_cdf(right, results):
        right.set_axis_off()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


# -- main ----------------------------------------------------------------------------------------


def each_database(what: str, measure: Callable[[str], dict[str, Any] | None]) -> dict[str, Any]:
    """`measure` on SQLite, then PostgreSQL when configured. A failure (the agent may be broken
    for a while by work in progress) is recorded as {"error", "traceback"} in its place and the
    bench goes on."""
    figures: dict[str, Any] = {}
    for label, _title in DATABASES:
        if label == "postgres" and postgres_url() is None:
            continue
        log(f"{what}, {label}")
        try:
            figures[label] = measure(label)
        except Exception as exc:  # any failure of one measurement must not lose the others
            log(f"{what}, {label} failed: {exc!r}")
            figures[label] = {
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(),
            }
    return figures


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
            log(f"NAS stub alone: {stub:,.0f} list calls/s ({1e6 / stub:.0f} µs per call)")
            provisions = reconcile.stub_alone(nas_url, tmp, CONNECTIONS)
            results["nas_stub_provisions_per_s"] = provisions
            for latency, rate in provisions.items():
                log(f"NAS stub alone, {latency} ms latency: {rate:,.0f} provisions/s")

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
                results["burst"] = each_database(
                    "burst", lambda label: burst.measure(bench, bare_url, label)
                )
            results["reconcile"] = each_database(
                "reconcile", lambda label: reconcile.measure(bench, label)
            )
            results["reconcile"]["loop"] = reconcile.loops(nas_url)
            results["lateness"] = each_database(
                "lateness", lambda label: lateness.measure(bench, label)
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

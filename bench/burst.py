"""Burst: `BENCH_BURST_JOBS` (1,000) distinct due fires arriving at once.

The jobs (`every 10s`, created in bulk) are left until every one's next_run_at has passed (the
stub never delivers), so each fire is due; then `bench/burst_client.py`, in its own process,
opens one connection per fire and sends the signed fires all at once, first to the bare app,
then to the agent. Counted: the answers by status (503s especially) and the time from the send
to the last 202 (every fire admitted) and to the last answer.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness import (
    PYTHON,
    ROOT,
    Bench,
    StubControl,
    create_jobs_bulk,
    database,
    log,
    next_runs,
    percentile,
)
from bench.table import DATABASES, X, failed, text_row

JOBS = int(os.environ.get("BENCH_BURST_JOBS", "1000"))
SCHEDULE = "every 10s"


def send_burst(url: str, lines: Path) -> dict[str, Any]:
    """Run the burst client against `url`; its answers summarised."""
    done = subprocess.run(
        [PYTHON, "-m", "bench.burst_client", url, str(lines)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"burst client failed ({done.returncode}): {done.stderr[-500:]}")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    statuses: dict[str, int] = {}
    for status, _seconds in data["answers"]:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    times = [seconds for _status, seconds in data["answers"]]
    admitted = [seconds for status, seconds in data["answers"] if status == 202]
    return {
        "sent": data["sent"],
        "statuses": statuses,
        "admitted": len(admitted),
        "unavailable": statuses.get("503", 0),
        "all_admitted_s": max(admitted) if len(admitted) == data["sent"] else None,
        "last_answer_s": max(times),
        "p50_ms": percentile(times, 50) * 1e3,
        "p99_ms": percentile(times, 99) * 1e3,
    }


def wait_all_due(agent_url: str) -> dict[str, str]:
    """Every job's next_run_at, once all of them have passed."""
    while True:
        current = next_runs(agent_url)
        latest = max(datetime.fromisoformat(at) for at in current.values())
        wait = (latest - datetime.now(UTC)).total_seconds()
        if wait < 0:
            return current
        time.sleep(wait + 0.2)


def measure(bench: Bench, bare_url: str, label: str) -> dict[str, Any] | None:
    """The burst on a fresh database, bare app first; None when the database is missing."""
    stub = StubControl(bench.nas_url)
    with database(bench.tmp, label, "burst") as database_url:
        if database_url is None:
            return None
        stub.reset()  # the agent's startup reconcile must not meet earlier agents' arms
        with bench.agent(database_url, f"burst-{label}") as (url, _pid):
            created = create_jobs_bulk(
                url, bench.nas_url, JOBS, f"burst-{label}", schedule=SCHEDULE
            )
            due = wait_all_due(url)
            if len(due) != JOBS:
                raise RuntimeError(f"{len(due)} jobs listed, {JOBS} created")
            lines = bench.write_lines(bench.tmp / f"{label}-burst.txt", sorted(due.items()))
            bare = send_burst(bare_url, lines)
            time.sleep(1)
            agent = send_burst(url, lines)
            log(
                f"{label}: burst of {JOBS:,}: bare answered all in {bare['last_answer_s']:.2f} s;"
                f" agent answers {agent['statuses']}, last in {agent['last_answer_s']:.2f} s"
            )
    return {"jobs": JOBS, "create_route": created.route, "bare": bare, "agent": agent}


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    data = results.get("burst") or {}
    out = []
    for label, title in DATABASES:
        figures = data.get(label)
        figure = f"burst: {JOBS:,} distinct due fires at once ({JOBS:,} connections), {title}"
        goal = f"0 {X} 503, all {JOBS:,} admitted"
        if figures is None:
            continue
        if "error" in figures:
            out.append(failed(figure, goal, figures))
            continue
        bare, agent = figures["bare"], figures["agent"]
        admitted = agent["all_admitted_s"]
        chronos = (
            f"all admitted in {admitted:.2f} s"
            if admitted is not None
            else f"{agent['admitted']:,} admitted, answers {agent['statuses']}"
        )
        chronos += f", {agent['unavailable']:,} {X} 503 (p99 {agent['p99_ms']:,.0f} ms)"
        ratio = f"{admitted / bare['last_answer_s']:.3g}{X}" if admitted is not None else "—"
        met = agent["unavailable"] == 0 and agent["admitted"] == agent["sent"]
        out.append(
            text_row(
                figure, f"all answered in {bare['last_answer_s']:.2f} s", chronos, goal, met, ratio
            )
        )
    return out

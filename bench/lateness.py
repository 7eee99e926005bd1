"""Lateness: `BENCH_LATENESS_JOBS` (100) jobs `every 1s` for `BENCH_LATENESS_SECONDS` (25) s,
NAS played by the project's emulator (`chronos nas-emulator`), which calls the agent's
`POST /api/cron/fire` at each fire_at.

Each job's target is `bench/receiver.py`, which records when each run's request arrives. The
request's `Idempotency-Key` is `<job_id>:<fire_at>`, so lateness = arrival - fire_at, per fire
(first attempt), for the fires due in the window (after a warm-up of WARMUP s). Fires due in the
window that never reached the target count as missing. The emulator's delivery log
(`GET /_emulator/deliveries`) gives the agent's answers (503s counted over the whole run) and the
emulator's own delay (attempt start - fire_at), shown in the bare column: what NAS adds, including
any wait for one of its 32 delivery slots while the agent is slow to answer.
"""

from __future__ import annotations

import os
import re
import time
from datetime import datetime
from typing import Any

import httpx

from bench.harness import (
    CHRONOS,
    INSTANCE_ID,
    NAS_TOKEN,
    PYTHON,
    ROOT,
    Bench,
    answers,
    create_jobs_bulk,
    database,
    free_port,
    log,
    percentile,
    process,
    wait_for,
)
from bench.table import DATABASES, X, failed, text_row

JOBS = int(os.environ.get("BENCH_LATENESS_JOBS", "100"))
SECONDS = int(os.environ.get("BENCH_LATENESS_SECONDS", "25"))
WARMUP = 3.0  # seconds after creation before the window opens: the first arms settle
DRAIN = 5.0  # seconds after the window for its last fires to arrive
GOAL_P99_MS = 25.0
_KEY_FIRE_AT = re.compile(r":(\d{4}-\d\d-\d\dT[\d:.]+(?:\+00:00|Z))$")


def emulator_env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHRONOS_", "NAS_EMULATOR_"))}
    env.update(
        NAS_EMULATOR_PUBLIC_URL=url,
        NAS_EMULATOR_AGENT_TOKEN=NAS_TOKEN,
        NAS_EMULATOR_INSTANCE_ID=INSTANCE_ID,
    )
    return env


def epoch(instant: str) -> float:
    return datetime.fromisoformat(instant).timestamp()


def run_jobs(bench: Bench, database_url: str, label: str) -> dict[str, Any]:
    """Receiver, emulator and agent up; the jobs run; what the receiver and the emulator saw."""
    receiver_port, emulator_port = free_port(), free_port()
    receiver_url = f"http://127.0.0.1:{receiver_port}"
    emulator_url = f"http://127.0.0.1:{emulator_port}"
    with (
        process(
            [PYTHON, "-m", "bench.receiver", str(receiver_port)],
            cwd=ROOT,
            log_file=bench.tmp / f"receiver-{label}.log",
        ),
        process(
            [CHRONOS, "nas-emulator", "--port", str(emulator_port)],
            env=emulator_env(emulator_url),
            cwd=bench.tmp,
            log_file=bench.tmp / f"emulator-{label}.log",
        ),
    ):
        wait_for(lambda: answers(f"{receiver_url}/records"), timeout=30, what="the receiver")
        wait_for(lambda: answers(f"{emulator_url}/healthz"), timeout=60, what="the emulator")
        with bench.agent(database_url, f"lateness-{label}", nas_url=emulator_url) as (url, _pid):
            created = create_jobs_bulk(
                url,
                emulator_url,
                JOBS,
                f"lateness-{label}",
                schedule="every 1s",
                target_url=f"{receiver_url}/hit",
            )
            opens = time.time() + WARMUP
            closes = opens + SECONDS
            log(f"{label}: {JOBS} jobs `every 1s` created ({created.route}); {SECONDS} s window")
            time.sleep(closes + DRAIN - time.time())
            records = httpx.get(f"{receiver_url}/records", timeout=30).json()["records"]
            deliveries = httpx.get(f"{emulator_url}/_emulator/deliveries", timeout=30).json()
    return {
        "opens": opens,
        "closes": closes,
        "records": records,
        "deliveries": deliveries["deliveries"],
    }


def summarise(seen: dict[str, Any]) -> dict[str, Any]:
    """Lateness per fire due in the window, missing fires, the agent's answers to NAS."""
    opens, closes = seen["opens"], seen["closes"]
    first: dict[str, float] = {}  # dedup key -> first arrival
    attempts = 0
    for key, _attempt, arrived in seen["records"]:
        match = _KEY_FIRE_AT.search(key)
        if match is None or not opens <= epoch(match.group(1)) < closes:
            continue
        attempts += 1
        first[key] = min(arrived, first.get(key, arrived))
    lateness = sorted(
        (arrived - epoch(_KEY_FIRE_AT.search(key).group(1))) * 1e3  # type: ignore[union-attr]
        for key, arrived in first.items()
    )
    statuses: dict[str, int] = {}
    nas_late = []
    for delivery in seen["deliveries"]:
        status = str(delivery["status_code"] or delivery["error"])
        statuses[status] = statuses.get(status, 0) + 1
        due = epoch(delivery["fire_at"])
        if delivery["attempt"] == 1 and opens <= due < closes:
            nas_late.append((epoch(delivery["delivered_at"]) - due) * 1e3)
    expected = JOBS * SECONDS
    summary: dict[str, Any] = {
        "jobs": JOBS,
        "seconds": SECONDS,
        "expected": expected,
        "arrived": len(first),
        "missing": expected - len(first),
        "repeated_requests": attempts - len(first),
        "answers_to_nas": statuses,
        "unavailable": statuses.get("503", 0),
        "lateness_ms": [round(ms, 2) for ms in lateness],
    }
    if lateness:
        summary.update(
            p50_ms=percentile(lateness, 50),
            p99_ms=percentile(lateness, 99),
            max_ms=lateness[-1],
        )
    if nas_late:
        summary.update(nas_p50_ms=percentile(nas_late, 50), nas_p99_ms=percentile(nas_late, 99))
    return summary


def measure(bench: Bench, label: str) -> dict[str, Any] | None:
    with database(bench.tmp, label, "lateness") as database_url:
        if database_url is None:
            return None
        summary = summarise(run_jobs(bench, database_url, label))
    log(
        f"{label}: lateness p50 {summary.get('p50_ms', float('nan')):.1f} ms,"
        f" p99 {summary.get('p99_ms', float('nan')):.1f} ms,"
        f" max {summary.get('max_ms', float('nan')):.1f} ms; {summary['arrived']:,} of"
        f" {summary['expected']:,} fires ran; answers to NAS {summary['answers_to_nas']}"
    )
    return summary


# -- the table and the plot ----------------------------------------------------------------------


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    data = results.get("lateness") or {}
    out = []
    for label, title in DATABASES:
        figures = data.get(label)
        figure = (
            f"{JOBS} `every 1s` jobs, lateness NAS → target (receiver arrival - fire_at),"
            f" {SECONDS} s, {title}"
        )
        goal = f"p99 ≤ {GOAL_P99_MS:g} ms, no 503"
        if figures is None:
            continue
        if "error" in figures:
            out.append(failed(figure, goal, figures))
            continue
        ran = f"{figures['arrived']:,} of {figures['expected']:,} fires ran"
        if figures["arrived"]:
            chronos = (
                f"p50 {figures['p50_ms']:,.1f} / p99 {figures['p99_ms']:,.1f} /"
                f" max {figures['max_ms']:,.0f} ms; {figures['unavailable']:,} {X} 503; {ran}"
            )
        else:
            chronos = f"{ran}; {figures['unavailable']:,} {X} 503"
        bare = (
            f"NAS send - fire_at: p50 {figures['nas_p50_ms']:.1f} /"
            f" p99 {figures['nas_p99_ms']:.1f} ms"
            if "nas_p99_ms" in figures
            else "—"
        )
        met = (
            figures["missing"] == 0
            and figures["unavailable"] == 0
            and figures.get("p99_ms", float("inf")) <= GOAL_P99_MS
        )
        out.append(text_row(figure, bare, chronos, goal, met))
    return out


def plot_cdf(axis: Any, results: dict[str, Any]) -> bool:
    """The lateness CDF per database on `axis`; False when there is nothing to draw."""
    data = results.get("lateness") or {}
    from matplotlib.ticker import NullFormatter

    drawn = False
    for label, title in DATABASES:
        figures = data.get(label) or {}
        samples = figures.get("lateness_ms") or []
        if not samples:
            continue
        n = len(samples)
        axis.step(samples, [(i + 1) / n for i in range(n)], where="post", label=title)
        drawn = True
    if drawn:
        axis.axvline(GOAL_P99_MS, color="grey", linestyle="--", label=f"{GOAL_P99_MS:g} ms goal")
        axis.axhline(0.99, color="grey", linestyle=":", linewidth=0.8)
        axis.set_xscale("log")
        axis.xaxis.set_minor_formatter(NullFormatter())  # decades only: no overlapping labels
        axis.set_xlabel("lateness, receiver arrival - fire_at (ms, log)")
        axis.set_ylabel("fraction of fires")
        axis.set_title(f"{JOBS} `every 1s` jobs, emulator as NAS")
        axis.legend()
    return drawn

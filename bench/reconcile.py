"""Reconcile against an empty NAS vs a sequential loop of provisions, and bulk job creation.

`BENCH_RECONCILE_JOBS` (10,000) jobs `every 1h` (no fire comes during the measurement) are
created through `POST /api/jobs/batch` (that creation is the bulk-creation figure) and armed at
the NAS stub. Then, with the stub emptied before each: `POST /api/reconcile` timed with no added
NAS latency and with `BENCH_NAS_LATENCY_MS` (20) per call, then once more with NAS holding every
arm (steady state). Provisions are counted at the stub.

The sequential loop is the naive way to do the same: one provision after another to the same
stub, over one keep-alive connection. It does not depend on the database, so it runs once; at a
latency it runs `BENCH_LOOP_SAMPLE` (1,000) calls and is scaled to the job count (a sequential
loop is linear by construction), without latency all of them.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx

from bench.harness import (
    ADMIN_HEADERS,
    NAS_TOKEN,
    Bench,
    StubControl,
    create_jobs_bulk,
    database,
    log,
    wait_for,
)
from bench.loadgen import run_wrk_plain
from bench.table import DATABASES, X, failed, row, text_row

JOBS = int(os.environ.get("BENCH_RECONCILE_JOBS", "10000"))
LATENCY_MS = float(os.environ.get("BENCH_NAS_LATENCY_MS", "20"))
LOOP_SAMPLE = int(os.environ.get("BENCH_LOOP_SAMPLE", "1000"))
STEADY_GOAL_S = 0.5
FIRE_AT = "2030-01-01T00:00:00+00:00"

_PROVISION_LUA = r"""
local n = 0
request = function()
  n = n + 1
  local body = '{"job_id":"stub-alone-' .. n .. '","fire_at":"2030-01-01T00:00:00+00:00",' ..
    '"agent_callback_url":"http://127.0.0.1:1","dedup_key":"stub-alone-' .. n .. '"}'
  return wrk.format("POST", "/api/agent-cron/provision",
    {["Content-Type"] = "application/json"}, body)
end
"""


def stub_alone(nas_url: str, tmp: Path, connections: int) -> dict[str, float]:
    """The stub's own provision rate under wrk, without and with the latency."""
    script = tmp / "provision.lua"
    script.write_text(_PROVISION_LUA)
    stub = StubControl(nas_url)
    rates = {}
    for latency in (0.0, LATENCY_MS):
        stub.latency(latency)
        url = f"{nas_url}/api/agent-cron/provision"
        rates[f"{latency:g}"] = run_wrk_plain(
            url, seconds=2, connections=connections, script=script
        )
    stub.latency(0)
    stub.reset()
    return rates


def sequential_loop(nas_url: str, latency_ms: float) -> dict[str, Any]:
    """Seconds for JOBS provisions sent one after another (a sample, scaled, at a latency)."""
    stub = StubControl(nas_url)
    stub.reset()
    stub.latency(latency_ms)
    calls = JOBS if latency_ms == 0 else min(JOBS, LOOP_SAMPLE)
    headers = {"Authorization": f"Bearer {NAS_TOKEN}"}
    with httpx.Client(base_url=nas_url, headers=headers, timeout=30) as client:
        client.get("/healthz")  # connect before timing
        started = time.perf_counter()
        for i in range(calls):
            job_id = f"loop-{i:05d}"
            body = {
                "job_id": job_id,
                "fire_at": FIRE_AT,
                "agent_callback_url": "http://127.0.0.1:1",
                "dedup_key": f"{job_id}:{FIRE_AT}",
            }
            client.post("/api/agent-cron/provision", json=body).raise_for_status()
        elapsed = time.perf_counter() - started
    provisions = stub.stats()["provision"]
    stub.latency(0)
    stub.reset()
    return {
        "latency_ms": latency_ms,
        "calls": calls,
        "provisions_counted": provisions,
        "per_call_ms": elapsed / calls * 1e3,
        "seconds": elapsed / calls * JOBS,
        "scaled": calls != JOBS,
    }


def loops(nas_url: str) -> dict[str, Any]:
    result = {}
    for latency in (0.0, LATENCY_MS):
        loop = sequential_loop(nas_url, latency)
        result[f"{latency:g}"] = loop
        log(
            f"sequential loop, {latency:g} ms NAS latency: {loop['per_call_ms']:.2f} ms per"
            f" provision, {loop['seconds']:.1f} s for {JOBS:,}"
            + (f" (scaled from {loop['calls']:,} calls)" if loop["scaled"] else "")
        )
    return result


def timed_reconcile(agent_url: str, stub: StubControl, headers: dict[str, str]) -> dict[str, Any]:
    """`POST /api/reconcile` timed; provisions and lists counted at the stub meanwhile."""
    before = stub.stats()
    started = time.perf_counter()
    response = httpx.post(f"{agent_url}/api/reconcile", headers=headers, timeout=1800)
    elapsed = time.perf_counter() - started
    after = stub.stats()
    response.raise_for_status()
    report = response.json()
    return {
        "seconds": elapsed,
        "provisions": after["provision"] - before["provision"],
        "cancels": after["cancel"] - before["cancel"],
        "list_calls": after["list"] - before["list"],
        "armed_at_nas": after["armed"],
        "report": {
            "ok": report.get("ok"),
            "armed": len(report.get("armed") or []),
            "in_sync": report.get("in_sync"),
            "pending": report.get("pending"),
            "errors": len(report.get("errors") or []),
            "missed": len(report.get("missed") or []),
            "list_error": report.get("list_error"),
        },
    }


def wait_armed(stub: StubControl, count: int, *, stall: float = 25.0) -> int:
    """Wait until the stub holds `count` arms, or the count stops moving for `stall` s (more
    than two of the agent's outbox drains, 10 s apart by default: arms creation left to the
    outbox must be done before the measured reconcile, or it would skip their jobs)."""
    last, still_since = -1, time.monotonic()
    while True:
        armed = stub.stats()["armed"]
        if armed >= count:
            return armed
        if armed != last:
            last, still_since = armed, time.monotonic()
        elif time.monotonic() - still_since > stall:
            log(f"only {armed:,} of {count:,} jobs armed at the stub after creation")
            return armed
        time.sleep(0.2)


def measure(bench: Bench, label: str) -> dict[str, Any] | None:
    """Bulk creation and the three reconciles on a fresh database; None when it is missing."""
    stub = StubControl(bench.nas_url)
    with database(bench.tmp, label, "reconcile") as database_url:
        if database_url is None:
            return None
        stub.latency(0)
        stub.reset()  # the agent's startup reconcile must not meet earlier agents' arms
        # No periodic reconcile: the measured one must not queue behind (or race) another.
        agent = bench.agent(database_url, f"reconcile-{label}", reconcile_interval_seconds="0")
        with agent as (url, _pid):
            log(f"{label}: creating {JOBS:,} jobs (batches of 1,000) for the reconcile")
            created = create_jobs_bulk(url, bench.nas_url, JOBS, f"reconcile-{label}")
            log(
                f"{label}: {len(created.jobs):,} jobs created ({created.route}) in"
                f" {created.seconds:.1f} s: {created.per_second:,.0f} jobs/s"
            )
            armed_after_create = wait_armed(stub, JOBS)
            figures: dict[str, Any] = {
                "jobs": len(created.jobs),
                "create": {
                    "route": created.route,
                    "batch_status": created.batch_status,
                    "seconds": created.seconds,
                    "per_second": created.per_second,
                    "armed_after_create": armed_after_create,
                },
            }
            for latency in (0.0, LATENCY_MS):
                stub.reset()
                stub.latency(latency)
                wait_for(lambda: stub.stats()["armed"] == 0, timeout=5, what="an empty stub")
                result = timed_reconcile(url, stub, ADMIN_HEADERS)
                figures[f"empty_{latency:g}"] = result
                log(
                    f"{label}: reconcile, NAS empty, {latency:g} ms: {result['seconds']:.2f} s,"
                    f" {result['provisions']:,} provisions ({result['report']})"
                )
            result = timed_reconcile(url, stub, ADMIN_HEADERS)
            figures["steady"] = {**result, "latency_ms": LATENCY_MS}
            log(
                f"{label}: reconcile, steady state, {LATENCY_MS:g} ms: {result['seconds']:.2f} s,"
                f" {result['provisions']:,} provisions"
            )
            stub.latency(0)
            stub.reset()
    return figures


# -- the table -----------------------------------------------------------------------------------


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    data = results.get("reconcile") or {}
    loop = data.get("loop") or {}
    out = []
    for label, title in DATABASES:
        figures = data.get(label)
        empty = f"reconcile {JOBS:,} jobs, NAS empty, vs a sequential loop of provisions"
        if figures is None:
            continue
        if "error" in figures:
            out.append(failed(f"{empty}, {title}", f"≤ {1 / 10:g}{X}", figures))
            continue
        for latency, goal, text in (
            (LATENCY_MS, 0.1, f"≤ 0.1{X} (≥ 10{X} faster)"),
            (0.0, 1.0, f"≤ 1{X} (not slower)"),
        ):
            key = f"{latency:g}"
            run = figures[f"empty_{key}"]
            sample = loop.get(key, {})
            scaled = f", loop scaled from {sample['calls']:,} calls" if sample.get("scaled") else ""
            complete = run["provisions"] >= figures["jobs"]
            r = row(
                f"{empty}, {latency:g} ms NAS latency, {title}"
                f" ({run['provisions']:,} provisions{scaled})",
                sample.get("seconds"),
                run["seconds"],
                ("<=", goal),
                ",.2f",
                " s",
                goal_text=text,
            )
            if not complete:
                r["met"] = "no"
            out.append(r)
        steady = figures["steady"]
        met = steady["provisions"] == 0 and steady["seconds"] <= STEADY_GOAL_S
        out.append(
            text_row(
                f"reconcile {JOBS:,} jobs, steady state (NAS holds every arm),"
                f" {steady['latency_ms']:g} ms NAS latency, {title}",
                "—",
                f"{steady['seconds']:.2f} s, {steady['provisions']:,} provisions",
                f"0 provisions in ≤ {STEADY_GOAL_S} s",
                met,
            )
        )
    return out


def bulk_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    data = results.get("reconcile") or {}
    out = []
    for label, title in DATABASES:
        figures = data.get(label)
        figure = f"creating jobs through `POST /api/jobs/batch` (1,000 per call), {title}"
        goal = "≥ 1,000 jobs/s"
        if figures is None:
            continue
        if "error" in figures:
            out.append(failed(figure, goal, figures))
            continue
        create = figures["create"]
        if create["route"] != "batch":
            chronos = (
                f"route answered {create['batch_status']}; one per call (16 in flight):"
                f" {create['per_second']:,.0f} jobs/s"
            )
            out.append(text_row(figure, "—", chronos, goal, False))
            continue
        chronos = f"{create['per_second']:,.0f} jobs/s ({figures['jobs']:,} jobs)"
        out.append(text_row(figure, "—", chronos, goal, create["per_second"] >= 1000))
    return out

"""What must hold after the chaos, judged from what the test observed.

- every fire NAS got a 2xx admission for (final answer `accepted`, `buffered`, or `duplicate`
  of a fire that was to run) ran at least once: a line in the run file;
- a fire ran twice only if a replica it ran on died by our hand between the two runs;
- every scheduled job has exactly one arm at NAS, at its `next_run_at` (nothing else is armed);
- the delivery log holds no 5xx but 503;
- no fire is left `running` with an expired lease, and the outboxes drained.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

from tests.chaos.faults import Applied, Kill

FireKey = tuple[str, datetime]  # (job_id, fire_at as an aware instant)
ADMITTED = {"accepted", "buffered", "duplicate"}
NOT_RUN = {"missed", "skipped"}  # a duplicate of such a fire was never meant to run
SLACK_SECONDS = 0.5  # clock resolution between the run file's `date` and our kill records
SHOWN = 10  # at most this many examples per problem


@dataclass(frozen=True)
class RunLine:
    """One run of a target: `$CHRONOS_JOB_ID $CHRONOS_FIRE_AT $PPID $(date +%s.%N)`."""

    job_id: str
    fire_at: datetime
    pid: int  # the replica that ran it
    at: float  # wall clock when it ran

    @property
    def key(self) -> FireKey:
        return (self.job_id, self.fire_at)


def read_run_lines(path: Path) -> list[RunLine]:
    if not path.exists():
        return []
    lines = []
    for number, text in enumerate(path.read_text().splitlines(), 1):
        try:
            job_id, fire_at, pid, at = text.split()
            lines.append(RunLine(job_id, datetime.fromisoformat(fire_at), int(pid), float(at)))
        except ValueError as exc:
            raise AssertionError(f"{path}:{number}: not a run line: {text!r}") from exc
    return lines


def fire_key(job_id: str, fire_at: str) -> FireKey:
    return (job_id, datetime.fromisoformat(fire_at))


def describe(key: FireKey) -> str:
    return f"job {key[0]} fire_at {key[1].isoformat()}"


def answer_status(delivery: dict[str, Any]) -> tuple[str | None, str | None]:
    """(`status`, `run_status`) of a fire answer body, when it is JSON."""
    try:
        body = json.loads(delivery.get("response_body") or "")
    except ValueError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    return body.get("status"), body.get("run_status")


def must_have_run(delivery: dict[str, Any]) -> bool:
    code = delivery["status_code"]
    if code is None or not 200 <= code < 300:
        return False
    status, run_status = answer_status(delivery)
    if status == "duplicate":
        return run_status not in NOT_RUN
    return status in ADMITTED


@dataclass
class Observations:
    """Everything the checks look at, gathered once the deployment is quiet."""

    instance_id: str
    deliveries: list[dict[str, Any]]  # the emulator's delivery log, oldest first
    delivery_log_full: bool
    runs: list[RunLine]
    kills: list[Kill]
    faults: list[Applied]
    jobs: list[dict[str, Any]]  # GET /api/jobs
    arms: list[dict[str, Any]]  # GET /_emulator/arms
    expired_running: list[dict[str, Any]]  # fires `running` with lease_expires_at < now()
    open_fires: list[dict[str, Any]]  # fires still running or buffered
    outbox: list[dict[str, Any]]  # operations left in the outbox
    drain_seconds: float


@dataclass
class Report:
    seed: int
    window: float
    faults: int
    fires: int = 0
    delivered_fires: int = 0
    lost: list[str] = field(default_factory=list)
    twice_causes: Counter[str] = field(default_factory=Counter)
    unexplained_twice: list[str] = field(default_factory=list)
    stranded: list[str] = field(default_factory=list)
    count_503: int = 0
    other_5xx: list[str] = field(default_factory=list)
    expired_running: list[str] = field(default_factory=list)
    outbox_left: list[str] = field(default_factory=list)
    open_fires: int = 0
    harness: list[str] = field(default_factory=list)

    def summary(self) -> str:
        twice = sum(self.twice_causes.values()) + len(self.unexplained_twice)
        causes = dict(self.twice_causes)
        if self.unexplained_twice:
            causes["no kill to explain it"] = len(self.unexplained_twice)
        why = ", ".join(f"{cause}: {n}" for cause, n in sorted(causes.items()))
        return (
            f"chaos seed={self.seed} window={self.window:g}s faults={self.faults}: "
            f"fires={self.fires} lost={len(self.lost)} twice={twice}"
            + (f" ({why})" if why else "")
            + f" stranded={len(self.stranded)} 503s={self.count_503}"
            + f" | other 5xx={len(self.other_5xx)}"
            + f" expired running={len(self.expired_running)}"
            + f" outbox left={len(self.outbox_left)}"
        )

    def problems(self) -> list[str]:
        found = []
        for title, items in (
            ("harness", self.harness),
            ("fires NAS got a 2xx admission for that never ran", self.lost),
            (
                "fires that ran twice with no kill of their replica in between",
                self.unexplained_twice,
            ),
            ("jobs without exactly one arm at NAS at their next_run_at", self.stranded),
            ("5xx answers other than 503 in the delivery log", self.other_5xx),
            ("fires left running with an expired lease", self.expired_running),
            ("outbox operations never acknowledged", self.outbox_left),
        ):
            if items:
                shown = "\n    ".join(items[:SHOWN])
                more = f"\n    … and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
                found.append(f"{title} ({len(items)}):\n    {shown}{more}")
        return found


def judge(seen: Observations, report: Report) -> Report:
    _check_runs(seen, report)
    _check_arms(seen, report)
    for delivery in seen.deliveries:
        code = delivery["status_code"]
        if code == 503:
            report.count_503 += 1
        elif code is not None and code >= 500:
            report.other_5xx.append(
                f"{describe(fire_key(delivery['job_id'], delivery['fire_at']))} attempt "
                f"{delivery['attempt']}: HTTP {code} {delivery['response_body']!r}"
            )
    report.expired_running = [
        f"job {row['job_id']} fire_at {row['fire_at'].isoformat()} attempt {row['attempt']}: "
        f"leased to {row['lease_owner']} until {row['lease_expires_at'].isoformat()}"
        for row in seen.expired_running
    ]
    report.outbox_left = [
        f"job {row['job_id']}: {row['op']} after {row['attempts']} attempt(s), "
        f"last error {row['last_error']!r} (waited {seen.drain_seconds:g}s)"
        for row in seen.outbox
    ]
    report.open_fires = len(seen.open_fires)
    if seen.delivery_log_full:
        report.harness.append(
            "the emulator's delivery log is full (its oldest attempts are dropped): "
            "shorten CHAOS_SECONDS"
        )
    if report.fires == 0:
        report.harness.append("no fire was admitted at all: the deployment never worked")
    return report


def _check_runs(seen: Observations, report: Report) -> None:
    final: dict[FireKey, dict[str, Any]] = {}
    for delivery in seen.deliveries:  # oldest first: the last one is the final answer
        final[fire_key(delivery["job_id"], delivery["fire_at"])] = delivery
    runs: defaultdict[FireKey, list[RunLine]] = defaultdict(list)
    for line in seen.runs:
        runs[line.key].append(line)

    report.delivered_fires = len(final)
    for key, delivery in sorted(final.items()):
        if must_have_run(delivery):
            report.fires += 1
            if key not in runs:
                status, _ = answer_status(delivery)
                report.lost.append(
                    f"{describe(key)}: final answer HTTP {delivery['status_code']} {status} "
                    f"(attempt {delivery['attempt']}), no run"
                )

    for key, lines in sorted(runs.items()):
        if len(lines) < 2:
            continue
        lines.sort(key=lambda line: line.at)
        causes = [_kill_between(seen.kills, first, second) for first, second in pairwise(lines)]
        if all(cause is not None for cause in causes):
            report.twice_causes.update(cause for cause in causes if cause is not None)
        else:
            runs_text = ", ".join(f"pid {line.pid} at {line.at:.3f}" for line in lines)
            meanwhile = [
                f"{done.fault.describe()} at {done.started_at:.3f}"
                for done in seen.faults
                if done.started_at <= lines[-1].at and done.ended_at >= lines[0].at
            ]
            report.unexplained_twice.append(
                f"{describe(key)}: ran {len(lines)} times: {runs_text}"
                + (f"; faults meanwhile: {', '.join(meanwhile)}" if meanwhile else "")
            )


def _kill_between(kills: list[Kill], first: RunLine, second: RunLine) -> str | None:
    """Why `second` may repeat `first`: the replica that ran `first` died in between."""
    for kill in kills:
        if (
            kill.pid == first.pid
            and first.at <= kill.exited_at + SLACK_SECONDS
            and kill.sent_at <= second.at + SLACK_SECONDS
        ):
            return kill.cause
    return None


def _check_arms(seen: Observations, report: Report) -> None:
    arms = {arm["job_id"]: arm for arm in seen.arms if arm["instance_id"] == seen.instance_id}
    for job in sorted(seen.jobs, key=lambda job: str(job["id"])):
        arm = arms.pop(job["id"], None)
        wanted = job["next_run_at"]
        if job["state"] != "scheduled" or wanted is None:
            report.stranded.append(
                f"job {job['id']}: state {job['state']}, next_run_at {wanted} (it never ends)"
                + (f"; NAS holds an arm at {arm['fire_at_utc']}" if arm else "")
            )
        elif arm is None:
            report.stranded.append(
                f"job {job['id']}: next_run_at {wanted}, nothing armed at NAS"
                + (f" (nas_pending {job.get('nas_pending')})" if job.get("nas_pending") else "")
            )
        elif datetime.fromisoformat(arm["fire_at_utc"]) != datetime.fromisoformat(wanted):
            report.stranded.append(
                f"job {job['id']}: next_run_at {wanted}, NAS holds {arm['fire_at_utc']}"
            )
    for job_id, arm in sorted(arms.items()):
        report.stranded.append(f"NAS holds an arm for unknown job {job_id} at {arm['fire_at_utc']}")

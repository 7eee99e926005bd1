"""The seeded fault schedule and the hand that applies it, one fault at a time.

`plan_faults(seed, window, replicas)` is a pure function of its arguments: the same seed gives
the same faults, in the same order, at the same planned offsets. A fault that takes longer than
the gap to the next one (a slow restart) delays that one; it never overlaps it.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from tests.chaos.deployment import Deployment

GAP_SECONDS = (10.0, 30.0)  # between the starts of two faults
OUTAGE_SECONDS = (3.0, 10.0)  # PostgreSQL down, NAS failing or holding
REPLICA_DOWN_SECONDS = (1.0, 5.0)  # between a replica's death and its restart
SIGTERM_GRACE_SECONDS = 30.0  # then kill -9


class FaultKind(StrEnum):
    KILL = "kill -9"
    TERM = "SIGTERM"
    POSTGRES_DOWN = "postgres down"
    NAS_UNAVAILABLE = "NAS answers 503"
    NAS_HOLDS_PROVISION = "NAS holds provision"


@dataclass(frozen=True)
class Fault:
    at: float  # planned start, seconds into the fault window
    kind: FaultKind
    seconds: float  # how long the outage lasts; for a replica, how long it stays down
    replica: int | None = None

    def describe(self) -> str:
        target = f" replica-{self.replica}" if self.replica is not None else ""
        return f"{self.kind}{target} for {self.seconds:.1f}s"


def plan_faults(seed: int, window: float, replicas: int) -> list[Fault]:
    """The faults starting within `window` seconds, every 10 to 30 s."""
    rng = random.Random(f"chronos-chaos-faults:{seed}")
    faults: list[Fault] = []
    at = rng.uniform(*GAP_SECONDS)
    while at < window:
        kind = rng.choice(list(FaultKind))
        if kind in (FaultKind.KILL, FaultKind.TERM):
            fault = Fault(
                round(at, 1),
                kind,
                round(rng.uniform(*REPLICA_DOWN_SECONDS), 1),
                replica=rng.randrange(replicas),
            )
        else:
            fault = Fault(round(at, 1), kind, round(rng.uniform(*OUTAGE_SECONDS), 1))
        faults.append(fault)
        at += rng.uniform(*GAP_SECONDS)
    return faults


@dataclass(frozen=True)
class Kill:
    """A replica process that died by our hand; times are wall-clock (`time.time()`)."""

    replica: int
    pid: int
    cause: str  # "kill -9", "SIGTERM", or "SIGTERM, then kill -9"
    sent_at: float
    exited_at: float


@dataclass(frozen=True)
class Applied:
    """A fault as it happened; times are wall-clock (`time.time()`)."""

    fault: Fault
    started_at: float
    ended_at: float
    outcome: str


@dataclass
class FaultInjector:
    deployment: Deployment
    say: Callable[[str], None]
    kills: list[Kill] = field(default_factory=list)
    applied: list[Applied] = field(default_factory=list)

    def run(self, plan: list[Fault], window: float) -> None:
        """Apply `plan`, each fault at its planned offset (or as soon as the last one ended),
        and return when the window has passed and the last fault is over."""
        opened = time.monotonic()
        for fault in plan:
            time.sleep(max(opened + fault.at - time.monotonic(), 0))
            self.deployment.check_alive()
            offset, started_at = time.monotonic() - opened, time.time()
            outcome = self.apply(fault)
            self.applied.append(Applied(fault, started_at, time.time(), outcome))
            self.say(f"+{offset:6.1f}s {fault.describe()}: {outcome}")
        time.sleep(max(opened + window - time.monotonic(), 0))

    def apply(self, fault: Fault) -> str:
        if fault.kind in (FaultKind.KILL, FaultKind.TERM):
            assert fault.replica is not None
            return self._kill_and_restart(fault)
        if fault.kind is FaultKind.POSTGRES_DOWN:
            cluster = self.deployment.cluster
            cluster.stop("fast")
            time.sleep(fault.seconds)
            cluster.start()
            return "stopped (fast), started again"
        nas = self.deployment.nas
        if fault.kind is FaultKind.NAS_UNAVAILABLE:
            nas.faults(agent_cron="unavailable", seconds=fault.seconds)
        else:
            nas.faults(agent_cron="hold", calls=["provision"], seconds=fault.seconds)
        time.sleep(fault.seconds)
        nas.faults()  # cleared (it has expired by now anyway)
        return "over"

    def _kill_and_restart(self, fault: Fault) -> str:
        assert fault.replica is not None
        replica = self.deployment.replicas[fault.replica]
        pid = replica.pid
        sent_at = time.time()
        if fault.kind is FaultKind.KILL:
            replica.signal(signal.SIGKILL)
            replica.wait_exit(timeout=10)
            cause = "kill -9"
        else:
            replica.signal(signal.SIGTERM)
            cause = "SIGTERM"
            if not replica.wait_exit(timeout=SIGTERM_GRACE_SECONDS):
                replica.signal(signal.SIGKILL)
                replica.wait_exit(timeout=10)
                cause = f"SIGTERM, then kill -9 after {SIGTERM_GRACE_SECONDS:g}s"
        exited_at = time.time()
        self.kills.append(Kill(fault.replica, pid, cause, sent_at, exited_at))
        time.sleep(fault.seconds)
        replica.start()
        return (
            f"pid {pid} gone after {exited_at - sent_at:.1f}s ({cause}), back as pid {replica.pid}"
        )

"""The reconcile diff: what the store wants armed against what NAS listed, as plain data (no
I/O), so that deciding what to queue for 10,000 jobs costs no query per job."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from app.nas.client import ArmedFire


@dataclass(frozen=True)
class WantedArm:
    """A scheduled job's next fire as the store holds it, and what NAS last acknowledged."""

    job_id: str
    fire_at: datetime
    nas_armed_at: datetime | None


@dataclass
class ArmPlan:
    """What the snapshot calls for. Queueing it checks again that each job is still as seen."""

    in_sync: int = 0
    seen_armed: dict[str, datetime] = field(default_factory=dict)  # in sync, not yet recorded
    provision: list[tuple[str, datetime]] = field(default_factory=list)
    missed: list[WantedArm] = field(default_factory=list)  # passed while nothing was armed
    orphans: list[str] = field(default_factory=list)  # armed at NAS, not wanted: to cancel


def plan_arms(
    wanted: list[WantedArm],
    queued: set[str],
    observed: dict[str, ArmedFire] | None,
    now: datetime,
) -> ArmPlan:
    """Compare the wanted arms with NAS's list (`observed`; None when NAS could not list).

    A job with an operation pending (`queued`) is left to it. A job NAS holds at its next fire
    is in sync. Otherwise its fire is provisioned, unless it passed and NAS listed (so the fire
    was missed). Arms NAS lists for no wanted job, none pending, are orphans; without a list
    none can be seen."""
    plan = ArmPlan()
    for arm in wanted:
        if arm.job_id in queued:
            continue  # the outbox already holds this job's latest operation
        seen = observed.get(arm.job_id) if observed is not None else None
        if seen is not None and seen.fire_at == arm.fire_at:
            plan.in_sync += 1
            if arm.nas_armed_at != arm.fire_at:
                plan.seen_armed[arm.job_id] = arm.fire_at
        elif arm.fire_at <= now and observed is not None:
            plan.missed.append(arm)
        else:
            plan.provision.append((arm.job_id, arm.fire_at))
    if observed is not None:
        wanted_ids = {arm.job_id for arm in wanted}
        plan.orphans = sorted(observed.keys() - wanted_ids - queued)
    return plan

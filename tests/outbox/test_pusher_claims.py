"""Two replicas (two `Store` instances on one database, two `OutboxPusher` with their own node
ids) push one job's NAS operations one at a time: a push that finds the job claimed by the
other sends nothing, the holder sends the newest operation before it lets go, a caller that
waits for the arm gets it once the holder is done, and a dead holder's claim lapses."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio

from app.domain.states import NasOp
from app.nas import NasClient, RetryBudget
from app.outbox import OutboxPusher
from app.outbox.pusher import CLAIM_FLOOR
from app.store import Store
from tests.support import ManualUtcClock

pytestmark = pytest.mark.asyncio

PORTAL = "https://nas.example"
CALLBACK = "https://agent.example"
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
FIRE_AT = datetime(2030, 1, 1, 13, 0, tzinfo=UTC)
ONE_TRY = RetryBudget(attempts=1, max_seconds=5.0, initial_wait=0.001, max_wait=0.001)


@dataclass
class SharedNas:
    """One NAS for both replicas: records every provision's (job_id, fire_at) in the order it
    arrived, how many calls for one job were in flight at once, and holds calls while `gate`
    is clear."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    status: int = 200
    jitter: float = 0.0
    arrived: list[tuple[str, str | None]] = field(default_factory=list)
    in_flight: Counter[str] = field(default_factory=Counter)
    most_in_flight: int = 0

    def __post_init__(self) -> None:
        self.gate.set()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        body: dict[str, Any] = httpx.Response(200, content=request.content).json()
        job_id = body["job_id"]
        self.arrived.append((job_id, body.get("fire_at")))
        self.in_flight[job_id] += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight[job_id])
        try:
            await self.gate.wait()
            if self.jitter:
                await asyncio.sleep(random.uniform(0, self.jitter))
        finally:
            self.in_flight[job_id] -= 1
        return httpx.Response(self.status, json={"schedule_id": "sch-1", "ok": True})


@dataclass
class Replica:
    store: Store
    pusher: OutboxPusher

    async def queue(self, fire_at: datetime, job_id: str = "job-a") -> None:
        async with self.store.transaction() as tx:
            await tx.outbox.queue(job_id, NasOp.PROVISION, fire_at, self.pusher.clock())


@dataclass
class TwoReplicas:
    a: Replica
    b: Replica
    nas: SharedNas
    clock: ManualUtcClock

    async def pending(self, job_id: str = "job-a") -> object:
        async with self.a.store.transaction() as tx:
            return await tx.outbox.get(job_id)


@pytest_asyncio.fixture
async def replicas(store: Store, database_url: str) -> AsyncIterator[TwoReplicas]:
    other = Store.from_url(database_url)
    nas = SharedNas()
    clock = ManualUtcClock(T0)
    try:
        async with httpx.AsyncClient(transport=httpx.MockTransport(nas)) as http:
            client = NasClient(http, PORTAL, "nas-token", budget=ONE_TRY)

            def replica(node: str, on: Store) -> Replica:
                return Replica(on, OutboxPusher(on, client, CALLBACK, clock, node_id=node))

            yield TwoReplicas(replica("a", store), replica("b", other), nas, clock)
    finally:
        await other.close()


async def until(check: Any, what: str) -> None:
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def at(hours: int) -> str:
    return (FIRE_AT + timedelta(hours=hours)).isoformat()


async def test_a_job_claimed_by_another_replica_is_not_pushed_and_the_holder_sends_the_newest(
    replicas: TwoReplicas,
) -> None:
    nas, a, b = replicas.nas, replicas.a, replicas.b
    await a.queue(FIRE_AT)
    nas.gate.clear()  # NAS holds a's provision
    first = asyncio.create_task(a.pusher.push_job("job-a"))
    await until(lambda: nas.arrived, "a's provision to reach NAS")

    assert await b.pusher.push_job("job-a") is False  # claimed by a: b sends nothing
    await b.queue(FIRE_AT + timedelta(hours=1))  # a newer arm, queued on b
    assert await b.pusher.push_job("job-a") is False
    assert await b.pusher.push_all(concurrency=2) == 0  # the claimed job is left to a
    assert nas.arrived == [("job-a", at(0))]

    nas.gate.set()
    assert await first is True  # a sent the newer one too before it let go
    assert nas.arrived == [("job-a", at(0)), ("job-a", at(1))]
    assert nas.most_in_flight == 1
    assert await replicas.pending() is None


async def test_a_caller_waiting_for_the_arm_gets_it_once_the_other_replica_is_done(
    replicas: TwoReplicas,
) -> None:
    nas, a, b = replicas.nas, replicas.a, replicas.b
    await a.queue(FIRE_AT)
    nas.gate.clear()
    first = asyncio.create_task(a.pusher.push_job("job-a", budget=ONE_TRY))
    await until(lambda: nas.arrived, "a's provision to reach NAS")
    await b.queue(FIRE_AT + timedelta(hours=1))
    waiting = asyncio.create_task(b.pusher.push_job("job-a", budget=ONE_TRY, within=5.0))
    await asyncio.sleep(0.2)
    assert not waiting.done() and len(nas.arrived) == 1

    nas.gate.set()
    assert await waiting is True  # the fire path's 2xx: NAS holds the newest arm
    assert await first is True
    assert nas.arrived == [("job-a", at(0)), ("job-a", at(1))]
    assert nas.most_in_flight == 1


async def test_a_caller_waiting_past_its_bound_gets_false_and_nothing_is_sent(
    replicas: TwoReplicas,
) -> None:
    nas, a, b = replicas.nas, replicas.a, replicas.b
    await a.queue(FIRE_AT)
    nas.gate.clear()
    first = asyncio.create_task(a.pusher.push_job("job-a"))
    await until(lambda: nas.arrived, "a's provision to reach NAS")

    assert await b.pusher.push_job("job-a", within=0.3) is False
    assert len(nas.arrived) == 1
    nas.gate.set()
    assert await first is True


async def test_the_claim_of_a_replica_that_died_mid_push_lapses(replicas: TwoReplicas) -> None:
    await replicas.a.queue(FIRE_AT)
    async with replicas.a.store.transaction() as tx:  # a claimed, then died
        now = replicas.clock()
        assert await tx.outbox.claim("job-a", "a", now, now + timedelta(seconds=CLAIM_FLOOR))
    assert await replicas.b.pusher.push_job("job-a") is False

    replicas.clock.advance(CLAIM_FLOOR + 1)
    assert await replicas.b.pusher.push_job("job-a") is True
    assert replicas.nas.arrived == [("job-a", at(0))]


async def test_a_failed_push_releases_the_claim_at_once(replicas: TwoReplicas) -> None:
    await replicas.a.queue(FIRE_AT)
    replicas.nas.status = 503
    assert await replicas.a.pusher.push_job("job-a") is False

    replicas.nas.status = 200
    assert await replicas.b.pusher.push_job("job-a") is True
    assert replicas.nas.arrived == [("job-a", at(0))] * 2


async def test_racing_replicas_never_send_one_jobs_operations_at_once_or_out_of_order(
    replicas: TwoReplicas,
) -> None:
    """Newer arms are queued on either replica while both push (as fires, admin edits and the
    maintenance drains of two replicas do): NAS never has two calls for one job in flight,
    and never receives an older arm after a newer one."""
    nas, a, b = replicas.nas, replicas.a, replicas.b
    nas.jitter = 0.01
    rng = random.Random(9)
    pushes: list[asyncio.Task[bool]] = []
    for hour in range(12):
        for job_id in ("job-a", "job-b"):
            await rng.choice((a, b)).queue(FIRE_AT + timedelta(hours=hour), job_id)
            for replica in (a, b):
                within = rng.choice((None, 2.0))
                pushes.append(asyncio.create_task(replica.pusher.push_job(job_id, within=within)))
        await asyncio.sleep(rng.uniform(0, 0.01))
    await asyncio.gather(*pushes)
    assert await a.pusher.push_all(concurrency=2) == 0

    assert nas.most_in_flight == 1
    for job_id in ("job-a", "job-b"):
        sent = [fire_at or "" for job, fire_at in nas.arrived if job == job_id]
        assert sent == sorted(sent), f"an older arm reached NAS after a newer one: {sent}"
        assert sent[-1] == at(11)
        assert await replicas.pending(job_id) is None

"""Reconcile at scale, against a real store and NAS behind `httpx.MockTransport`: deciding what
to queue takes the same number of SQL statements for 50 jobs as for 500, and queueing from the
snapshot never overwrites what changed after it (a newer operation, a job moved on, an orphan
created or resumed meanwhile)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import event

from app.domain.records import OutboxRecord
from app.domain.states import JobState, NasOp
from app.nas import NasClient, RetryBudget
from app.outbox import OutboxPusher
from app.reconcile.service import QUEUE_BATCH, Reconciler, ReconcileReport
from app.store import Store, Tx
from tests.runner.support import replica
from tests.support import ManualUtcClock
from tests.support.records import job_row

pytestmark = pytest.mark.asyncio

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
ONE_TRY = RetryBudget(attempts=1, max_seconds=5.0, initial_wait=0.001, max_wait=0.001)


def fire_at(i: int) -> datetime:
    return T0 + timedelta(hours=1, seconds=i)


@dataclass
class MemoryNas:
    """NAS holding its arms in a dict: provision, cancel and list, all answered at once."""

    armed: dict[str, datetime] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        operation = request.url.path.rsplit("/", 1)[-1]
        self.calls.append(operation)
        if operation == "list":
            armed = [{"job_id": j, "fire_at": at.isoformat()} for j, at in self.armed.items()]
            return httpx.Response(200, json={"armed": armed})
        body: dict[str, Any] = json.loads(request.content)
        if operation == "provision":
            self.armed[body["job_id"]] = datetime.fromisoformat(body["fire_at"])
        else:
            self.armed.pop(body["job_id"], None)
        return httpx.Response(200, json={"schedule_id": "sch-1", "ok": True})


class StatementCounter:
    """Counts the SQL statements the store's engine sends."""

    def __init__(self, store: Store) -> None:
        self.count = 0
        event.listen(store.engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, *_args: Any) -> None:
        self.count += 1


class CountingPusher(OutboxPusher):
    """The real pusher, noting how many statements reconcile sent before it pushed; with
    `push` False it pushes nothing (the queued operations stay for the test to read)."""

    def __init__(self, store: Store, nas: NasClient, clock: ManualUtcClock) -> None:
        super().__init__(store, nas, "https://agent.example", clock, node_id="test-pusher")
        self.counter = StatementCounter(store)
        self.before_push: int | None = None
        self.push = True

    async def push_all(self, *, concurrency: int, **kwargs: Any) -> int:
        self.before_push = self.counter.count
        return await super().push_all(concurrency=concurrency, **kwargs) if self.push else 0


class ChangedAfterSnapshot(Store):
    """The real store, where `meanwhile` runs once in a transaction of its own right after the
    first transaction (reconcile's snapshot) committed: a concurrent writer, deterministic."""

    def __init__(self, store: Store) -> None:
        super().__init__(store.engine)
        self.meanwhile: Callable[[Tx], Awaitable[None]] | None = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        meanwhile, self.meanwhile = self.meanwhile, None
        async with super().transaction() as tx:
            yield tx
        if meanwhile is not None:
            async with super().transaction() as tx:
                await meanwhile(tx)


@dataclass
class Reconciling:
    store: ChangedAfterSnapshot
    nas: MemoryNas
    pusher: CountingPusher
    reconciler: Reconciler
    clock: ManualUtcClock

    async def add_jobs(self, prefix: str, count: int, **overrides: Any) -> list[str]:
        ids = [f"{prefix}-{i:04d}" for i in range(count)]
        async with self.store.transaction() as tx:
            for i, job_id in enumerate(ids):
                await tx.jobs.insert(job_row(job_id, next_run_at=fire_at(i), **overrides))
        return ids

    async def pending(self, job_id: str) -> OutboxRecord | None:
        async with self.store.transaction() as tx:
            return await tx.outbox.get(job_id)

    async def reconcile(self, meanwhile: Callable[[Tx], Awaitable[None]] | None = None) -> Any:
        self.store.meanwhile = meanwhile
        return await self.reconciler.reconcile()


@pytest_asyncio.fixture
async def reconciling(store: Store) -> AsyncIterator[Reconciling]:
    nas = MemoryNas()
    clock = ManualUtcClock(T0)
    changing = ChangedAfterSnapshot(store)
    async with httpx.AsyncClient(transport=httpx.MockTransport(nas)) as http:
        client = NasClient(http, "https://nas.example", "nas-token", budget=ONE_TRY)
        pusher = CountingPusher(changing, client, clock)
        executor = replica(changing, http, "node-test", clock=clock)
        reconciler = Reconciler(changing, client, pusher, executor, concurrency=8, clock=clock)
        yield Reconciling(changing, nas, pusher, reconciler, clock)


async def reconcile_mixed(
    r: Reconciling, prefix: str, n: int, *, in_sync_before: int = 0
) -> tuple[int, ReconcileReport]:
    """`n` jobs: a fifth armed at NAS (not yet recorded as such), the rest not; a fifth as many
    ghosts at NAS, and a paused job NAS still holds. The statements sent before the push."""
    ids = await r.add_jobs(prefix, n)
    [paused] = await r.add_jobs(f"{prefix}-paused", 1, state=JobState.PAUSED)
    in_sync = ids[: n // 5]
    r.nas.armed.update({job_id: fire_at(i) for i, job_id in enumerate(in_sync)})
    r.nas.armed.update({f"{prefix}-ghost-{i}": fire_at(i) for i in range(n // 5)})
    r.nas.armed[paused] = fire_at(0)
    start = r.pusher.counter.count
    report = await r.reconcile()
    assert r.pusher.before_push is not None
    statements = r.pusher.before_push - start
    assert report.armed == ids[n // 5 :]  # in the store's order
    assert report.cancelled == sorted([paused, *(f"{prefix}-ghost-{i}" for i in range(n // 5))])
    assert report.in_sync == in_sync_before + n // 5 and report.errors == [] and report.missed == []
    async with r.store.transaction() as tx:
        assert {j.id: j.nas_armed_at for j in await tx.jobs.list_all() if j.id in in_sync} == {
            job_id: fire_at(i) for i, job_id in enumerate(in_sync)
        }
    return statements, report


async def test_deciding_what_to_queue_takes_as_many_statements_for_500_jobs_as_for_50(
    reconciling: Reconciling,
) -> None:
    reconciling.pusher.push = False  # count the decision alone
    small, _ = await reconcile_mixed(reconciling, "small", 50)
    # The small ones stay pending or in sync: left alone.
    large, _ = await reconcile_mixed(reconciling, "large", 500, in_sync_before=10)
    assert large == small
    assert small <= 20


async def test_steady_state_queues_nothing_with_as_few_statements(
    reconciling: Reconciling,
) -> None:
    await reconcile_mixed(reconciling, "jobs", 300)
    assert reconciling.nas.calls.count("provision") == 240
    counts = []
    for _ in range(2):
        calls = len(reconciling.nas.calls)
        start = reconciling.pusher.counter.count
        report = await reconciling.reconcile()
        assert report.ok and report.armed == [] and report.cancelled == []
        assert report.in_sync == 300 and report.pending == 0
        assert reconciling.nas.calls[calls:] == ["list"]
        assert reconciling.pusher.before_push is not None
        counts.append(reconciling.pusher.before_push - start)
    assert counts[0] == counts[1] <= 4  # the snapshot: two reads, nothing written


async def test_every_job_is_queued_across_batches_in_the_stores_order(
    reconciling: Reconciling,
) -> None:
    reconciling.pusher.push = False
    ids = await reconciling.add_jobs("job", 2 * QUEUE_BATCH + 1)
    report = await reconciling.reconcile()
    assert report.armed == ids and report.errors == []
    async with reconciling.store.transaction() as tx:
        queued = {op.job_id: op for op in await tx.outbox.list_all()}
    assert queued.keys() == set(ids)
    assert all(queued[j].fire_at == fire_at(i) for i, j in enumerate(ids))


async def test_queued_operations_have_the_shape_queue_gives_them(
    reconciling: Reconciling,
) -> None:
    reconciling.pusher.push = False
    [job_id, by_hand] = await reconciling.add_jobs("job", 2)
    reconciling.nas.armed["ghost"] = fire_at(0)
    async with reconciling.store.transaction() as tx:
        reference = await tx.outbox.queue(by_hand, NasOp.PROVISION, fire_at(1), T0)
    report = await reconciling.reconcile()
    assert report.armed == [job_id] and report.cancelled == ["ghost"]
    provision = await reconciling.pending(job_id)
    cancel = await reconciling.pending("ghost")
    assert provision is not None and cancel is not None
    assert provision == OutboxRecord(
        job_id=job_id,
        op=NasOp.PROVISION,
        fire_at=fire_at(0),
        op_id=provision.op_id,
        attempts=0,
        last_error=None,
        created_at=T0,
        updated_at=T0,
        parked_at=None,
        claimed_by=None,
        claimed_until=None,
    )
    assert provision.op == reference.op and type(provision.op) is type(reference.op)
    assert cancel == OutboxRecord(
        job_id="ghost",
        op=NasOp.CANCEL,
        fire_at=None,
        op_id=cancel.op_id,
        attempts=0,
        last_error=None,
        created_at=T0,
        updated_at=T0,
    )
    op_ids = {provision.op_id, cancel.op_id, reference.op_id}
    assert len(op_ids) == 3 and all(len(o) == 32 and int(o, 16) >= 0 for o in op_ids)


async def test_a_job_edited_after_the_snapshot_keeps_its_newer_operation(
    reconciling: Reconciling,
) -> None:
    reconciling.pusher.push = False
    [edited, untouched] = await reconciling.add_jobs("job", 2)
    newer = fire_at(3600)
    newer_op: list[str] = []

    async def edit(tx: Tx) -> None:
        await tx.jobs.update(edited, {"next_run_at": newer})
        newer_op.append((await tx.outbox.queue(edited, NasOp.PROVISION, newer, T0)).op_id)

    report = await reconciling.reconcile(meanwhile=edit)
    assert report.armed == [untouched]
    pending = await reconciling.pending(edited)
    assert pending is not None
    assert (pending.op, pending.fire_at, pending.op_id) == (NasOp.PROVISION, newer, newer_op[0])


@pytest.mark.parametrize(
    "change",
    [
        {"next_run_at": fire_at(3600)},  # a fire moved it on (its next arm acknowledged)
        {"state": JobState.PAUSED},
        {"state": JobState.COMPLETED, "next_run_at": None},
    ],
)
async def test_a_job_that_changed_after_the_snapshot_is_not_armed_at_its_old_fire(
    reconciling: Reconciling, change: dict[str, Any]
) -> None:
    reconciling.pusher.push = False
    [changed, untouched] = await reconciling.add_jobs("job", 2)

    async def apply(tx: Tx) -> None:
        await tx.jobs.update(changed, change)

    report = await reconciling.reconcile(meanwhile=apply)
    assert report.armed == [untouched]
    assert await reconciling.pending(changed) is None


async def test_an_orphan_created_or_resumed_after_the_snapshot_is_not_cancelled(
    reconciling: Reconciling,
) -> None:
    reconciling.pusher.push = False
    [paused] = await reconciling.add_jobs("paused", 1, state=JobState.PAUSED)
    reconciling.nas.armed.update({"created": fire_at(0), paused: fire_at(0), "ghost": fire_at(0)})

    async def create_and_resume(tx: Tx) -> None:
        await tx.jobs.insert(job_row("created", next_run_at=fire_at(0)))
        await tx.jobs.update(paused, {"state": JobState.SCHEDULED})

    report = await reconciling.reconcile(meanwhile=create_and_resume)
    assert report.cancelled == ["ghost"]
    assert await reconciling.pending("created") is None
    assert await reconciling.pending(paused) is None


async def test_an_orphan_given_an_operation_after_the_snapshot_keeps_it(
    reconciling: Reconciling,
) -> None:
    reconciling.pusher.push = False
    reconciling.nas.armed.update({"recreated": fire_at(0), "ghost": fire_at(0)})
    newer_op: list[str] = []

    async def recreate(tx: Tx) -> None:
        await tx.jobs.insert(job_row("recreated", next_run_at=fire_at(7)))
        queued = await tx.outbox.queue("recreated", NasOp.PROVISION, fire_at(7), T0)
        newer_op.append(queued.op_id)

    report = await reconciling.reconcile(meanwhile=recreate)
    assert report.cancelled == ["ghost"]
    pending = await reconciling.pending("recreated")
    assert pending is not None
    assert (pending.op, pending.op_id) == (NasOp.PROVISION, newer_op[0])


async def test_jobs_with_an_operation_pending_are_left_to_it(reconciling: Reconciling) -> None:
    reconciling.pusher.push = False
    [pending_job, other] = await reconciling.add_jobs("job", 2)
    async with reconciling.store.transaction() as tx:
        cancel = await tx.outbox.queue(pending_job, NasOp.CANCEL, None, T0)
        ghost = await tx.outbox.queue("ghost", NasOp.PROVISION, fire_at(0), T0)
    reconciling.nas.armed["ghost"] = fire_at(5)
    report = await reconciling.reconcile()
    assert report.armed == [other] and report.cancelled == []
    assert await reconciling.pending(pending_job) == cancel
    assert await reconciling.pending("ghost") == ghost

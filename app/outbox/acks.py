"""Acknowledgements of NAS operations, written in batches.

When NAS acknowledged an operation, the outbox row leaves the store and the job records what
NAS holds. Writing that costs a transaction; under a burst of fires, one per fire would double
the store's work. The batcher collects the acknowledgements that arrive while a batch is being
written and writes them together in the next one: one transaction of three statements for
however many acknowledgements. A caller awaits its own acknowledgement being written (or its
failure), so nothing is answered on an acknowledgement that is not durable yet when it
matters; the fire path does not depend on it (NAS already holds the arm; an acknowledgement
lost to a crash leaves the row queued, and pushing it again is an idempotent upsert).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime

from app.domain.records import OutboxRecord
from app.domain.states import NasOp
from app.store import Store

log = logging.getLogger(__name__)

MAX_BATCH = 500  # acknowledgements per transaction (bounded statement parameters)


@dataclass(frozen=True)
class _Ack:
    job_id: str
    op_id: str
    armed_at: datetime | None  # what NAS holds for the job now: an arm at this time, or none
    done: asyncio.Future[bool]  # True: the row left the outbox; False: a newer one waits


class AckBatcher:
    """Writes acknowledged operations in batches (see the module docstring)."""

    def __init__(self, store: Store, owner: str) -> None:
        self.store = store
        self.owner = owner  # the pusher whose claims these acknowledgements end
        self._pending: list[_Ack] = []
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0  # transactions written (a figure for tests and benchmarks)
        self.written = 0  # acknowledgements written

    def ack(self, op: OutboxRecord) -> asyncio.Future[bool]:
        """Queue the acknowledgement of `op`; the future tells, once written, whether the row
        left the outbox (False: a newer operation replaced it and still waits, claimed by this
        pusher). It fails with the store's error when the batch could not be written."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        armed_at = op.fire_at if op.op == NasOp.PROVISION else None
        self._pending.append(_Ack(op.job_id, op.op_id, armed_at, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all(), name="outbox-acks")
        return done

    async def _write_all(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                left = await self._write(batch)
            except asyncio.CancelledError:
                for item in batch + self._pending:
                    item.done.cancel()
                raise
            except Exception as exc:  # the store is down: each caller decides what follows
                for item in batch:
                    if not item.done.done():
                        item.done.set_exception(exc)
                        item.done.exception()  # retrieved: a caller that left logs nothing
                continue
            for item in batch:
                if not item.done.done():
                    item.done.set_result(item.job_id not in left)

    async def _write(self, batch: list[_Ack]) -> set[str]:
        # The job rows are locked first (in id order), then the outbox rows, as admissions
        # take them: no deadlock with a fire admitted meanwhile.
        async with self.store.transaction() as tx:
            await tx.jobs.record_nas_arms([(a.job_id, a.armed_at) for a in batch])
            left = await tx.outbox.ack_many([(a.job_id, a.op_id) for a in batch], self.owner)
        self.batches += 1
        self.written += len(batch)
        return set(left)

    async def close(self) -> None:
        """Wait for the acknowledgements queued so far to be written (or to fail)."""
        writer = self._writer
        if writer is not None and not writer.done():
            await asyncio.wait({writer})

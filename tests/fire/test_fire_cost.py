"""What one fire costs the store: the fire path does the least I/O that keeps its promise.

Counted with a listener on the engine (every statement the database receives), not timed:
an admission is one transaction, with no read-back of what it wrote and no transaction of
its own for the outbox acknowledgement; a re-delivery of a fire whose arm is acknowledged is
one read and no write.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from tests.support.agent import Agent, RunningNas, run_agent

pytestmark = pytest.mark.asyncio

TOUCH = "import sys; open(sys.argv[1], 'a').write('ran\\n')"


@contextmanager
def statements(agent: Agent) -> Iterator[list[str]]:
    """The SQL statements the agent's store sends while the block runs (BEGIN and COMMIT
    included, as the database sees them)."""
    seen: list[str] = []
    engine = agent.services.store.engine.sync_engine

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()).upper())

    def begin(_conn: Any) -> None:
        seen.append("BEGIN")

    def commit(_conn: Any) -> None:
        seen.append("COMMIT")

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "begin", begin)
    event.listen(engine, "commit", commit)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "begin", begin)
        event.remove(engine, "commit", commit)


def writes(seen: list[str]) -> list[str]:
    return [s for s in seen if s.startswith(("INSERT", "UPDATE", "DELETE"))]


async def armed_as_next(agent: Agent, job_id: str) -> bool:
    """NAS holds the job's next fire."""
    armed = await agent.nas.armed()
    job = await agent.job(job_id)
    return job_id in armed and datetime.fromisoformat(armed[job_id]) == datetime.fromisoformat(
        job["next_run_at"]
    )


async def hourly(agent: Agent, tmp_path: Path, name: str = "cost") -> dict[str, Any]:
    return await agent.create_job(
        name=name,
        schedule="every 1h",
        target={"type": "command", "argv": [sys.executable, "-c", TOUCH, str(tmp_path / name)]},
    )


async def test_an_admission_is_one_transaction_without_read_back(
    agent: Agent, tmp_path: Path
) -> None:
    job = await hourly(agent, tmp_path)
    await agent.services.pusher.acks.close()
    with statements(agent) as seen:
        answer = await agent.fire(
            job["id"], job["next_run_at"], token=agent.nas.mint(job["id"], job["next_run_at"])
        )
        assert answer.status_code == 202, answer.text
        await agent.services.pusher.acks.close()
        # First the one read that answers a settled duplicate (this is none), then the
        # admission's transaction.
        begin = seen.index("BEGIN IMMEDIATE") if "BEGIN IMMEDIATE" in seen else 3
        end = seen.index("COMMIT", begin) + 1
        admission, after = seen[begin:end], seen[end:]
        assert [s.split()[0] for s in seen[:begin] if s != "BEGIN"] == ["SELECT", "COMMIT"]
    # The admission: lock the job, one read for the decision, the fire, the job moved on,
    # its next arm queued and claimed (each of the writes returns what it needs).
    statements_sent = [s for s in admission if s not in ("BEGIN", "BEGIN IMMEDIATE", "COMMIT")]
    assert len(statements_sent) == 5, admission
    assert [s.split()[0] for s in writes(admission)] == ["INSERT", "UPDATE", "INSERT"]
    # No transaction of the fire's own to claim or acknowledge its arm: after the admission
    # the only writes are the run's own and the batched acknowledgement (record the arm,
    # drop the outbox row).
    assert not any("SELECT" in s and "FROM OUTBOX" in s and "FOR UPDATE" in s for s in after)
    acks = [s for s in writes(after) if "OUTBOX" in s]
    assert acks and all(s.startswith("DELETE") for s in acks), after
    await agent.idle()


async def test_a_settled_duplicate_is_one_read_and_no_write(agent: Agent, tmp_path: Path) -> None:
    job = await hourly(agent, tmp_path)
    first = await agent.fire(job["id"], job["next_run_at"])
    assert first.status_code == 202, first.text
    await agent.idle()
    await agent.services.pusher.acks.close()
    token = agent.nas.mint(job["id"], job["next_run_at"])
    with statements(agent) as seen:
        again = await agent.fire(job["id"], job["next_run_at"], token=token)
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "duplicate"
    assert [s for s in seen if s not in ("BEGIN", "COMMIT", "ROLLBACK")] == [
        s for s in seen if s.startswith("SELECT")
    ]
    assert len([s for s in seen if s.startswith("SELECT")]) == 1, seen
    assert writes(seen) == []


async def test_a_duplicate_whose_arm_is_pending_still_re_arms(agent: Agent, tmp_path: Path) -> None:
    """The fast answer is only for an acknowledged arm: with the job's arm lost from the
    store's view, the re-delivery takes the transaction and arms again."""
    job = await hourly(agent, tmp_path)
    assert (await agent.fire(job["id"], job["next_run_at"])).status_code == 202
    await agent.idle()
    await agent.services.pusher.acks.close()
    async with agent.services.store.transaction() as tx:
        await tx.jobs.record_nas_arm(job["id"], None)  # NAS's arm not known any more
    await agent.nas.clear()
    again = await agent.fire(job["id"], job["next_run_at"])
    assert again.json()["status"] == "duplicate"
    assert await armed_as_next(agent, job["id"])


async def test_a_token_naming_its_fire_needs_no_binding_row(agent: Agent, tmp_path: Path) -> None:
    job = await hourly(agent, tmp_path)
    named = agent.nas.mint(job["id"], job["next_run_at"])
    assert (await agent.fire(job["id"], job["next_run_at"], token=named)).status_code == 202
    async with agent.services.store.read() as tx:
        result = await tx.conn.exec_driver_sql("SELECT count(*) FROM fire_tokens")
        assert result.scalar_one() == 0
    await agent.idle()


async def test_concurrent_admissions_share_acknowledgement_transactions(
    database_url: str, nas: RunningNas, tmp_path: Path
) -> None:
    # A generous arm budget: this is about how acknowledgements are written, not how fast
    # twelve Python processes start on a busy machine.
    async with run_agent(database_url, nas, fire_arm_max_seconds=60) as agent:
        await _concurrent_admissions(agent, tmp_path)


async def _concurrent_admissions(agent: Agent, tmp_path: Path) -> None:
    jobs = [await hourly(agent, tmp_path, f"burst-{i}") for i in range(12)]
    await agent.services.pusher.acks.close()
    acks = agent.services.pusher.acks
    batches, written = acks.batches, acks.written
    answers = await asyncio.gather(*(agent.fire(j["id"], j["next_run_at"]) for j in jobs))
    assert [a.status_code for a in answers] == [202] * 12
    await acks.close()
    assert acks.written - written == 12
    assert acks.batches - batches < 12
    for j in jobs:
        assert await armed_as_next(agent, j["id"])
    await agent.idle()


async def test_the_next_fire_of_a_job_admitted_here_skips_the_duplicate_read(
    agent: Agent, tmp_path: Path
) -> None:
    job = await hourly(agent, tmp_path, "chain")
    assert (await agent.fire(job["id"], job["next_run_at"])).status_code == 202
    await agent.idle()
    await agent.services.pusher.acks.close()
    following = (await agent.job(job["id"]))["next_run_at"]
    with statements(agent) as seen:
        # Early, but a fire with its time in the body is decided by the table (202 or not):
        # what matters here is that no read precedes the admission's transaction.
        await agent.fire(job["id"], following)
    selects = [s for s in seen if s.startswith("SELECT")]
    assert selects and selects[0].startswith("SELECT JOBS."), selects[:1]  # the job's lock
    assert not any(" AS SETTLED " in s for s in seen)  # no duplicate read before it

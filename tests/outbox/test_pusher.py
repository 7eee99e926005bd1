"""`OutboxPusher` against a real store, with NAS answering through `httpx.MockTransport`: an
operation leaves the outbox only when NAS acknowledged that very operation, failures stay
counted, and the maintenance backoff holds back what failed recently."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from app.domain.records import OutboxRecord
from app.domain.states import NasOp
from app.nas import FileToken, NasClient, RetryBudget
from app.outbox import OutboxPusher
from app.store import Store
from tests.support import ManualUtcClock
from tests.support.records import job_row

pytestmark = pytest.mark.asyncio

PORTAL = "https://nas.example"
CALLBACK = "https://agent.example"
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
FIRE_AT = datetime(2030, 1, 1, 13, 0, tzinfo=UTC)
ONE_TRY = RetryBudget(attempts=1, max_seconds=5.0, initial_wait=0.001, max_wait=0.001)

Answer = Callable[[str, dict[str, Any]], Awaitable[httpx.Response]]


async def ok(_path: str, _body: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json={"schedule_id": "sch-1", "ok": True})


async def unavailable(_path: str, _body: dict[str, Any]) -> httpx.Response:
    return httpx.Response(503, json={"error": "unavailable"})


@dataclass
class ScriptedNas:
    """NAS behind a mock transport: `answer` decides each reply; every call is recorded as
    (operation, job_id)."""

    answer: Answer = ok
    calls: list[tuple[str, str]] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        body: dict[str, Any] = json.loads(request.content)
        operation = request.url.path.rsplit("/", 1)[-1]
        self.calls.append((operation, body["job_id"]))
        self.bodies.append(body)
        return await self.answer(operation, body)


@dataclass
class Pushing:
    pusher: OutboxPusher
    store: Store
    nas: ScriptedNas
    clock: ManualUtcClock

    async def queue(self, job_id: str, op: NasOp, fire_at: datetime | None = None) -> None:
        async with self.store.transaction() as tx:
            await tx.outbox.queue(job_id, op, fire_at, self.clock())

    async def pending(self, job_id: str) -> OutboxRecord | None:
        async with self.store.transaction() as tx:
            return await tx.outbox.get(job_id)


@pytest_asyncio.fixture
async def pushing(store: Store) -> AsyncIterator[Pushing]:
    nas = ScriptedNas()
    clock = ManualUtcClock(T0)
    async with httpx.AsyncClient(transport=httpx.MockTransport(nas)) as http:
        client = NasClient(http, PORTAL, "nas-token", budget=ONE_TRY)
        yield Pushing(OutboxPusher(store, client, CALLBACK, clock), store, nas, clock)


async def test_an_acknowledged_provision_leaves_the_outbox(pushing: Pushing) -> None:
    await pushing.queue("job-a", NasOp.PROVISION, FIRE_AT)

    assert await pushing.pusher.push_job("job-a") is True

    assert await pushing.pending("job-a") is None
    assert pushing.nas.bodies == [
        {
            "job_id": "job-a",
            "fire_at": "2030-01-01T13:00:00+00:00",
            "agent_callback_url": CALLBACK,
            "dedup_key": "job-a:2030-01-01T13:00:00+00:00",
        }
    ]


async def test_an_acknowledged_cancel_leaves_the_outbox(pushing: Pushing) -> None:
    await pushing.queue("job-a", NasOp.CANCEL)

    assert await pushing.pusher.push_job("job-a") is True

    assert await pushing.pending("job-a") is None
    assert pushing.nas.calls == [("cancel", "job-a")]


async def test_a_job_with_nothing_queued_is_not_pushed(pushing: Pushing) -> None:
    assert await pushing.pusher.push_job("job-a") is True
    assert pushing.nas.calls == []


async def test_a_failed_operation_stays_queued_with_its_attempts_and_last_error(
    pushing: Pushing,
) -> None:
    await pushing.queue("job-a", NasOp.PROVISION, FIRE_AT)
    pushing.nas.answer = unavailable

    assert await pushing.pusher.push_job("job-a") is False
    pushing.clock.advance(30)
    assert await pushing.pusher.push_job("job-a") is False

    kept = await pushing.pending("job-a")
    assert kept is not None
    assert (kept.op, kept.fire_at) == (NasOp.PROVISION, FIRE_AT)
    assert kept.attempts == 2
    assert kept.last_error == "POST /api/agent-cron/provision: HTTP 503"
    assert kept.updated_at == pushing.clock()  # the time of the last failure
    assert pushing.nas.calls == [("provision", "job-a")] * 2

    pushing.nas.answer = ok
    assert await pushing.pusher.push_job("job-a") is True
    assert await pushing.pending("job-a") is None


async def test_a_refused_operation_keeps_nas_reason(pushing: Pushing) -> None:
    async def refuse(_path: str, _body: dict[str, Any]) -> httpx.Response:
        return httpx.Response(
            400, json={"error": "invalid_request", "detail": "fire_at: not an instant"}
        )

    pushing.nas.answer = refuse
    await pushing.queue("job-a", NasOp.PROVISION, FIRE_AT)

    assert await pushing.pusher.push_job("job-a") is False

    kept = await pushing.pending("job-a")
    assert kept is not None
    assert kept.attempts == 1
    assert kept.last_error == "POST /api/agent-cron/provision: HTTP 400: fire_at: not an instant"


async def test_a_newer_operation_queued_while_an_older_is_in_flight_survives_its_ack(
    pushing: Pushing,
) -> None:
    in_flight = asyncio.Event()
    release = asyncio.Event()

    async def slow_provision_then_cancel_fails(path: str, body: dict[str, Any]) -> httpx.Response:
        if path == "provision":
            in_flight.set()
            await release.wait()
            return await ok(path, body)
        return await unavailable(path, body)

    pushing.nas.answer = slow_provision_then_cancel_fails
    await pushing.queue("job-a", NasOp.PROVISION, FIRE_AT)
    push = asyncio.create_task(pushing.pusher.push_job("job-a"))
    await asyncio.wait_for(in_flight.wait(), timeout=5)

    await pushing.queue("job-a", NasOp.CANCEL)  # e.g. the job was paused meanwhile
    queued_cancel = await pushing.pending("job-a")
    assert queued_cancel is not None
    release.set()  # NAS acknowledges the provision

    # The ack of the provision does not remove the cancel queued after it: the cancel is
    # pushed next, and stays queued because NAS fails it.
    assert await asyncio.wait_for(push, timeout=5) is False
    assert pushing.nas.calls == [("provision", "job-a"), ("cancel", "job-a")]
    kept = await pushing.pending("job-a")
    assert kept is not None
    assert (kept.op, kept.fire_at, kept.op_id) == (NasOp.CANCEL, None, queued_cancel.op_id)
    assert kept.attempts == 1
    assert kept.last_error == "POST /api/agent-cron/cancel: HTTP 503"


async def test_push_all_pushes_every_pending_operation(pushing: Pushing) -> None:
    for job_id in ("job-a", "job-b", "job-c"):
        await pushing.queue(job_id, NasOp.PROVISION, FIRE_AT)

    assert await pushing.pusher.push_all(concurrency=2) == 0

    assert sorted(pushing.nas.calls) == [
        ("provision", "job-a"),
        ("provision", "job-b"),
        ("provision", "job-c"),
    ]
    for job_id in ("job-a", "job-b", "job-c"):
        assert await pushing.pending(job_id) is None


async def test_push_all_with_backoff_waits_two_to_the_attempts_seconds(pushing: Pushing) -> None:
    async def job_a_fails_once(path: str, body: dict[str, Any]) -> httpx.Response:
        if body["job_id"] == "job-a" and pushing.nas.calls.count((path, "job-a")) == 1:
            return await unavailable(path, body)
        return await ok(path, body)

    pushing.nas.answer = job_a_fails_once
    await pushing.queue("job-a", NasOp.PROVISION, FIRE_AT)
    await pushing.queue("job-b", NasOp.PROVISION, FIRE_AT)

    # Never failed yet: both are pushed at once; job-a fails (attempts = 1, at T0).
    assert await pushing.pusher.push_all(concurrency=2, backoff=True) == 1
    assert sorted(pushing.nas.calls) == [("provision", "job-a"), ("provision", "job-b")]
    assert await pushing.pending("job-b") is None

    pushing.clock.advance(1)  # 2^1 s after the failure have not passed
    await pushing.pusher.push_all(concurrency=2, backoff=True)
    assert len(pushing.nas.calls) == 2  # job-a was held back
    held = await pushing.pending("job-a")
    assert held is not None and held.attempts == 1

    pushing.clock.advance(1)  # now they have
    assert await pushing.pusher.push_all(concurrency=2, backoff=True) == 0
    assert pushing.nas.calls[2:] == [("provision", "job-a")]
    assert await pushing.pending("job-a") is None


async def test_the_backoff_is_at_most_ten_minutes(pushing: Pushing) -> None:
    pushing.nas.answer = unavailable
    await pushing.queue("job-a", NasOp.PROVISION, FIRE_AT)
    for _ in range(10):  # 2^10 s would be 17 minutes
        assert await pushing.pusher.push_job("job-a") is False
    pushing.nas.answer = ok

    pushing.clock.advance(599)
    await pushing.pusher.push_all(concurrency=1, backoff=True)
    assert len(pushing.nas.calls) == 10

    pushing.clock.advance(1)
    assert await pushing.pusher.push_all(concurrency=1, backoff=True) == 0
    assert len(pushing.nas.calls) == 11
    assert await pushing.pending("job-a") is None


async def test_push_all_without_backoff_retries_at_once(pushing: Pushing) -> None:
    pushing.nas.answer = unavailable
    await pushing.queue("job-a", NasOp.PROVISION, FIRE_AT)
    assert await pushing.pusher.push_all(concurrency=1) == 1

    pushing.nas.answer = ok
    assert await pushing.pusher.push_all(concurrency=1) == 0
    assert pushing.nas.calls == [("provision", "job-a")] * 2


async def insert_job(store: Store, job_id: str, next_run_at: datetime) -> None:
    async with store.transaction() as tx:
        await tx.jobs.insert(job_row(job_id, next_run_at=next_run_at))


async def nas_armed_at(store: Store, job_id: str) -> datetime | None:
    async with store.transaction() as tx:
        job = await tx.jobs.get(job_id)
    assert job is not None
    return job.nas_armed_at


async def test_the_push_records_what_nas_acknowledged(pushing: Pushing) -> None:
    await insert_job(pushing.store, "job-a", FIRE_AT)
    await pushing.queue("job-a", NasOp.PROVISION, FIRE_AT)

    assert await pushing.pusher.push_job("job-a") is True
    assert await nas_armed_at(pushing.store, "job-a") == FIRE_AT

    # A stray cancel of a job that still wants FIRE_AT: NAS holds nothing after it, so the
    # same push arms FIRE_AT again before it reports success.
    await pushing.queue("job-a", NasOp.CANCEL)
    assert await pushing.pusher.push_job("job-a") is True
    assert pushing.nas.calls[-2:] == [("cancel", "job-a"), ("provision", "job-a")]
    assert await nas_armed_at(pushing.store, "job-a") == FIRE_AT


async def test_an_arm_nas_never_acknowledged_is_queued_and_pushed(pushing: Pushing) -> None:
    """Nothing pending is not "armed": a job whose next fire NAS never acknowledged (lost,
    or never recorded) is armed by the push, and only then is the push a success."""
    await insert_job(pushing.store, "job-a", FIRE_AT)

    assert await pushing.pusher.push_job("job-a") is True

    assert pushing.nas.calls == [("provision", "job-a")]
    assert pushing.nas.bodies[0]["fire_at"] == FIRE_AT.isoformat()
    assert await nas_armed_at(pushing.store, "job-a") == FIRE_AT
    assert await pushing.pusher.push_job("job-a") is True
    assert len(pushing.nas.calls) == 1  # armed as wanted: nothing more to send


async def test_a_late_ack_of_an_old_arm_does_not_hide_the_new_one(pushing: Pushing) -> None:
    """The chaos run's stranded jobs: a push of the old arm (held up by a NAS fault) is
    acknowledged after the fire path queued the next arm. The next arm stays queued and is
    pushed; NAS ends holding the new time, and the store knows it."""
    later = FIRE_AT.replace(minute=7)
    in_flight, release = asyncio.Event(), asyncio.Event()

    async def slow_first_provision(path: str, body: dict[str, Any]) -> httpx.Response:
        if body["fire_at"] == FIRE_AT.isoformat():
            in_flight.set()
            await release.wait()
        return await ok(path, body)

    pushing.nas.answer = slow_first_provision
    await insert_job(pushing.store, "job-a", FIRE_AT)
    await pushing.queue("job-a", NasOp.PROVISION, FIRE_AT)
    old_push = asyncio.create_task(pushing.pusher.push_job("job-a"))
    await asyncio.wait_for(in_flight.wait(), timeout=5)

    async with pushing.store.transaction() as tx:  # the fire path admits FIRE_AT
        await tx.jobs.update("job-a", {"next_run_at": later})
        await tx.outbox.queue("job-a", NasOp.PROVISION, later, pushing.clock())
    release.set()

    assert await asyncio.wait_for(old_push, timeout=5) is True
    assert [body["fire_at"] for body in pushing.nas.bodies] == [
        FIRE_AT.isoformat(),
        later.isoformat(),
    ]
    assert await pushing.pending("job-a") is None
    assert await nas_armed_at(pushing.store, "job-a") == later


# -- refusals: credentials (kept on backoff) and the operation itself (parked) -------------

OLD_TOKEN, NEW_TOKEN = "old-nas-token-0001", "new-nas-token-0002"


@pytest_asyncio.fixture
async def rotating(store: Store, tmp_path: Path) -> AsyncIterator[tuple[Pushing, Path]]:
    """A pusher whose NAS client reads its token from a real file (`OLD_TOKEN` at first)."""
    token_file = tmp_path / "nas-token"
    token_file.write_text(OLD_TOKEN + "\n")
    nas = ScriptedNas()
    clock = ManualUtcClock(T0)
    async with httpx.AsyncClient(transport=httpx.MockTransport(nas)) as http:
        client = NasClient(http, PORTAL, FileToken(token_file), budget=ONE_TRY)
        yield Pushing(OutboxPusher(store, client, CALLBACK, clock), store, nas, clock), token_file


def accepting(*tokens: str, refusal: int = 401) -> Callable[[httpx.Request], httpx.Response]:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"].removeprefix("Bearer ") in tokens:
            return httpx.Response(200, json={"schedule_id": "sch-1"})
        return httpx.Response(refusal, json={"error": "unauthorized", "detail": "unknown token"})

    return answer


def answering(status: int, detail: str) -> Answer:
    async def answer(_path: str, _body: dict[str, Any]) -> httpx.Response:
        return httpx.Response(status, json={"error": "invalid_request", "detail": detail})

    return answer


def no_token_logged(caplog: pytest.LogCaptureFixture) -> bool:
    logged = " ".join(f"{r.getMessage()} {r.__dict__!r}" for r in caplog.records)
    return OLD_TOKEN not in logged and NEW_TOKEN not in logged


@pytest.mark.parametrize("status", [401, 403])
async def test_credentials_refused_after_a_refresh_stay_queued_on_backoff(
    rotating: tuple[Pushing, Path], status: int, caplog: pytest.LogCaptureFixture
) -> None:
    pushing, _token_file = rotating
    pushing.nas.answer = answering(status, "unknown agent token")
    await pushing.queue("job-a", NasOp.PROVISION, FIRE_AT)

    with caplog.at_level(logging.INFO):
        assert await pushing.pusher.push_job("job-a") is False

    kept = await pushing.pending("job-a")
    assert kept is not None
    assert kept.attempts == 1 and not kept.parked
    assert kept.last_error is not None
    assert kept.last_error == (
        f"POST /api/agent-cron/provision: NAS refused the agent's credentials (HTTP {status})"
        " after a refresh: unknown agent token"
    )
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "refused the agent's credentials" in warning.getMessage()
    assert "retried with backoff" in warning.getMessage()
    fields = warning.__dict__
    assert (fields["job_id"], fields["op"], fields["status"]) == ("job-a", "provision", status)
    assert no_token_logged(caplog)
    assert len(pushing.nas.calls) == 2  # refreshed (the same token) and sent once more

    # The maintenance drain retries it on its backoff; NAS has learnt the new token by then.
    pushing.nas.answer = ok
    pushing.clock.advance(1)
    await pushing.pusher.push_all(concurrency=1, backoff=True)
    assert len(pushing.nas.calls) == 2  # held back: failed 1 s ago, backoff 2 s
    pushing.clock.advance(1)
    assert await pushing.pusher.push_all(concurrency=1, backoff=True) == 0
    assert len(pushing.nas.calls) == 3
    assert await pushing.pending("job-a") is None


async def test_a_token_rotated_while_nas_refuses_the_old_one_is_sent_at_once(
    rotating: tuple[Pushing, Path],
) -> None:
    pushing, token_file = rotating
    sent: list[str] = []

    def nas(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers["Authorization"])
        if len(sent) == 1:
            token_file.write_text(NEW_TOKEN + "\n")  # the sidecar rotates it meanwhile
        return accepting(NEW_TOKEN)(request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(nas)) as http:
        pushing.pusher.nas = NasClient(http, PORTAL, FileToken(token_file), budget=ONE_TRY)
        await pushing.queue("job-a", NasOp.CANCEL)
        assert await pushing.pusher.push_job("job-a") is True

    assert sent == [f"Bearer {OLD_TOKEN}", f"Bearer {NEW_TOKEN}"]
    assert await pushing.pending("job-a") is None


async def test_unreadable_credentials_keep_the_operation_on_backoff(
    rotating: tuple[Pushing, Path],
) -> None:
    pushing, token_file = rotating
    token_file.unlink()
    await pushing.queue("job-a", NasOp.PROVISION, FIRE_AT)

    assert await pushing.pusher.push_job("job-a") is False

    kept = await pushing.pending("job-a")
    assert kept is not None and not kept.parked and kept.attempts == 1
    assert kept.last_error is not None
    assert kept.last_error.startswith("CHRONOS_NAS_TOKEN_FILE: cannot read")
    assert pushing.nas.calls == []


@pytest.mark.parametrize("status", [400, 404, 409, 422])
async def test_an_operation_nas_refuses_is_parked_for_the_next_reconcile(
    pushing: Pushing, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    pushing.nas.answer = answering(status, "fire_at: bad fire_at")
    await pushing.queue("job-a", NasOp.PROVISION, FIRE_AT)

    with caplog.at_level(logging.WARNING):
        assert await pushing.pusher.push_job("job-a") is False

    parked = await pushing.pending("job-a")
    assert parked is not None
    assert parked.parked and parked.parked_at == T0
    assert parked.attempts == 1
    assert parked.last_error == (
        f"POST /api/agent-cron/provision: HTTP {status}: fire_at: bad fire_at"
    )
    [warning] = caplog.records
    assert "parked" in warning.getMessage() and warning.__dict__["status"] == status

    # The maintenance drain leaves it alone, however long it waits...
    pushing.clock.advance(3600)
    assert await pushing.pusher.push_all(concurrency=1, backoff=True) == 0
    assert len(pushing.nas.calls) == 1

    # ...and a reconcile's drain (no backoff) tries it again.
    pushing.nas.answer = ok
    assert await pushing.pusher.push_all(concurrency=1) == 0
    assert len(pushing.nas.calls) == 2
    assert await pushing.pending("job-a") is None


async def test_a_parked_operation_refused_again_stays_parked(pushing: Pushing) -> None:
    pushing.nas.answer = answering(422, "fire_at: bad fire_at")
    await pushing.queue("job-a", NasOp.PROVISION, FIRE_AT)
    assert await pushing.pusher.push_job("job-a") is False
    pushing.clock.advance(600)

    assert await pushing.pusher.push_all(concurrency=1) == 1

    parked = await pushing.pending("job-a")
    assert parked is not None and parked.parked_at == pushing.clock()
    assert parked.attempts == 2


async def test_a_parked_operation_that_fails_for_a_passing_reason_goes_back_on_backoff(
    pushing: Pushing,
) -> None:
    pushing.nas.answer = answering(422, "fire_at: bad fire_at")
    await pushing.queue("job-a", NasOp.PROVISION, FIRE_AT)
    assert await pushing.pusher.push_job("job-a") is False

    pushing.nas.answer = unavailable
    assert await pushing.pusher.push_all(concurrency=1) == 1

    kept = await pushing.pending("job-a")
    assert kept is not None and not kept.parked and kept.attempts == 2
    pushing.nas.answer = ok
    pushing.clock.advance(4)  # 2^2 s
    assert await pushing.pusher.push_all(concurrency=1, backoff=True) == 0
    assert await pushing.pending("job-a") is None


async def test_an_explicit_push_of_the_job_tries_its_parked_operation(pushing: Pushing) -> None:
    """A fire re-delivered by NAS, or an admin change, pushes the job whatever its state."""
    pushing.nas.answer = answering(409, "conflict")
    await pushing.queue("job-a", NasOp.CANCEL)
    assert await pushing.pusher.push_job("job-a") is False

    pushing.nas.answer = ok
    assert await pushing.pusher.push_job("job-a") is True
    assert pushing.nas.calls == [("cancel", "job-a")] * 2


async def test_a_newer_operation_clears_the_parking(pushing: Pushing) -> None:
    pushing.nas.answer = answering(422, "fire_at: bad fire_at")
    await pushing.queue("job-a", NasOp.PROVISION, FIRE_AT)
    assert await pushing.pusher.push_job("job-a") is False

    await pushing.queue("job-a", NasOp.PROVISION, FIRE_AT.replace(hour=14))

    fresh = await pushing.pending("job-a")
    assert fresh is not None
    assert (fresh.parked_at, fresh.attempts, fresh.last_error) == (None, 0, None)
    pushing.nas.answer = ok
    assert await pushing.pusher.push_all(concurrency=1, backoff=True) == 0
    assert pushing.nas.bodies[-1]["fire_at"] == "2030-01-01T14:00:00+00:00"

"""The metrics' parts on their own: the store gauges' cache, the services' figures, the
labels of fire answers and NAS failures, takeovers, and one registry per `Metrics`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from app.domain.states import NasOp
from app.errors import InvalidRequest, Overloaded, PayloadTooLarge, Unauthorized
from app.fire.answers import FireAnswer, ignored_answer
from app.fire.observe import answer_outcome, error_outcome
from app.metrics import Metrics, ServiceFigures, StoreGaugeCollector
from app.nas import CredentialsRefused, CredentialsUnavailable, NasError
from app.nas.observe import nas_result
from app.runner.executor import RunExecutor
from app.runner.targets import TargetRunner
from app.store import Store, StoreUnavailable, Tx
from tests.metrics.scrape import value
from tests.runner.support import FAST, START, ManualClock, admit
from tests.support.records import job_row

NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)


@pytest.mark.asyncio
async def test_each_metrics_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.fire_answered("accepted", 0.01)
    assert value((await first.scrape()).decode(), "chronos_fires_total", outcome="accepted") == 1
    assert value((await second.scrape()).decode(), "chronos_fires_total", outcome="accepted") == 0


@pytest.mark.asyncio
async def test_store_gauges_are_read_at_most_once_per_ttl(store: Store) -> None:
    metrics = Metrics()
    gauges = StoreGaugeCollector(store, lambda: NOW, ttl=60.0)
    metrics.add_collector(gauges, refresh=gauges.refresh)
    async with store.transaction() as tx:
        await tx.jobs.insert(job_row("job-1", next_run_at=NOW))
        await tx.outbox.queue("job-1", NasOp.PROVISION, NOW, NOW - timedelta(seconds=30))

    first = (await metrics.scrape()).decode()
    assert value(first, "chronos_jobs", state="scheduled") == 1
    assert value(first, "chronos_outbox_pending") == 1
    assert value(first, "chronos_outbox_oldest_age_seconds") == 30
    async with store.transaction() as tx:
        await tx.jobs.insert(job_row("job-2", next_run_at=NOW))
    # Concurrent scrapes within the ttl share the one read.
    pages = await asyncio.gather(*(metrics.scrape() for _ in range(5)))
    assert gauges.reads == 1
    assert {value(p.decode(), "chronos_jobs", state="scheduled") for p in pages} == {1}

    gauges.ttl = 0.0
    third = (await metrics.scrape()).decode()
    assert gauges.reads == 2
    assert value(third, "chronos_jobs", state="scheduled") == 2


@pytest.mark.asyncio
async def test_an_unreadable_store_leaves_its_gauges_out(store: Store) -> None:
    class DownStore(Store):
        @asynccontextmanager
        async def read(self) -> AsyncIterator[Tx]:
            raise StoreUnavailable("the test stopped the database")
            yield  # pragma: no cover

    metrics = Metrics()
    gauges = StoreGaugeCollector(DownStore(store.engine), lambda: NOW, ttl=0.0)
    metrics.add_collector(gauges, refresh=gauges.refresh)
    page = (await metrics.scrape()).decode()
    assert value(page, "chronos_jobs", state="scheduled") is None
    assert value(page, "chronos_outbox_pending") is None
    assert value(page, "chronos_build_info") == 1  # the rest of the page still answers


@dataclass
class Gate:
    shed: int = 3
    working: int = 2
    waiting: int = 1


@dataclass
class Acks:
    batches: int = 4
    written: int = 9


@dataclass
class Counts:
    audits: int = 5
    checked: int = 7
    repaired: int = 1
    failed: int = 0
    list_errors: int = 2


@dataclass
class Audit:
    counts: Counts = field(default_factory=Counts)
    waiting: int = 6


@dataclass
class Executor:
    outcomes_waiting: int = 8


@pytest.mark.asyncio
async def test_the_services_figures_are_read_at_scrape_time() -> None:
    metrics, gate = Metrics(), Gate()
    metrics.add_collector(
        ServiceFigures(gate=gate, acks=Acks(), audit=Audit(), executor=Executor())
    )
    gate.shed = 11  # after registration: the scrape reads the figure as it is now
    page = (await metrics.scrape()).decode()
    assert value(page, "chronos_fires_shed_total") == 11
    assert value(page, "chronos_fires_working") == 2
    assert value(page, "chronos_fires_waiting") == 1
    assert value(page, "chronos_outbox_ack_batches_total") == 4
    assert value(page, "chronos_outbox_acks_total") == 9
    assert value(page, "chronos_arm_audits_total") == 5
    assert value(page, "chronos_arm_audit_checked_total") == 7
    assert value(page, "chronos_arm_audit_repaired_total") == 1
    assert value(page, "chronos_arm_audit_list_errors_total") == 2
    assert value(page, "chronos_arm_audit_waiting") == 6
    assert value(page, "chronos_run_outcomes_waiting") == 8


def test_fire_answers_and_errors_map_to_outcomes() -> None:
    assert answer_outcome(ignored_answer("paused", "j", None)) == "ignored_paused"
    assert answer_outcome(ignored_answer("something new", "j", None)) == "ignored_other"
    assert answer_outcome(FireAnswer(503, {"error": "arm_pending", "detail": "x"})) == (
        "unavailable"
    )
    assert answer_outcome(FireAnswer(202, {"status": "accepted"})) == "accepted"
    assert answer_outcome(FireAnswer(200, {"status": "surprise"})) == "error"
    assert error_outcome(Unauthorized()) == "rejected_401"
    assert error_outcome(InvalidRequest("bad")) == "rejected_400"
    assert error_outcome(PayloadTooLarge("big")) == "rejected_413"
    assert error_outcome(Overloaded("busy", retry_after=1)) == "unavailable"
    assert error_outcome(StoreUnavailable("down")) == "unavailable"
    assert error_outcome(RuntimeError("bug")) == "error"


def test_nas_failures_map_to_results() -> None:
    assert nas_result(NasError("x", transient=True)) == "transient"
    assert nas_result(NasError("x", transient=False, status_code=400)) == "permanent"
    assert nas_result(CredentialsRefused("x", status_code=401)) == "credentials_refused"
    assert nas_result(CredentialsUnavailable("x")) == "credentials_unavailable"


@pytest.mark.asyncio
async def test_a_lease_takeover_is_counted(store: Store) -> None:
    metrics = Metrics()
    clock = ManualClock(START + timedelta(seconds=60))  # long past the dead holder's lease
    async with httpx.AsyncClient() as http:
        executor = RunExecutor(
            store,
            TargetRunner(http, python_workers=1),
            node_id="b",
            lease_seconds=5,
            clock=clock,
            pace=FAST,
            metrics=metrics,
        )
        await admit(store, "dead", now=START)
        assert await executor.recover_expired() == 1
        await executor.wait_idle(timeout=10)
    page = (await metrics.scrape()).decode()
    assert value(page, "chronos_lease_takeovers_total") == 1
    # A resumed run is attempt 2: counted, but its lateness (a first attempt's) is not.
    assert value(page, "chronos_runs_total", kind="scheduled", status="succeeded") == 1
    assert value(page, "chronos_run_lateness_seconds_count") == 0

"""What the dashboard shows of a job's standing at NAS, and of its runs' timing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from app.domain.records import FireRecord, JobRecord, OutboxRecord
from app.domain.states import JobState, NasOp, RunKind, RunStatus
from app.ui.chart import lateness_chart
from app.ui.views import arm_state, run_row, seconds_text
from tests.support.records import job_record

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def _job(**changes: object) -> JobRecord:
    """An hourly job created at `T0`, its next fire armed at NAS; `changes` replace fields."""
    due = T0 + timedelta(hours=1)
    fields: dict[str, object] = {
        "id": "j1",
        "name": "job",
        "anchor_at": T0,
        "created_at": T0,
        "updated_at": T0,
        "next_run_at": due,
        "nas_armed_at": due,
    }
    return job_record(**{**fields, **changes})


def _op(**changes: object) -> OutboxRecord:
    op = OutboxRecord(
        job_id="j1",
        op=NasOp.PROVISION,
        fire_at=T0 + timedelta(hours=1),
        op_id="op-1",
        attempts=3,
        last_error="NAS answered 422: fire_at too far ahead",
        created_at=T0,
        updated_at=T0,
    )
    return replace(op, **changes)  # type: ignore[arg-type]


def _run(late: float | None, status: RunStatus = RunStatus.SUCCEEDED) -> FireRecord:
    started = None if late is None else T0 + timedelta(seconds=late)
    return FireRecord(
        id=1,
        job_id="j1",
        fire_at=T0,
        dedup_key="j1:2026-03-01T09:00:00+00:00",
        kind=RunKind.SCHEDULED,
        status=status,
        attempt=1,
        lease_owner=None,
        lease_expires_at=None,
        fencing_token=1,
        admitted_at=T0,
        started_at=started,
        finished_at=None if started is None else started + timedelta(seconds=2.5),
        outcome=None,
        output="done",
        error=None,
        slots=1,
    )


def test_arm_states() -> None:
    assert arm_state(_job(), None).label == "armed"
    assert arm_state(_job(nas_armed_at=None), None).label == "unconfirmed"
    assert arm_state(_job(state=JobState.PAUSED, nas_armed_at=None), None).label == "idle"
    pending = arm_state(_job(), _op())
    assert (pending.label, pending.error) == ("pending", "NAS answered 422: fire_at too far ahead")
    parked = arm_state(_job(), _op(parked_at=T0))
    assert parked.label == "parked"
    assert "refused by NAS" in parked.detail


def test_a_runs_lateness_and_duration() -> None:
    row = run_row(_run(0.25))
    assert (row.lateness, row.duration) == ("250 ms", "2.50 s")
    assert run_row(_run(None)).lateness == "-"
    assert seconds_text(95) == "95.0 s"
    assert seconds_text(600) == "10.0 min"


def test_the_lateness_chart() -> None:
    assert lateness_chart([]) is None
    assert lateness_chart([_run(None)]) is None
    chart = lateness_chart([_run(2.0, RunStatus.FAILED), _run(1.0), _run(None)])
    assert chart is not None
    assert [bar.tone for bar in chart.bars] == ["ok", "bad"]  # oldest first
    tallest = max(chart.bars, key=lambda bar: bar.height)
    assert tallest.tone == "bad"
    assert tallest.y == chart.ticks[-1].y  # the worst run reaches the top of the scale
    assert chart.summary == "2 runs: median 2.00 s, worst 2.00 s"

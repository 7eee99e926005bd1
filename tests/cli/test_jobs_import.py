"""`chronos jobs import`: how a file is cut into batches, and how a refused batch is told."""

from __future__ import annotations

import json

import httpx
import pytest

from app.cli.jobs import BATCH_BYTES, BATCH_JOBS, _refused, batches


def test_batches_hold_at_most_a_thousand_jobs_in_file_order() -> None:
    jobs = [{"n": n} for n in range(2 * BATCH_JOBS + 500)]
    cut = list(batches(jobs))
    assert [(start, len(batch)) for start, batch in cut] == [(0, 1000), (1000, 1000), (2000, 500)]
    assert [job for _, batch in cut for job in batch] == jobs


def test_batches_stay_under_the_body_limit() -> None:
    big = {"name": "x" * 4000}
    cut = list(batches([big] * 600))
    assert len(cut) > 2
    assert all(len(json.dumps({"jobs": batch}).encode()) <= BATCH_BYTES for _, batch in cut)
    assert sum(len(batch) for _, batch in cut) == 600


def test_one_job_larger_than_the_limit_is_still_sent_alone() -> None:
    huge = {"name": "x" * (BATCH_BYTES + 1)}
    assert [len(batch) for _, batch in batches([{"a": 1}, huge, {"b": 2}])] == [1, 1, 1]


def test_a_refused_batch_names_items_by_their_index_in_the_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    response = httpx.Response(
        400,
        json={
            "error": "invalid_request",
            "detail": "1 of 1000 jobs invalid, nothing created",
            "items": [
                {"index": 3, "field": "schedule", "detail": "cannot parse schedule"},
                {"index": 7, "field": None, "detail": "Input should be an object"},
            ],
        },
    )
    exit_ = _refused(response, start=1000, created=1000)
    assert exit_.exit_code == 1
    text = " ".join(capsys.readouterr().err.split())
    assert "jobs[1003].schedule: cannot parse schedule" in text
    assert "jobs[1007]: Input should be an object" in text
    assert "created 1000 jobs before this batch (items 0..999)" in text
    assert "HTTP 400: 1 of 1000 jobs invalid" in text

"""Validation of the fire call's body, parsed from the same raw bytes that arrived."""

from __future__ import annotations

import json
from datetime import datetime

from app.clock import InvalidInstant, parse_instant
from app.errors import InvalidRequest
from app.validation import text_problem

_FIRE_AT_PROBLEMS = {
    "format": "fire_at: not an ISO 8601 timestamp: {!r}",
    "offset": "fire_at: must carry a UTC offset (for example +00:00 or Z)",
    "range": "fire_at: out of range",
}


def parse_fire_body(raw: bytes) -> tuple[str, datetime | None]:
    """Return `(job_id, fire_at)` with `fire_at` in UTC, or None when the body has none (the
    fire then stands for the job's next fire); `InvalidRequest` naming the field."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidRequest("body: not valid JSON") from exc
    if not isinstance(data, dict):
        raise InvalidRequest("body: must be a JSON object with job_id and fire_at")
    job_id = data.get("job_id")
    if job_id is None:
        raise InvalidRequest("job_id: field required")
    if not isinstance(job_id, str) or not job_id.strip() or len(job_id) > 200:
        raise InvalidRequest("job_id: must be a non-empty string of at most 200 characters")
    if (problem := text_problem(job_id)) is not None:
        raise InvalidRequest(f"job_id: {problem}")
    fire_at_text = data.get("fire_at")
    if fire_at_text is None:
        return job_id, None
    if not isinstance(fire_at_text, str):
        raise InvalidRequest("fire_at: must be an ISO 8601 string with a UTC offset")
    try:
        return job_id, parse_instant(fire_at_text)
    except InvalidInstant as exc:
        raise InvalidRequest(_FIRE_AT_PROBLEMS[exc.problem].format(fire_at_text[:64])) from exc

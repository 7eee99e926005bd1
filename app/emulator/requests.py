"""Parsing of provision and cancel requests: each error names the offending field."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request

from app.clock import InvalidInstant, parse_instant
from app.emulator.records import ProvisionRequest
from app.errors import InvalidRequest

MAX_JOB_ID_LENGTH = 200


async def read_json_object(request: Request) -> dict[str, Any]:
    try:
        payload = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequest("body: must be a JSON object") from exc
    if not isinstance(payload, dict):
        raise InvalidRequest("body: must be a JSON object")
    return payload


def parse_provision_request(payload: dict[str, Any]) -> ProvisionRequest:
    """Validate a provision body; each error names the offending field."""
    job_id = parse_job_id(payload)
    fire_at = payload.get("fire_at")
    fire_at_utc = instant_field(fire_at, "fire_at")
    assert isinstance(fire_at, str)
    callback_url = _parse_callback_url(payload.get("agent_callback_url"))
    dedup_key = payload.get("dedup_key")
    if not isinstance(dedup_key, str) or not dedup_key:
        raise InvalidRequest('dedup_key: required, a string "{job_id}:{fire_at}"')
    prefix = f"{job_id}:"
    if not dedup_key.startswith(prefix):
        raise InvalidRequest('dedup_key: must be "{job_id}:{fire_at}" and start with the job_id')
    try:
        dedup_instant = instant_field(dedup_key[len(prefix) :], "dedup_key")
    except InvalidRequest as exc:
        raise InvalidRequest(
            'dedup_key: must be "{job_id}:{fire_at}" with fire_at as ISO 8601 with an offset'
        ) from exc
    if dedup_instant != fire_at_utc:
        raise InvalidRequest(
            f"dedup_key: names the instant {dedup_instant.isoformat()}, "
            f"but fire_at is {fire_at_utc.isoformat()}"
        )
    return ProvisionRequest(
        job_id=job_id,
        fire_at=fire_at,
        fire_at_utc=fire_at_utc,
        agent_callback_url=callback_url,
        dedup_key=dedup_key,
    )


def instant_field(value: object, field: str) -> datetime:
    """An ISO 8601 timestamp with a UTC offset, as an aware UTC datetime."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"{field}: required, an ISO 8601 timestamp with offset")
    try:
        return parse_instant(value)
    except InvalidInstant as exc:
        problem = {
            "format": "not an ISO 8601 timestamp: {!r}",
            "offset": "{!r} has no UTC offset; add one, e.g. 'Z' or '+02:00'",
            "range": "{!r} is out of range",
        }[exc.problem]
        raise InvalidRequest(f"{field}: " + problem.format(value)) from exc


def parse_job_id(payload: dict[str, Any]) -> str:
    job_id = payload.get("job_id")
    if not isinstance(job_id, str) or not job_id:
        raise InvalidRequest("job_id: required, a non-empty string")
    if len(job_id) > MAX_JOB_ID_LENGTH:
        raise InvalidRequest(f"job_id: longer than {MAX_JOB_ID_LENGTH} characters")
    return job_id


def _parse_callback_url(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidRequest("agent_callback_url: required, an absolute http(s) URL")
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError as exc:
        raise InvalidRequest(f"agent_callback_url: not a valid URL: {value!r}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(f"agent_callback_url: must be an absolute http(s) URL: {value!r}")
    if parts.query or parts.fragment:
        raise InvalidRequest(
            "agent_callback_url: must be a base URL without query or fragment "
            "(NAS appends /api/cron/fire)"
        )
    return value

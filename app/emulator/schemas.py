"""Bodies of the emulator's API, for validation messages and its OpenAPI document."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from app.emulator.requests import MAX_JOB_ID_LENGTH


class ErrorOut(BaseModel):
    error: str
    detail: str


class ProvisionBody(BaseModel):
    job_id: str = Field(min_length=1, max_length=MAX_JOB_ID_LENGTH)
    fire_at: str = Field(description="ISO 8601 instant with a UTC offset")
    agent_callback_url: str = Field(description="the agent's base URL; NAS appends /api/cron/fire")
    dedup_key: str = Field(description='"{job_id}:{fire_at}"')


class CancelBody(BaseModel):
    job_id: str = Field(min_length=1, max_length=MAX_JOB_ID_LENGTH)


class ScheduleOut(BaseModel):
    schedule_id: str


class OkOut(BaseModel):
    ok: bool


class ArmedOut(BaseModel):
    job_id: str
    fire_at: str = Field(description="ISO 8601 in UTC, with +00:00")
    schedule_id: str


class ArmedListOut(BaseModel):
    armed: list[ArmedOut]
    next_cursor: str | None = Field(default=None, description="present when more arms remain")


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


AGENT_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "invalid_request: the detail names the field"},
    401: {"model": ErrorOut, "description": "unauthorized: missing or unknown bearer token"},
}

"""The agent's OpenAPI document, made to say what the app does."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from app.domain.fires import FIRE_PURPOSE
from app.domain.states import FireOutcome, IgnoredReason, RunStatus

_BAD_INPUT = {
    "description": "invalid input; `detail` names the field",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


def describe_errors_and_fire(app: FastAPI) -> None:
    """Make the OpenAPI document say what the app does: every failure is an `Error` body,
    invalid input is a 400 (never FastAPI's default 422), the fire call's token and answer."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                responses = operation.get("responses", {})
                if responses.pop("422", None) is not None:
                    responses.setdefault("400", _BAD_INPUT)
        components = schema.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        schemas["Error"] = {
            "type": "object",
            "required": ["error", "detail"],
            "properties": {
                "error": {"type": "string", "examples": ["invalid_request"]},
                "detail": {"type": "string", "examples": ["job_id: field required"]},
            },
        }
        schemas["FireAnswer"] = {
            "type": "object",
            "required": ["status", "job_id", "fire_at"],
            "properties": {
                "status": {
                    "type": "string",
                    "enum": [outcome.value for outcome in FireOutcome],
                },
                "job_id": {"type": "string"},
                "fire_at": {
                    "type": ["string", "null"],
                    "format": "date-time",
                    "description": "the fire's instant; null when ignored before one was known",
                },
                "reason": {
                    "type": ["string", "null"],
                    "description": "ignored: "
                    + " | ".join(reason.value for reason in IgnoredReason),
                },
                "run_status": {
                    "type": "string",
                    "enum": [status.value for status in RunStatus],
                    "description": "duplicate: the run's status",
                },
            },
        }
        components.setdefault("securitySchemes", {})["NasFireToken"] = {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A short-lived JWT minted by NAS: aud, iss, exp,"
            f" purpose={FIRE_PURPOSE}",
        }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

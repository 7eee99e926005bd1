"""One JSON error surface for every HTTP app here (the agent and the NAS emulator): each
failure answers `{"error": kind, "detail": message}`."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import ChronosError

log = logging.getLogger(__name__)

_HTTP_ERROR_KINDS = {404: "not_found", 405: "method_not_allowed"}
_TARGET_TAGS = ("http", "command", "python")


def error_response(
    status_code: int, kind: str, detail: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": kind, "detail": detail}, status_code=status_code, headers=headers)


def _field_path(loc: Iterable[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    # Drop the discriminator tag pydantic inserts for tagged unions (target.command.argv).
    if len(parts) >= 2 and parts[0] == "target" and parts[1] in _TARGET_TAGS:
        parts.pop(1)
    return ".".join(parts) or "body"


def describe_validation_errors(errors: Iterable[Mapping[str, Any]], *, limit: int = 5) -> str:
    """`field: message` for the first `limit` errors, joined by `; `; inputs never echoed."""
    messages = [
        f"{_field_path(err.get('loc', ()))}: {err.get('msg', 'invalid')}"
        for err in list(errors)[:limit]
    ]
    return "; ".join(messages) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """Render the error hierarchy, invalid input (400, never FastAPI's 422), HTTP errors and
    anything unexpected (a JSON 500 whose detail leaks nothing) as JSON errors."""

    @app.exception_handler(ChronosError)
    async def _chronos_error(_: Request, exc: ChronosError) -> JSONResponse:
        return error_response(exc.status_code, exc.kind, exc.message, exc.headers or None)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, "invalid_request", describe_validation_errors(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = _HTTP_ERROR_KINDS.get(exc.status_code, "http_error")
        return error_response(exc.status_code, kind, str(exc.detail), exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error", exc_info=exc)
        return error_response(500, "internal", "unexpected error; the service log has the details")

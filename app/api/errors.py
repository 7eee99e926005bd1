"""One exception handler: every error answers `{"error": kind, "detail": message}`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import ChronosError
from app.store import StoreUnavailable

log = logging.getLogger(__name__)


def error_body(kind: str, detail: str) -> dict[str, str]:
    return {"error": kind, "detail": detail}


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    # Drop the discriminator tag pydantic inserts for tagged unions (target.command.argv).
    if len(parts) >= 2 and parts[0] == "target" and parts[1] in ("http", "command", "python"):
        parts.pop(1)
    return ".".join(parts) or "body"


def describe_validation_error(exc: RequestValidationError) -> str:
    messages = []
    for err in exc.errors()[:5]:
        messages.append(f"{_field_path(tuple(err.get('loc', ())))}: {err.get('msg', 'invalid')}")
    return "; ".join(messages) or "invalid request"


def install_error_handlers(app: FastAPI, *, retry_after_seconds: int) -> None:
    @app.exception_handler(ChronosError)
    async def _chronos_error(_: Request, exc: ChronosError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.kind, exc.message), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            error_body("invalid_request", describe_validation_error(exc)), status_code=400
        )

    @app.exception_handler(StoreUnavailable)
    async def _store_unavailable(_: Request, exc: StoreUnavailable) -> JSONResponse:
        log.error("store unavailable", extra={"error": str(exc)})
        return JSONResponse(
            error_body("store_unavailable", "the database is unavailable; retry later"),
            status_code=503,
            headers={"Retry-After": str(retry_after_seconds)},
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error", exc_info=exc)
        return JSONResponse(
            error_body("internal", "unexpected error; the service log has the details"),
            status_code=500,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            error_body(kind, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

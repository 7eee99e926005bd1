"""One JSON error surface for every HTTP app here (the agent and the NAS emulator): each
failure answers `{"error": kind, "detail": message}`."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import ChronosError
from app.validation import describe_validation_errors

log = logging.getLogger(__name__)

_HTTP_ERROR_KINDS = {404: "not_found", 405: "method_not_allowed"}


def error_response(
    status_code: int, kind: str, detail: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": kind, "detail": detail}, status_code=status_code, headers=headers)


def install_error_handlers(
    app: FastAPI, *, tagged_unions: Mapping[str, Sequence[str]] | None = None
) -> None:
    """Render the error hierarchy, invalid input (400, never FastAPI's 422; the first five
    problems, each naming its field), HTTP errors and anything unexpected (a JSON 500 whose
    detail leaks nothing) as JSON errors."""

    @app.exception_handler(ChronosError)
    async def _chronos_error(_: Request, exc: ChronosError) -> JSONResponse:
        return error_response(exc.status_code, exc.kind, exc.message, exc.headers or None)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        detail = describe_validation_errors(exc.errors(), tagged_unions=tagged_unions, limit=5)
        return error_response(400, "invalid_request", detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = _HTTP_ERROR_KINDS.get(exc.status_code, "http_error")
        return error_response(exc.status_code, kind, str(exc.detail), exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error", exc_info=exc)
        return error_response(500, "internal", "unexpected error; the service log has the details")

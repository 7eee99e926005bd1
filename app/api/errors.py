"""The agent's error handlers: the shared JSON error surface, plus 503 for a store outage and
400 for a value the database refused as data (validation should have caught it first)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from app.http_errors import error_response
from app.http_errors import install_error_handlers as install_json_error_handlers
from app.logs import failure_fields
from app.runner.targets import TARGET_TAGS
from app.store import StoreUnavailable
from app.store.errors import StoreDataError

log = logging.getLogger(__name__)


def install_error_handlers(app: FastAPI, *, retry_after_seconds: int) -> None:
    install_json_error_handlers(app, tagged_unions={"target": TARGET_TAGS})

    @app.exception_handler(StoreUnavailable)
    async def _store_unavailable(_: Request, exc: StoreUnavailable) -> JSONResponse:
        log.error("store unavailable", extra=failure_fields(exc))
        return error_response(
            503,
            "store_unavailable",
            "the database is unavailable; retry later",
            {"Retry-After": str(retry_after_seconds)},
        )

    @app.exception_handler(StoreDataError)
    async def _store_data_error(_: Request, exc: StoreDataError) -> JSONResponse:
        # The database's own message may quote the value: only its class is logged.
        log.warning("the store refused a value as data", extra={"error": str(exc)})
        return error_response(
            400,
            "invalid_request",
            "request: a value was refused by the database (out of range, or not storable text)",
        )

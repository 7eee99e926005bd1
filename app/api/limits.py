"""Request body size limits: a body over its limit is refused with 413, by its declared
`Content-Length` before anything is read, or while it streams in once the limit is passed."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from app.errors import PayloadTooLarge


async def read_body_limited(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than `limit` bytes without reading the rest."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body: larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body: larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class AdminBodyLimitRoute(APIRoute):
    """An admin route whose body is read under `CHRONOS_MAX_ADMIN_BODY_BYTES` before FastAPI
    parses it (FastAPI reads the cached body then)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def limited(request: Request) -> Response:
            if request.method in ("POST", "PUT", "PATCH"):
                limit = request.app.state.settings.max_admin_body_bytes
                request._body = await read_body_limited(request, limit)
            return await handler(request)

        return limited

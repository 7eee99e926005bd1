"""A NAS stub fast enough not to be the bottleneck. A plain ASGI app, no framework.

- `POST /api/agent-cron/provision` and `/cancel` answer 200 at once and keep the arms (job id
  -> fire_at) the way NAS does; `GET /api/agent-cron/list` pages them like the NAS emulator (no
  `limit`: 500 per page, `limit` up to 1,000, `next_cursor` while more remain).
- Every agent-cron call first waits the stub's latency (`NAS_STUB_LATENCY_MS`, default 0),
  concurrently: a slow NAS, not a serialised one.
- `/.well-known/jwks.json` serves the bench's public key; `/target` is a no-op HTTP target.
- Bench-only control, never called by the agent: `POST /_stub/reset` forgets every arm and zeroes
  the counters; `POST /_stub/latency?ms=N` sets the latency; `GET /_stub/stats` answers the
  calls counted since the last reset and the arms held.

Run: `python -m bench.nas_stub PORT JWKS_FILE`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

_JSON = [(b"content-type", b"application/json")]
_OK = b'{"ok":true}'
_AGENT_CRON = {f"/api/agent-cron/{call}": call for call in ("provision", "cancel", "list")}
DEFAULT_PAGE = 500  # the NAS emulator's default page size
MAX_PAGE = 1000


class StubState:
    """The arms the stub holds, its latency and what it counted since the last reset."""

    def __init__(self, latency_ms: float) -> None:
        self.latency = latency_ms / 1000
        self.schedule_ids = itertools.count(1)
        self.arms: dict[str, tuple[str, str]] = {}  # job id -> (fire_at, schedule id)
        self.counts = {"provision": 0, "cancel": 0, "list": 0}

    def reset(self) -> None:
        self.arms.clear()
        self.counts = dict.fromkeys(self.counts, 0)

    def provision(self, body: bytes) -> bytes:
        data = json.loads(body)
        schedule_id = str(next(self.schedule_ids))
        self.arms[str(data["job_id"])] = (data["fire_at"], schedule_id)
        return b'{"schedule_id":"%s"}' % schedule_id.encode()

    def cancel(self, body: bytes) -> bytes:
        self.arms.pop(str(json.loads(body)["job_id"]), None)
        return _OK

    def list_page(self, query: bytes) -> bytes:
        params = parse_qs(query.decode())
        start = int(params.get("cursor", ["0"])[0] or 0)
        limit = min(max(int(params.get("limit", [DEFAULT_PAGE])[0]), 1), MAX_PAGE)
        # Arms are kept in insertion order; a page is a slice of them (enough for a bench
        # that does not provision while it lists).
        page = list(itertools.islice(self.arms.items(), start, start + limit))
        armed = [{"job_id": j, "fire_at": at, "schedule_id": s} for j, (at, s) in page]
        more = start + limit < len(self.arms)
        answer = {"armed": armed, "next_cursor": str(start + limit) if more else None}
        return json.dumps(answer, separators=(",", ":")).encode()

    def stats(self) -> bytes:
        return json.dumps({**self.counts, "armed": len(self.arms)}).encode()


async def _read_body(receive: Receive) -> bytes:
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


def build_app(jwks: bytes, state: StubState | None = None) -> App:
    """The stub's ASGI app, serving `jwks` as its JWKS document."""
    state = state or StubState(0)

    async def agent_cron(call: str, body: bytes, query: bytes) -> bytes:
        if state.latency:
            await asyncio.sleep(state.latency)
        state.counts[call] += 1
        if call == "provision":
            return state.provision(body)
        if call == "cancel":
            return state.cancel(body)
        return state.list_page(query)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body_in = await _read_body(receive)
        path, query = scope["path"], scope.get("query_string", b"")
        if path in _AGENT_CRON:
            body = await agent_cron(_AGENT_CRON[path], body_in, query)
        elif path == "/.well-known/jwks.json":
            body = jwks
        elif path == "/_stub/reset":
            state.reset()
            body = _OK
        elif path == "/_stub/latency":
            state.latency = float(parse_qs(query.decode())["ms"][0]) / 1000
            body = _OK
        elif path == "/_stub/stats":
            body = state.stats()
        else:  # /target, /healthz
            body = _OK
        await send({"type": "http.response.start", "status": 200, "headers": _JSON})
        await send({"type": "http.response.body", "body": body})

    return app


def main() -> None:
    import uvicorn

    port, jwks_file = int(sys.argv[1]), Path(sys.argv[2])
    jwks = json.dumps(json.loads(jwks_file.read_text())).encode()
    state = StubState(float(os.environ.get("NAS_STUB_LATENCY_MS", "0")))
    uvicorn.run(
        build_app(jwks, state),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        backlog=4096,
    )


if __name__ == "__main__":
    main()

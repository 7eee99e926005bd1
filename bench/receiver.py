"""The jobs' HTTP target for the lateness figure: records each request's arrival (wall clock,
taken as the request reaches the app) with its `Idempotency-Key` (`<job_id>:<fire_at>`) and
`Chronos-Attempt`, answers 200 at once. `GET /records` answers what it recorded. A plain ASGI
app, no framework.

Run: `python -m bench.receiver PORT`.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

_JSON = [(b"content-type", b"application/json")]


def build_app() -> App:
    records: list[tuple[str, str, float]] = []  # (idempotency key, attempt, arrival epoch)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        arrived = time.time()
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        if scope["path"] == "/records":
            body = json.dumps({"records": records}).encode()
        else:
            headers = dict(scope["headers"])
            key = headers.get(b"idempotency-key")
            if key is not None:
                attempt = headers.get(b"chronos-attempt", b"")
                records.append((key.decode(), attempt.decode(), arrived))
            body = b'{"ok":true}'
        await send({"type": "http.response.start", "status": 200, "headers": _JSON})
        await send({"type": "http.response.body", "body": body})

    return app


def main() -> None:
    import uvicorn

    uvicorn.run(
        build_app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False
    )


if __name__ == "__main__":
    main()

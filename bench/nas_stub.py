"""A NAS stub fast enough not to be the bottleneck: agent-cron provision, cancel and list
answer 200 at once, `/.well-known/jwks.json` serves the bench's public key, `/target` is a
no-op HTTP target for the jobs' runs. A plain ASGI app, no framework.

Run: `python bench/nas_stub.py PORT JWKS_FILE`.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON = [(b"content-type", b"application/json")]


def build_app(jwks: bytes) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The stub's ASGI app, serving `jwks` as its JWKS document."""
    schedule_ids = itertools.count(1)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        more = True
        while more:  # drain the body; the stub needs none of it
            more = (await receive()).get("more_body", False)
        path = scope["path"]
        if path == "/api/agent-cron/provision":
            body = b'{"schedule_id":"%d"}' % next(schedule_ids)
        elif path == "/api/agent-cron/list":
            body = b'{"armed":[]}'
        elif path == "/.well-known/jwks.json":
            body = jwks
        else:  # cancel, /target, /healthz
            body = b'{"ok":true}'
        await send({"type": "http.response.start", "status": 200, "headers": _JSON})
        await send({"type": "http.response.body", "body": body})

    return app


def main() -> None:
    import uvicorn

    port, jwks_file = int(sys.argv[1]), Path(sys.argv[2])
    jwks = json.dumps(json.loads(jwks_file.read_text())).encode()
    uvicorn.run(build_app(jwks), host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()

"""A JWKS endpoint on loopback whose key set a test changes while an agent process reads it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.keys import SigningKey, jwks_document


@dataclass
class JwksServer:
    url: str
    keys: list[SigningKey] = field(default_factory=list)
    fetches: int = 0


@contextmanager
def serve_jwks(keys: list[SigningKey]) -> Iterator[JwksServer]:
    """Serve `{"keys": [...]}` of `state.keys` (read at each request) until the block ends."""
    state = JwksServer(url="", keys=list(keys))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.fetches += 1
            body = json.dumps(jwks_document(*state.keys)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

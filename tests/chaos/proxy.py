"""A round-robin TCP "load balancer" in front of the replicas: the one callback URL NAS knows.

Each incoming connection goes to the next replica in turn; a refused connection (a replica that
is down) moves on to the next one, and a connection no replica takes is closed, which NAS sees
as a transport error and re-delivers. The first request head of each connection gets
`Connection: close`, so every request opens a new connection and is balanced on its own
(NAS's keep-alive would otherwise pin its deliveries to one replica).

The proxy runs its own event loop in a thread, so the test can block (sleep, wait for a
process) without stalling deliveries.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections import Counter

HEAD_LIMIT = 64 * 1024
CONNECT_TIMEOUT = 2.0
IDLE_TIMEOUT = 60.0


def close_after_response(head: bytes) -> bytes:
    """The request head with any `Connection` header replaced by `Connection: close`."""
    request_line, *headers = head[: -len(b"\r\n\r\n")].split(b"\r\n")
    kept = [line for line in headers if not line.lower().startswith(b"connection:")]
    return b"\r\n".join([request_line, *kept, b"Connection: close"]) + b"\r\n\r\n"


class RoundRobinProxy:
    def __init__(self, upstream_ports: list[int], host: str = "127.0.0.1") -> None:
        self.host = host
        self.upstream_ports = list(upstream_ports)
        self.port = 0
        self.forwarded: Counter[int] = Counter()  # connections per upstream port
        self.refused: Counter[int] = Counter()  # refused connection attempts per upstream port
        self.unserved = 0  # connections no replica took
        self._next = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                asyncio.run(self._serve(ready))
            except BaseException as exc:  # report a failed start to the caller
                failure.append(exc)
                ready.set()

        self._thread = threading.Thread(target=run, name="chaos-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(timeout=10) or failure:
            raise RuntimeError(f"the proxy did not start: {failure[:1]}")

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None and self._thread is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed already
                self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(timeout=10)

    async def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        server = await asyncio.start_server(self._handle, self.host, 0, limit=HEAD_LIMIT)
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        async with server:
            await self._stopped.wait()
            server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

    async def _connect_upstream(
        self,
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """The next replica that accepts a connection, trying each once, in turn from the next."""
        first = next(self._next)
        for offset in range(len(self.upstream_ports)):
            port = self.upstream_ports[(first + offset) % len(self.upstream_ports)]
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    streams = await asyncio.open_connection(self.host, port)
            except (OSError, TimeoutError):
                self.refused[port] += 1
                continue
            self.forwarded[port] += 1
            return streams
        return None

    async def _handle(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        upstream_out: asyncio.StreamWriter | None = None
        try:
            try:
                async with asyncio.timeout(IDLE_TIMEOUT):
                    head = await client_in.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                return  # the client went away, or sent no HTTP request head
            upstream = await self._connect_upstream()
            if upstream is None:
                self.unserved += 1
                return
            upstream_in, upstream_out = upstream
            upstream_out.write(close_after_response(head))
            requests = asyncio.create_task(_pipe(client_in, upstream_out))
            responses = asyncio.create_task(_pipe(upstream_in, client_out))
            # The exchange ends when the replica closes (after its answer, or because it died)
            # or the client gives up; either way both sides are closed.
            await asyncio.wait([requests, responses], return_when=asyncio.FIRST_COMPLETED)
            for task in (requests, responses):
                task.cancel()
            await asyncio.gather(requests, responses, return_exceptions=True)
        except OSError:
            pass
        finally:
            for writer in (client_out, upstream_out):
                if writer is not None:
                    writer.close()
                    with contextlib.suppress(OSError, asyncio.CancelledError):
                        await writer.wait_closed()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await source.read(64 * 1024):
            sink.write(data)
            await sink.drain()

"""Send every prepared fire at once: one connection per line, all opened first, then every
request written in the same instant; prints one JSON line with each answer's status and time.

Run in its own process (so the bench's own work does not slow it down):
`python -m bench.burst_client URL LINES_FILE`. Each line: JSON body, tab, token.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from urllib.parse import urlsplit

TIMEOUT = 300.0


async def _open(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(host, port)


async def _exchange(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    request: bytes,
    start: asyncio.Event,
) -> tuple[int, float]:
    """(status, seconds from the start to the full answer); status 0: the connection failed."""
    await start.wait()
    begun = time.perf_counter()
    try:
        writer.write(request)
        status = int((await reader.readline()).split()[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
    except (OSError, IndexError, ValueError, asyncio.IncompleteReadError):
        status = 0
    finally:
        writer.close()
    return status, time.perf_counter() - begun


async def burst(url: str, lines: list[tuple[str, str]]) -> dict[str, object]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    connections = await asyncio.gather(*(_open(host, port) for _ in lines))
    requests = [
        (
            f"POST /api/cron/fire HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Length: {len(body.encode())}\r\nConnection: close\r\n\r\n{body}"
        ).encode()
        for body, token in lines
    ]
    start = asyncio.Event()
    tasks = [
        asyncio.ensure_future(_exchange(reader, writer, request, start))
        for (reader, writer), request in zip(connections, requests, strict=True)
    ]
    await asyncio.sleep(0.1)  # every task waits on `start`
    started = time.perf_counter()
    start.set()
    answers = await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)
    return {
        "sent": len(lines),
        "wall_seconds": time.perf_counter() - started,
        "answers": [[status, round(seconds, 6)] for status, seconds in answers],
    }


def main() -> None:
    url, path = sys.argv[1], sys.argv[2]
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with open(path) as source:
        lines = [tuple(line.rstrip("\n").split("\t", 1)) for line in source if line.strip()]
    print(json.dumps(asyncio.run(burst(url, lines))))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()

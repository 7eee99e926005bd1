"""Output budgets: text cut to a number of UTF-8 bytes, ending with `TRUNCATION_MARKER` when
cut, and `BoundedCapture`, which keeps the first bytes of a stream and discards the rest."""

from __future__ import annotations

import asyncio

TRUNCATION_MARKER = "…[truncated]"
MARKER_BYTES = len(TRUNCATION_MARKER.encode("utf-8"))

_READ_CHUNK_BYTES = 64 * 1024


def truncate_text(text: str, limit: int, *, truncated: bool = False) -> str:
    """`text` within `limit` UTF-8 bytes; a cut (or `truncated`) ends with the marker."""
    encoded = text.encode("utf-8", errors="replace")
    if not truncated and len(encoded) <= limit:
        return encoded.decode("utf-8")
    # Encoded is valid UTF-8, so "ignore" only drops a character split by the cut.
    head = encoded[: max(0, limit - MARKER_BYTES)].decode("utf-8", errors="ignore")
    return head + TRUNCATION_MARKER


def bound_text(text: str | None, limit: int) -> str | None:
    """`text` within `limit` bytes, or None for no text or an empty one."""
    return truncate_text(text, limit) if text else None


class BoundedCapture:
    """Reads a stream to its end, keeping only the first `limit` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.truncated = False

    def feed(self, chunk: bytes) -> None:
        room = self.limit - len(self.data)
        if len(chunk) > room:
            self.truncated = True
            chunk = chunk[: max(0, room)]
        self.data += chunk

    async def drain(self, stream: asyncio.StreamReader | None) -> None:
        if stream is None:
            return
        # Keep reading after the budget is spent: a child blocked on a full pipe never exits.
        while chunk := await stream.read(_READ_CHUNK_BYTES):
            self.feed(chunk)

    def text(self) -> str | None:
        decoded = bytes(self.data).decode("utf-8", errors="replace")
        return truncate_text(decoded, self.limit, truncated=self.truncated) or None

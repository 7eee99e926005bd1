"""The opaque paging cursor of `GET /api/agent-cron/list`: the last job_id of a page."""

from __future__ import annotations

import base64
import binascii

from app.errors import InvalidRequest

_CURSOR_PREFIX = "after:"


def encode_cursor(job_id: str) -> str:
    raw = (_CURSOR_PREFIX + job_id).encode("utf-8")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> str:
    """The job_id a cursor stands for; `InvalidRequest` naming `cursor` for anything else."""
    try:
        padded = (cursor + "=" * (-len(cursor) % 4)).encode("ascii")
        decoded = base64.b64decode(padded, altchars=b"-_", validate=True).decode("utf-8")
    except (ValueError, binascii.Error) as exc:  # UnicodeError is a ValueError
        raise InvalidRequest("cursor: not a cursor returned by this endpoint") from exc
    if not decoded.startswith(_CURSOR_PREFIX):
        raise InvalidRequest("cursor: not a cursor returned by this endpoint")
    return decoded[len(_CURSOR_PREFIX) :]

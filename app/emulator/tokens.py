"""Agent bearer tokens: which are accepted, for how long, and their rotation.

The configured tokens count as issued when the book is built (at start). Each token is
accepted until `ttl` after its issue (forever without a TTL) and until it is revoked. Rotation
(`rotate`) issues a new token for an agent, writes it to the token file when there is one, and
may revoke the agent's other tokens; without revocation old tokens keep working, so an agent
has time to pick up the new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from app.clock import Clock, utc_now
from app.errors import ChronosError, InvalidRequest, Unauthorized

logger = logging.getLogger(__name__)

TOKEN_BYTES = 32


class TokenFileError(ChronosError):
    """The new token could not be written to the token file; it was not issued."""

    kind = "token_file_unwritable"
    status_code = 500


@dataclass
class IssuedToken:
    token: str = field(repr=False)
    instance_id: str
    issued_at: datetime
    expires_at: datetime | None
    revoked: bool = False


class AgentTokens:
    """Every agent token issued by this emulator, valid or not (so refusals can say why)."""

    def __init__(
        self, initial: Mapping[str, str], *, ttl_seconds: float | None, clock: Clock = utc_now
    ) -> None:
        self._clock = clock
        self._ttl = None if ttl_seconds is None else timedelta(seconds=ttl_seconds)
        self._tokens: list[IssuedToken] = []
        self.rotation_lock = asyncio.Lock()  # rotations write the token file one at a time
        for token, instance_id in initial.items():
            self._tokens.append(self._new(token, instance_id))

    def authenticate(self, presented: str) -> str:
        """The instance id the token was issued to; `Unauthorized` when it is unknown,
        expired or revoked."""
        candidate = presented.encode("utf-8")
        match: IssuedToken | None = None
        # Compare against every token, in constant time, whatever matches first.
        for issued in self._tokens:
            if hmac.compare_digest(issued.token.encode("utf-8"), candidate):
                match = issued
        if match is None:
            raise Unauthorized("unknown bearer token")
        if match.revoked:
            raise Unauthorized("agent token revoked")
        if match.expires_at is not None and self._clock() >= match.expires_at:
            raise Unauthorized("agent token expired")
        return match.instance_id

    def instance_ids(self) -> list[str]:
        return sorted({issued.instance_id for issued in self._tokens})

    def issue(self, instance_id: str) -> IssuedToken:
        issued = self._new(secrets.token_urlsafe(TOKEN_BYTES), instance_id)
        self._tokens.append(issued)
        return issued

    def withdraw(self, issued: IssuedToken) -> None:
        """Forget a token as if it had never been issued."""
        self._tokens = [t for t in self._tokens if t is not issued]

    def revoke_others(self, keep: IssuedToken) -> int:
        """Revoke every other token of `keep`'s agent; returns how many were still valid."""
        now = self._clock()
        count = 0
        for issued in self._tokens:
            if issued is keep or issued.instance_id != keep.instance_id or issued.revoked:
                continue
            if issued.expires_at is None or now < issued.expires_at:
                count += 1
            issued.revoked = True
        return count

    def _new(self, token: str, instance_id: str) -> IssuedToken:
        now = self._clock()
        expires_at = None if self._ttl is None else now + self._ttl
        return IssuedToken(
            token=token, instance_id=instance_id, issued_at=now, expires_at=expires_at
        )


async def rotate(
    book: AgentTokens,
    *,
    instance_id: str | None,
    revoke_others: bool,
    token_file: str | None,
) -> IssuedToken:
    """Issue a new token for `instance_id` (default: the only agent), write it to `token_file`
    (atomically) if set, then revoke the agent's other tokens if asked. A token that could not
    be written is withdrawn, and nothing is revoked."""
    chosen = _choose_instance(book, instance_id)
    async with book.rotation_lock:
        issued = book.issue(chosen)
        if token_file is not None:
            try:
                await asyncio.to_thread(write_token_file, Path(token_file), issued.token)
            except OSError as exc:
                book.withdraw(issued)
                raise TokenFileError(
                    f"agent_token_file: cannot write {token_file!r} ({exc.strerror or exc})"
                ) from exc
        revoked = book.revoke_others(issued) if revoke_others else 0
    logger.info(
        "issued an agent token",
        extra={
            "agent": chosen,
            "expires_at": issued.expires_at.isoformat() if issued.expires_at else None,
            "revoked": revoked,
            "token_file": token_file,
        },
    )
    return issued


def write_token_file(path: Path, token: str) -> None:
    """Replace `path` with a file (mode 0600) holding `token`: readers see the old token or the
    new one, never a partial file."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as tmp:
            tmp.write(token + "\n")
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def _choose_instance(book: AgentTokens, instance_id: str | None) -> str:
    known = book.instance_ids()
    if instance_id is None:
        if len(known) != 1:
            raise InvalidRequest(
                f"instance_id: required, this emulator serves several agents: {', '.join(known)}"
            )
        return known[0]
    if instance_id not in known:
        raise InvalidRequest(f"instance_id: no agent {instance_id!r} here")
    return instance_id

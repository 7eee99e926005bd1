"""What the agent last learned about NAS from its own calls, for `GET /api/status`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.clock import Clock, utc_now
from app.nas.errors import CREDENTIAL_STATUSES, CredentialsRefused, NasError

LIST_UNSUPPORTED_STATUSES = frozenset({404, 405, 501})
MAX_REASON = 200


@dataclass
class NasHealth:
    """Updated by `NasClient` after each call (all retries included): the last success, the
    last failure with a short reason (NAS's answer is already stripped of the agent's tokens),
    whether NAS accepted the agent's credentials last time it said, and whether it has a
    `list`. None: not known yet (no call made)."""

    clock: Clock = utc_now
    last_success_at: datetime | None = None
    last_error_at: datetime | None = None
    last_error: str | None = None
    credentials_ok: bool | None = None
    list_supported: bool | None = None

    def record_success(self) -> None:
        self.last_success_at = self.clock()
        self.credentials_ok = True

    def record_list(self, *, supported: bool) -> None:
        """NAS answered `list`, with arms or with "no such endpoint"."""
        self.list_supported = supported

    def record_failure(self, exc: NasError, *, listing: bool = False) -> None:
        """A failed call; for `list` (`listing`), "no such endpoint" is an answer instead."""
        if listing and exc.status_code in LIST_UNSUPPORTED_STATUSES:
            self.record_success()
            return
        self.last_error_at = self.clock()
        self.last_error = str(exc)[:MAX_REASON]
        if isinstance(exc, CredentialsRefused) or exc.status_code in CREDENTIAL_STATUSES:
            self.credentials_ok = False

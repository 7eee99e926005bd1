"""How a NAS call fails: one error type, classified by what the caller should do next."""

from __future__ import annotations

CREDENTIAL_STATUSES = frozenset({401, 403})


class NasError(Exception):
    """A NAS call failed. `transient` failures (transport, 5xx, 429, credentials that could
    not be read) are worth retrying; others are NAS's answer to this very operation."""

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.status_code = status_code
        self.retry_after = retry_after


class CredentialsUnavailable(NasError):
    """The agent could not get a token (file unreadable or empty, command failed). Transient:
    the operation stays queued and is retried with backoff, but not within the same call."""

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=True)


class CredentialsRefused(NasError):
    """NAS answered 401 or 403, again after the credentials were refreshed. Not NAS's verdict
    on the operation: it stays queued and is retried with backoff."""

    def __init__(self, message: str, *, status_code: int) -> None:
        super().__init__(message, transient=False, status_code=status_code)


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, NasError) and exc.transient


def retry_within_call(exc: BaseException) -> bool:
    """Worth another attempt in the same call: transient, and not a credential that could
    not be read (reading it again at once would fail the same way)."""
    return is_transient(exc) and not isinstance(exc, CredentialsUnavailable)


def refused_for_good(exc: NasError) -> bool:
    """NAS refused the operation itself (a 4xx other than 401/403, or 501): trying it again
    every few seconds cannot help."""
    return not exc.transient and not isinstance(exc, CredentialsRefused)

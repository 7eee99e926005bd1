"""One error hierarchy; `app.api.errors` renders every one as `{"error", "detail"}`."""

from __future__ import annotations


class ChronosError(Exception):
    """Base error: `kind` is the machine-readable `error` field, `message` the `detail`."""

    kind = "error"
    status_code = 500

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class InvalidRequest(ChronosError):
    kind = "invalid_request"
    status_code = 400


class Unauthorized(ChronosError):
    kind = "unauthorized"
    status_code = 401

    def __init__(self, message: str = "missing or invalid bearer token") -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ChronosError):
    kind = "forbidden"
    status_code = 403


class NotFound(ChronosError):
    kind = "not_found"
    status_code = 404


class Conflict(ChronosError):
    kind = "conflict"
    status_code = 409


class NameTaken(Conflict):
    """Job names are unique (`chronos apply` keys jobs by name): `name` is another job's."""

    def __init__(self, name: str | None, *, within: str | None = None) -> None:
        if within is not None:
            message = f"name: {name!r} is given to more than one job of the {within}"
        elif name is None:
            message = "name: a job with that name exists already"
        else:
            message = f"name: a job named {name!r} exists already"
        super().__init__(message)
        self.name = name


class PayloadTooLarge(ChronosError):
    kind = "payload_too_large"
    status_code = 413


class ServiceUnavailable(ChronosError):
    """Transient: the caller should retry after `Retry-After` seconds."""

    kind = "unavailable"
    status_code = 503

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class Draining(ServiceUnavailable):
    """The agent is shutting down (SIGTERM): nothing is admitted; retry on a replica that stays."""

    kind = "draining"


class Overloaded(ServiceUnavailable):
    """Too many fires at once: this one was refused before any work; retry after a while."""

    kind = "overloaded"

"""What a run is given and what it gives back: `RunContext` in, `RunResult` out, and the
secrets of a target that a result must never show."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from app.domain.states import RunStatus
from app.redaction import Secrets, header_secret_values, leaf_values, userinfo_values
from app.runner.targets.capture import TRUNCATION_MARKER
from app.runner.targets.models import CommandTarget, HttpTarget, Target


@dataclass(frozen=True)
class RunContext:
    """Which fire is running. `dedup_key` is `{job_id}:{fire_at}` or `manual:<uuid>`, the same
    for every attempt; `attempt` counts from 1 (a retry, or a resume after a replica died)."""

    job_id: str
    fire_at: datetime
    dedup_key: str
    attempt: int = 1


@dataclass(frozen=True)
class RunResult:
    """How one run went. `output` and `error` are bounded by the runner's output budget."""

    status: RunStatus  # succeeded, failed or timed_out
    outcome: str | None
    output: str | None
    error: str | None

    def masked(self, secrets: Secrets) -> RunResult:
        """This result with `secrets` replaced by `***` in its outcome, output and error; a
        secret cut short by the output budget is masked too. Never longer than before."""
        if not secrets:
            return self
        return replace(
            self,
            outcome=_mask(self.outcome, secrets),
            output=_mask(self.output, secrets),
            error=_mask(self.error, secrets),
        )

    def error_masked(self, secrets: Secrets) -> RunResult:
        """This result with `secrets` masked in its error only (a python target's output is
        the value its function chose to return)."""
        return replace(self, error=_mask(self.error, secrets)) if secrets else self


def target_secrets(target: Target) -> Secrets:
    """What a run of `target` must never show: http header values and URL userinfo, command
    `env` values, python `kwargs` values (at any depth)."""
    return Secrets(_secret_values(target))


def _secret_values(target: Target) -> Iterator[str]:
    if isinstance(target, HttpTarget):
        yield from header_secret_values(target.headers)
        yield from userinfo_values(target.url)
    elif isinstance(target, CommandTarget):
        yield from target.env.values()
    else:
        yield from leaf_values(target.kwargs)


def _mask(text: str | None, secrets: Secrets) -> str | None:
    if text is None:
        return None
    if not text.endswith(TRUNCATION_MARKER):
        return secrets.mask(text)
    head = text[: -len(TRUNCATION_MARKER)]
    return secrets.mask_cut(secrets.mask(head)) + TRUNCATION_MARKER


def utc_iso(value: datetime) -> str:
    """ISO 8601 in UTC (`+00:00`); a naive datetime is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()

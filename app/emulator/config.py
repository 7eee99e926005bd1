"""Configuration of the NAS emulator: one dataclass, buildable from `NAS_EMULATOR_*` variables."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from app.emulator.variants import ConsumeMode, FireAtMode, ListMode, ProvisionAnswer

_Choice = TypeVar("_Choice", bound=StrEnum)


class EmulatorConfigError(ValueError):
    """A setting of the emulator is missing or invalid; the message names the setting."""


@dataclass
class EmulatorConfig:
    """Everything the emulator needs; validated on construction.

    `public_url` is the emulator's base URL and the `iss` of every fire token (trailing slashes
    are stripped). `agent_tokens` maps each accepted bearer token to the agent's instance id;
    the fire token's `aud` is `agent:{instance_id}`. It is kept out of `repr` so that tokens never
    end up in logs. `agent_token_ttl_seconds` (None: never) is how long each agent token is
    accepted after it was issued (the configured ones at start); `agent_token_file` is where
    `POST /_emulator/agent-tokens` writes each new token. `fire_at`, `list_endpoint`,
    `provision_answer` and `consume` choose how this NAS behaves (see `variants.py`); a string
    is accepted for each. `ca_file` (PEM) adds certificate authorities the deliveries trust
    besides the public ones, e.g. a reverse proxy's private CA in front of the agents.
    """

    public_url: str
    agent_tokens: dict[str, str] = field(repr=False)
    token_ttl_seconds: int = 90
    redelivery_initial_seconds: float = 1.0
    redelivery_max_seconds: float = 30.0
    redelivery_max_attempts: int = 20
    delivery_timeout_seconds: float = 15.0
    key_file: str | None = None
    kid: str | None = None
    agent_token_ttl_seconds: float | None = None
    agent_token_file: str | None = None
    fire_at: FireAtMode = FireAtMode.PROVISIONED
    list_endpoint: ListMode = ListMode.ON
    provision_answer: ProvisionAnswer = ProvisionAnswer.FULL
    consume: ConsumeMode = ConsumeMode.SCHEDULE
    ca_file: str | None = None

    def __post_init__(self) -> None:
        self.public_url = _check_http_url(self.public_url, "public_url")
        if not self.agent_tokens:
            raise EmulatorConfigError("agent_tokens: at least one agent token is required")
        for token, instance_id in self.agent_tokens.items():
            if not token or token != token.strip():
                raise EmulatorConfigError(
                    "agent_tokens: tokens must be non-empty, without surrounding whitespace"
                )
            if not instance_id or instance_id != instance_id.strip():
                raise EmulatorConfigError(
                    "agent_tokens: instance ids must be non-empty, without surrounding whitespace"
                )
        if self.token_ttl_seconds <= 0:
            raise EmulatorConfigError("token_ttl_seconds: must be positive")
        if self.redelivery_initial_seconds <= 0:
            raise EmulatorConfigError("redelivery_initial_seconds: must be positive")
        if self.redelivery_max_seconds < self.redelivery_initial_seconds:
            raise EmulatorConfigError(
                "redelivery_max_seconds: must be at least redelivery_initial_seconds"
            )
        if self.redelivery_max_attempts < 1:
            raise EmulatorConfigError("redelivery_max_attempts: must be at least 1")
        if self.delivery_timeout_seconds <= 0:
            raise EmulatorConfigError("delivery_timeout_seconds: must be positive")
        if self.kid is not None and not self.kid.strip():
            raise EmulatorConfigError("kid: must not be blank")
        ttl = self.agent_token_ttl_seconds
        if ttl is not None and not (math.isfinite(ttl) and ttl > 0):
            raise EmulatorConfigError("agent_token_ttl_seconds: must be positive (or unset)")
        if self.agent_token_file is not None and not self.agent_token_file.strip():
            raise EmulatorConfigError("agent_token_file: must not be blank")
        if self.ca_file is not None and not Path(self.ca_file).is_file():
            raise EmulatorConfigError(f"ca_file: {self.ca_file!r} is not a file")
        self.fire_at = _choice(FireAtMode, self.fire_at, "fire_at")
        self.list_endpoint = _choice(ListMode, self.list_endpoint, "list_endpoint")
        self.provision_answer = _choice(ProvisionAnswer, self.provision_answer, "provision_answer")
        self.consume = _choice(ConsumeMode, self.consume, "consume")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EmulatorConfig:
        """Build a config from `NAS_EMULATOR_*` variables (`os.environ` unless `environ` is given).

        Required: `NAS_EMULATOR_PUBLIC_URL`; one agent token, either `NAS_EMULATOR_AGENT_TOKEN` or
        `NAS_EMULATOR_AGENT_TOKEN_FILE` (a file holding the token, which is also where
        `POST /_emulator/agent-tokens` writes each new token), with its
        `NAS_EMULATOR_INSTANCE_ID`. Optional: `NAS_EMULATOR_KEY_FILE`, `NAS_EMULATOR_KID`,
        `NAS_EMULATOR_TOKEN_TTL_SECONDS`, `NAS_EMULATOR_REDELIVERY_INITIAL_SECONDS`,
        `NAS_EMULATOR_REDELIVERY_MAX_SECONDS`, `NAS_EMULATOR_REDELIVERY_MAX_ATTEMPTS`,
        `NAS_EMULATOR_DELIVERY_TIMEOUT_SECONDS`. Errors name the variable at fault.

        How this NAS behaves, each defaulting to the first value (today's behaviour):

        - `NAS_EMULATOR_FIRE_AT=provisioned|omitted`: `omitted` delivers `{"job_id"}` only, with
          no `fire_at` claim in the fire token.
        - `NAS_EMULATOR_LIST=on|off`: `off` answers `GET /api/agent-cron/list` with 404.
        - `NAS_EMULATOR_PROVISION_ANSWER=full|empty`: `empty` answers a successful provision
          with `{}` (no `schedule_id`).
        - `NAS_EMULATOR_CONSUME=schedule|job`: after a 2xx, `schedule` removes the delivered arm
          only; `job` removes whatever arm the job has then, even one armed during the delivery.
        - `NAS_EMULATOR_AGENT_TOKEN_TTL_SECONDS` (unset: never): agent tokens are refused (401)
          once older than this; the configured one counts as issued at start.

        `NAS_EMULATOR_CA_FILE`: a PEM file of certificate authorities that deliveries trust
        besides the public ones (an agent behind a proxy with a private CA).
        """
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        public_url = get("NAS_EMULATOR_PUBLIC_URL")
        if public_url is None:
            raise EmulatorConfigError(
                "NAS_EMULATOR_PUBLIC_URL is required: the emulator's base URL, e.g. "
                "http://localhost:9000 (it is the `iss` of fire tokens)"
            )
        public_url = _check_http_url(public_url, "NAS_EMULATOR_PUBLIC_URL")

        token = _read_agent_token(
            get("NAS_EMULATOR_AGENT_TOKEN"), get("NAS_EMULATOR_AGENT_TOKEN_FILE")
        )
        instance_id = get("NAS_EMULATOR_INSTANCE_ID")
        if instance_id is None:
            raise EmulatorConfigError(
                "NAS_EMULATOR_INSTANCE_ID is required: the agent's instance id "
                "(fire tokens carry aud='agent:{instance_id}')"
            )

        try:
            return cls(
                public_url=public_url,
                agent_tokens={token: instance_id},
                token_ttl_seconds=_parse_int(get, "NAS_EMULATOR_TOKEN_TTL_SECONDS", 90),
                redelivery_initial_seconds=_parse_float(
                    get, "NAS_EMULATOR_REDELIVERY_INITIAL_SECONDS", 1.0
                ),
                redelivery_max_seconds=_parse_float(
                    get, "NAS_EMULATOR_REDELIVERY_MAX_SECONDS", 30.0
                ),
                redelivery_max_attempts=_parse_int(get, "NAS_EMULATOR_REDELIVERY_MAX_ATTEMPTS", 20),
                delivery_timeout_seconds=_parse_float(
                    get, "NAS_EMULATOR_DELIVERY_TIMEOUT_SECONDS", 15.0
                ),
                key_file=get("NAS_EMULATOR_KEY_FILE"),
                kid=get("NAS_EMULATOR_KID"),
                agent_token_ttl_seconds=_parse_optional_float(
                    get, "NAS_EMULATOR_AGENT_TOKEN_TTL_SECONDS"
                ),
                agent_token_file=get("NAS_EMULATOR_AGENT_TOKEN_FILE"),
                fire_at=_parse_choice(get, "NAS_EMULATOR_FIRE_AT", FireAtMode),
                list_endpoint=_parse_choice(get, "NAS_EMULATOR_LIST", ListMode),
                provision_answer=_parse_choice(
                    get, "NAS_EMULATOR_PROVISION_ANSWER", ProvisionAnswer
                ),
                consume=_parse_choice(get, "NAS_EMULATOR_CONSUME", ConsumeMode),
                ca_file=get("NAS_EMULATOR_CA_FILE"),
            )
        except EmulatorConfigError as exc:
            # Validation errors name the field; each tunable field is read from
            # NAS_EMULATOR_<FIELD>, so name the variable instead.
            field_name, _, reason = str(exc).partition(": ")
            if field_name in _FIELD_VARIABLES:
                raise EmulatorConfigError(f"{_FIELD_VARIABLES[field_name]}: {reason}") from exc
            raise


_FIELD_VARIABLES = {
    name: f"NAS_EMULATOR_{name.upper()}"
    for name in (
        "token_ttl_seconds",
        "redelivery_initial_seconds",
        "redelivery_max_seconds",
        "redelivery_max_attempts",
        "delivery_timeout_seconds",
        "kid",
        "agent_token_ttl_seconds",
        "agent_token_file",
        "fire_at",
        "provision_answer",
        "consume",
        "ca_file",
    )
} | {"list_endpoint": "NAS_EMULATOR_LIST"}


def _check_http_url(value: str, name: str) -> str:
    url = value.strip().rstrip("/")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError as exc:
        raise EmulatorConfigError(f"{name}: not a valid URL ({exc})") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EmulatorConfigError(f"{name}: must be an absolute http(s) URL, got {value!r}")
    return url


def _read_agent_token(token: str | None, token_file: str | None) -> str:
    if token is not None and token_file is not None:
        raise EmulatorConfigError(
            "NAS_EMULATOR_AGENT_TOKEN and NAS_EMULATOR_AGENT_TOKEN_FILE are both set: set only one"
        )
    if token is not None:
        return token
    if token_file is None:
        raise EmulatorConfigError(
            "NAS_EMULATOR_AGENT_TOKEN or NAS_EMULATOR_AGENT_TOKEN_FILE is required: "
            "the bearer token the agent uses to call the emulator"
        )
    try:
        content = Path(token_file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise EmulatorConfigError(
            f"NAS_EMULATOR_AGENT_TOKEN_FILE: cannot read {token_file!r} ({exc.strerror})"
        ) from exc
    if not content:
        raise EmulatorConfigError(f"NAS_EMULATOR_AGENT_TOKEN_FILE: {token_file!r} is empty")
    return content


def _parse_int(get: Callable[[str], str | None], name: str, default: int) -> int:
    raw = get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise EmulatorConfigError(f"{name}: expected an integer, got {raw!r}") from exc


def _parse_float(get: Callable[[str], str | None], name: str, default: float) -> float:
    value = _parse_optional_float(get, name)
    return default if value is None else value


def _parse_optional_float(get: Callable[[str], str | None], name: str) -> float | None:
    raw = get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError as exc:
        raise EmulatorConfigError(f"{name}: expected a number, got {raw!r}") from exc
    if not math.isfinite(value):
        raise EmulatorConfigError(f"{name}: expected a finite number, got {raw!r}")
    return value


def _parse_choice(get: Callable[[str], str | None], name: str, choices: type[_Choice]) -> _Choice:
    """The variable's value (case-insensitive) among `choices`; unset: the first choice."""
    raw = get(name)
    if raw is None:
        return next(iter(choices))
    try:
        return choices(raw.lower())
    except ValueError as exc:
        raise EmulatorConfigError(
            f"{name}: expected one of {', '.join(choices)}, got {raw!r}"
        ) from exc


def _choice(choices: type[_Choice], value: object, name: str) -> _Choice:
    if isinstance(value, choices):
        return value
    try:
        return choices(str(value))
    except ValueError as exc:
        raise EmulatorConfigError(
            f"{name}: expected one of {', '.join(choices)}, got {value!r}"
        ) from exc

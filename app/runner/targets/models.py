"""Target models: the three kinds of target, told apart by `type`, and their validation.

`parse_target` validates stored target data; its `ValueError` names each offending field and
never echoes a value (URLs, headers and env values may hold secrets).
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
)
from pydantic.config import JsonDict

from app.validation import SafeText, check_json, describe_validation_errors, text_problem

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]

# Patterns are matched whole (`fullmatch`: a `$` would let a trailing newline through) and
# published as they are in the OpenAPI document.
_CALLABLE = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"
_HEADER_NAME = r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$"
# Visible ASCII, inner spaces and tabs; no CR/LF, so no header injection.
_HEADER_VALUE = r"^([\x21-\x7e]([\t\x20-\x7e]*[\x21-\x7e])?)?$"
_CALLABLE_RE = re.compile(_CALLABLE)
_HEADER_NAME_RE = re.compile(_HEADER_NAME)
_HEADER_VALUE_RE = re.compile(_HEADER_VALUE)
MAX_URL_LENGTH = 2048
MAX_HEADER_NAME_LENGTH = 256
MAX_HEADER_VALUE_LENGTH = 8192
_HEADERS_SCHEMA: JsonDict = {
    "propertyNames": {"pattern": _HEADER_NAME, "maxLength": MAX_HEADER_NAME_LENGTH},
    "additionalProperties": {
        "type": "string",
        "pattern": _HEADER_VALUE,
        "maxLength": MAX_HEADER_VALUE_LENGTH,
    },
}
# The runner sets these itself: framing is httpx's job, the idempotency key is the fire's.
_RESERVED_HEADERS = {"content-length", "transfer-encoding", "idempotency-key"}
_ENV_NAME = r"^[^=\x00]+$"
_ENV_NAME_RE = re.compile(_ENV_NAME)


class _TargetModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpTarget(_TargetModel):
    """Send one HTTP request; a 2xx answer is a success."""

    type: Literal["http"]
    url: str = Field(max_length=MAX_URL_LENGTH)
    method: HttpMethod = "POST"
    headers: dict[str, str] = Field(default_factory=dict, json_schema_extra=_HEADERS_SCHEMA)
    # A str is sent as-is, anything else as JSON.
    body: Annotated[Any, AfterValidator(check_json)] = None
    timeout_seconds: float = Field(default=30, gt=0, le=3600)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        # Messages never echo the URL: it may carry credentials.
        if (problem := text_problem(value)) is not None:
            raise ValueError(problem)
        if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
            raise ValueError("must not contain whitespace or control characters")
        parts = urlsplit(value)
        if parts.scheme.lower() not in {"http", "https"}:
            raise ValueError("must be an absolute http:// or https:// URL")
        if not parts.hostname:
            raise ValueError("must name a host")
        try:
            parts.port  # noqa: B018 - urlsplit only checks the port when asked
            httpx.URL(value)
        except (ValueError, httpx.InvalidURL):
            raise ValueError("is not a valid URL") from None
        return value

    @field_validator("method", mode="before")
    @classmethod
    def _upper_method(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, value: dict[str, str]) -> dict[str, str]:
        # Messages name the header, never its value: values often hold tokens.
        for name, header_value in value.items():
            if len(name) > MAX_HEADER_NAME_LENGTH or not _HEADER_NAME_RE.fullmatch(name):
                raise ValueError(f"header name {name!r} is not a valid HTTP token")
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by the runner and cannot be given")
            if len(header_value) > MAX_HEADER_VALUE_LENGTH or not _HEADER_VALUE_RE.fullmatch(
                header_value
            ):
                raise ValueError(
                    f"header {name!r}: the value must be printable ASCII (at most"
                    f" {MAX_HEADER_VALUE_LENGTH} characters), without line breaks or"
                    " leading/trailing whitespace"
                )
        return value


class CommandTarget(_TargetModel):
    """Run a program without a shell, in a clean environment; exit 0 is a success."""

    type: Literal["command"]
    argv: list[SafeText] = Field(min_length=1)
    timeout_seconds: float = Field(default=60, gt=0, le=86400)
    env: dict[str, SafeText] = Field(
        default_factory=dict, json_schema_extra={"propertyNames": {"pattern": _ENV_NAME}}
    )
    cwd: SafeText | None = Field(default=None, max_length=4096)

    @field_validator("argv")
    @classmethod
    def _check_argv(cls, value: list[str]) -> list[str]:
        if not value[0].strip():
            raise ValueError("the program (first element) must not be empty")
        return value

    @field_validator("env")
    @classmethod
    def _check_env(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _ENV_NAME_RE.fullmatch(name) or text_problem(name) is not None:
                raise ValueError(
                    f"variable name {name!r} must be non-empty, without '=' or NUL"
                    " (and valid Unicode)"
                )
        return value

    @field_validator("cwd")
    @classmethod
    def _check_cwd(cls, value: str | None) -> str | None:
        if value is not None and (not os.path.isabs(value) or "\x00" in value):
            raise ValueError("must be an absolute path")
        return value


class PythonTarget(_TargetModel):
    """Call `package.module:function` with `kwargs`; returning normally is a success."""

    type: Literal["python"]
    callable: str = Field(max_length=200, json_schema_extra={"pattern": _CALLABLE})
    kwargs: Annotated[dict[str, Any], AfterValidator(check_json)] = Field(default_factory=dict)
    timeout_seconds: float | None = Field(default=None, gt=0, le=86400)

    @field_validator("callable")
    @classmethod
    def _check_callable(cls, value: str) -> str:
        if not _CALLABLE_RE.fullmatch(value):
            raise ValueError("must look like 'package.module:function'")
        return value


Target = Annotated[HttpTarget | CommandTarget | PythonTarget, Field(discriminator="type")]
TARGET_ADAPTER: TypeAdapter[Target] = TypeAdapter(Target)
TARGET_TAGS = ("http", "command", "python")


def parse_target(data: dict[str, Any]) -> Target:
    """Validate target data; `ValueError` names each offending field (`target.argv: ...`)."""
    try:
        return TARGET_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    """One readable line per pydantic error, `target.<field>: <message>`; inputs never echoed."""
    return describe_validation_errors(
        exc.errors(include_url=False, include_input=False, include_context=False),
        prefix=("target",),
        tagged_unions={"target": TARGET_TAGS},
    )

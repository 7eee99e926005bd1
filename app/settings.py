"""Service configuration: one typed `Settings`, read from `CHRONOS_*` variables and `.env`."""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import uuid
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/chronos.db"
SUPPORTED_DATABASES = ("sqlite+aiosqlite", "postgresql+asyncpg")
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
PLACEHOLDER_SECRETS = {"changeme", "changethis", "change-me", "change-this"}


class ConfigError(Exception):
    """A setting is missing or inconsistent; the message names the setting."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CHRONOS_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    env: Literal["prod", "dev"] = "prod"
    database_url: str = DEFAULT_DATABASE_URL
    host: str = "0.0.0.0"  # noqa: S104 - a service behind a load balancer listens on all interfaces
    port: int = Field(default=8080, ge=1, le=65535)
    # Addresses whose X-Forwarded-For / X-Forwarded-Proto are believed (the reverse proxy's),
    # comma-separated, or "*" for any; uvicorn's syntax.
    forwarded_allow_ips: str = Field(default="127.0.0.1", min_length=1, max_length=4096)

    portal_url: str | None = None
    callback_url: str | None = None
    expected_audience: str | None = None
    nas_jwks_url: str | None = None
    # The agent's NAS bearer token: exactly one of a fixed token, a file read again whenever
    # it changes, or a command (no shell) printing it, its answer cached (see app/nas/credentials).
    nas_token: SecretStr | None = None
    nas_token_file: Path | None = None
    nas_token_command: str | None = None
    nas_token_command_ttl_seconds: float = Field(default=300.0, gt=0)
    nas_token_command_timeout_seconds: float = Field(default=10.0, gt=0)
    admin_token: SecretStr | None = None
    admin_token_file: Path | None = None
    # `GET /metrics` without the admin token (for a scraper on a trusted network).
    metrics_public: bool = False

    # Identity of this replica: lease owner for the fires it runs.
    node_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()[:100]}-{uuid.uuid4().hex[:8]}",
        min_length=1,
        max_length=128,  # the lease-owner columns
        pattern=r"^[^\x00-\x1f]+$",
    )

    # NAS client
    nas_connect_timeout: float = Field(default=3.0, gt=0)
    nas_read_timeout: float = Field(default=10.0, gt=0)
    nas_retry_attempts: int = Field(default=4, ge=1)
    nas_retry_max_seconds: float = Field(default=20.0, gt=0)
    nas_retry_initial_wait: float = Field(default=0.2, ge=0)
    # The bounded budget for arming the next fire while NAS waits on a fire answer.
    fire_arm_attempts: int = Field(default=3, ge=1)
    fire_arm_max_seconds: float = Field(default=4.0, gt=0)
    retry_after_seconds: int = Field(default=5, ge=1)
    # Fires worked on at once; the others wait their turn (app/fire/gate.py).
    fire_concurrency: int = Field(default=32, ge=1, le=10_000)
    fire_queue: int = Field(default=4096, ge=0, le=1_000_000)
    fire_queue_wait_seconds: float = Field(default=10.0, gt=0, le=300)

    # Fire verification
    jwt_leeway_seconds: int = Field(default=30, ge=0)
    # The expected `iss` of fire tokens when NAS does not use its portal URL.
    jwt_issuer: str | None = None
    jwks_refresh_interval_seconds: float = Field(default=30.0, ge=0)
    jwks_failure_ttl_seconds: float = Field(default=5.0, ge=0)
    # Keys are fetched again after this long (or the JWKS answer's shorter Cache-Control
    # max-age), so a key NAS withdrew stops verifying.
    jwks_max_age_seconds: float = Field(default=300.0, gt=0)
    # A fire body without fire_at stands for the job's next fire when it is due by now + this.
    early_fire_seconds: int = Field(default=60, ge=0, le=86400)
    # After answering fires, check NAS's list this soon that their next arms are there.
    arm_audit_delay_seconds: float = Field(default=10.0, ge=0, le=3600)
    max_fire_body_bytes: int = Field(default=64 * 1024, gt=0)
    # Admin API request bodies (create and edit a job) over this are refused with 413.
    max_admin_body_bytes: int = Field(default=1024 * 1024, gt=0)

    # Runs
    lease_seconds: int = Field(default=60, ge=5)
    max_output_bytes: int = Field(default=4096, ge=256)
    # Runs one process executes at once; a fire over it waits in the store as `queued`.
    max_concurrent_runs: int = Field(default=32, ge=1)
    # Threads that call python targets' plain functions (and import their modules).
    python_workers: int = Field(default=8, ge=1)
    # On SIGTERM: runs in flight get this long to finish; those still going are then stopped
    # and their leases released, so another replica resumes them at once.
    shutdown_grace_seconds: float = Field(default=20.0, ge=0)
    # On SIGTERM the agent keeps answering (`/readyz` and fires 503) at least this long, so
    # that a load balancer sees it leave before its listener closes.
    drain_settle_seconds: float = Field(default=2.0, ge=0)
    reconcile_concurrency: int = Field(default=32, ge=1)
    outbox_drain_interval_seconds: float = Field(default=10.0, gt=0)
    reconcile_on_startup: bool = True
    # Reconcile again this often (0: only on startup and on demand): repairs arms NAS lost.
    reconcile_interval_seconds: float = Field(default=600.0, ge=0)
    # Completed jobs (and their runs) stay readable this long, then are deleted.
    completed_retention_seconds: int = Field(default=7 * 86400, ge=0)

    log_level: str = "INFO"

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        scheme = value.split("://", 1)[0] if "://" in value else ""
        if scheme not in SUPPORTED_DATABASES:
            raise ValueError(
                f"unsupported scheme {scheme or value[:20]!r}: use"
                " sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DATABASE"
            )
        return value

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: Any) -> Any:
        """`CHRONOS_ADMIN_TOKEN_FILE` supplies the admin token from a file when it is unset.
        `CHRONOS_NAS_TOKEN_FILE` is only checked for being readable: the NAS client reads it
        again whenever it changes."""
        if not isinstance(data, dict):
            return data
        for name in ("nas_token", "admin_token"):
            path = data.get(f"{name}_file")
            if not path:
                data.pop(f"{name}_file", None)  # empty: unset, not the current folder
                continue
            try:
                text = Path(path).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                env_name = f"CHRONOS_{name.upper()}_FILE"
                raise ValueError(f"{env_name}: cannot read {path}: {reason}") from exc
            if name == "nas_token" and not text:
                raise ValueError(f"CHRONOS_NAS_TOKEN_FILE: {path} is empty")
            if name == "admin_token" and not data.get(name):
                data[name] = text
        return data

    # -- derived -----------------------------------------------------------------

    @property
    def is_dev(self) -> bool:
        return self.env == "dev"

    @property
    def issuer(self) -> str | None:
        """The expected JWT `iss`: `CHRONOS_JWT_ISSUER`, else the portal URL; compared
        without regard to a trailing slash."""
        expected = self.jwt_issuer or self.portal_url
        return expected.rstrip("/") if expected else None

    def nas_token_value(self) -> str | None:
        return self.nas_token.get_secret_value() if self.nas_token else None

    def admin_token_value(self) -> str | None:
        return self.admin_token.get_secret_value() if self.admin_token else None

    # -- start-up checks ---------------------------------------------------------

    def fire_config_problems(self) -> list[str]:
        """What keeps this agent from verifying fires or arming them; empty when ready.

        Each problem is one line naming the setting, so that `chronos serve` can refuse
        to start instead of arming jobs whose fires it would then refuse.
        """
        problems: list[str] = []
        required = {
            "CHRONOS_PORTAL_URL": self.portal_url,
            "CHRONOS_CALLBACK_URL": self.callback_url,
            "CHRONOS_EXPECTED_AUDIENCE": self.expected_audience,
            "CHRONOS_NAS_JWKS_URL": self.nas_jwks_url,
        }
        for env_name, value in required.items():
            if not value:
                problems.append(f"{env_name} is not set")
        problems.extend(self._nas_token_problems())
        for env_name, value in (
            ("CHRONOS_PORTAL_URL", self.portal_url),
            ("CHRONOS_CALLBACK_URL", self.callback_url),
            ("CHRONOS_NAS_JWKS_URL", self.nas_jwks_url),
        ):
            if value:
                problem = _url_problem(env_name, value, allow_loopback_http=self.is_dev)
                if problem:
                    problems.append(problem)
        admin = self.admin_token_value()
        if admin is not None and admin.lower() in PLACEHOLDER_SECRETS:
            problems.append(
                "CHRONOS_ADMIN_TOKEN is a placeholder: set a random secret (for example: "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        return problems

    def _nas_token_problems(self) -> list[str]:
        sources = {
            "CHRONOS_NAS_TOKEN": bool(self.nas_token_value()),
            "CHRONOS_NAS_TOKEN_FILE": self.nas_token_file is not None,
            "CHRONOS_NAS_TOKEN_COMMAND": bool(self.nas_token_command),
        }
        given = [name for name, is_set in sources.items() if is_set]
        if len(given) != 1:
            return [
                "CHRONOS_NAS_TOKEN, CHRONOS_NAS_TOKEN_FILE or CHRONOS_NAS_TOKEN_COMMAND: set"
                f" exactly one (got: {', '.join(given) or 'none'})"
            ]
        if self.nas_token_command:
            return _command_problems(self.nas_token_command)
        return []

    def weak_secret_warnings(self) -> list[str]:
        """Secrets that work but should be stronger; logged at start, never fatal."""
        admin = self.admin_token_value()
        if admin is not None and len(admin) < 16:
            return ["CHRONOS_ADMIN_TOKEN is shorter than 16 characters: use a longer random one"]
        return []

    def require_fire_config(self) -> None:
        problems = self.fire_config_problems()
        if problems:
            raise ConfigError(problems[0] if len(problems) == 1 else "; ".join(problems))


def _command_problems(command: str) -> list[str]:
    """The token command must split into arguments (no shell) naming a program found."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        return [f"CHRONOS_NAS_TOKEN_COMMAND: cannot be split into arguments ({exc})"]
    if not argv:
        return ["CHRONOS_NAS_TOKEN_COMMAND names no program"]
    if shutil.which(argv[0]) is None:
        return [f"CHRONOS_NAS_TOKEN_COMMAND: {argv[0]!r} not found (or not executable)"]
    return []


def _url_problem(env_name: str, value: str, *, allow_loopback_http: bool) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{env_name} must be an absolute http(s) URL, got {value!r}"
    if parts.scheme == "https":
        return None
    if allow_loopback_http and parts.hostname in LOOPBACK_HOSTS:
        return None
    return (
        f"{env_name} must use https (plain http is allowed only on loopback with CHRONOS_ENV=dev)"
    )


def ensure_sqlite_folder(database_url: str) -> None:
    """Create the folder of the default SQLite database (`./data`), so a fresh clone works; a
    SQLite path given explicitly must name an existing folder (a typo must not create one):
    `ConfigError` otherwise."""
    prefix = "sqlite+aiosqlite:///"
    if not database_url.startswith(prefix):
        return
    path = database_url[len(prefix) :].split("?", 1)[0]
    if not path or path == ":memory:":
        return
    folder = os.path.dirname(os.path.abspath(path))
    if database_url == DEFAULT_DATABASE_URL:
        os.makedirs(folder, exist_ok=True)
    elif not os.path.isdir(folder):
        raise ConfigError(f"CHRONOS_DATABASE_URL: the folder {folder} does not exist")

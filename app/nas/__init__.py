"""Hop 1 of the contract: the agent's client for NAS's agent-cron endpoints, and the
credentials it sends."""

from app.nas.client import ArmedFire, ListUnsupported, NasClient, RetryBudget
from app.nas.credentials import (
    CommandToken,
    FileToken,
    NasCredentials,
    StaticToken,
    build_credentials,
)
from app.nas.errors import (
    CredentialsRefused,
    CredentialsUnavailable,
    NasError,
    is_transient,
    refused_for_good,
)

__all__ = [
    "ArmedFire",
    "CommandToken",
    "CredentialsRefused",
    "CredentialsUnavailable",
    "FileToken",
    "ListUnsupported",
    "NasClient",
    "NasCredentials",
    "NasError",
    "RetryBudget",
    "StaticToken",
    "build_credentials",
    "is_transient",
    "refused_for_good",
]

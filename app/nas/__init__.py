"""Hop 1 of the contract: the agent's client for NAS's agent-cron endpoints."""

from app.nas.client import (
    ArmedFire,
    ListUnsupported,
    NasClient,
    NasError,
    RetryBudget,
    is_transient,
)

__all__ = ["ArmedFire", "ListUnsupported", "NasClient", "NasError", "RetryBudget", "is_transient"]

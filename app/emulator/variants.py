"""The ways a real NAS may differ from the emulator's default behaviour, one enum per setting.

Each is a field of `EmulatorConfig` and a `NAS_EMULATOR_*` variable; the first value of each is
the default, which is the emulator's behaviour without the setting.
"""

from __future__ import annotations

from enum import StrEnum


class FireAtMode(StrEnum):
    """`NAS_EMULATOR_FIRE_AT`: whether a fire names its instant."""

    PROVISIONED = "provisioned"  # body and token carry `fire_at` exactly as provisioned
    OMITTED = "omitted"  # body `{"job_id"}` only, and the token has no `fire_at` claim


class ListMode(StrEnum):
    """`NAS_EMULATOR_LIST`: whether `GET /api/agent-cron/list` exists."""

    ON = "on"
    OFF = "off"  # answers 404 `not_found`, as for any unknown route


class ProvisionAnswer(StrEnum):
    """`NAS_EMULATOR_PROVISION_ANSWER`: the body of a successful provision."""

    FULL = "full"  # `{"schedule_id": ...}`
    EMPTY = "empty"  # `{}`


class ConsumeMode(StrEnum):
    """`NAS_EMULATOR_CONSUME`: which arm a delivery answered with 2xx removes."""

    SCHEDULE = "schedule"  # the delivered arm only (by schedule id): a newer arm survives
    JOB = "job"  # the job's arm at the moment of the answer, even one armed during the delivery

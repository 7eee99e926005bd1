"""EmulatorConfig: validation on construction and `from_env` errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.emulator import EmulatorConfig, EmulatorConfigError
from app.emulator.variants import ConsumeMode, FireAtMode, ListMode, ProvisionAnswer

BASE_ENV = {
    "NAS_EMULATOR_PUBLIC_URL": "http://localhost:9000/",
    "NAS_EMULATOR_AGENT_TOKEN": "dev-agent-token",
    "NAS_EMULATOR_INSTANCE_ID": "dev-instance",
}


def test_public_url_loses_its_trailing_slash() -> None:
    config = EmulatorConfig(public_url="https://nas.example/portal/", agent_tokens={"t": "i"})

    assert config.public_url == "https://nas.example/portal"


def test_repr_never_shows_tokens() -> None:
    config = EmulatorConfig(public_url="http://nas", agent_tokens={"super-secret-token": "i"})

    assert "super-secret-token" not in repr(config)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"public_url": "nas.example"}, "public_url"),
        ({"public_url": "ftp://nas.example"}, "public_url"),
        ({"agent_tokens": {}}, "agent_tokens"),
        ({"agent_tokens": {"": "i"}}, "agent_tokens"),
        ({"agent_tokens": {"t": ""}}, "agent_tokens"),
        ({"token_ttl_seconds": 0}, "token_ttl_seconds"),
        ({"redelivery_initial_seconds": 0}, "redelivery_initial_seconds"),
        ({"redelivery_max_seconds": 0.5}, "redelivery_max_seconds"),
        ({"redelivery_max_attempts": 0}, "redelivery_max_attempts"),
        ({"delivery_timeout_seconds": -1}, "delivery_timeout_seconds"),
        ({"agent_token_ttl_seconds": 0}, "agent_token_ttl_seconds"),
        ({"agent_token_ttl_seconds": float("inf")}, "agent_token_ttl_seconds"),
        ({"agent_token_file": " "}, "agent_token_file"),
        ({"fire_at": "sometimes"}, "fire_at"),
        ({"list_endpoint": "maybe"}, "list_endpoint"),
        ({"provision_answer": "verbose"}, "provision_answer"),
        ({"consume": "all"}, "consume"),
    ],
)
def test_invalid_settings_are_refused_naming_the_field(
    overrides: dict[str, object], field: str
) -> None:
    settings: dict[str, object] = {"public_url": "http://nas", "agent_tokens": {"t": "i"}}
    with pytest.raises(EmulatorConfigError, match=f"^{field}:"):
        EmulatorConfig(**{**settings, **overrides})  # type: ignore[arg-type]


def test_from_env_reads_the_variables(tmp_path: Path) -> None:
    env = {
        **BASE_ENV,
        "NAS_EMULATOR_KEY_FILE": str(tmp_path / "nas.pem"),
        "NAS_EMULATOR_TOKEN_TTL_SECONDS": "60",
        "NAS_EMULATOR_REDELIVERY_INITIAL_SECONDS": "0.5",
        "NAS_EMULATOR_REDELIVERY_MAX_SECONDS": "10",
        "NAS_EMULATOR_REDELIVERY_MAX_ATTEMPTS": "7",
        "NAS_EMULATOR_DELIVERY_TIMEOUT_SECONDS": "3",
        "NAS_EMULATOR_KID": "dev-key",
    }

    config = EmulatorConfig.from_env(env)

    assert config == EmulatorConfig(
        public_url="http://localhost:9000",
        agent_tokens={"dev-agent-token": "dev-instance"},
        token_ttl_seconds=60,
        redelivery_initial_seconds=0.5,
        redelivery_max_seconds=10.0,
        redelivery_max_attempts=7,
        delivery_timeout_seconds=3.0,
        key_file=str(tmp_path / "nas.pem"),
        kid="dev-key",
    )


def test_from_env_defaults_are_todays_behaviour() -> None:
    config = EmulatorConfig.from_env(BASE_ENV)

    assert config.fire_at is FireAtMode.PROVISIONED
    assert config.list_endpoint is ListMode.ON
    assert config.provision_answer is ProvisionAnswer.FULL
    assert config.consume is ConsumeMode.SCHEDULE
    assert config.agent_token_ttl_seconds is None
    assert config.agent_token_file is None


def test_from_env_reads_the_nas_behaviours() -> None:
    env = {
        **BASE_ENV,
        "NAS_EMULATOR_FIRE_AT": "omitted",
        "NAS_EMULATOR_LIST": "OFF",
        "NAS_EMULATOR_PROVISION_ANSWER": "empty",
        "NAS_EMULATOR_CONSUME": "job",
        "NAS_EMULATOR_AGENT_TOKEN_TTL_SECONDS": "3600",
    }

    config = EmulatorConfig.from_env(env)

    assert (config.fire_at, config.list_endpoint) == (FireAtMode.OMITTED, ListMode.OFF)
    assert (config.provision_answer, config.consume) == (ProvisionAnswer.EMPTY, ConsumeMode.JOB)
    assert config.agent_token_ttl_seconds == 3600.0


def test_behaviours_may_be_given_as_strings() -> None:
    strings: dict[str, object] = {"fire_at": "omitted", "consume": "job"}
    config = EmulatorConfig(public_url="http://nas", agent_tokens={"t": "i"}, **strings)  # type: ignore[arg-type]

    assert config.fire_at is FireAtMode.OMITTED
    assert config.consume is ConsumeMode.JOB


def test_from_env_reads_the_token_from_a_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("token-from-file\n")
    env = {k: v for k, v in BASE_ENV.items() if k != "NAS_EMULATOR_AGENT_TOKEN"}

    config = EmulatorConfig.from_env({**env, "NAS_EMULATOR_AGENT_TOKEN_FILE": str(token_file)})

    assert config.agent_tokens == {"token-from-file": "dev-instance"}
    assert config.agent_token_file == str(token_file)  # where rotated tokens are written


@pytest.mark.parametrize(
    ("change", "variable"),
    [
        ({"NAS_EMULATOR_PUBLIC_URL": None}, "NAS_EMULATOR_PUBLIC_URL"),
        ({"NAS_EMULATOR_PUBLIC_URL": "localhost:9000"}, "NAS_EMULATOR_PUBLIC_URL"),
        ({"NAS_EMULATOR_AGENT_TOKEN": None}, "NAS_EMULATOR_AGENT_TOKEN"),
        ({"NAS_EMULATOR_AGENT_TOKEN": "  "}, "NAS_EMULATOR_AGENT_TOKEN"),
        ({"NAS_EMULATOR_INSTANCE_ID": None}, "NAS_EMULATOR_INSTANCE_ID"),
        ({"NAS_EMULATOR_AGENT_TOKEN_FILE": "/nonexistent/token"}, "NAS_EMULATOR_AGENT_TOKEN_FILE"),
        ({"NAS_EMULATOR_TOKEN_TTL_SECONDS": "ninety"}, "NAS_EMULATOR_TOKEN_TTL_SECONDS"),
        ({"NAS_EMULATOR_REDELIVERY_MAX_ATTEMPTS": "0"}, "NAS_EMULATOR_REDELIVERY_MAX_ATTEMPTS"),
        ({"NAS_EMULATOR_REDELIVERY_MAX_SECONDS": "nan"}, "NAS_EMULATOR_REDELIVERY_MAX_SECONDS"),
        ({"NAS_EMULATOR_FIRE_AT": "none"}, "NAS_EMULATOR_FIRE_AT"),
        ({"NAS_EMULATOR_LIST": "no"}, "NAS_EMULATOR_LIST"),
        ({"NAS_EMULATOR_PROVISION_ANSWER": "{}"}, "NAS_EMULATOR_PROVISION_ANSWER"),
        ({"NAS_EMULATOR_CONSUME": "arm"}, "NAS_EMULATOR_CONSUME"),
        ({"NAS_EMULATOR_AGENT_TOKEN_TTL_SECONDS": "-5"}, "NAS_EMULATOR_AGENT_TOKEN_TTL_SECONDS"),
        ({"NAS_EMULATOR_AGENT_TOKEN_TTL_SECONDS": "1h"}, "NAS_EMULATOR_AGENT_TOKEN_TTL_SECONDS"),
    ],
)
def test_from_env_errors_name_the_variable(change: dict[str, str | None], variable: str) -> None:
    env = {**BASE_ENV, **change}
    present = {k: v for k, v in env.items() if v is not None}

    with pytest.raises(EmulatorConfigError, match=variable):
        EmulatorConfig.from_env(present)


def test_from_env_refuses_both_token_sources(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("other")

    with pytest.raises(EmulatorConfigError, match="both set"):
        EmulatorConfig.from_env({**BASE_ENV, "NAS_EMULATOR_AGENT_TOKEN_FILE": str(token_file)})


def test_from_env_refuses_an_empty_token_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("\n")
    env = {k: v for k, v in BASE_ENV.items() if k != "NAS_EMULATOR_AGENT_TOKEN"}

    with pytest.raises(EmulatorConfigError, match=r"NAS_EMULATOR_AGENT_TOKEN_FILE: .* is empty"):
        EmulatorConfig.from_env({**env, "NAS_EMULATOR_AGENT_TOKEN_FILE": str(token_file)})

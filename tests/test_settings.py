"""Settings: `CHRONOS_*` variables, `.env`, `*_FILE` secrets, and the start-up checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from app.settings import ConfigError, Settings

COMPLETE: dict[str, Any] = {
    "portal_url": "https://nas.example",
    "callback_url": "https://agent.example",
    "expected_audience": "agent:abc",
    "nas_jwks_url": "https://nas.example/.well-known/jwks.json",
    "nas_token": "nas-token",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No `CHRONOS_*` from the machine running the tests, and no `.env` in the cwd."""
    import os

    for name in list(os.environ):
        if name.startswith("CHRONOS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def test_complete_settings_have_no_problems() -> None:
    s = settings(**COMPLETE)
    assert s.fire_config_problems() == []
    s.require_fire_config()
    assert s.env == "prod"
    assert s.issuer == "https://nas.example"


def test_the_expected_issuer_can_differ_from_the_portal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHRONOS_JWT_ISSUER", "https://auth.nas.example/")
    s = Settings(_env_file=None, **COMPLETE)
    assert s.issuer == "https://auth.nas.example"
    monkeypatch.delenv("CHRONOS_JWT_ISSUER")
    assert settings(**COMPLETE).issuer == "https://nas.example"


def test_defaults() -> None:
    s = settings()
    assert s.env == "prod"
    assert s.database_url.startswith("sqlite+aiosqlite:///")
    assert "data/" in s.database_url
    assert s.port == 8080
    assert s.admin_token is None


def test_every_missing_setting_is_named() -> None:
    problems = settings().fire_config_problems()
    text = "\n".join(problems)
    for name in (
        "CHRONOS_PORTAL_URL",
        "CHRONOS_CALLBACK_URL",
        "CHRONOS_EXPECTED_AUDIENCE",
        "CHRONOS_NAS_JWKS_URL",
        "CHRONOS_NAS_TOKEN",
    ):
        assert name in text
    assert len(problems) == 5


@pytest.mark.parametrize(
    ("missing", "env_name"),
    [
        ("portal_url", "CHRONOS_PORTAL_URL"),
        ("callback_url", "CHRONOS_CALLBACK_URL"),
        ("expected_audience", "CHRONOS_EXPECTED_AUDIENCE"),
        ("nas_jwks_url", "CHRONOS_NAS_JWKS_URL"),
        ("nas_token", "CHRONOS_NAS_TOKEN"),
    ],
)
def test_one_missing_setting_is_one_problem_naming_it(missing: str, env_name: str) -> None:
    s = settings(**{**COMPLETE, missing: None})
    [problem] = s.fire_config_problems()
    assert problem.startswith(env_name)
    with pytest.raises(ConfigError, match=env_name):
        s.require_fire_config()


def test_an_empty_setting_counts_as_missing() -> None:
    [problem] = settings(**{**COMPLETE, "expected_audience": ""}).fire_config_problems()
    assert "CHRONOS_EXPECTED_AUDIENCE" in problem


@pytest.mark.parametrize(
    ("field", "env_name"),
    [
        ("portal_url", "CHRONOS_PORTAL_URL"),
        ("callback_url", "CHRONOS_CALLBACK_URL"),
        ("nas_jwks_url", "CHRONOS_NAS_JWKS_URL"),
    ],
)
def test_http_urls_are_refused_outside_dev(field: str, env_name: str) -> None:
    for url in ("http://127.0.0.1:9000", "http://nas.example"):
        [problem] = settings(**{**COMPLETE, field: url}).fire_config_problems()
        assert problem.startswith(env_name)
        assert "https" in problem


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
def test_http_on_loopback_is_allowed_in_dev(host: str) -> None:
    s = settings(
        **{
            **COMPLETE,
            "env": "dev",
            "portal_url": f"http://{host}:9000",
            "callback_url": f"http://{host}:8080",
            "nas_jwks_url": f"http://{host}:9000/.well-known/jwks.json",
        }
    )
    assert s.fire_config_problems() == []


def test_http_on_another_host_is_refused_even_in_dev() -> None:
    s = settings(**{**COMPLETE, "env": "dev", "callback_url": "http://agent.example"})
    [problem] = s.fire_config_problems()
    assert problem.startswith("CHRONOS_CALLBACK_URL")
    assert "https" in problem and "loopback" in problem


@pytest.mark.parametrize("url", ["nas.example", "ftp://nas.example", "https://"])
def test_a_url_that_is_not_absolute_http_is_refused(url: str) -> None:
    [problem] = settings(**{**COMPLETE, "portal_url": url}).fire_config_problems()
    assert problem.startswith("CHRONOS_PORTAL_URL")


def test_env_must_be_prod_or_dev() -> None:
    with pytest.raises(ValidationError):
        settings(env="staging")


def test_several_problems_are_all_reported() -> None:
    s = settings(**{**COMPLETE, "expected_audience": None, "portal_url": "http://nas.example"})
    with pytest.raises(ConfigError) as caught:
        s.require_fire_config()
    assert "CHRONOS_EXPECTED_AUDIENCE" in str(caught.value)
    assert "CHRONOS_PORTAL_URL" in str(caught.value)


# -- environment, .env and *_FILE --------------------------------------------------------


def test_env_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHRONOS_PORT", "9999")
    monkeypatch.setenv("CHRONOS_ENV", "dev")
    monkeypatch.setenv("CHRONOS_EXPECTED_AUDIENCE", "agent:from-env")
    monkeypatch.setenv("PORT", "1234")  # unprefixed: not ours
    s = settings()
    assert s.port == 9999
    assert s.env == "dev"
    assert s.expected_audience == "agent:from-env"


def test_a_bad_port_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHRONOS_PORT", "not-a-port")
    with pytest.raises(ValidationError):
        settings()


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("CHRONOS_PORT=7777\nCHRONOS_EXPECTED_AUDIENCE=agent:dotenv\n")
    s = Settings(_env_file=str(dotenv))
    assert s.port == 7777
    assert s.expected_audience == "agent:dotenv"
    assert Settings().port == 7777  # `.env` in the working directory by default


def test_environment_wins_over_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("CHRONOS_PORT=7777\n")
    monkeypatch.setenv("CHRONOS_PORT", "6666")
    assert Settings().port == 6666


def test_the_nas_token_file_is_checked_but_left_to_the_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is read again whenever it changes (`app.nas.credentials.FileToken`), so the
    settings only check it can be read, and do not fold it into `nas_token`."""
    token_file = tmp_path / "nas-token"
    token_file.write_text("  token-from-a-file\n")
    monkeypatch.setenv("CHRONOS_NAS_TOKEN_FILE", str(token_file))
    s = settings(**{**COMPLETE, "nas_token": None})
    assert s.nas_token_file == token_file
    assert s.nas_token_value() is None
    assert s.fire_config_problems() == []
    assert "token-from-a-file" not in repr(s)


def test_an_empty_nas_token_file_names_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "nas-token"
    token_file.write_text(" \n")
    monkeypatch.setenv("CHRONOS_NAS_TOKEN_FILE", str(token_file))
    with pytest.raises(ValidationError, match="CHRONOS_NAS_TOKEN_FILE"):
        settings()


def test_admin_token_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token_file = tmp_path / "admin-token"
    token_file.write_text("admin-token-from-a-file-0123456789\n")
    monkeypatch.setenv("CHRONOS_ADMIN_TOKEN_FILE", str(token_file))
    assert settings().admin_token_value() == "admin-token-from-a-file-0123456789"


def test_the_admin_token_itself_wins_over_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "admin-token"
    token_file.write_text("from-file")
    monkeypatch.setenv("CHRONOS_ADMIN_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("CHRONOS_ADMIN_TOKEN", "from-env")
    assert settings().admin_token_value() == "from-env"


# -- exactly one source of the NAS token ---------------------------------------------------


def nas_token_sources(tmp_path: Path) -> dict[str, dict[str, Any]]:
    token_file = tmp_path / "nas-token"
    token_file.write_text("from-file\n")
    return {
        "CHRONOS_NAS_TOKEN": {"nas_token": "from-env"},
        "CHRONOS_NAS_TOKEN_FILE": {"nas_token_file": str(token_file)},
        "CHRONOS_NAS_TOKEN_COMMAND": {"nas_token_command": "echo from-command"},
    }


@pytest.mark.parametrize(
    "chosen",
    [
        [],
        ["CHRONOS_NAS_TOKEN", "CHRONOS_NAS_TOKEN_FILE"],
        ["CHRONOS_NAS_TOKEN", "CHRONOS_NAS_TOKEN_COMMAND"],
        ["CHRONOS_NAS_TOKEN_FILE", "CHRONOS_NAS_TOKEN_COMMAND"],
        ["CHRONOS_NAS_TOKEN", "CHRONOS_NAS_TOKEN_FILE", "CHRONOS_NAS_TOKEN_COMMAND"],
    ],
)
def test_the_nas_token_needs_exactly_one_source(tmp_path: Path, chosen: list[str]) -> None:
    sources = nas_token_sources(tmp_path)
    values = {**COMPLETE, "nas_token": None}
    for name in chosen:
        values.update(sources[name])
    [problem] = settings(**values).fire_config_problems()
    assert problem.startswith(
        "CHRONOS_NAS_TOKEN, CHRONOS_NAS_TOKEN_FILE or CHRONOS_NAS_TOKEN_COMMAND: set exactly one"
    )
    assert problem.endswith(f"(got: {', '.join(chosen) or 'none'})")
    assert "from-" not in problem  # no secret echoed


@pytest.mark.parametrize(
    "source", ["CHRONOS_NAS_TOKEN", "CHRONOS_NAS_TOKEN_FILE", "CHRONOS_NAS_TOKEN_COMMAND"]
)
def test_any_one_source_of_the_nas_token_will_do(tmp_path: Path, source: str) -> None:
    values = {**COMPLETE, "nas_token": None, **nas_token_sources(tmp_path)[source]}
    assert settings(**values).fire_config_problems() == []


def test_the_token_command_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHRONOS_NAS_TOKEN_COMMAND", "vault read -field=token secret/nas")
    monkeypatch.setenv("CHRONOS_NAS_TOKEN_COMMAND_TTL_SECONDS", "120")
    s = settings()
    assert s.nas_token_command == "vault read -field=token secret/nas"
    assert s.nas_token_command_ttl_seconds == 120
    assert s.nas_token_command_timeout_seconds == 10
    monkeypatch.delenv("CHRONOS_NAS_TOKEN_COMMAND_TTL_SECONDS")
    assert settings().nas_token_command_ttl_seconds == 300


@pytest.mark.parametrize(
    ("command", "complaint"),
    [
        ("get-token --name 'unclosed", "cannot be split into arguments"),
        ("   ", "names no program"),
        ("no-such-program-for-chronos --token-arg s3cret", "'no-such-program-for-chronos'"),
    ],
)
def test_a_token_command_that_cannot_run_is_a_problem(command: str, complaint: str) -> None:
    [problem] = settings(
        **{**COMPLETE, "nas_token": None, "nas_token_command": command}
    ).fire_config_problems()
    assert problem.startswith("CHRONOS_NAS_TOKEN")
    assert complaint in problem
    assert "s3cret" not in problem  # arguments may hold secrets: only the program is named


def test_an_unreadable_token_file_names_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHRONOS_NAS_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(ValidationError) as caught:
        settings()
    assert "CHRONOS_NAS_TOKEN_FILE" in str(caught.value)


# -- admin token strength ------------------------------------------------------------------


@pytest.mark.parametrize("placeholder", ["changeme", "CHANGETHIS"])
def test_a_placeholder_admin_token_is_refused(placeholder: str) -> None:
    [problem] = settings(**COMPLETE, admin_token=placeholder).fire_config_problems()
    assert problem.startswith("CHRONOS_ADMIN_TOKEN")
    assert placeholder not in problem  # never echo the secret


@pytest.mark.parametrize("short", ["tiny-tok", "x" * 15])
def test_a_short_admin_token_is_a_warning_not_a_refusal(short: str) -> None:
    configured = settings(**COMPLETE, admin_token=short)
    assert configured.fire_config_problems() == []
    [warning] = configured.weak_secret_warnings()
    assert warning.startswith("CHRONOS_ADMIN_TOKEN") and short not in warning


def test_a_strong_admin_token_or_none_is_fine() -> None:
    assert (
        settings(**COMPLETE, admin_token="a-strong-random-admin-token-123").fire_config_problems()
        == []
    )
    assert settings(**COMPLETE).fire_config_problems() == []

"""docker-compose.yml: the dev setup (default) and the `ha` profile, read field by field; then
`podman-compose config` for both profiles when podman-compose is installed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from app.emulator import EmulatorConfig
from app.settings import Settings
from tests.deploy.files import (
    COMPOSE_FILE,
    DRAIN_OVERHEAD_SECONDS,
    ROOT,
    compose,
    default_setting,
    duration_seconds,
    env_example_variables,
    fill_variables,
    required_variables,
    services,
    tool,
    used_variables,
)

DEV_SERVICES = {"nas", "postgres", "agent"}
HA_SERVICES = {
    "ha-postgres",
    "ha-migrate",
    "ha-proxy",
    "ha-proxy-ca",
    "ha-nas",
    "ha-agent-1",
    "ha-agent-2",
}
HA_AGENTS = ("ha-agent-1", "ha-agent-2")
ONE_SHOTS = {"ha-migrate", "ha-proxy-ca"}
FAKE_VALUES = {
    "NAS_TOKEN": "nas-token-0123456789abcdef",
    "ADMIN_TOKEN": "admin-token-0123456789abcdef",
    "POSTGRES_PASSWORD": "0123456789abcdef",
}


def _profile(name: str) -> set[str]:
    return {
        service for service, spec in services().items() if name in spec.get("profiles", ["default"])
    }


def _volume_mounts(spec: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(source, target, read-only) of each short-syntax volume."""
    mounts = []
    for entry in spec.get("volumes", []):
        source, target, *mode = entry.split(":")
        mounts.append((source, target, mode == ["ro"]))
    return mounts


def _filled(spec_env: dict[str, str]) -> dict[str, str]:
    return {name: fill_variables(str(value), FAKE_VALUES) for name, value in spec_env.items()}


def test_default_setup_and_ha_profile_hold_the_expected_services() -> None:
    assert _profile("default") == DEV_SERVICES
    assert _profile("ha") == HA_SERVICES


def test_every_published_port_is_bound_to_loopback() -> None:
    for name, spec in services().items():
        for port in spec.get("ports", []):
            assert isinstance(port, str), f"{name}: write ports as strings"
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_only_the_proxy_publishes_ports_in_the_ha_profile() -> None:
    published = {name for name in HA_SERVICES if services()[name].get("ports")}
    assert published == {"ha-proxy"}
    assert services()["ha-proxy"]["ports"] == ["127.0.0.1:8443:8443", "127.0.0.1:9443:9443"]


def test_every_dependency_waits_for_health_or_completion() -> None:
    specs = services()
    for name, spec in specs.items():
        depends_on = spec.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on needs conditions"
        for dependency, rule in depends_on.items():
            condition = rule["condition"]
            if dependency in ONE_SHOTS:
                assert condition == "service_completed_successfully", (name, dependency)
            else:
                assert condition == "service_healthy", (name, dependency)
                assert "healthcheck" in specs[dependency], f"{dependency} has no healthcheck"


def test_every_long_running_service_has_a_healthcheck() -> None:
    for name, spec in services().items():
        if name in ONE_SHOTS:
            assert spec["restart"] == "no"
            continue
        assert spec["healthcheck"]["test"], f"{name} has no healthcheck"


def test_ha_agents_wait_for_the_migration_the_proxy_and_the_emulator() -> None:
    for name in HA_AGENTS:
        depends_on = services()[name]["depends_on"]
        assert depends_on["ha-migrate"]["condition"] == "service_completed_successfully"
        assert depends_on["ha-proxy-ca"]["condition"] == "service_completed_successfully"
        assert depends_on["ha-proxy"]["condition"] == "service_healthy"
        assert depends_on["ha-nas"]["condition"] == "service_healthy"
    migrate = services()["ha-migrate"]
    assert migrate["command"] == ["migrate"]
    assert migrate["depends_on"]["ha-postgres"]["condition"] == "service_healthy"


def test_ha_agents_run_under_an_init_and_outlast_their_drain() -> None:
    for name in HA_AGENTS:
        spec = services()[name]
        environment = spec["environment"]
        grace = float(
            environment.get(
                "CHRONOS_SHUTDOWN_GRACE_SECONDS", default_setting("shutdown_grace_seconds")
            )
        )
        settle = float(
            environment.get("CHRONOS_DRAIN_SETTLE_SECONDS", default_setting("drain_settle_seconds"))
        )
        assert spec["init"] is True
        assert spec["command"] == ["serve"]
        # The drain lasts the longer of grace and settle, then open requests and leases.
        assert duration_seconds(spec["stop_grace_period"]) > grace + settle + DRAIN_OVERHEAD_SECONDS
    # The dev agent, on the default drain settings, too.
    assert services()["agent"]["init"] is True
    assert duration_seconds(services()["agent"]["stop_grace_period"]) > (
        default_setting("shutdown_grace_seconds")
        + default_setting("drain_settle_seconds")
        + DRAIN_OVERHEAD_SECONDS
    )


def test_ha_agents_talk_https_through_the_proxy_and_pass_the_start_checks() -> None:
    for name in HA_AGENTS:
        environment = _filled(services()[name]["environment"])
        assert "CHRONOS_ENV" not in environment  # prod: https everywhere
        for variable in ("CHRONOS_PORTAL_URL", "CHRONOS_NAS_JWKS_URL", "CHRONOS_CALLBACK_URL"):
            url = urlsplit(environment[variable])
            assert (url.scheme, url.hostname) == ("https", "ha-proxy"), variable
        database = urlsplit(environment["CHRONOS_DATABASE_URL"])
        assert database.hostname == "ha-postgres"
        assert database.password == FAKE_VALUES["POSTGRES_PASSWORD"]
        values: dict[str, Any] = {
            key.removeprefix("CHRONOS_").lower(): value
            for key, value in environment.items()
            if key.startswith("CHRONOS_")
        }
        settings = Settings(**values)
        assert settings.fire_config_problems() == []
        assert settings.weak_secret_warnings() == []


def test_agents_and_emulator_trust_the_proxy_ca_from_the_copied_volume(tmp_path: Path) -> None:
    specs = services()
    copier = specs["ha-proxy-ca"]
    assert ("ha-caddy-data", "/caddy-data", True) in _volume_mounts(copier)
    assert ("ha-caddy-ca", "/ca", False) in _volume_mounts(copier)
    assert ("ha-caddy-data", "/data", False) in _volume_mounts(specs["ha-proxy"])
    script = " ".join(copier["command"])
    assert "/caddy-data/caddy/pki/authorities/local/root.crt" in script
    assert "root.key" not in script

    for name in HA_AGENTS:
        assert ("ha-caddy-ca", "/ca", True) in _volume_mounts(specs[name])
        assert specs[name]["environment"]["SSL_CERT_FILE"] == "/ca/bundle.pem"

    emulator = specs["ha-nas"]
    assert ("ha-caddy-ca", "/ca", True) in _volume_mounts(emulator)
    environment = _filled(emulator["environment"])
    assert environment["NAS_EMULATOR_CA_FILE"] == "/ca/root.crt"
    assert (
        environment["NAS_EMULATOR_PUBLIC_URL"]
        == specs["ha-agent-1"]["environment"]["CHRONOS_PORTAL_URL"]
    )
    # The emulator starts with these settings (its CA file stood in for by a local one).
    ca_file = tmp_path / "root.crt"
    ca_file.write_text("")
    environment["NAS_EMULATOR_CA_FILE"] = str(ca_file)
    environment["NAS_EMULATOR_KEY_FILE"] = str(tmp_path / "nas-key.pem")
    config = EmulatorConfig.from_env(environment)
    audience = specs["ha-agent-1"]["environment"]["CHRONOS_EXPECTED_AUDIENCE"]
    assert audience == f"agent:{config.agent_tokens[FAKE_VALUES['NAS_TOKEN']]}"


def test_the_proxy_mounts_the_caddyfile() -> None:
    proxy = services()["ha-proxy"]
    assert proxy["image"].startswith("caddy:")
    source, target, read_only = _volume_mounts(proxy)[0]
    assert (ROOT / source).resolve() == (ROOT / "deploy" / "caddy" / "Caddyfile")
    assert (target, read_only) == ("/etc/caddy/Caddyfile", True)


def test_secrets_are_required_variables_listed_in_env_example() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    required = required_variables(text)
    assert required == {"NAS_TOKEN", "ADMIN_TOKEN", "POSTGRES_PASSWORD"}
    # Every variable the file uses is required (no silent empty default) and documented.
    assert used_variables(text) == required
    example = env_example_variables()
    assert set(example) == required
    # The example holds no secret: each value is generated by whoever copies it.
    assert all(value == "" for value in example.values())
    # Nothing in it is a CHRONOS_* setting an agent started from this folder would read.
    assert not any(name.startswith("CHRONOS_") for name in example)
    assert services()["ha-postgres"]["environment"]["POSTGRES_PASSWORD"].startswith(
        "${POSTGRES_PASSWORD:?"
    )


def _podman_compose(args: list[str], env_file: Path) -> subprocess.CompletedProcess[str]:
    podman_compose = tool("podman-compose", "PODMAN_COMPOSE")
    if podman_compose is None:
        pytest.skip("podman-compose is not installed (pip install podman-compose)")
    # Only the env file speaks: none of the variables comes from the developer's shell.
    env = {name: value for name, value in os.environ.items() if name not in FAKE_VALUES}
    return subprocess.run(
        [podman_compose, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), *args, "config"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
    )


@pytest.mark.parametrize(("args", "expected"), [([], DEV_SERVICES), (["--profile", "ha"], None)])
def test_podman_compose_accepts_both_setups(
    tmp_path: Path, args: list[str], expected: set[str] | None
) -> None:
    env_file = tmp_path / "compose.env"
    env_file.write_text("".join(f"{name}={value}\n" for name, value in FAKE_VALUES.items()))

    result = _podman_compose(args, env_file)

    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)
    assert set(rendered["services"]) == (expected or DEV_SERVICES | HA_SERVICES)


def test_podman_compose_refuses_a_missing_secret(tmp_path: Path) -> None:
    env_file = tmp_path / "compose.env"
    env_file.write_text("NAS_TOKEN=x\nADMIN_TOKEN=y\n")

    result = _podman_compose(["--profile", "ha"], env_file)

    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr


def test_compose_file_has_no_obsolete_version_key() -> None:
    assert "version" not in compose()

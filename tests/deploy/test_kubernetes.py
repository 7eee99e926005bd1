"""deploy/kubernetes: the kustomization's manifests read field by field (no cluster here); then
rendered by `kubectl kustomize` and checked against the Kubernetes schemas by
`kubernetes-validate` when those tools are installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.settings import Settings
from tests.deploy.files import (
    DOCKERFILE,
    DRAIN_OVERHEAD_SECONDS,
    KUBERNETES,
    default_setting,
    load_yaml,
    tool,
)

SELECTOR = {"app.kubernetes.io/name": "chronos", "app.kubernetes.io/component": "agent"}


def kustomization() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(KUBERNETES / "kustomization.yaml")
    return loaded


def resources() -> dict[str, dict[str, Any]]:
    """The kustomization's resources by kind (one of each)."""
    found: dict[str, dict[str, Any]] = {}
    for name in kustomization()["resources"]:
        document = load_yaml(KUBERNETES / name)
        assert document["kind"] not in found
        found[document["kind"]] = document
    return found


def pod_spec(kind: str) -> dict[str, Any]:
    spec: dict[str, Any] = resources()[kind]["spec"]["template"]["spec"]
    return spec


def container(kind: str) -> dict[str, Any]:
    containers = pod_spec(kind)["containers"]
    assert len(containers) == 1
    found: dict[str, Any] = containers[0]
    return found


def env_values(kind: str) -> dict[str, Any]:
    """The container's `env` by name: a value, or its `valueFrom`."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(kind).get("env", [])}


def config_data() -> dict[str, str]:
    data: dict[str, str] = resources()["ConfigMap"]["data"]
    return data


def drain_setting(variable: str, field: str) -> float:
    return float(config_data().get(variable, default_setting(field)))


def secret_generator() -> dict[str, Any]:
    (generator,) = kustomization()["secretGenerator"]
    found: dict[str, Any] = generator
    return found


def secret_keys() -> dict[str, str]:
    """Key -> file of the generated Secret."""
    return dict(entry.split("=", 1) for entry in secret_generator()["files"])


def test_kustomization_lists_every_manifest_of_the_folder() -> None:
    listed = set(kustomization()["resources"])
    on_disk = {path.name for path in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk
    assert set(resources()) == {
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "Job",
    }


def test_deployment_runs_two_replicas_selected_by_the_service_and_the_budget() -> None:
    deployment = resources()["Deployment"]
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["selector"]["matchLabels"] == SELECTOR
    assert deployment["spec"]["template"]["metadata"]["labels"] == SELECTOR
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert resources()["Service"]["spec"]["selector"] == SELECTOR
    budget = resources()["PodDisruptionBudget"]
    assert budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"] == SELECTOR


def test_probes_ask_readyz_for_readiness_and_healthz_for_liveness() -> None:
    agent = container("Deployment")
    port_names = {port["name"]: port["containerPort"] for port in agent["ports"]}
    assert port_names == {"http": int(config_data()["CHRONOS_PORT"])}
    assert agent["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert agent["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert agent["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert resources()["Service"]["spec"]["ports"][0]["targetPort"] == "http"


def test_termination_grace_covers_the_pre_stop_pause_and_the_drain() -> None:
    agent = container("Deployment")
    command = agent["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = float(command[1])
    assert pre_stop > 0
    grace = drain_setting("CHRONOS_SHUTDOWN_GRACE_SECONDS", "shutdown_grace_seconds")
    settle = drain_setting("CHRONOS_DRAIN_SETTLE_SECONDS", "drain_settle_seconds")
    budget = pod_spec("Deployment")["terminationGracePeriodSeconds"]
    assert budget > pre_stop + grace + settle + DRAIN_OVERHEAD_SECONDS


def test_resources_request_cpu_and_memory_and_limit_memory() -> None:
    for kind in ("Deployment", "Job"):
        resources_ = container(kind)["resources"]
        assert set(resources_["requests"]) == {"cpu", "memory"}
        assert set(resources_["limits"]) == {"memory"}


def test_tokens_are_files_of_the_mounted_secret() -> None:
    env = env_values("Deployment")
    mounts = {m["name"]: m for m in container("Deployment")["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec("Deployment")["volumes"]}
    secret_volume = volumes["secrets"]["secret"]
    assert secret_volume["secretName"] == secret_generator()["name"]
    # No subPath: the kubelet replaces the files in place when the Secret changes.
    assert "subPath" not in mounts["secrets"]
    assert mounts["secrets"]["readOnly"] is True
    mounted = {
        f"{mounts['secrets']['mountPath']}/{item['path']}": item["key"]
        for item in secret_volume["items"]
    }
    for variable, key in (
        ("CHRONOS_NAS_TOKEN_FILE", "nas-token"),
        ("CHRONOS_ADMIN_TOKEN_FILE", "admin-token"),
    ):
        assert mounted[env[variable]] == key
        assert key in secret_keys()
    # The file variants only: no token as a plain variable or in the ConfigMap.
    for name in ("CHRONOS_NAS_TOKEN", "CHRONOS_ADMIN_TOKEN", "CHRONOS_NAS_TOKEN_COMMAND"):
        assert name not in env
        assert name not in config_data()


def test_database_url_comes_from_the_secret_for_agents_and_migration() -> None:
    assert "database_url_file" not in Settings.model_fields  # else it would be a file too
    for kind in ("Deployment", "Job"):
        reference = env_values(kind)["CHRONOS_DATABASE_URL"]["secretKeyRef"]
        assert reference["name"] == secret_generator()["name"]
        assert reference["key"] in secret_keys()
    assert "CHRONOS_DATABASE_URL" not in config_data()


def test_secret_files_are_never_committed() -> None:
    ignore = (KUBERNETES / "secrets" / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "*" in ignore
    assert "!.gitignore" in ignore
    for path in secret_keys().values():
        assert path.startswith("secrets/")
    # A fixed name: the mounted files change in place and the NAS token file is read again.
    assert secret_generator()["options"]["disableNameSuffixHash"] is True


def test_migration_job_runs_chronos_migrate_once() -> None:
    job = resources()["Job"]
    assert container("Job")["args"] == ["migrate"]
    assert container("Job")["image"] == container("Deployment")["image"] == "chronos"
    assert pod_spec("Job")["restartPolicy"] in {"OnFailure", "Never"}
    assert job["spec"]["backoffLimit"] >= 1
    assert job["spec"]["ttlSecondsAfterFinished"] > 0


def test_pods_run_as_the_image_user_on_a_read_only_root() -> None:
    user = next(
        line.split()[1] for line in DOCKERFILE.read_text().splitlines() if line.startswith("USER ")
    )
    uid, gid = (int(part) for part in user.split(":"))
    for kind in ("Deployment", "Job"):
        pod = pod_spec(kind)["securityContext"]
        assert pod["runAsNonRoot"] is True
        assert (pod["runAsUser"], pod["runAsGroup"]) == (uid, gid)
        assert pod["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod_spec(kind)["automountServiceAccountToken"] is False
        box = container(kind)["securityContext"]
        assert box["readOnlyRootFilesystem"] is True
        assert box["allowPrivilegeEscalation"] is False
        assert box["capabilities"]["drop"] == ["ALL"]
        mounts = {m["mountPath"] for m in container(kind)["volumeMounts"]}
        assert "/tmp" in mounts  # writable scratch space on a read-only root


def test_config_map_settings_pass_the_agent_start_checks(tmp_path: Path) -> None:
    data = config_data()
    assert "CHRONOS_ENV" not in data  # prod: https everywhere
    nas_token = tmp_path / "nas-token"
    nas_token.write_text("a-nas-token")
    admin_token = tmp_path / "admin-token"
    admin_token.write_text("an-admin-token-0123456789")
    values: dict[str, Any] = {
        name.removeprefix("CHRONOS_").lower(): value for name, value in data.items()
    }
    settings = Settings(
        **values,
        nas_token_file=nas_token,
        admin_token_file=admin_token,
        database_url="postgresql+asyncpg://chronos@postgres/chronos",
    )
    assert settings.fire_config_problems() == []


def _rendered(tmp_path: Path) -> list[dict[str, Any]]:
    kubectl = tool("kubectl", "KUBECTL")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    folder = tmp_path / "kubernetes"
    shutil.copytree(KUBERNETES, folder)
    for key, path in secret_keys().items():
        (folder / path).write_text(f"test-{key}")
    result = subprocess.run(
        [kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    (tmp_path / "rendered.yaml").write_text(result.stdout)
    return [document for document in yaml.safe_load_all(result.stdout) if document]


def test_kubectl_renders_the_kustomization(tmp_path: Path) -> None:
    documents = {d["kind"]: d for d in _rendered(tmp_path)}
    assert set(documents) == set(resources()) | {"Secret"}
    assert set(documents["Secret"]["data"]) == set(secret_keys())
    assert documents["Secret"]["metadata"]["name"] == secret_generator()["name"]
    (image,) = kustomization()["images"]
    expected = f"{image['newName']}:{image['newTag']}"
    for kind in ("Deployment", "Job"):
        assert documents[kind]["spec"]["template"]["spec"]["containers"][0]["image"] == expected


def test_rendered_manifests_match_the_kubernetes_schemas(tmp_path: Path) -> None:
    validate = tool("kubernetes-validate", "KUBERNETES_VALIDATE")
    if validate is None:
        pytest.skip("kubernetes-validate is not installed (pip install kubernetes-validate)")
    _rendered(tmp_path)
    result = subprocess.run(
        [validate, "--strict", "--quiet", str(tmp_path / "rendered.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr

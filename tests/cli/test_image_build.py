"""`mlstack image build`: a build context pinned from uv.lock, with the stack's adapters as
wheels and the recipe's code; the Docker build itself is opt-in (MLSTACK_TEST_DOCKER=1)."""

from __future__ import annotations

import os
import subprocess
from importlib.metadata import version
from pathlib import Path

import pytest

from stack.orchestration.image import docker_available
from tests.cli.conftest import ROOT, Cli


def build_context(cli: Cli, workdir: Path, *extra: str) -> Path:
    recipe = ROOT / "recipes" / "regression"
    result = cli("image", "build", str(recipe), "--output", "ctx", *extra, check=True)
    assert "build context:" in result.stdout
    return workdir / "ctx"


def test_the_context_pins_what_the_lock_pins(cli: Cli, workdir: Path) -> None:
    context = build_context(cli, workdir, "--no-build")
    requirements = (context / "requirements.txt").read_text()
    # exactly the versions this environment was installed from uv.lock with
    for package in ("mlflow", "bentoml", "evidently", "feast", "scikit-learn"):
        assert f"\n{package}=={version(package)}\n" in requirements, package
    assert "mlstack" not in [line.split("==")[0] for line in requirements.splitlines()]
    wheels = sorted(p.name.split("-")[0] for p in (context / "wheels").glob("*.whl"))
    assert wheels == sorted(
        ["mlstack", "mlstack_mlflow", "mlstack_feast", "mlstack_bentoml", "mlstack_evidently"]
    )
    assert (context / "recipe" / "delivery.py").is_file()
    assert "server: {adapter: bentoml" in (context / "stack.yaml").read_text()
    dockerfile = (context / "Dockerfile").read_text()
    assert 'CMD ["run", "recipes/delivery-time/recipe.yaml"]' in dockerfile
    assert "RUN pip install -r requirements.txt" in dockerfile


def test_without_a_docker_daemon_the_context_is_left_to_build(cli: Cli, workdir: Path) -> None:
    why_not = docker_available()
    if why_not is None:
        pytest.skip("a Docker daemon answers here; test_docker_build covers it")
    recipe = ROOT / "recipes" / "regression"
    result = cli("image", "build", str(recipe), "--output", "ctx", check=True)
    assert "not built:" in result.stdout and "docker build -t TAG" in result.stdout


@pytest.mark.skipif(
    os.environ.get("MLSTACK_TEST_DOCKER") != "1", reason="opt-in: MLSTACK_TEST_DOCKER=1"
)
def test_docker_build(cli: Cli, workdir: Path) -> None:
    why_not = docker_available()
    if why_not is not None:
        pytest.skip(f"no Docker daemon: {why_not}")
    build_context(cli, workdir, "--tag", "mlstack-test-delivery:latest")
    listed = subprocess.run(
        ["docker", "image", "inspect", "mlstack-test-delivery:latest"], capture_output=True
    )
    assert listed.returncode == 0

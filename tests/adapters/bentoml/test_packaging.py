"""`mlstack deploy MODEL@N --target bento`: a bento the image builds from with no index holding
mlstack (mlstack's own packages travel in it as wheels), and the command that builds the image."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.adapters.bentoml.conftest import Stack
from tests.support.cli import mlstack

if TYPE_CHECKING:
    from stack_bentoml.config import BentoConfig

pytestmark = pytest.mark.timeout(240)

VENV_BIN = Path(sys.executable).parent
UV = VENV_BIN / "uv"
OURS = {"mlstack", "mlstack-bentoml", "mlstack-mlflow"}  # on no index


@pytest.fixture(scope="module")
def packaged(stack: Stack) -> tuple[subprocess.CompletedProcess[str], Path]:
    """`mlstack deploy churn@1 --target bento` where no `docker` is on the PATH, and the
    bento's folder."""
    env = {**os.environ, "PATH": str(VENV_BIN), "MLSTACK_USER": "tester"}
    done = mlstack(
        "deploy",
        stack.versions.champion.ref,
        "--target",
        "bento",
        cwd=stack.folder,
        env=env,
        timeout=200,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done, stack.folder / ".mlstack" / "bentoml" / "bentos" / "mlstack-churn" / "v1"


def _requirements(bento: Path) -> list[str]:
    return (bento / "env" / "python" / "requirements.txt").read_text().split()


def test_the_bento_carries_mlstack_as_wheels_and_requires_nothing_unpublished(
    packaged: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, bento = packaged
    wheels = sorted(path.name for path in (bento / "env" / "python" / "wheels").glob("*.whl"))
    assert {canonicalize_name(name.split("-")[0]) for name in wheels} == OURS
    lines = _requirements(bento)
    assert sorted(line for line in lines if line.startswith("./wheels/")) == sorted(
        f"./wheels/{name}" for name in wheels
    )
    named = {
        canonicalize_name(Requirement(line).name) for line in lines if not line.startswith("./")
    }
    assert not named & OURS, lines  # no requirement an index cannot answer
    assert "scikit-learn" in named  # the model's own requirements, from its MLmodel folder
    assert "bentoml" in named


def test_deploy_target_bento_prints_the_tag_and_the_containerize_command_with_its_home(
    packaged: tuple[subprocess.CompletedProcess[str], Path], stack: Stack
) -> None:
    done, _ = packaged
    assert "built mlstack-churn:v1" in done.stdout
    assert "bundled: " in done.stdout and "mlstack-0.1.0-py3-none-any.whl" in done.stdout
    assert "image mlstack-endpoint:churn-v1 not built: no `docker` command" in done.stdout
    home = stack.folder.resolve() / ".mlstack" / "bentoml"
    command = (
        f"BENTOML_HOME={home} {VENV_BIN / 'bentoml'} containerize mlstack-churn:v1 "
        "-t mlstack-endpoint:churn-v1"
    )
    assert command in done.stdout  # runs as printed: nothing to export first


def test_deploy_target_bento_warns_of_what_the_cluster_would_get_wrong(
    packaged: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    """This stack names no prediction log and keeps the default image name: the bento is
    built, with a WARNING line for each, naming the stack file's field to set."""
    done, _ = packaged
    warnings = [line for line in done.stderr.splitlines() if line.startswith("WARNING: ")]
    assert len(warnings) == 2, done.stderr
    assert "no server.prediction_log" in warnings[0] and "hold undecided" in warnings[0]
    assert "pull it from Docker Hub" in warnings[1]
    assert "set server.kubernetes.image" in warnings[1]


def _cluster_ready(**kubernetes: Any) -> BentoConfig:
    """A stack whose cluster path is right: a PostgreSQL log the pods get the URL of, an
    image in a registry; `kubernetes` adds to that section."""
    from stack_bentoml.config import BentoConfig

    secret = {"env": "MLSTACK_PREDICTION_LOG_URL", "secret": "prediction-log", "key": "url"}
    return BentoConfig.model_validate(
        {
            "prediction_log": {"url": "postgresql://mlstack@db/mlstack"},
            "kubernetes": {
                "image": "localhost:5000/mlstack-endpoint:{model}-v{version}",
                "secrets": [secret],
                **kubernetes,
            },
        }
    )


def test_a_stack_with_a_postgresql_log_and_a_registry_image_gets_no_cluster_warning() -> None:
    from stack_bentoml.packaging import cluster_warnings

    config = _cluster_ready()
    assert cluster_warnings(config) == ()
    # a log the pods are given no URL of: they would write Parquet in their own /tmp
    unsaid = config.model_copy(
        update={"kubernetes": config.kubernetes.model_copy(update={"secrets": ()})}
    )
    [warning] = cluster_warnings(unsaid)
    assert warning.field == "server.kubernetes.secrets" and warning.blocks_rollout
    assert "{env: MLSTACK_PREDICTION_LOG_URL, secret: prediction-log, key: url}" in (
        warning.message
    )
    on_hub = config.model_copy(
        update={
            "kubernetes": config.kubernetes.model_copy(
                update={"image": "myteam/mlstack-endpoint:{model}-v{version}"}
            )
        }
    )
    assert [w.field for w in cluster_warnings(on_hub)] == ["server.kubernetes.image"]


def _staged_for_install(bento: Path, stage: Path) -> Path:
    """What the image holds when its Dockerfile installs the requirements: the paths its
    COPY lines before that RUN copy, into `stage`; returns the folder that RUN installs from
    (its own rule: `./src` if there is one, else `./env/python`)."""
    lines = (bento / "env" / "docker" / "Dockerfile").read_text().splitlines()
    install = next(i for i, line in enumerate(lines) if "pip install -r" in line)
    assert "uv --directory $INSTALL_ROOT pip install" in lines[install], lines[install]
    for line in lines[:install]:
        words = line.split()
        if words[:1] == ["COPY"] and not words[-2].startswith("/"):
            source, target = bento / words[-2], stage / words[-1]
            shutil.copytree(source, target, dirs_exist_ok=True)
    return stage / "src" if (stage / "src").is_dir() else stage / "env" / "python"


def test_the_vendored_wheels_install_as_the_image_installs_them_and_serve(
    packaged: tuple[subprocess.CompletedProcess[str], Path], tmp_path: Path
) -> None:
    """The bento's wheels installed into a fresh environment as the image's Dockerfile does
    (`uv --directory $INSTALL_ROOT pip install -r env/python/requirements.txt`, from what its
    COPY lines put in the image by then; here offline and for the wheels' lines only: the
    third-party packages come from this environment, which holds them), then the endpoint's
    service imported from what was installed."""
    _, bento = packaged
    root = _staged_for_install(bento, tmp_path / "image")
    wheel_lines = [line for line in _requirements(bento) if line.startswith("./wheels/")]
    (tmp_path / "wheels.txt").write_text("\n".join(wheel_lines) + "\n")
    venv = tmp_path / "venv"
    subprocess.run([str(UV), "venv", "-q", str(venv), "-p", sys.executable], check=True)
    installed = subprocess.run(
        [
            str(UV),
            "--directory",
            str(root),
            "pip",
            "install",
            "--offline",
            "--no-deps",
            "-p",
            str(venv / "bin" / "python"),
            "-r",
            str(tmp_path / "wheels.txt"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert installed.returncode == 0, installed.stderr
    site = next(Path(sys.prefix).glob("lib/python3*/site-packages"))
    # the project's packages are in this environment only as editable .pth files, which
    # PYTHONPATH does not read: they import from the fresh environment's wheels
    imported = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import stack, stack_mlflow, stack_bentoml.service as s; "
            "print(s.__file__); print(stack.__file__)",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site), "MLSTACK_ENDPOINT_SPEC": "endpoint.json"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert imported.returncode == 0, imported.stderr
    assert all(line.startswith(str(venv)) for line in imported.stdout.split()), imported.stdout


def test_a_stack_logging_to_postgresql_adds_the_driver_the_pods_write_it_with(
    tmp_path: Path,
) -> None:
    from stack_bentoml.packaging import ENDPOINT_DISTRIBUTION, vendor

    vendored = vendor(ENDPOINT_DISTRIBUTION, tmp_path, extras={"mlstack": ("postgres",)})
    assert {canonicalize_name(w.name.split("-")[0]) for w in vendored.wheels} == OURS
    assert [canonicalize_name(Requirement(r).name) for r in vendored.requirements] == ["psycopg"]


def test_a_misspelt_endpoint_key_is_named_when_that_endpoint_is_deployed() -> None:
    """A key of `kubernetes.endpoints` that nearly names the endpoint being deployed sizes
    nothing: the endpoint would run with the defaults (no GPU for an LLM) without a word."""
    from stack_bentoml.packaging import cluster_warnings

    config = _cluster_ready(
        endpoints={"llm_qa": {"gpus": 1, "memory": "16Gi"}, "churn": {"cpu": "2"}}
    )
    [warning] = cluster_warnings(config, "llm-qa")
    assert warning.field == "server.kubernetes.endpoints" and not warning.blocks_rollout
    assert "sizes 'llm_qa', not 'llm-qa'" in warning.message
    assert "llm-qa gets the defaults (cpu 1, memory 2Gi, no GPU(s))" in warning.message
    assert "rename the key to 'llm-qa'" in warning.message
    # the endpoint its key names, and one no key is near, are sized as written: no warning
    assert cluster_warnings(config, "churn") == ()
    assert cluster_warnings(config, "fraud-scoring") == ()
    assert cluster_warnings(config, "Churn") != ()  # case differs: the key names another

"""`mlstack image build`: the container a recipe's steps run in on a cluster.

The build context holds the recipe's code, the stack file, wheels of mlstack and of the
adapters the stack uses, and their dependencies pinned exactly as `uv.lock` pins them, so the
image runs what was tested. With a Docker daemon, the image is built; without one, the
context and its Dockerfile are left for any builder (docker, buildah, kaniko)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from stack.config.recipe_file import Recipe
from stack.errors import StackError

BASE_IMAGE = "python:3.11-slim"

DOCKERFILE = """\
# Written by `mlstack image build` for recipe {recipe}.
FROM {base}
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 \\
    MLFLOW_DISABLE_TELEMETRY=true BENTOML_DO_NOT_TRACK=true ZENML_ANALYTICS_OPT_IN=false \\
    PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=true
WORKDIR /app
# Dependencies first (pinned from uv.lock), so a change of recipe code reuses this layer.
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY wheels/ wheels/
RUN pip install --no-deps wheels/*.whl
COPY recipe/ recipes/{recipe}/
COPY stack.yaml stack.yaml
ENV MLSTACK_STACK=/app/stack.yaml
ENTRYPOINT ["mlstack"]
CMD ["run", "recipes/{recipe}/{recipe_file}"]
"""


@dataclass(frozen=True)
class BuildContext:
    folder: Path
    dockerfile: Path
    packages: tuple[str, ...]


def project_root(start: Path) -> Path:
    """The folder with `uv.lock` at or above `start`: where the pins come from."""
    for folder in [start.resolve(), *start.resolve().parents]:
        if (folder / "uv.lock").is_file():
            return folder
    raise StackError(
        f"no uv.lock at or above {start}: the image pins what the lock file pins "
        "(run `uv lock` in your project)"
    )


def uv() -> str:
    found = Path(sys.executable).parent / "uv"
    if found.exists():
        return str(found)
    which = shutil.which("uv")
    if which is None:
        raise StackError("`uv` is needed to export the pins and build wheels (pip install uv)")
    return which


def write_context(
    recipe: Recipe, *, stack_file: Path | None, packages: tuple[str, ...], output: Path
) -> BuildContext:
    root = project_root(recipe.directory)
    output = output.resolve()  # uv runs in the project root
    if output.exists():
        shutil.rmtree(output)
    (output / "wheels").mkdir(parents=True)
    selected = [arg for package in packages for arg in ("--package", package)]
    exported = _uv(
        root,
        "export",
        "--frozen",
        "--no-dev",
        "--no-hashes",
        "--no-emit-workspace",
        "--format",
        "requirements-txt",
        *selected,
    )
    (output / "requirements.txt").write_text(exported)
    for package in packages:
        _uv(root, "build", "--wheel", "--package", package, "--out-dir", str(output / "wheels"))
    shutil.copytree(
        recipe.directory,
        output / "recipe",
        ignore=shutil.ignore_patterns("data", "__pycache__", "*.pyc", ".mlstack"),
    )
    if stack_file is not None:
        shutil.copy(stack_file, output / "stack.yaml")
    else:  # the embedded local stack, as a file
        from importlib import resources

        local = resources.files("stack") / "defaults" / "local.yaml"
        (output / "stack.yaml").write_text(local.read_text())
    dockerfile = output / "Dockerfile"
    dockerfile.write_text(
        DOCKERFILE.format(recipe=recipe.name, recipe_file=recipe.path.name, base=BASE_IMAGE)
    )
    return BuildContext(output, dockerfile, packages)


def docker_available() -> str | None:
    """None when a Docker daemon answers; else why not."""
    docker = shutil.which("docker")
    if docker is None:
        return "no `docker` command"
    probe = subprocess.run([docker, "info"], capture_output=True, text=True, timeout=30)
    return None if probe.returncode == 0 else f"`docker info` failed: {probe.stderr.strip()[:200]}"


def docker_build(context: BuildContext, tag: str) -> None:
    done = subprocess.run(
        ["docker", "build", "-t", tag, str(context.folder)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise StackError(f"docker build failed:\n{done.stderr[-3000:]}")


def _uv(root: Path, *args: str) -> str:
    done = subprocess.run([uv(), *args], cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise StackError(f"uv {' '.join(args[:2])} failed in {root}:\n{done.stderr[-2000:]}")
    return done.stdout

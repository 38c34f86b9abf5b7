"""Packaging for the cluster: a version served as an endpoint, built into a bento offline
(`bentoml build`; packages listed, not locked against an index) for the image to run.

mlstack's own packages are on no index (the `mlstack` on PyPI is another project), so the
bento carries them as wheels: every package of the endpoint's closure that is installed from
a local folder (a checkout, editable or not) is built with `uv build --wheel`, one installed
from a local wheel file is copied, and the bento's requirements name those files
(`./wheels/<file>.whl`, beside them in `env/python/`, see WHEELS). Third-party
packages stay requirements, resolved against the index when the image is built, from the
wheels' own metadata; the model adds its own (MLflow's `requirements.txt`)."""

from __future__ import annotations

import difflib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from stack.contract.registry import ModelVersion
from stack.contract.serving import ClusterWarning, Package
from stack.errors import StackError
from stack_bentoml.config import LOG_URL_ENV, BentoConfig
from stack_bentoml.kubernetes import dns_name
from stack_bentoml.spec import SPEC_FILE, EndpointSpec, VersionSpec, write_spec

#: The distribution the endpoint's image runs (`stack_bentoml.service`); its closure of
#: packages installed from local folders (mlstack, mlstack-mlflow) travels with it.
ENDPOINT_DISTRIBUTION = "mlstack-bentoml"

#: Where the wheels go in the bento, `env/python/wheels/`, and how its requirements name
#: them: BentoML's v2 Dockerfile copies only `env/` before it installs, with
#: `uv --directory ./env/python pip install -r env/python/requirements.txt` (`./src` is not
#: there yet), so `./wheels/<file>` resolves from `env/python`. BentoML puts nothing there
#: itself: `python.wheels` turns the build back into the legacy v1 format, and files in
#: `include` land in `src/`, which that Dockerfile copies only after the install.
WHEELS = "wheels"


@dataclass(frozen=True)
class Vendored:
    """What the bento carries for a distribution's closure: `wheels`, the files built or
    copied into the folder given; `requirements`, what the index must still provide beyond
    the wheels' own metadata (their extras' packages; a root installed from an index)."""

    wheels: tuple[Path, ...]
    requirements: tuple[str, ...]


def build_bento(
    config: BentoConfig,
    version: ModelVersion,
    loaded: VersionSpec,
    *,
    endpoint: str,
    bentoml_env: Mapping[str, str],
) -> Package:
    """Build `version` (imported into BentoML's store as `loaded`) served alone as
    `endpoint`, mlstack's packages inside as wheels; returns the bento's tag and the
    `bentoml containerize` command that makes the image `kubernetes.image` names for it.
    StackError with uv's or BentoML's last output on failure."""
    import yaml

    spec = EndpointSpec(
        name=endpoint,
        revision=1,
        host="0.0.0.0",
        port=3000,
        versions={version.ref: loaded.model_copy(update={"model_dir": ""})},
        weights={version.ref: 1.0},
        ab_header=config.ab_header,
        log_dir="/tmp/mlstack-predictions",
        # on a cluster the pods write the stack's PostgreSQL log (URL from the environment,
        # by a Secret reference: server.kubernetes.secrets), the rollout's evidence
        log_table=config.prediction_log.table if config.prediction_log else None,
        max_body_bytes=config.max_body_bytes,
        max_rows=config.max_rows,
        log_flush_seconds=config.log_flush_seconds,
    )
    # the pods write a PostgreSQL log through psycopg: mlstack's `postgres` extra
    extras = {"mlstack": ("postgres",)} if spec.log_table else {}
    with tempfile.TemporaryDirectory(prefix="mlstack-bento-") as scratch:
        context = Path(scratch)
        vendored = vendor(ENDPOINT_DISTRIBUTION, context / WHEELS, extras=extras)
        requirements = [
            *(f"./{WHEELS}/{wheel.name}" for wheel in vendored.wheels),
            *vendored.requirements,
            *model_requirements(Path(loaded.model_dir)),
        ]
        bentofile = {
            "service": "service:MlstackEndpoint",
            "name": f"mlstack-{endpoint.lower()}",
            "labels": {"mlstack.model": version.model, "mlstack.version": str(version.version)},
            "include": ["service.py", SPEC_FILE],
            "models": [loaded.model_tag],
            "envs": [{"name": "MLSTACK_ENDPOINT_SPEC", "value": SPEC_FILE}],
            "python": {"packages": list(dict.fromkeys(requirements)), "lock_packages": False},
        }
        (context / "service.py").write_text(
            "from stack_bentoml.service import MlstackEndpoint\n\n__all__ = ['MlstackEndpoint']\n"
        )
        write_spec(spec, context / SPEC_FILE)
        (context / "bentofile.yaml").write_text(yaml.safe_dump(bentofile, sort_keys=False))
        replaced = _delete_existing(f"{bentofile['name']}:v{version.version}", version, bentoml_env)
        built = subprocess.run(
            [
                sys.executable,
                "-m",
                "bentoml",
                "build",
                str(context),
                "--version",
                f"v{version.version}",
                "--output",
                "tag",
            ],
            cwd=context,
            env={**os.environ, **bentoml_env},
            capture_output=True,
            text=True,
            timeout=600,
        )
        if built.returncode != 0:
            raise StackError(f"bentoml build of {version.ref} failed:\n{built.stderr[-3000:]}")
        tag = built.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
        name, _, number = tag.partition(":")
        bento = Path(bentoml_env["BENTOML_HOME"]) / "bentos" / name / number
        (bento / "env" / "python" / WHEELS).mkdir(parents=True, exist_ok=True)
        for wheel in vendored.wheels:
            shutil.copy2(wheel, bento / "env" / "python" / WHEELS / wheel.name)
    image = config.kubernetes.image.format(model=dns_name(version.model), version=version.version)
    return Package(
        tag=tag,
        image=image,
        command=(_bentoml_command(), "containerize", tag, "-t", image),
        env={name: value for name, value in bentoml_env.items() if name == "BENTOML_HOME"},
        bundled=tuple(wheel.name for wheel in vendored.wheels),
        replaced=replaced,
    )


def cluster_warnings(
    config: BentoConfig, endpoint: str | None = None
) -> tuple[ClusterWarning, ...]:
    """What in `config` makes the cluster path wrong or fragile: no `prediction_log`, or
    one the pods are given no URL of (no secret for MLSTACK_PREDICTION_LOG_URL): they would
    log to Parquet in their own /tmp, which no rollout reads, so every canary would hold
    undecided (these block a rollout); an image named without a registry
    host (the pods pull it from Docker Hub); with `endpoint` (the one being deployed), a
    key of `kubernetes.endpoints` that is not its name but nearly is (a misspelt key sizes
    nothing: the endpoint gets the defaults)."""
    found: list[ClusterWarning] = []
    if endpoint is not None and (misspelt := _near_key(config, endpoint)) is not None:
        target = config.kubernetes
        found.append(
            ClusterWarning(
                "server.kubernetes.endpoints",
                f"server.kubernetes.endpoints sizes {misspelt!r}, not {endpoint!r}: "
                f"{endpoint} gets the defaults (cpu {target.cpu}, memory {target.memory}, "
                f"{target.gpus or 'no'} GPU(s)); rename the key to {endpoint!r} if it was "
                "meant for this endpoint",
            )
        )
    if config.prediction_log is None:
        found.append(
            ClusterWarning(
                "server.prediction_log",
                "the stack file names no server.prediction_log (PostgreSQL): the pods "
                "would log predictions to Parquet under their own /tmp, which no rollout "
                "reads, so every canary would hold undecided; set server.prediction_log "
                "and pass its URL to the pods (server.kubernetes.secrets, env "
                "MLSTACK_PREDICTION_LOG_URL)",
                blocks_rollout=True,
            )
        )
    elif not any(ref.env == LOG_URL_ENV for ref in config.kubernetes.secrets):
        found.append(
            ClusterWarning(
                "server.kubernetes.secrets",
                f"server.prediction_log is set but no secret gives the pods {LOG_URL_ENV}: "
                "they would log predictions to Parquet under their own /tmp, which no "
                "rollout reads, so every canary would hold undecided; add to "
                f"server.kubernetes.secrets {{env: {LOG_URL_ENV}, secret: prediction-log, "
                "key: url}} (the Secret the infra program creates: docs/serving.md)",
                blocks_rollout=True,
            )
        )
    image = config.kubernetes.image
    if registry_host(image) is None:
        found.append(
            ClusterWarning(
                "server.kubernetes.image",
                f"the image {image!r} names no registry: the pods pull it from Docker Hub; "
                "set server.kubernetes.image to your registry's name for it, e.g. "
                "registry.example.com/mlstack-endpoint:{model}-v{version}",
            )
        )
    return tuple(found)


def _near_key(config: BentoConfig, endpoint: str) -> str | None:
    """The key of `kubernetes.endpoints` nearly `endpoint` when none is it exactly (case,
    `_` for `-`, a letter or two: difflib's ratio >= 0.8), else None."""
    keys = config.kubernetes.endpoints
    if endpoint in keys:
        return None
    near = difflib.get_close_matches(endpoint.lower(), [k.lower() for k in keys], 1, 0.8)
    return next((k for k in keys if near and k.lower() == near[0]), None)


def registry_host(image: str) -> str | None:
    """The registry host an image reference names (`registry.example.com`,
    `localhost:5000`), None when it names none (Docker Hub): as Docker reads it, the part
    before the first `/` is a host when it has a `.` or a `:` or is `localhost`."""
    first, slash, _ = image.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first
    return None


def _delete_existing(tag: str, version: ModelVersion, bentoml_env: Mapping[str, str]) -> bool:
    """Delete bento `tag` from the stack's store when it is there (`bentoml delete TAG -y`):
    its tag follows the version, its content the stack file too, so a build after the stack
    changed replaces it (BentoML refuses to build a tag it holds). True when one was."""
    name, _, number = tag.partition(":")
    if not (Path(bentoml_env["BENTOML_HOME"]) / "bentos" / name / number).is_dir():
        return False
    deleted = subprocess.run(
        [sys.executable, "-m", "bentoml", "delete", tag, "-y"],
        env={**os.environ, **bentoml_env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if deleted.returncode != 0:
        raise StackError(
            f"cannot replace the bento {tag} of {version.ref} (`bentoml delete`):\n"
            f"{deleted.stderr[-2000:]}"
        )
    return True


def vendor(
    root: str, folder: Path, *, extras: Mapping[str, tuple[str, ...]] | None = None
) -> Vendored:
    """Wheels, in `folder`, of `root` and of every distribution it requires (transitively,
    `extras` included: distribution name -> extra names) that is installed from a local
    folder or wheel file; what no wheel covers stays a requirement. StackError naming the
    distribution when one is not installed or its wheel cannot be built."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    wanted = {canonicalize_name(name): set(names) for name, names in (extras or {}).items()}
    folder.mkdir(parents=True, exist_ok=True)
    wheels: list[Path] = []
    requirements: list[str] = []
    seen: set[str] = set()
    queue = [canonicalize_name(root)]
    while queue:
        name = queue.pop(0)
        if name in seen:
            continue
        seen.add(name)
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            if name != canonicalize_name(root):  # from the index when the image is built
                continue
            raise StackError(
                f"{name} is not installed here, so no wheel of it can go into the bento"
            ) from None
        source = _local_source(distribution)
        if source is None:  # from an index: the image's resolver finds it there
            if name == canonicalize_name(root):
                requirements.append(f"{name}=={distribution.version}")
            continue
        wheels.append(_wheel(name, source, folder))
        for line in distribution.requires or []:
            requirement = Requirement(line)
            marker = requirement.marker
            if marker is None or marker.evaluate({"extra": ""}):
                queue.append(canonicalize_name(requirement.name))
            elif any(marker.evaluate({"extra": extra}) for extra in wanted.get(name, ())):
                requirement.marker = None
                requirements.append(str(requirement))
                queue.append(canonicalize_name(requirement.name))
    return Vendored(tuple(wheels), tuple(dict.fromkeys(requirements)))


def model_requirements(model_dir: Path) -> list[str]:
    """The packages the MLflow model says it needs (its `requirements.txt`), options and
    comments left out; none when it wrote no such file."""
    path = model_dir / "requirements.txt"
    if not path.is_file():
        return []
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("-")]


def _local_source(distribution: importlib.metadata.Distribution) -> Path | None:
    """The folder or wheel file `distribution` was installed from (PEP 610's
    direct_url.json); None when it came from an index or a VCS URL."""
    text = distribution.read_text("direct_url.json")
    if not text:
        return None
    record = json.loads(text)
    url = urlparse(record.get("url", ""))
    if url.scheme != "file":
        return None
    path = Path(unquote(url.path))
    if "dir_info" in record or path.suffix == ".whl":
        return path
    return None


def _wheel(name: str, source: Path, folder: Path) -> Path:
    if source.suffix == ".whl":
        if not source.is_file():
            raise StackError(f"{name} was installed from {source}, which is gone")
        return Path(shutil.copy2(source, folder))
    from stack.orchestration.image import uv

    before = set(folder.glob("*.whl"))
    done = subprocess.run(
        [uv(), "build", "--wheel", str(source), "--out-dir", str(folder)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    made = sorted(set(folder.glob("*.whl")) - before)
    if done.returncode != 0 or len(made) != 1:
        raise StackError(
            f"cannot build a wheel of {name} from {source} (`uv build --wheel`):\n"
            f"{done.stderr[-2000:]}"
        )
    return made[0]


def _bentoml_command() -> str:
    """The `bentoml` of this environment, by its path when it has one: the command printed
    must run without activating anything."""
    beside = Path(sys.executable).parent / "bentoml"
    return str(beside) if beside.exists() else "bentoml"

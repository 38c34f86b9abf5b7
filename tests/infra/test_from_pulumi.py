"""`mlstack stack from-pulumi`: the program's `mlstack` output becomes ./stack.yaml, checked
first. The Pulumi CLI cannot be installed here (its engine is downloaded from the internet),
so a stand-in on PATH answers `pulumi stack output` with what the program renders."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import yaml
from mlstack_infra.spec import parse_spec
from mlstack_infra.stack_output import render_stack

from tests.infra.conftest import ROOT  # (importing it sets the program's path)
from tests.support.cli import mlstack


def fake_pulumi(folder: Path, output: str, code: int = 0) -> dict[str, str]:
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    (folder / "out.yaml").write_text(output)
    script = bin_dir / "pulumi"
    script.write_text(f"#!/bin/sh\ncat {folder / 'out.yaml'}\nexit {code}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_the_exported_stack_is_written_and_checked(tmp_path: Path) -> None:
    spec = parse_spec(
        {
            "target": "aws",
            "region": "us-east-1",
            "node_pools": [{"name": "system", "machine_type": "m6i.large"}],
        }
    )
    env = fake_pulumi(
        tmp_path, render_stack(spec, database_host="db.internal", artifact_root="s3://b/mlflow")
    )
    env.pop("MLSTACK_DB_PASSWORD", None)
    done = mlstack(
        "stack", "from-pulumi", "--cwd", str(tmp_path), "-o", "stack.yaml", cwd=tmp_path, env=env
    )
    assert done.returncode == 0, done.stderr
    written = (tmp_path / "stack.yaml").read_text()
    assert "postgresql://mlstack@db.internal:5432/mlstack" in written
    assert "${MLSTACK_DB_PASSWORD}" in written


def test_a_broken_export_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    env = fake_pulumi(tmp_path, "name: x\ntracker: {adapter: mlflow, nonsense: 1}\n")
    done = mlstack(
        "stack", "from-pulumi", "--cwd", str(tmp_path), "-o", "stack.yaml", cwd=tmp_path, env=env
    )
    assert done.returncode == 1
    assert not (tmp_path / "stack.yaml").exists()


#: The example stacks (infra/pulumi/Pulumi.<name>.yaml), by target.
EXAMPLES = {"aws": "aws-gpu", "gcp": "gcp-gpu", "azure": "azure-gpu", "onprem": "onprem"}


def _exported(target: str = "aws") -> str:
    """The stack file the program exports for the example cluster of `target`."""
    example = ROOT / "infra" / "pulumi" / f"Pulumi.{EXAMPLES[target]}.yaml"
    spec = parse_spec(yaml.safe_load(example.read_text())["config"]["mlstack:spec"])
    return render_stack(spec, database_host="db.internal", artifact_root="s3://b/mlflow")


def _mlstack(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "MLSTACK_MLFLOW_URI"}
    return mlstack(*args, cwd=tmp_path, env={**environ, "MLSTACK_DB_PASSWORD": "pw", **env})


def test_one_variable_points_tracker_registry_and_endpoints_at_mlflow(tmp_path: Path) -> None:
    """In the cluster (no MLSTACK_MLFLOW_URI) the pods use MLflow's Service; a deployer's
    machine sets MLSTACK_MLFLOW_URI to its port-forward, and every MLflow client follows."""
    (tmp_path / "stack.yaml").write_text(_exported())

    def mlflow_uris(**env: str) -> set[str]:
        done = _mlstack(tmp_path, "stack", "show", "stack.yaml", **env)
        assert done.returncode == 0, done.stderr
        shown = json.loads(done.stdout)
        return {
            shown["tracker"]["tracking_uri"],
            shown["registry"]["tracking_uri"],
            shown["server"]["models_from"]["tracking_uri"],
        }

    assert mlflow_uris() == {"http://mlflow.mlstack:5000"}
    forwarded = "http://127.0.0.1:5000"
    assert mlflow_uris(MLSTACK_MLFLOW_URI=forwarded) == {forwarded}


def test_the_exported_tracker_leaves_artifacts_to_the_server(tmp_path: Path) -> None:
    """No `artifact_location`: MLflow's server (--serve-artifacts) records `mlflow-artifacts:`
    URIs and proxies the bucket, so a client needs no cloud SDK or keys."""
    for target in ("aws", "gcp", "azure", "onprem"):
        document = yaml.safe_load(_exported(target))
        assert "artifact_location" not in document["tracker"], target
        assert document["tracker"]["tracking_uri"] == (
            "${MLSTACK_MLFLOW_URI:-http://mlflow.mlstack:5000}"
        )


def test_the_exported_file_leaves_the_image_to_the_user_and_says_so(tmp_path: Path) -> None:
    text = _exported()
    assert "image" not in yaml.safe_load(text)["server"]["kubernetes"]
    assert "# server.kubernetes.image is yours to add" in text


def test_stack_validate_accepts_the_exported_file_with_and_without_the_mlflow_variable(
    tmp_path: Path,
) -> None:
    """`mlstack stack validate` on the exported file, its spine pointed at a database this
    test reaches (validate connects to it): both as the pods read it and as a deployer does."""
    document = yaml.safe_load(_exported())
    document["spine"] = {"url": f"sqlite:///{tmp_path / 'spine.db'}"}
    (tmp_path / "stack.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    for env in ({}, {"MLSTACK_MLFLOW_URI": "http://127.0.0.1:5000"}):
        done = _mlstack(tmp_path, "stack", "validate", "stack.yaml", **env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "is valid" in done.stdout

"""`mlstack stack from-pulumi`: the program's `mlstack` output becomes ./stack.yaml, checked
first. The Pulumi CLI cannot be installed here (its engine is downloaded from the internet),
so a stand-in on PATH answers `pulumi stack output` with what the program renders."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from mlstack_infra.spec import parse_spec
from mlstack_infra.stack_output import render_stack

from tests.infra.conftest import ROOT  # noqa: F401  (sets the program's path)
from tests.support.cli import MLSTACK


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
    done = subprocess.run(
        [str(MLSTACK), "stack", "from-pulumi", "--cwd", str(tmp_path), "-o", "stack.yaml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    written = (tmp_path / "stack.yaml").read_text()
    assert "postgresql://mlstack@db.internal:5432/mlstack" in written
    assert "${MLSTACK_DB_PASSWORD}" in written


def test_a_broken_export_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    env = fake_pulumi(tmp_path, "name: x\ntracker: {adapter: mlflow, nonsense: 1}\n")
    done = subprocess.run(
        [str(MLSTACK), "stack", "from-pulumi", "--cwd", str(tmp_path), "-o", "stack.yaml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert not (tmp_path / "stack.yaml").exists()

"""`mlstack stack from-terraform`: what it refuses in `terraform output -json` (a secret's
value where a reference belongs, a stack mlstack cannot read, a folder that is not there),
with the output named and nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import Cli

URL = "postgresql://mlstack@db.internal:5432/mlstack"


def outputs(folder: Path, stack_yaml: str) -> Path:
    path = folder / "outputs.json"
    path.write_text(json.dumps({"mlstack": {"sensitive": True, "value": stack_yaml}}))
    return path


@pytest.mark.parametrize(
    ("stack_yaml", "field"),
    [
        (f"name: x\nspine: {{url: '{URL}', password: hunter2}}\n", "spine.password"),
        (
            "name: x\nspine: {url: 'postgresql://mlstack:hunter2@db.internal:5432/mlstack'}\n",
            "spine.url",
        ),
    ],
)
def test_a_secret_value_in_the_output_is_refused_and_nothing_is_written(
    cli: Cli, workdir: Path, stack_yaml: str, field: str
) -> None:
    done = cli("stack", "from-terraform", str(outputs(workdir, stack_yaml)), "-o", "stack.yaml")
    assert done.returncode == 1
    assert f"outputs.json holds a secret's value at {field}" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout
    assert not (workdir / "stack.yaml").exists()


def test_a_password_given_as_a_reference_is_written(cli: Cli, workdir: Path) -> None:
    stack_yaml = f"name: x\nspine: {{url: '{URL}', password: '${{MLSTACK_DB_PASSWORD}}'}}\n"
    done = cli("stack", "from-terraform", str(outputs(workdir, stack_yaml)), "-o", "stack.yaml")
    assert done.returncode == 0, done.stderr
    assert (workdir / "stack.yaml").read_text() == stack_yaml


def test_a_stack_it_cannot_read_is_reported_as_the_output_never_a_scratch_file(
    cli: Cli, workdir: Path
) -> None:
    stack_yaml = "name: x\ntracker: {adapter: mlflow, nonsense: 1}\n"
    done = cli("stack", "from-terraform", str(outputs(workdir, stack_yaml)), "-o", "stack.yaml")
    assert done.returncode == 1
    assert "the `mlstack` output in " in done.stderr and "nonsense" in done.stderr
    assert ".partial" not in done.stderr and "mlstack-export-" not in done.stderr
    assert sorted(p.name for p in workdir.iterdir()) == ["outputs.json"]


def test_writing_into_a_folder_that_does_not_exist_is_a_clear_error(
    cli: Cli, workdir: Path
) -> None:
    stack_yaml = f"name: x\nspine: {{url: '{URL}', password: '${{MLSTACK_DB_PASSWORD}}'}}\n"
    path = outputs(workdir, stack_yaml)
    done = cli("stack", "from-terraform", str(path), "-o", "missing/stack.yaml")
    assert done.returncode == 1
    assert "cannot write missing/stack.yaml: the folder missing does not exist" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_existing_different_stack_file_is_kept_unless_forced(cli: Cli, workdir: Path) -> None:
    """The default output is ./stack.yaml, where the local stack usually is (or an export
    the user added their image to): replaced only with --force, the old one kept."""
    local = "name: local\n"
    (workdir / "stack.yaml").write_text(local)
    stack_yaml = f"name: x\nspine: {{url: '{URL}', password: '${{MLSTACK_DB_PASSWORD}}'}}\n"
    path = outputs(workdir, stack_yaml)
    refused = cli("stack", "from-terraform", str(path))
    assert refused.returncode == 1
    assert "stack.yaml exists and differs from the `mlstack` output in" in refused.stderr
    assert "--force" in refused.stderr
    assert (workdir / "stack.yaml").read_text() == local
    again = cli("stack", "from-terraform", str(path), "-o", "stack.yaml", "--force")
    assert again.returncode == 0, again.stderr
    assert (workdir / "stack.yaml").read_text() == stack_yaml
    assert (workdir / "stack.yaml.bak").read_text() == local
    assert "the previous file is stack.yaml.bak" in again.stdout
    # the same export again is no change: written without --force, the backup untouched
    same = cli("stack", "from-terraform", str(path))
    assert same.returncode == 0, same.stderr
    assert (workdir / "stack.yaml.bak").read_text() == local
    assert sorted(p.name for p in workdir.iterdir()) == [
        "outputs.json",
        "stack.yaml",
        "stack.yaml.bak",
    ]

"""`mlstack ci init`: workflows valid against GitHub Actions' and GitLab CI's own schemas
(as vendored by check-jsonschema, from SchemaStore), calling the CLI people run by hand."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.cli.conftest import ROOT, Cli


def vendored_schema(name: str) -> dict[str, object]:
    folder = resources.files("check_jsonschema") / "builtin_schemas" / "vendor"
    loaded: dict[str, object] = json.loads((folder / f"{name}.json").read_text())
    return loaded


def copy_recipe(workdir: Path) -> Path:
    import shutil

    target = workdir / "recipes" / "regression"
    shutil.copytree(ROOT / "recipes" / "regression", target)
    return target


def test_github_workflow_is_valid_and_gates_on_pull_requests(cli: Cli, workdir: Path) -> None:
    copy_recipe(workdir)
    written = cli("ci", "init", "github", "--recipe", "recipes/regression", check=True)
    path = workdir / ".github" / "workflows" / "mlstack-regression.yml"
    assert f"wrote {path}" in written.stdout
    document = yaml.safe_load(path.read_text())
    jsonschema.validate(document, vendored_schema("github-workflows"))
    assert document["on"]["pull_request"]["paths"] == ["recipes/regression/**"]
    train, request = document["jobs"]["train"], document["jobs"]["request-promotion"]
    assert train["if"] == "github.event_name == 'pull_request'"
    scripts = "\n".join(step.get("run", "") for step in train["steps"])
    assert "mlstack run recipes/regression" in scripts
    assert "mlstack promote delivery-time@candidate --to serving --dry-run" in scripts
    assert "$GITHUB_STEP_SUMMARY" in scripts
    merged = "\n".join(step.get("run", "") for step in request["steps"])
    assert "--to approved --reason" in merged
    assert "mlstack approve" not in merged.split("Approvers:")[0]  # CI never approves


def test_gitlab_pipeline_is_valid(cli: Cli, workdir: Path) -> None:
    copy_recipe(workdir)
    cli("ci", "init", "gitlab", "--recipe", "recipes/regression", "--branch", "trunk", check=True)
    document = yaml.safe_load((workdir / ".gitlab-ci.yml").read_text())
    jsonschema.validate(document, vendored_schema("gitlab-ci"))
    assert document["mlstack-request-promotion"]["rules"][0]["if"] == '$CI_COMMIT_BRANCH == "trunk"'
    assert "mlstack run recipes/regression" in document["mlstack-train"]["script"]


def test_a_broken_workflow_would_fail_the_schema() -> None:
    """The check can fail: a job without `runs-on` or `steps` is not a GitHub workflow."""
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {"on": "push", "jobs": {"train": {"name": "x"}}}, vendored_schema("github-workflows")
        )


def test_a_recipe_without_a_model_is_refused(cli: Cli, workdir: Path) -> None:
    (workdir / "r").mkdir()
    (workdir / "r" / "recipe.yaml").write_text("name: r\nsteps:\n  - {name: a, run: 's:a'}\n")
    result = cli("ci", "init", "github", "--recipe", "r")
    assert result.returncode == 1
    assert "names no `model:`" in result.stderr

"""`mlstack stack validate|show` and `mlstack adapters`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import ROOT, Cli


def test_embedded_stack_validates(cli: Cli) -> None:
    result = cli("stack", "validate", check=True)
    assert "the embedded local stack: stack 'local' is valid" in result.stdout
    assert "orchestrator  local" in result.stdout


def test_validate_checks_the_recipe_capabilities(cli: Cli) -> None:
    result = cli("stack", "validate", "--recipe", str(ROOT / "recipes" / "quickstart"), check=True)
    assert "every capability it needs is present" in result.stdout


def test_recipe_asking_for_a_missing_capability_is_refused(cli: Cli, workdir: Path) -> None:
    recipe = workdir / "canary"
    recipe.mkdir()
    (recipe / "recipe.yaml").write_text(
        "name: canary\nrequires: {monitor: [html_report], orchestrator: [resume, compile]}\n"
        "steps:\n  - {name: a, run: 'steps:a'}\n"
    )
    result = cli("stack", "validate", "--recipe", str(recipe))
    assert result.returncode == 1
    assert "needs monitor capabilities" not in result.stderr  # evidently has html_report
    assert (
        "needs orchestrator capabilities compile; adapter 'local' provides: in_process, resume"
        in result.stderr
    )


def test_recipe_asking_for_an_unknown_capability_is_refused(cli: Cli, workdir: Path) -> None:
    recipe = workdir / "streaming"
    recipe.mkdir()
    (recipe / "recipe.yaml").write_text(
        "name: streaming\nrequires: {monitor: [streaming]}\nsteps:\n  - {name: a, run: 'steps:a'}\n"
    )
    result = cli("stack", "validate", "--recipe", str(recipe))
    assert result.returncode == 1
    assert "recipe.yaml:2: requires.monitor.0: Input should be 'html_report'" in result.stderr


def test_every_problem_of_a_stack_is_listed(cli: Cli, workdir: Path) -> None:
    (workdir / "stack.yaml").write_text(
        "name: s\ntracker: {adapter: mlflow, tracking_url: x}\nmonitor: {adapter: nosuchtool}\n"
        "orchestrator: {adapter: local, outputs: x}\n"
    )
    result = cli("stack", "validate")
    assert result.returncode == 1
    assert "(3 problems)" in result.stderr
    assert "stack.yaml:2: tracker.tracking_url: Extra inputs are not permitted" in result.stderr
    assert "did you mean 'tracking_uri'?" in result.stderr
    assert "stack.yaml:3: monitor.adapter: no adapter 'nosuchtool' for role 'monitor'" in (
        result.stderr
    )
    assert "installed: " in result.stderr and "local" in result.stderr
    assert "stack.yaml:4: orchestrator.outputs: Extra inputs are not permitted" in result.stderr
    assert "did you mean 'outputs_dir'?" in result.stderr


def test_show_expands_env_and_masks_secrets(cli: Cli, workdir: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    (workdir / "stack.yaml").write_text("name: ${STACK:-prod}\nspine:\n  url: sqlite:///spine.db\n")
    shown = cli("stack", "show", check=True).stdout
    assert '"name": "prod"' in shown
    assert '"adapter": "local"' in shown


def test_show_never_prints_the_spine_password(cli: Cli, workdir: Path) -> None:
    (workdir / "stack.yaml").write_text(
        "name: s\nspine: {url: 'postgresql://ml:s3cr3t-pw@db.example/spine'}\n"
    )
    shown = cli("stack", "show", check=True).stdout
    assert "s3cr3t-pw" not in shown
    assert "postgresql://ml:***@db.example/spine" in shown


def test_help_lists_every_command(cli: Cli) -> None:
    result = cli("--help", check=True)
    for command in ("adapters", "audit", "lineage", "run", "runs", "spine", "stack"):
        assert command in result.stdout


def test_a_stack_yaml_that_is_a_folder_or_a_broken_link_is_refused(cli: Cli, workdir: Path) -> None:
    """Never the embedded local stack in its place: a broken link to a production stack
    would act on a local store."""
    (workdir / "stack.yaml").mkdir()
    for args in (("runs",), ("stack", "validate")):
        result = cli(*args)
        assert result.returncode == 1, result.stdout
        assert "stack.yaml: a folder, not a stack file" in result.stderr
    (workdir / "stack.yaml").rmdir()
    (workdir / "stack.yaml").symlink_to(workdir / "gone" / "prod.yaml")
    result = cli("runs")
    assert result.returncode == 1, result.stdout
    assert f"stack.yaml: a link to {workdir / 'gone' / 'prod.yaml'}, which does not" in (
        result.stderr
    )
    assert not (workdir / ".mlstack").exists()


def test_a_home_that_cannot_be_a_folder_is_refused_naming_the_field(
    cli: Cli, workdir: Path
) -> None:
    (workdir / "notes.txt").write_text("a file\n")
    for home, problem in (("notes.txt", "a file, not a folder"), ("notes.txt/state", "is a file")):
        (workdir / "stack.yaml").write_text(f"name: s\nhome: {home}\n")
        validate = cli("stack", "validate")
        assert validate.returncode == 1, validate.stdout
        assert f"stack.yaml:2: home: {workdir / home}: " in validate.stderr
        assert problem in validate.stderr
        models = cli("models")
        assert models.returncode == 1, models.stdout
        assert f"stack.yaml: home: {workdir / home}: " in models.stderr
        assert "Traceback" not in models.stderr


def test_a_home_the_system_refuses_is_refused_by_every_command(cli: Cli, workdir: Path) -> None:
    """/proc accepts no new folder, even from root: only creating the home finds out."""
    if not Path("/proc/self").is_dir():
        pytest.skip("no /proc on this system")
    (workdir / "stack.yaml").write_text("name: s\nhome: /proc/forbidden\n")
    result = cli("promote", "churn@1", "--to", "approved")  # a read finds no spine first
    assert result.returncode == 1, result.stdout
    assert "stack.yaml: home: /proc/forbidden: cannot create it" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_table_piped_to_a_script_keeps_every_cell_whole() -> None:
    """Piped or redirected, a table is as wide as its widest row: `mlstack adapters | grep`
    reads each adapter's every capability, not a cell cut at 80 columns with an ellipsis."""
    import json

    from tests.support.cli import run_in_process

    listed = json.loads(run_in_process("adapters", "--json").stdout)["adapters"]
    table = run_in_process("adapters").stdout  # captured: not a terminal
    assert "…" not in table
    lines = table.splitlines()
    for row in listed:
        capabilities = ", ".join(row["capabilities"])
        assert any(row["adapter"] in line and capabilities in line for line in lines), row

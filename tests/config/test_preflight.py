"""`preflight`: what `stack validate` and `run` both check, and what a partial stack file gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from stack.config.stack_file import DEFAULT_STACK
from stack.contract.roles import Role
from stack.errors import StackConfigError
from stack.orchestration.manifest import MANIFEST as LOCAL
from stack.plugins.registry import AdapterRegistry
from stack.preflight import preflight
from stack.session import StackSession
from tests.support.cli import run_in_process

ONE_STEP = "steps:\n  - {name: a, run: 'steps:a'}\n"


def project(folder: Path, stack: str, recipe: str = "name: r\n" + ONE_STEP) -> Path:
    (folder / "stack.yaml").write_text(stack)
    (folder / "r").mkdir(exist_ok=True)
    (folder / "r" / "recipe.yaml").write_text(recipe)
    (folder / "r" / "steps.py").write_text("def a():\n    return 1\n")
    return folder / "stack.yaml"


def test_a_partial_stack_takes_its_other_roles_from_the_embedded_stack(workdir: Path) -> None:
    path = project(workdir, "name: s\nserver: {adapter: bentoml, port: 4100}\n")
    checked = preflight(path, workdir / "r")
    assert checked.roles[Role.SERVER].config.port == 4100  # type: ignore[attr-defined]
    assert {role: resolved.adapter for role, resolved in checked.roles.items()} == {
        Role.TRACKER: "mlflow",
        Role.REGISTRY: "mlflow",
        Role.FEATURES: "feast",
        Role.ORCHESTRATOR: "local",
        Role.SERVER: "bentoml",
        Role.MONITOR: "evidently",
    }
    assert Role.SERVER not in checked.embedded
    assert set(checked.embedded) == set(Role) - {Role.SERVER}


def test_validate_and_run_say_which_roles_came_from_the_embedded_stack(workdir: Path) -> None:
    project(workdir, "name: s\nserver: {adapter: bentoml, port: 4100}\n")
    shown = run_in_process("stack", "validate", "--recipe", "r")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert any(
        line.split()[:2] == ["tracker", "mlflow"] and "(from the embedded local stack)" in line
        for line in lines
    )
    assert any(
        line.split()[:2] == ["server", "bentoml"] and "embedded" not in line for line in lines
    )

    ran = run_in_process("run", "r", "-q")
    assert ran.returncode == 0, ran.stderr
    assert (
        "stack.yaml: from the embedded local stack: tracker (mlflow), registry (mlflow), "
        "features (feast), orchestrator (local), monitor (evidently)" in ran.stderr
    )


def test_role_none_leaves_the_role_out(workdir: Path) -> None:
    path = project(workdir, "name: s\nserver: none\nmonitor: none\n")
    checked = preflight(path, workdir / "r")
    assert Role.SERVER not in checked.roles and Role.MONITOR not in checked.roles
    with StackSession.open(path, base_dir=workdir) as session:
        assert not session.has(Role.SERVER)
        assert session.has(Role.TRACKER)


def test_a_missing_adapter_of_an_embedded_role_is_reported_in_the_embedded_file(
    workdir: Path,
) -> None:
    registry = AdapterRegistry(discover=False)
    registry.register(LOCAL)
    path = project(workdir, "name: s\ntracker: none\nregistry: none\nfeatures: none\n")
    with pytest.raises(StackConfigError) as caught:
        preflight(path, workdir / "r", registry=registry)
    [problem] = [p for p in caught.value.problems if "server" in p]
    line = (
        DEFAULT_STACK.read_text()
        .splitlines()
        .index(next(t for t in DEFAULT_STACK.read_text().splitlines() if t.startswith("server:")))
    )
    assert problem.startswith(f"{DEFAULT_STACK}:{line + 1}: server.adapter: adapter 'bentoml'")
    assert "write `server: none` to go without one" in problem


def test_numbers_written_as_text_are_numbers(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORT", "4200")
    path = project(
        workdir,
        "name: s\nserver:\n  adapter: bentoml\n  port: ${PORT}\n"
        "tracker: {adapter: mlflow, batch_size: '500'}\n",
    )
    checked = preflight(path)
    assert checked.roles[Role.SERVER].config.port == 4200  # type: ignore[attr-defined]
    assert checked.roles[Role.TRACKER].config.batch_size == 500  # type: ignore[attr-defined]


def test_every_problem_of_both_files_is_listed_at_once(workdir: Path) -> None:
    project(
        workdir,
        "name: s\ntracker: {adapter: mlflow, batch_size: yes}\n",
        "name: r\nhooks: [mlstack_test_missing_hooks]\n" + ONE_STEP,
    )
    result = run_in_process("run", "r")
    assert result.returncode == 1
    assert "(2 problems)" in result.stderr
    assert "stack.yaml:2: tracker.batch_size" in result.stderr
    assert "r/recipe.yaml:2: hooks.0" in result.stderr


def test_a_retraining_recipe_may_name_its_own_recipe(workdir: Path) -> None:
    recipe = "name: r\nmonitoring:\n  retrain: {recipe: RETRAIN}\n" + ONE_STEP
    path = project(workdir, "name: s\n", recipe.replace("RETRAIN", "recipe.yaml"))
    (workdir / "r" / "again.yaml").write_text(recipe.replace("RETRAIN", "recipe.yaml"))
    (workdir / "r" / "recipe.yaml").write_text(recipe.replace("RETRAIN", "again.yaml"))
    checked = preflight(path, workdir / "r")  # r -> again -> r: checked once each
    assert checked.recipe is not None and checked.recipe.name == "r"


def test_nothing_is_created_by_checking_a_sqlite_spine(workdir: Path) -> None:
    path = project(workdir, "name: s\nspine: {url: 'sqlite:///state/deep/spine.db'}\n")
    preflight(path, workdir / "r")
    assert not (workdir / "state").exists()

"""One validation reports every problem of the stack file and the recipe, with the closest
names: a user fixes them all after one run, not one per run."""

from __future__ import annotations

from pathlib import Path

import pytest

from stack.contract.roles import Role
from stack.errors import AdapterNotInstalled, StackConfigError, UnknownAdapter
from stack.orchestration.manifest import MANIFEST as LOCAL
from stack.plugins.registry import AdapterRegistry
from stack.preflight import preflight
from tests.support.cli import Cli

LOAN = "def train(data):\n    return 1\n\n\ndef fit(max_iter):\n    return max_iter\n"

THREE_TYPOS = """\
name: loan
rollout:
  bake_second: 60
steps:
  - name: data
    run: loan:trian
  - name: fit
    run: loan:fit
    params:
      max_itr: 100
"""


def write_recipe(folder: Path, text: str = THREE_TYPOS) -> Path:
    recipe = folder / "loan"
    recipe.mkdir()
    (recipe / "recipe.yaml").write_text(text)
    (recipe / "loan.py").write_text(LOAN)
    return recipe


def problems_of(stack: Path | None, recipe: Path | None = None, **kwargs: object) -> list[str]:
    with pytest.raises(StackConfigError) as caught:
        preflight(stack, recipe, **kwargs)  # type: ignore[arg-type]
    return caught.value.problems


def only_local() -> AdapterRegistry:
    registry = AdapterRegistry(discover=False)
    registry.register(LOCAL)
    return registry


def test_a_recipe_with_three_typos_reports_all_three_in_one_run(cli: Cli, workdir: Path) -> None:
    write_recipe(workdir)
    result = cli("stack", "validate", "--recipe", "loan")
    assert result.returncode == 1
    err = result.stderr
    assert "loan/recipe.yaml:3: rollout.bake_second: Extra inputs are not permitted" in err
    assert "did you mean 'bake_seconds'?" in err
    assert "loan/recipe.yaml:6: steps.0.run: 'loan' has no function 'trian'" in err
    assert "did you mean 'train'?" in err
    assert (
        "loan/recipe.yaml:10: steps.1.params.max_itr: loan:fit takes no parameter 'max_itr'" in err
    )
    assert "did you mean 'max_iter'?" in err
    assert "loan/recipe.yaml:8: steps.1.run: loan:fit needs 'max_iter'" in err


def test_run_reports_the_same_problems_and_runs_nothing(cli: Cli, workdir: Path) -> None:
    write_recipe(workdir)
    result = cli("run", "loan")
    assert result.returncode == 1
    assert "(4 problems)" in result.stderr
    assert not (workdir / ".mlstack").exists()


def test_a_step_function_typo_names_the_functions_the_module_has(workdir: Path) -> None:
    recipe = write_recipe(workdir, "name: loan\nsteps:\n  - {name: a, run: 'loan:trian'}\n")
    [problem] = problems_of(None, recipe)
    assert "hint: did you mean 'train'? functions in 'loan': fit, train" in problem


def test_a_param_the_function_does_not_take_is_named_with_the_one_it_does(
    workdir: Path,
) -> None:
    recipe = write_recipe(
        workdir, "name: loan\nsteps:\n  - {name: a, run: 'loan:fit', params: {max_itr: 1}}\n"
    )
    unknown, missing = problems_of(None, recipe)
    assert "steps.0.params.max_itr: loan:fit takes no parameter 'max_itr'" in unknown
    assert "did you mean 'max_iter'?" in unknown
    assert "steps.0.run: loan:fit needs 'max_iter', which step 'a' does not give" in missing


def test_stack_shape_problems_and_adapter_names_are_reported_together(workdir: Path) -> None:
    (workdir / "stack.yaml").write_text(
        "name: s\nhomme: x\norchestrator: locl\n"
        + "".join(f"{role.value}: none\n" for role in Role if role is not Role.ORCHESTRATOR)
    )
    problems = problems_of(workdir / "stack.yaml", registry=only_local())
    assert len(problems) == 2
    assert "stack.yaml:2: homme: Extra inputs are not permitted" in problems[0]
    assert "stack.yaml:3: orchestrator.adapter: no adapter 'locl'" in problems[1]


def test_an_unknown_adapter_name_says_the_closest_and_the_known_ones() -> None:
    with pytest.raises(UnknownAdapter) as caught:
        only_local().binding(Role.ORCHESTRATOR, "locl")
    message = str(caught.value)
    assert message.startswith("no adapter 'locl' for role 'orchestrator' (did you mean 'local'?")
    assert "installed: local" in message
    assert "known, not installed: bentoml, evidently" in message
    assert "not installed:" not in message.split(";")[0]


def test_a_misspelt_known_adapter_is_suggested_even_when_not_installed() -> None:
    with pytest.raises(UnknownAdapter, match=r"no adapter 'bentml' .*did you mean 'bentoml'\?"):
        only_local().binding(Role.SERVER, "bentml")


def test_a_known_adapter_that_is_not_installed_says_what_to_install() -> None:
    with pytest.raises(
        AdapterNotInstalled,
        match="'bentoml' for role 'server' is not installed: pip install mlstack-bentoml",
    ):
        only_local().binding(Role.SERVER, "bentoml")

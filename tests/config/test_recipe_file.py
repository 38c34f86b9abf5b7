"""recipe.yaml: steps, their graph, and step functions checked before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from stack.config.recipe_file import load_recipe
from stack.contract.capabilities import ServerCapability
from stack.contract.roles import Role
from stack.errors import StackConfigError
from stack.orchestration.steps import load_steps


def recipe(tmp_path: Path, yaml_text: str, code: str = "") -> Path:
    (tmp_path / "recipe.yaml").write_text(yaml_text)
    (tmp_path / "steps.py").write_text(code)
    return tmp_path


def test_order_follows_needs_and_keeps_written_order_for_ties(tmp_path: Path) -> None:
    loaded = load_recipe(
        recipe(
            tmp_path,
            "name: r\nsteps:\n"
            "  - {name: report, run: 'steps:f', needs: [train, evaluate]}\n"
            "  - {name: data, run: 'steps:f'}\n"
            "  - {name: evaluate, run: 'steps:f', needs: [train]}\n"
            "  - {name: train, run: 'steps:f', needs: [data]}\n"
            "  - {name: docs, run: 'steps:f'}\n",
        )
    )
    assert loaded.order() == ["data", "docs", "train", "evaluate", "report"]


def test_unknown_need_names_the_step_line_and_known_steps(tmp_path: Path) -> None:
    path = recipe(
        tmp_path,
        "name: r\nsteps:\n  - {name: a, run: 'steps:f'}\n  - name: b\n    run: 'steps:f'\n"
        "    needs: [z]\n",
    )
    with pytest.raises(StackConfigError) as caught:
        load_recipe(path)
    message = str(caught.value)
    assert "recipe.yaml:6: steps.1.needs.0: step 'b' needs 'z', which is not a step" in message
    assert "steps are: a, b" in message


def test_cycle_is_refused_naming_it(tmp_path: Path) -> None:
    path = recipe(
        tmp_path,
        "name: r\nsteps:\n  - {name: a, run: 'steps:f', needs: [b]}\n"
        "  - {name: b, run: 'steps:f', needs: [a]}\n",
    )
    with pytest.raises(StackConfigError, match=r"steps form a cycle: (a -> b -> a|b -> a -> b)"):
        load_recipe(path)


def test_duplicate_step_name_is_refused(tmp_path: Path) -> None:
    path = recipe(
        tmp_path, "name: r\nsteps:\n  - {name: a, run: 'steps:f'}\n  - {name: a, run: 'steps:g'}\n"
    )
    with pytest.raises(StackConfigError, match=r":4: steps.1.name: step 'a' is defined twice"):
        load_recipe(path)


def test_run_target_must_be_module_colon_function(tmp_path: Path) -> None:
    path = recipe(tmp_path, "name: r\nsteps:\n  - {name: a, run: 'steps.f'}\n")
    with pytest.raises(StackConfigError, match=r":3: steps.0.run: String should match pattern"):
        load_recipe(path)


def test_unknown_requires_role_is_refused(tmp_path: Path) -> None:
    path = recipe(
        tmp_path, "name: r\nrequires: {servr: [canary]}\nsteps:\n  - {name: a, run: 'steps:f'}\n"
    )
    with pytest.raises(StackConfigError, match=r":2: requires.servr"):
        load_recipe(path)


def test_unknown_capability_is_refused_naming_the_known_ones(tmp_path: Path) -> None:
    path = recipe(
        tmp_path,
        "name: r\nrequires: {server: [canary, blue_green]}\n"
        "steps:\n  - {name: a, run: 'steps:f'}\n",
    )
    with pytest.raises(StackConfigError) as caught:
        load_recipe(path)
    assert ":2: requires.server.1: Input should be 'canary', 'shadow', 'ab'" in str(caught.value)


def test_required_capabilities_are_read_into_the_role_vocabulary(tmp_path: Path) -> None:
    path = recipe(
        tmp_path,
        "name: r\nrequires: {server: [canary], orchestrator: []}\n"
        "steps:\n  - {name: a, run: 'steps:f'}\n",
    )
    assert load_recipe(path).spec.requires.by_role() == {
        Role.ORCHESTRATOR: (),
        Role.SERVER: (ServerCapability.CANARY,),
    }


def test_no_steps_is_refused(tmp_path: Path) -> None:
    path = recipe(tmp_path, "name: r\nsteps: []\n")
    with pytest.raises(StackConfigError, match=r":2: steps: Tuple should have at least 1 item"):
        load_recipe(path)


def test_missing_function_is_found_before_anything_runs(tmp_path: Path) -> None:
    path = recipe(
        tmp_path, "name: r\nsteps:\n  - {name: a, run: 'steps:nope'}\n", "def f(): pass\n"
    )
    with pytest.raises(StackConfigError, match=r":3: steps.0.run: 'steps' has no function 'nope'"):
        load_steps(load_recipe(path))


def test_function_that_cannot_take_its_inputs_is_found_before_running(tmp_path: Path) -> None:
    path = recipe(
        tmp_path,
        "name: r\nsteps:\n  - {name: a, run: 'steps:a'}\n"
        "  - {name: b, run: 'steps:b', needs: [a]}\n",
        "def a(): return 1\ndef b(other): return other\n",
    )
    with pytest.raises(StackConfigError, match=r"steps.1.needs.0: steps:b takes no parameter 'a'"):
        load_steps(load_recipe(path))


def test_module_that_fails_to_import_is_reported(tmp_path: Path) -> None:
    path = recipe(
        tmp_path, "name: r\nsteps:\n  - {name: a, run: 'steps:a'}\n", "raise RuntimeError('boom')\n"
    )
    with pytest.raises(StackConfigError, match=r"cannot import 'steps': RuntimeError: boom"):
        load_steps(load_recipe(path))


def test_param_named_like_an_input_is_refused(tmp_path: Path) -> None:
    path = recipe(
        tmp_path,
        "name: r\nsteps:\n  - {name: a, run: 'steps:a'}\n"
        "  - {name: b, run: 'steps:b', needs: [a], params: {a: 1}}\n",
    )
    with pytest.raises(StackConfigError, match="param 'a' has the name of an input step"):
        load_recipe(path)

"""Load a recipe's step functions and check their signatures before anything runs.

A step is a plain function. It receives its inputs (outputs of the steps it `needs`) and its
`params` as keyword arguments, and a `ctx: StepContext` too if it has a parameter named `ctx`.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from stack.config.diagnostics import collect, describe
from stack.config.recipe_file import Recipe
from stack.errors import StackConfigError

if TYPE_CHECKING:
    from stack.session import StackSession


@dataclass(frozen=True)
class StepContext:
    """What a step may use beyond its inputs: the stack's roles, the spine, a scratch folder."""

    run_id: str
    step: str
    recipe: Recipe
    session: StackSession
    workdir: Path
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LoadedStep:
    name: str
    function: Callable[..., Any]
    wants_context: bool


def load_steps(recipe: Recipe) -> dict[str, LoadedStep]:
    """Import every step's function and check it accepts its inputs and params."""
    problems: list[str] = []
    loaded: dict[str, LoadedStep] = {}
    for index, spec in enumerate(recipe.spec.steps):
        where = ("steps", index, "run")
        module_name, _, function_name = spec.run.partition(":")
        try:
            module = _import_step_module(recipe, module_name)
        except Exception as exc:
            problems.append(
                describe(
                    recipe.doc, where, f"cannot import {module_name!r}: {type(exc).__name__}: {exc}"
                )
            )
            continue
        function = getattr(module, function_name, None)
        if not callable(function):
            problems.append(
                describe(recipe.doc, where, f"{module_name!r} has no function {function_name!r}")
            )
            continue
        signature = inspect.signature(function)
        wants_context = "ctx" in signature.parameters
        names = [*spec.needs, *spec.params] + (["ctx"] if wants_context else [])
        try:
            signature.bind(**dict.fromkeys(names))
        except TypeError as exc:
            problems.append(
                describe(
                    recipe.doc,
                    where,
                    f"{spec.run} cannot take inputs {list(spec.needs)} and params "
                    f"{list(spec.params)}: {exc}",
                    hint="a step receives each step it needs, and each param, by name",
                )
            )
            continue
        loaded[spec.name] = LoadedStep(spec.name, function, wants_context)
    if problems:
        raise collect(recipe.doc, problems, title=f"recipe {recipe.name!r} cannot run")
    return loaded


def _import_step_module(recipe: Recipe, module_name: str) -> ModuleType:
    """A module in the recipe folder, under a name unique to the recipe, else an installed one.

    The unique name keeps two recipes that both have `steps.py` apart in one process, and lets
    pickled step outputs be loaded again when a run is resumed.
    """
    relative = Path(*module_name.split("."))
    if str(recipe.directory) not in sys.path:  # so step modules can import their neighbours
        sys.path.insert(0, str(recipe.directory))
    for candidate in (relative.with_suffix(".py"), relative / "__init__.py"):
        path = recipe.directory / candidate
        if path.is_file():
            # Flat, not dotted: pickle re-imports a dotted name through its (missing) parent.
            unique = f"mlstack_recipe_{_slug(str(recipe.directory))}__{_slug(module_name)}"
            existing = sys.modules.get(unique)
            if existing is not None and getattr(existing, "__file__", None) == str(path):
                return existing
            spec = importlib.util.spec_from_file_location(unique, path)
            if spec is None or spec.loader is None:
                raise StackConfigError(f"{path}: cannot be loaded as a module")
            module = importlib.util.module_from_spec(spec)
            sys.modules[unique] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[unique]
                raise
            return module
    return importlib.import_module(module_name)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[-60:]

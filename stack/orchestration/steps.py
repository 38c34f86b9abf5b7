"""Load a recipe's step functions and check their signatures before anything runs.

A step is a plain function. It receives its inputs (outputs of the steps it `needs`) and its
`params` as keyword arguments, and a `ctx: StepContext` too if it has a parameter named `ctx`.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import reprlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import yaml

from stack.config.diagnostics import collect, describe, did_you_mean
from stack.config.param_overrides import ParamOverride
from stack.config.recipe_file import Recipe, StepSpec
from stack.errors import StackConfigError

if TYPE_CHECKING:
    from stack.session import StackSession


@dataclass(frozen=True)
class StepContext:
    """What a step may use beyond its inputs: the stack's roles, the spine, a scratch folder.

    `run_id`: the pipeline run (`mlstack runs`); `step`: this step's name; `recipe`: the
    recipe being run; `session`: the stack (`session.tracker`, `session.registry`,
    `session.features`, `session.server`, `session.spine`); `workdir`: a folder for this
    step's files, kept with the run; `params`: the step's params as it receives them
    (the recipe's, with `--param` overrides)."""

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
    """Import every step's function and check it accepts its inputs and params, and that
    each of `recipe.overrides` sets a param its step declares (see `override_problems`).

    Raises StackConfigError listing every problem, each at its line or `--param`."""
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
            problems.append(_no_function(recipe, where, module, module_name, function_name))
            continue
        signature = inspect.signature(function)
        wants_context = "ctx" in signature.parameters
        unfit = _binding_problems(recipe, index, spec, signature)
        if unfit:
            problems.extend(unfit)
            continue
        for name, value in spec.params.items():
            wrong = type_problem(signature, name, value)
            if wrong:
                problems.append(describe(recipe.doc, ("steps", index, "params", name), wrong))
        loaded[spec.name] = LoadedStep(spec.name, function, wants_context)
    if not problems:
        problems = override_problems(recipe, recipe.overrides, loaded)
    if problems:
        raise collect(recipe.doc, problems, title=f"recipe {recipe.name!r} cannot run")
    return loaded


def _no_function(
    recipe: Recipe, where: tuple[str, int, str], module: ModuleType, module_name: str, name: str
) -> str:
    """`module` has no function `name`: the closest of the functions it defines, and those."""
    defined = [
        found
        for found, value in vars(module).items()
        if inspect.isfunction(value) and value.__module__ == module.__name__
    ]
    guess = did_you_mean(name, defined)
    return describe(
        recipe.doc,
        where,
        f"{module_name!r} has no function {name!r}",
        hint=f"{guess}functions in {module_name!r}: {', '.join(sorted(defined)) or 'none'}",
    )


def _binding_problems(
    recipe: Recipe, index: int, spec: StepSpec, signature: inspect.Signature
) -> list[str]:
    """Each input and param the function does not take (at its line, with the closest name
    it does take), and each argument it needs that the step does not give."""
    names = [*spec.needs, *spec.params] + (["ctx"] if "ctx" in signature.parameters else [])
    try:
        signature.bind(**dict.fromkeys(names))
    except TypeError as exc:
        reason = str(exc)
    else:
        return []
    parameters = signature.parameters
    kinds = {p.kind for p in parameters.values()}
    keywords = [
        name
        for name, p in parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and name not in names
    ]
    problems: list[str] = []
    if inspect.Parameter.VAR_KEYWORD not in kinds:
        for j, name in enumerate(spec.needs):
            if name not in parameters:
                problems.append(
                    _not_taken(
                        recipe, ("steps", index, "needs", j), spec, name, "an input", keywords
                    )
                )
        for name in spec.params:
            if name not in parameters:
                problems.append(
                    _not_taken(
                        recipe, ("steps", index, "params", name), spec, name, "a param", keywords
                    )
                )
    missing = [
        name
        for name, p in parameters.items()
        if p.default is p.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and name not in names
    ]
    if missing:
        listed = ", ".join(repr(name) for name in missing)
        problems.append(
            describe(
                recipe.doc,
                ("steps", index, "run"),
                f"{spec.run} needs {listed}, which step {spec.name!r} does not give",
                hint="give each under the step's params (or as a step it needs), "
                "or a default in the function",
            )
        )
    if problems:
        return problems
    return [  # what the names cannot tell: a positional-only parameter, and the like
        describe(
            recipe.doc,
            ("steps", index, "run"),
            f"{spec.run} cannot take inputs {list(spec.needs)} and params "
            f"{list(spec.params)}: {reason}",
            hint="a step receives each step it needs, and each param, by name",
        )
    ]


def _not_taken(
    recipe: Recipe,
    where: tuple[str | int, ...],
    spec: StepSpec,
    name: str,
    kind: str,
    free: list[str],
) -> str:
    guess = did_you_mean(name, free)
    others = f"it also takes: {', '.join(free)}" if free else "it takes no other parameter"
    return describe(
        recipe.doc,
        where,
        f"{spec.run} takes no parameter {name!r} ({kind} of step {spec.name!r})",
        hint=f"{guess}{others}; a step receives each step it needs, and each param, by name",
    )


def check_overrides(
    recipe: Recipe, overrides: tuple[ParamOverride, ...], loaded: dict[str, LoadedStep]
) -> None:
    """Raise StackConfigError unless every override fits (see `override_problems`)."""
    problems = override_problems(recipe, overrides, loaded)
    if problems:
        raise collect(recipe.doc, problems, title=f"recipe {recipe.name!r} cannot run")


def override_problems(
    recipe: Recipe, overrides: tuple[ParamOverride, ...], loaded: dict[str, LoadedStep]
) -> list[str]:
    """One line (and hint) per `--param` that names no step, sets a param its step does not
    declare in the recipe, or is given twice. Only declared params may be set, as in Kedro
    and MLflow Projects: the recipe file stays the list of what a run can vary. The step's
    function signature is checked as for the recipe's own params (`load_steps`), so a name
    the function does not take is told apart from one it takes but the recipe leaves out."""
    problems: list[str] = []
    steps = {spec.name: (index, spec) for index, spec in enumerate(recipe.spec.steps)}
    seen: set[tuple[str, str]] = set()
    for override in overrides:
        where = f"--param {override}"
        if override.key in seen:
            problems.append(f"{where}: {override.step}.{override.name} is given twice")
            continue
        seen.add(override.key)
        found = steps.get(override.step)
        if found is None:
            guess = did_you_mean(override.step, list(steps))
            problems.append(
                f"{where}: recipe {recipe.name!r} has no step {override.step!r}\n"
                f"    hint: {guess}steps are: {', '.join(steps)}"
            )
            continue
        index, spec = found
        if override.name not in spec.params:
            problems.append(f"{where}: {_undeclared(recipe, index, spec, override.name, loaded)}")
            continue
        step = loaded.get(spec.name)
        wrong = step and type_problem(
            inspect.signature(step.function), override.name, override.value
        )
        if wrong:
            problems.append(f"{where}: {wrong}")
    return problems


_SIMPLE_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "str": (str,),
}


def type_problem(signature: inspect.Signature, name: str, value: Any) -> str | None:
    """Why `value` cannot be the param `name` the function annotates as int, float, bool or
    str (optionally `| None`); None when it can, or when the annotation is anything else
    (not checked: the function's own business)."""
    parameter = signature.parameters.get(name)
    if parameter is None or parameter.annotation is inspect.Parameter.empty:
        return None
    annotation = parameter.annotation
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    parts = [part.strip() for part in str(text).split("|")]
    optional = "None" in parts
    kinds = [part for part in parts if part != "None"]
    if len(kinds) != 1 or kinds[0] not in _SIMPLE_TYPES:
        return None
    if value is None and optional:
        return None
    wanted = _SIMPLE_TYPES[kinds[0]]
    if isinstance(value, wanted) and not (isinstance(value, bool) and bool not in wanted):
        return None
    return (
        f"{name} = {reprlib.repr(value)} is {type(value).__name__}, but the step takes "
        f"{name}: {text}"
        "\n    hint: YAML reads 300 as int, 0.1 (or 1.0e-3) as float, true as bool; "
        "quote a string"
    )


def _undeclared(
    recipe: Recipe, index: int, spec: StepSpec, name: str, loaded: dict[str, LoadedStep]
) -> str:
    """Why `name` cannot be set on `spec`, with what can be, and how to declare it."""
    declared = ", ".join(spec.params) or "none"
    settable = f"params of step {spec.name!r} you can set: {declared}"
    if name in spec.needs:
        return (
            f"{name!r} is an input of step {spec.name!r} (the output of step {name!r}), "
            f"not a param\n    hint: {settable}"
        )
    if name == "ctx":
        return f"'ctx' is the step's context (a StepContext), not a param\n    hint: {settable}"
    step = loaded.get(spec.name)
    signature = inspect.signature(step.function) if step is not None else None
    if signature is None or not _accepts(signature, spec, name):
        guess = did_you_mean(name, list(spec.params))
        return f"{spec.run} takes no parameter {name!r}\n    hint: {guess}{settable}"
    parameter = signature.parameters.get(name)
    default = parameter.default if parameter is not None else inspect.Parameter.empty
    where = recipe.doc.where(("steps", index, "params") if spec.params else ("steps", index))
    return (
        f"step {spec.name!r} does not declare param {name!r} in {where}\n"
        f"    hint: --param sets only params the recipe declares; {spec.run} takes {name!r}, "
        f"so declare it under the step's params ({_entry(name, default)}) to set it from the "
        f"command line; {settable}"
    )


def _entry(name: str, default: Any) -> str:
    """`{name: default}` as YAML, for the hint: the function's default, else a placeholder."""
    if default is not inspect.Parameter.empty:
        try:
            return yaml.safe_dump({name: default}, default_flow_style=True, width=200).strip()
        except yaml.YAMLError:  # a default YAML cannot write (an object)
            pass
    return f"{{{name}: VALUE}}"


def _accepts(signature: inspect.Signature, spec: StepSpec, name: str) -> bool:
    """Whether the function takes `name` by keyword beside its inputs and declared params."""
    names = [*spec.needs, *spec.params, name]
    if "ctx" in signature.parameters:
        names.append("ctx")
    try:
        signature.bind(**dict.fromkeys(names))
    except TypeError:
        return False
    return True


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

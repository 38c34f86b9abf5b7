"""The checks made before anything runs, by `mlstack stack validate` and `mlstack run` alike.

`preflight` reads the stack file and the recipe and checks everything a run would otherwise
find out half-way: types, adapters and their options, the recipe's capabilities, the spine
store's driver and that it answers, the step functions, the hooks, and the recipe that
`monitoring.retrain.recipe` names. It writes nothing. Every problem of both files is
listed at once, each at its `file:line: field`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from stack.config.diagnostics import describe
from stack.config.home import home_problem
from stack.config.param_overrides import ParamOverride
from stack.config.recipe_file import Recipe, load_recipe, read_recipe
from stack.config.spine_url import reach_problem
from stack.config.stack_file import StackFile, check_stack_file, embedded_roles
from stack.config.yaml_source import YamlDocument
from stack.contract.roles import Role
from stack.errors import StackConfigError
from stack.plugins.registry import AdapterRegistry, default_registry
from stack.resolution import ResolvedRole, resolve_stack


@dataclass(frozen=True)
class CheckedStack:
    """A stack and recipe that passed `preflight`: what a session is opened from."""

    stack: StackFile
    doc: YamlDocument
    roles: Mapping[Role, ResolvedRole]
    registry: AdapterRegistry
    source: Path | None
    recipe: Recipe | None = None
    embedded: tuple[Role, ...] = field(default=())

    def embedded_note(self) -> str | None:
        """One line naming the roles taken from the embedded local stack, if any."""
        if not self.embedded:
            return None
        roles = ", ".join(f"{role.value} ({self.roles[role].adapter})" for role in self.embedded)
        return (
            f"{self.source}: from the embedded local stack: {roles}; "
            "write `ROLE: none` in the stack file to go without one"
        )


def preflight(
    stack_path: Path | None,
    recipe_location: Path | None = None,
    *,
    overrides: tuple[ParamOverride, ...] = (),
    registry: AdapterRegistry | None = None,
    base_dir: Path | None = None,
) -> CheckedStack:
    """Check the stack at `stack_path` (the embedded local stack when None) and, if given,
    the recipe at `recipe_location` run with `overrides` (`--param`s).

    `base_dir` anchors a relative SQLite spine path (default: the working directory).
    Raises StackConfigError listing every problem of both files; nothing is written."""
    registry = registry or default_registry()
    problems: list[str] = []
    recipe: Recipe | None = None
    if recipe_location is not None:
        # a recipe with problems in its shape is still checked as far as it goes (its steps
        # beside a typo under `rollout:`), so that one run reports every problem
        try:
            recipe, read_problems = read_recipe(recipe_location)
        except StackConfigError as exc:
            read_problems = exc.problems
        problems.extend(read_problems)
    if recipe is not None:
        recipe = recipe.with_overrides(overrides)
        problems.extend(recipe_problems(recipe))
    checked: CheckedStack | None = None
    try:
        result, doc = check_stack_file(stack_path)
    except StackConfigError as exc:
        problems.extend(exc.problems)
    else:
        problems.extend(result.problems)
        stack = result.value
        if stack is not None:
            # a role whose section had a problem is left out: its capabilities are not asked
            dropped_role = any(role.value in result.dropped for role in Role)
            try:
                roles = resolve_stack(stack, doc, registry, None if dropped_role else recipe)
                checked = CheckedStack(
                    stack, doc, roles, registry, stack_path, recipe, embedded_roles(doc)
                )
            except StackConfigError as exc:
                problems.extend(exc.problems)
            base = base_dir or Path.cwd()
            if "spine" not in result.dropped:
                problems.extend(spine_problems(stack, doc, base))
            if "home" not in result.dropped:
                problems.extend(home_problems(stack, doc, base))
    if problems or checked is None:
        noun = "problem" if len(problems) == 1 else "problems"
        raise StackConfigError(
            f"nothing was run or changed ({len(problems)} {noun}):\n  " + "\n  ".join(problems),
            problems,
        )
    return checked


def spine_problems(stack: StackFile, doc: YamlDocument, base_dir: Path) -> list[str]:
    """The spine's driver is installed and its database answers (nothing is created)."""
    from stack.session import anchored

    problem = reach_problem(anchored(stack.spine.connect_url(), base_dir.resolve()))
    return [] if problem is None else [describe(doc, ("spine", "url"), problem)]


def home_problems(stack: StackFile, doc: YamlDocument, base_dir: Path) -> list[str]:
    """The stack's `home` is a folder, or one that can be created (nothing is created)."""
    home = Path(stack.home)
    path = home if home.is_absolute() else base_dir.resolve() / home
    problem = home_problem(path)
    return [] if problem is None else [describe(doc, ("home",), f"{path}: {problem}")]


def recipe_problems(recipe: Recipe, seen: frozenset[Path] = frozenset()) -> list[str]:
    """Step functions, hooks and the retraining recipe: each importable and fitting.
    `seen`: recipes already being checked (a retraining recipe may name its own)."""
    from stack.orchestration.steps import load_steps

    seen = seen | {recipe.path}
    problems: list[str] = []
    try:
        load_steps(recipe)  # puts the recipe's folder on sys.path, as for a run
    except StackConfigError as exc:
        problems.extend(exc.problems)
    problems.extend(_hook_problems(recipe))
    problems.extend(_retrain_problems(recipe, seen))
    return problems


def _hook_problems(recipe: Recipe) -> list[str]:
    from stack.hooks.bus import HookBus

    bus = HookBus(load_entry_points=False)  # a scratch bus: registering checks each one
    problems: list[str] = []
    for index, target in enumerate(recipe.spec.hooks):
        origin = str(recipe.path)
        try:
            bus.register_target(target, origin=origin)
        except StackConfigError as exc:
            reason = str(exc).removeprefix(f"{origin}: hooks: ")
            problems.append(describe(recipe.doc, ("hooks", index), reason))
        except Exception as exc:  # the module itself failed: a SyntaxError, a raise
            reason = f"cannot load {target!r}: {type(exc).__name__}: {exc}"
            problems.append(describe(recipe.doc, ("hooks", index), reason))
    return problems


def _retrain_problems(recipe: Recipe, seen: frozenset[Path]) -> list[str]:
    named = recipe.spec.monitoring.retrain.recipe
    if named is None:
        return []
    where = ("monitoring", "retrain", "recipe")
    location = recipe.directory / named
    if not location.exists():
        return [
            describe(
                recipe.doc,
                where,
                f"{named!r} does not exist (looked for {location})",
                hint="a file or folder relative to this recipe's folder",
            )
        ]
    try:
        retrain = load_recipe(location)
    except StackConfigError as exc:
        return [describe(recipe.doc, where, f"{named!r} is not a valid recipe"), *exc.problems]
    if retrain.path in seen:
        return []
    problems = recipe_problems(retrain, seen)
    if problems:
        return [describe(recipe.doc, where, f"{named!r} cannot run"), *problems]
    return []

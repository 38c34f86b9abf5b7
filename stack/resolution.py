"""Check a whole stack before anything runs: adapters installed, options valid, capabilities
present. Every problem is reported at once, each at its line in stack.yaml."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel

from stack.config.diagnostics import collect, describe, validated
from stack.config.stack_file import StackFile
from stack.config.yaml_source import YamlDocument
from stack.contract.capabilities import Capability
from stack.contract.roles import Role
from stack.errors import StackConfigError, StackError
from stack.plugins.registry import AdapterRegistry

if TYPE_CHECKING:
    from stack.config.recipe_file import Recipe  # the recipe models: only when one is given


@dataclass(frozen=True, slots=True)
class ResolvedRole:
    role: Role
    adapter: str
    package: str
    config: object
    capabilities: frozenset[Capability]


def resolve_stack(
    stack: StackFile,
    doc: YamlDocument,
    registry: AdapterRegistry,
    recipe: Recipe | None = None,
) -> Mapping[Role, ResolvedRole]:
    """Every configured role with its validated config; raises StackConfigError listing all
    problems (missing adapters with their install command, bad options, missing capabilities)."""
    problems: list[str] = []
    resolved: dict[Role, ResolvedRole] = {}
    for role, section in stack.configured_roles().items():
        try:
            manifest, binding = registry.binding(role, section.adapter)
            model = registry.config_model(role, section.adapter)
            config = _validate_options(doc, role, section.options, model)
        except StackConfigError as exc:
            problems.extend(exc.problems)
            continue
        except StackError as exc:
            hint = (
                f"{stack.name!r} takes its {role.value} from the embedded local stack; "
                f"write `{role.value}: none` to go without one"
                if role.value in doc.borrowed
                else ""
            )
            problems.append(describe(doc, (role.value, "adapter"), str(exc), hint))
            continue
        resolved[role] = ResolvedRole(
            role, section.adapter, manifest.package, config, binding.capabilities
        )
    if recipe is not None:
        problems.extend(_capability_problems(doc, recipe, stack, resolved))
    if problems:
        raise collect(doc, problems)
    return resolved


def _validate_options(
    doc: YamlDocument, role: Role, options: Mapping[str, object], model: type[BaseModel] | None
) -> object:
    if model is None:
        if options:
            raise collect(
                doc,
                [
                    describe(doc, (role.value, key), "this adapter takes no options")
                    for key in options
                ],
            )
        return None
    return validated(doc, model, dict(options), prefix=(role.value,))


def _capability_problems(
    doc: YamlDocument, recipe: Recipe, stack: StackFile, resolved: Mapping[Role, ResolvedRole]
) -> list[str]:
    problems: list[str] = []
    for role, wanted in recipe.spec.requires.by_role().items():
        section = stack.section(role)
        if section is None:
            problems.append(
                describe(
                    doc,
                    (),
                    f"recipe {recipe.name!r} needs a {role.value} ({', '.join(wanted) or 'any'}), "
                    "and this stack has none",
                    hint=f"add `{role.value}: {{adapter: ...}}`; `mlstack adapters` lists them",
                )
            )
            continue
        if role not in resolved:
            continue  # already reported as not installed or invalid
        missing = sorted(set(wanted) - resolved[role].capabilities)
        if missing:
            have = ", ".join(sorted(resolved[role].capabilities)) or "none"
            problems.append(
                describe(
                    doc,
                    (role.value, "adapter"),
                    f"recipe {recipe.name!r} needs {role.value} capabilities "
                    f"{', '.join(missing)}; adapter {section.adapter!r} provides: {have}",
                )
            )
    return problems

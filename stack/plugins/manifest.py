"""What an adapter distribution declares about itself, as strings, so that reading it is cheap.

A distribution points its `mlstack.adapters` entry point at a module that holds an
`AdapterManifest` and imports nothing heavy: the implementation and its config model are
dotted `"module:attribute"` strings that the registry imports only when the role is first used.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from stack.contract.capabilities import Capability, UnknownCapability, parse_capabilities
from stack.contract.roles import Role
from stack.errors import AdapterNotInstalled, StackError


@dataclass(frozen=True, slots=True)
class RoleBinding:
    """How one adapter fills one role.

    `implementation` is built as `Implementation(config, context)`; `config` names the frozen
    pydantic model of the options the adapter takes in stack.yaml (None: it takes none).
    `capabilities` are members of the role's vocabulary (`stack.contract.capabilities`); their
    names are accepted too, and the manifest turns them into members.
    """

    implementation: str
    config: str | None = None
    capabilities: frozenset[Capability] = frozenset()


@dataclass(frozen=True, slots=True)
class AdapterManifest:
    name: str
    package: str
    roles: Mapping[Role, RoleBinding]
    description: str = ""

    def __post_init__(self) -> None:
        """Checks the targets' form; raises StackError on a malformed target or a capability
        not in its role's vocabulary (naming the adapter, the role and the known ones)."""
        typed: dict[Role, RoleBinding] = {}
        for role, binding in self.roles.items():
            for target in (binding.implementation, binding.config):
                if target is not None and ":" not in target:
                    raise StackError(
                        f"adapter {self.name!r} role {role}: {target!r} must be 'module:attribute'"
                    )
            try:
                capabilities = parse_capabilities(role, binding.capabilities)
            except UnknownCapability as exc:
                raise StackError(f"adapter {self.name!r} role {role}: {exc}") from None
            typed[role] = replace(binding, capabilities=capabilities)
        object.__setattr__(self, "roles", typed)


@dataclass(frozen=True, slots=True)
class AdapterContext:
    """Where an adapter may keep files: `home` is the stack's `.mlstack/` folder."""

    home: Path
    base_dir: Path
    stack_name: str = "local"
    extras: Mapping[str, object] = field(default_factory=dict)


def import_target(target: str, *, adapter: str, role: str, package: str | None) -> object:
    """Import `module:attribute`, turning a missing module into an install hint."""
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise AdapterNotInstalled(
            adapter, role, package, f"module {exc.name!r} is missing"
        ) from exc
    try:
        obj: object = module
        for part in attribute.split("."):
            obj = getattr(obj, part)
    except AttributeError as exc:
        raise StackError(f"adapter {adapter!r}: {target!r} does not exist ({exc})") from exc
    return obj

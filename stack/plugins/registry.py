"""The adapter registry: entry points in, one lazily built implementation per role out.

Selection is exactly one adapter per role (events that fan out are `stack.hooks`' job). The
public view is read-only; an in-process `register()` exists for tests and for applications
that ship an adapter without packaging it.

A declared capability that promises an optional protocol is held to it: `register()` refuses
an adapter whose implementation lacks the protocol's methods, and an installed adapter is
checked the same way when its role is first built (discovery imports no implementation).
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import Any

from stack.contract.roles import Role
from stack.errors import AdapterConflict, AdapterNotInstalled, StackError, UnknownAdapter
from stack.plugins.capabilities import check_binding
from stack.plugins.hints import KNOWN_PACKAGES
from stack.plugins.manifest import (
    AdapterContext,
    AdapterManifest,
    RoleBinding,
    import_target,
)

ENTRY_POINT_GROUP = "mlstack.adapters"


@dataclass(frozen=True, slots=True)
class BrokenAdapter:
    """An entry point whose manifest could not be read; listed, never selected."""

    entry_point: str
    error: str


class AdapterRegistry:
    def __init__(self, *, discover: bool = True) -> None:
        self._manifests: dict[str, AdapterManifest] = {}
        self._broken: dict[str, BrokenAdapter] = {}
        if discover:
            self._discover()

    def _discover(self) -> None:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                manifest = ep.load()
            except Exception as exc:  # a broken third-party adapter must not break the CLI
                self._broken[ep.name] = BrokenAdapter(ep.value, f"{type(exc).__name__}: {exc}")
                continue
            if not isinstance(manifest, AdapterManifest):
                self._broken[ep.name] = BrokenAdapter(ep.value, "not an AdapterManifest")
                continue
            if manifest.name in self._manifests:
                warnings.warn(
                    f"adapter {manifest.name!r} is registered twice; keeping the first",
                    stacklevel=2,
                )
                continue
            self._manifests[manifest.name] = manifest

    @property
    def manifests(self) -> Mapping[str, AdapterManifest]:
        return MappingProxyType(self._manifests)

    @property
    def broken(self) -> Mapping[str, BrokenAdapter]:
        return MappingProxyType(self._broken)

    def register(self, manifest: AdapterManifest, *, replace: bool = False) -> None:
        """Add an adapter in-process; clashing with an installed one raises unless `replace`.

        Raises CapabilityNotImplemented when a role declares a capability whose protocol its
        implementation lacks (the implementation is imported for that, and only then)."""
        if manifest.name in self._manifests and not replace:
            raise AdapterConflict(
                f"adapter {manifest.name!r} is already registered "
                f"(by {self._manifests[manifest.name].package}); pass replace=True to override"
            )
        for role, binding in manifest.roles.items():
            if any(capability.protocol for capability in binding.capabilities):
                # a missing module is left to `create`, which says what to install
                with suppress(AdapterNotInstalled):
                    self._checked_implementation(manifest, role, binding)
        self._manifests[manifest.name] = manifest

    def unregister(self, name: str) -> None:
        self._manifests.pop(name, None)

    def binding(self, role: Role, adapter: str) -> tuple[AdapterManifest, RoleBinding]:
        """The manifest and binding that fill `role` with `adapter`, or an install hint."""
        manifest = self._manifests.get(adapter)
        if manifest is None:
            broken = self._broken.get(adapter)
            if broken is not None:
                detail = f"its entry point is broken: {broken.error}"
                raise AdapterNotInstalled(adapter, role.value, KNOWN_PACKAGES.get(adapter), detail)
            installed = ", ".join(sorted(self._manifests)) or "none"
            if adapter in KNOWN_PACKAGES:
                detail = f"installed adapters: {installed}"
                raise AdapterNotInstalled(adapter, role.value, KNOWN_PACKAGES[adapter], detail)
            raise UnknownAdapter(adapter, role.value, self._unknown_detail(adapter, installed))
        binding = manifest.roles.get(role)
        if binding is None:
            roles = ", ".join(r.value for r in manifest.roles) or "none"
            raise StackError(
                f"adapter {adapter!r} cannot fill role {role.value!r}; it provides: {roles}"
            )
        return manifest, binding

    def _unknown_detail(self, adapter: str, installed: str) -> str:
        """The closest names to `adapter`, then those installed and those known to mlstack."""
        names = sorted({*self._manifests, *self._broken, *KNOWN_PACKAGES})
        close = difflib.get_close_matches(adapter, names, n=1)
        guess = f"did you mean {close[0]!r}?; " if close else ""
        others = ", ".join(sorted(set(KNOWN_PACKAGES) - set(self._manifests)))
        known = f"; known, not installed: {others}" if others else ""
        return f"{guess}installed: {installed}{known}"

    def config_model(self, role: Role, adapter: str) -> type[Any] | None:
        """The pydantic model of the adapter's stack.yaml options (a light import)."""
        manifest, binding = self.binding(role, adapter)
        if binding.config is None:
            return None
        model = import_target(
            binding.config, adapter=adapter, role=role.value, package=manifest.package
        )
        if not isinstance(model, type):
            raise StackError(f"adapter {adapter!r}: config {binding.config!r} is not a class")
        return model

    def create(self, role: Role, adapter: str, config: object, context: AdapterContext) -> object:
        """Import the implementation (and so the wrapped tool) and build it; raises
        CapabilityNotImplemented as `register` does."""
        manifest, binding = self.binding(role, adapter)
        implementation = self._checked_implementation(manifest, role, binding)
        instance = implementation(config, context)
        if not isinstance(implementation, type):  # a factory: what it built is what counts
            check_binding(manifest.name, role, binding, instance)
        return instance

    def _checked_implementation(
        self, manifest: AdapterManifest, role: Role, binding: RoleBinding
    ) -> Callable[..., object]:
        implementation = import_target(
            binding.implementation,
            adapter=manifest.name,
            role=role.value,
            package=manifest.package,
        )
        if not callable(implementation):
            raise StackError(
                f"adapter {manifest.name!r}: {binding.implementation!r} is not callable"
            )
        if isinstance(implementation, type):
            check_binding(manifest.name, role, binding, implementation)
        return implementation


_default: AdapterRegistry | None = None


def default_registry() -> AdapterRegistry:
    """The process-wide registry of installed adapters, discovered once on first use."""
    global _default
    if _default is None:
        _default = AdapterRegistry()
    return _default

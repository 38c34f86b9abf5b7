"""Adapter discovery and selection: one adapter per role, imported only when first used."""

from stack.plugins.manifest import AdapterContext, AdapterManifest, RoleBinding
from stack.plugins.registry import ENTRY_POINT_GROUP, AdapterRegistry, default_registry

__all__ = [
    "ENTRY_POINT_GROUP",
    "AdapterContext",
    "AdapterManifest",
    "AdapterRegistry",
    "RoleBinding",
    "default_registry",
]

"""Declared capabilities held to their protocols, and asked for at run time.

A capability tied to an optional protocol (`stack.contract.capabilities.PROTOCOLS`) is a
promise that the implementation has the protocol's methods: the registry checks it when an
adapter is registered in-process, and when an installed one's role is first built (checking
at discovery would import every wrapped tool). The core then asks `declares(session, …)`
before it uses the protocol.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stack.contract.capabilities import Capability
from stack.errors import CapabilityNotImplemented

if TYPE_CHECKING:
    from stack.contract.roles import Role
    from stack.plugins.manifest import RoleBinding
    from stack.session import StackSession


def protocol_methods(protocol: type) -> tuple[str, ...]:
    """The public methods a protocol names (its own and those of the protocols it extends)."""
    names: dict[str, None] = {}
    for klass in reversed(protocol.__mro__):
        if klass is object or not getattr(klass, "_is_protocol", False):
            continue
        for name, value in vars(klass).items():
            if not name.startswith("_") and callable(value):
                names[name] = None
    return tuple(names)


def missing_methods(implementation: object, capability: Capability) -> tuple[str, ...]:
    """The methods of `capability`'s protocol that `implementation` (a class or an instance)
    lacks; () when it has them all or the capability promises no protocol."""
    protocol = capability.protocol
    if protocol is None:
        return ()
    return tuple(
        name
        for name in protocol_methods(protocol)
        if not callable(getattr(implementation, name, None))
    )


def check_binding(adapter: str, role: Role, binding: RoleBinding, implementation: object) -> None:
    """Raise CapabilityNotImplemented when `implementation` lacks a declared capability's
    methods, naming the adapter, the role, each such capability and what it misses."""
    gaps = [
        (capability, missing)
        for capability in sorted(binding.capabilities)
        if (missing := missing_methods(implementation, capability))
    ]
    if not gaps:
        return
    name = getattr(implementation, "__qualname__", type(implementation).__qualname__)
    detail = "; ".join(
        f"{capability.value!r} promises {_protocol_name(capability)}, and {name} has no "
        + ", ".join(f"{method}()" for method in missing)
        for capability, missing in gaps
    )
    raise CapabilityNotImplemented(
        f"adapter {adapter!r} declares {role.value} capabilities it does not implement: "
        f"{detail} (implement them, or leave them out of the manifest)"
    )


def declares(session: StackSession, capability: Capability) -> bool:
    """Whether the session's adapter for the capability's role declares it (False when the
    stack has no such role). Builds nothing."""
    resolved = session.resolved.get(capability.role)
    return resolved is not None and capability in resolved.capabilities


def _protocol_name(capability: Capability) -> str:
    protocol = capability.protocol
    return protocol.__name__ if protocol is not None else "nothing"

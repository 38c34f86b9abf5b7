"""Open a StackSession on in-process adapters, with its spine in a test's folder."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stack.contract.roles import Role
from stack.hooks import HookBus
from stack.plugins import AdapterManifest, AdapterRegistry
from stack.session import StackSession


@contextmanager
def memory_session(folder: Path, manifest: AdapterManifest, roles: str) -> Iterator[StackSession]:
    """`roles` is the stack file's role lines (e.g. "registry: memory\\n"); the stack has
    no other role (not the embedded stack's), but the local orchestrator."""
    registry = AdapterRegistry()
    registry.register(manifest)
    given = {line.partition(":")[0].strip() for line in roles.splitlines()}
    absent = "".join(
        f"{role.value}: none\n"
        for role in Role
        if role.value not in given and role is not Role.ORCHESTRATOR
    )
    stack_file = folder / "stack.yaml"
    stack_file.write_text(
        f"name: t\nhome: .state\n{roles}{absent}spine: {{url: 'sqlite:///{folder / 'spine.db'}'}}\n"
    )
    with StackSession.open(
        stack_file, registry=registry, base_dir=folder, hooks=HookBus(load_entry_points=False)
    ) as session:
        yield session

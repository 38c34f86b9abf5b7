"""Prompt versions under the lifecycle of model versions.

The registry adapter's prompt store (the `prompts` capability: MLflow's prompt registry) is
a Registry like the model one; `prompt_session` is the stack session seen through it, so
Lifecycle, Governance and the rollout controller act on prompt versions unchanged: gates,
approvals, audit entries, lineage."""

from __future__ import annotations

import difflib
from typing import cast

from stack.contract.capabilities import RegistryCapability
from stack.contract.registry import PromptStore, Registry
from stack.errors import StackError
from stack.plugins.capabilities import declares
from stack.session import StackSession
from stack.spine.lineage import NodeKind


def prompt_registry(session: StackSession) -> Registry:
    if not declares(session, RegistryCapability.PROMPTS):
        raise StackError(
            "this stack's registry keeps no prompts (the `prompts` capability: the mlflow "
            "registry has it)"
        )
    return cast(PromptStore, session.registry).prompts()  # the registry checked it


def prompt_session(session: StackSession) -> StackSession:
    """`session` seeing the prompt store as its registry (`StackSession.with_registry`)."""
    return session.with_registry(prompt_registry(session), NodeKind.PROMPT_VERSION.value)


def diff(name: str, before: tuple[int, str], after: tuple[int, str]) -> str:
    """A unified diff of two versions' templates."""
    lines = difflib.unified_diff(
        before[1].splitlines(keepends=True),
        after[1].splitlines(keepends=True),
        fromfile=f"{name}@{before[0]}",
        tofile=f"{name}@{after[0]}",
    )
    return "".join(lines) or f"{name}@{before[0]} and {name}@{after[0]} are the same\n"

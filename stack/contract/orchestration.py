"""The Orchestrator role: run a recipe's step graph, or compile it for a cluster."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from stack.config.recipe_file import Recipe
    from stack.session import StackSession


class StepStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REUSED = "reused"  # taken over from the run being resumed, not executed again


class RunState(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABANDONED = "abandoned"  # its process died mid-run; resumable like a failed run


@dataclass(frozen=True, slots=True)
class StepResult:
    name: str
    status: StepStatus
    started_at: datetime
    finished_at: datetime | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class PipelineRun:
    run_id: str
    recipe: str
    state: RunState
    steps: tuple[StepResult, ...]
    resumed_from: str | None = None

    def step(self, name: str) -> StepResult:
        for result in self.steps:
            if result.name == name:
                return result
        raise KeyError(name)


@runtime_checkable
class Orchestrator(Protocol):
    def run(self, session: StackSession, *, resume: str | None = None) -> PipelineRun:
        """Run every step of `session.recipe` (the recipe the session was opened with) in
        dependency order; `resume` re-runs a failed run from its failure. Adapters get this
        from `stack.orchestration.engine.PipelineEngine` and write how their tool runs steps."""
        ...


@runtime_checkable
class PipelineCompiler(Protocol):
    """Orchestrators with the `compile` capability turn a recipe into their cluster format."""

    def compile(self, recipe: Recipe, output: Path) -> Path: ...


@runtime_checkable
class Scheduler(Protocol):
    """Orchestrators with the `schedule` capability run a recipe on a cron schedule of their
    own (a Prefect deployment, a KFP recurring run); returns what was created, in words."""

    def schedule(self, recipe: Recipe, session: StackSession, *, cron: str, name: str) -> str: ...

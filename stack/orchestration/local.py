"""The local orchestrator: a recipe's steps in-process, in dependency order, resumable."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from stack.config.recipe_file import Recipe
from stack.contract.orchestration import PipelineRun
from stack.orchestration.executor import StepExecutor
from stack.orchestration.local_config import LocalOrchestratorConfig
from stack.plugins.manifest import AdapterContext

if TYPE_CHECKING:
    from stack.session import StackSession


class LocalOrchestrator:
    def __init__(self, config: LocalOrchestratorConfig | None, context: AdapterContext) -> None:
        self.config = config or LocalOrchestratorConfig()
        outputs = Path(self.config.outputs_dir)
        self.outputs_root = outputs if outputs.is_absolute() else context.home / outputs

    def run(
        self, recipe: Recipe, session: StackSession, *, resume: str | None = None
    ) -> PipelineRun:
        """Run every step; on failure record it, fire the events, and raise StepFailed."""
        executor = StepExecutor(recipe, session, self.outputs_root, orchestrator="local")
        run_id, reused = executor.begin(resume)
        for name in recipe.order():
            if name not in reused:
                executor.run_step(run_id, name)
        return executor.succeed(run_id)

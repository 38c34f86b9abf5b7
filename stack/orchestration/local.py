"""The local orchestrator: a recipe's steps in-process, in dependency order, resumable."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from stack.config.recipe_file import Recipe
from stack.contract.orchestration import PipelineRun
from stack.orchestration.executor import StepExecutor, reusable_steps, steps_to_reuse
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
        executor.steps  # noqa: B018  (every step importable and callable before the first runs)
        reuse = steps_to_reuse(recipe, reusable_steps(recipe, session, resume)) if resume else {}
        run_id = executor.start(resumed_from=resume)
        for name in recipe.order():
            previous = reuse.get(name)
            if previous is not None and previous.output_uri:
                executor.reuse_step(run_id, name, previous.output_uri, previous.output_digest)
            else:
                executor.run_step(run_id, name)
        return executor.succeed(run_id)

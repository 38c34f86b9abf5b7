"""The local orchestrator: a recipe's steps in-process, in dependency order, resumable."""

from __future__ import annotations

from collections.abc import Set
from pathlib import Path

from stack.orchestration.engine import PipelineEngine
from stack.orchestration.executor import StepExecutor
from stack.orchestration.local_config import LocalOrchestratorConfig
from stack.plugins.manifest import AdapterContext


class LocalOrchestrator(PipelineEngine):
    name = "local"

    def __init__(self, config: LocalOrchestratorConfig | None, context: AdapterContext) -> None:
        self.config = config or LocalOrchestratorConfig()
        outputs = Path(self.config.outputs_dir)
        self.outputs_root = outputs if outputs.is_absolute() else context.home / outputs

    def execute(self, executor: StepExecutor, run_id: str, reused: Set[str]) -> None:
        """Each step in turn; the first that fails stops the run (StepFailed)."""
        for name in executor.recipe.order():
            if name not in reused:
                executor.run_step(run_id, name)

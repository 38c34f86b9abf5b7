"""The Orchestrator role on ZenML: a recipe runs as a ZenML pipeline on ZenML's active
stack, one ZenML step per recipe step (dependencies as `after`). Each runs mlstack's step
runner, so the spine reads as after a local run; ZenML keeps its own record of the run in
its store (`zenml pipeline runs list`). ZenML's config lives under the stack's home unless
`config_path` says otherwise, and its analytics are off."""

from __future__ import annotations

import os
from collections.abc import Set
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stack.config.recipe_file import Recipe
from stack.orchestration.engine import PipelineEngine
from stack.orchestration.executor import StepExecutor, outputs_root
from stack.plugins.manifest import AdapterContext
from stack_zenml.config import ZenmlConfig

if TYPE_CHECKING:
    from stack.session import StackSession


class ZenmlOrchestrator(PipelineEngine):
    name = "zenml"

    def __init__(self, config: ZenmlConfig | None, context: AdapterContext) -> None:
        self.config = config or ZenmlConfig()
        self.context = context
        self.outputs_root = outputs_root(context.home)

    def execute(self, executor: StepExecutor, run_id: str, reused: Set[str]) -> None:
        """The recipe as a ZenML pipeline on ZenML's active stack, told which steps to skip."""
        self._pipeline(executor.recipe, executor.session)(run_id=run_id, skip=",".join(reused))

    def schedule(self, recipe: Recipe, session: StackSession, *, cron: str, name: str) -> str:
        """A ZenML schedule on the active stack (its orchestrator must support schedules:
        ZenML's local one does not, Kubernetes and Kubeflow do)."""
        zenml_environment(self.config, self.context.home)
        from zenml.config.schedule import Schedule

        pipeline = self._pipeline(recipe, session).with_options(
            schedule=Schedule(name=name, cron_expression=cron)
        )
        pipeline(run_id="", skip="")
        return f"ZenML schedule {name} runs {recipe.name} on '{cron}'"

    def _pipeline(self, recipe: Recipe, session: StackSession) -> Any:
        zenml_environment(self.config, self.context.home)
        from zenml import pipeline

        from stack_zenml.steps import mlstack_step

        where: dict[str, Any] = {
            "stack_file": str(session.source.resolve()) if session.source else "",
            "base_dir": str(session.base_dir),
            "recipe": str(recipe.path),
        }

        @pipeline(name=_name(recipe.name), enable_cache=False)
        def recipe_pipeline(run_id: str, skip: str) -> None:
            for name in recipe.order():
                mlstack_step(
                    run_id=run_id,
                    step_name=name,
                    skip=skip,
                    id=name,
                    after=list(recipe.step(name).needs) or None,
                    **where,
                )

        return recipe_pipeline


def zenml_environment(config: ZenmlConfig, home: Path) -> None:
    """ZenML reads these at import: its config (and local store) under the stack's home,
    analytics off, logs quiet."""
    path = Path(config.config_path) if config.config_path else home / "zenml"
    os.environ.setdefault("ZENML_CONFIG_PATH", str(path))
    os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")
    os.environ.setdefault("ZENML_LOGGING_VERBOSITY", "WARN")
    os.environ.setdefault("ZENML_ENABLE_RICH_TRACEBACK", "false")
    if config.stack:
        os.environ["ZENML_ACTIVE_STACK_ID"] = config.stack


def _name(recipe: str) -> str:
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in recipe) or "recipe"

"""The Orchestrator role on Prefect 3: a recipe runs as a flow, each step a task.

Prefect decides when each step runs (its dependencies as `wait_for`, independent steps in
parallel up to `max_workers`) and shows the run in its UI; mlstack's StepExecutor runs each
step exactly as the local orchestrator does, so the spine (step records, outputs, lineage,
audit) reads the same. Without `api_url`, Prefect starts a temporary local API for the run,
its database under the stack's home, and no analytics leave the machine."""

from __future__ import annotations

import os
from collections.abc import Set
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from stack.config.recipe_file import Recipe
from stack.orchestration.engine import PipelineEngine
from stack.orchestration.executor import StepExecutor, outputs_root
from stack.plugins.manifest import AdapterContext
from stack_prefect.config import PrefectConfig

if TYPE_CHECKING:
    from stack.session import StackSession


class PrefectOrchestrator(PipelineEngine):
    name = "prefect"

    def __init__(self, config: PrefectConfig | None, context: AdapterContext) -> None:
        self.config = config or PrefectConfig()
        self.context = context
        self.outputs_root = outputs_root(context.home)

    def execute(self, executor: StepExecutor, run_id: str, reused: Set[str]) -> None:
        """A flow of one task per step, each waiting for its needs; Prefect runs the
        independent ones in parallel."""
        prefect_environment(self.config, self.context.home)
        from prefect import flow, task
        from prefect.task_runners import ThreadPoolTaskRunner

        recipe = executor.recipe

        @task(name="step", retries=0, persist_result=False)
        def step(name: str) -> None:
            executor.run_step(run_id, name)

        @flow(
            name=recipe.name,
            flow_run_name=f"{recipe.name}-{run_id[:8]}",
            task_runner=cast(Any, ThreadPoolTaskRunner(max_workers=self.config.max_workers)),
            persist_result=False,
            validate_parameters=False,
        )
        def pipeline() -> None:
            futures: dict[str, Any] = {}
            for name in recipe.order():
                if name in reused:
                    continue
                waits = [futures[n] for n in recipe.step(name).needs if n in futures]
                named: Any = step.with_options(name=name)  # Prefect's overloads: one per state mode
                futures[name] = named.submit(name, wait_for=waits)
            for future in futures.values():
                future.result()  # the first failure fails the flow

        state = pipeline(return_state=True)
        if not state.is_completed():
            raise RuntimeError(f"flow ended {state.name}: {state.message}")

    def schedule(self, recipe: Recipe, session: StackSession, *, cron: str, name: str) -> str:
        """A Prefect deployment of the recipe with a cron schedule, in the configured API
        (or the local one under the stack's home); a `serve` process or a worker of the
        work pool runs what it schedules."""
        prefect_environment(self.config, self.context.home)
        from stack_prefect.entry import run_recipe

        deployment: Any = run_recipe.to_deployment(  # sync here: no running event loop
            name=name,
            cron=cron,
            parameters={
                "stack_file": str(session.source.resolve()) if session.source else "",
                "base_dir": str(session.base_dir),
                "recipe": str(recipe.path),
            },
            description=recipe.spec.description or recipe.name,
            tags=["mlstack", recipe.name],
        )
        deployment_id = deployment.apply()
        return (
            f"Prefect deployment mlstack-recipe/{name} ({deployment_id}) runs {recipe.name} "
            f"on '{cron}'; start its runs with: prefect deployment serve, or a worker "
            f"(`prefect worker start --pool {self.config.work_pool}`) once it has a pool"
        )


def prefect_environment(config: PrefectConfig, home: Path) -> None:
    """Prefect reads its settings from the environment: its home under the stack's (so runs
    of different stacks never share a database), the API, no analytics, quiet logs."""
    os.environ.setdefault("PREFECT_HOME", str(home / "prefect"))
    if config.api_url:
        os.environ["PREFECT_API_URL"] = config.api_url
    os.environ.setdefault(
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", str(int(config.startup_timeout_seconds))
    )
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_RESULTS_PERSIST_BY_DEFAULT", "false")

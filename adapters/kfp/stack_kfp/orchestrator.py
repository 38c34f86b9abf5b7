"""The Orchestrator role on Kubeflow Pipelines 2.

`compile` writes the recipe as a KFP pipeline (IR YAML) for a cluster. `run` starts the run
in the spine, then runs the pipeline: with `kfp.local`'s subprocess runner when no `host` is
configured (each step in a process of its own, no cluster, no Docker), or on the KFP endpoint
with `kfp.Client`, waiting for it to finish. Each component runs its step through mlstack's
StepExecutor, so the spine reads as it does after a local run; the run's end (succeeded or
failed at which step) is recorded by this process from what the steps wrote."""

from __future__ import annotations

import tempfile
from collections.abc import Set
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stack.config.recipe_file import Recipe
from stack.errors import StackError
from stack.orchestration.engine import PipelineEngine
from stack.orchestration.executor import StepExecutor, outputs_root
from stack.plugins.manifest import AdapterContext
from stack_kfp.config import KfpConfig
from stack_kfp.pipeline import build_pipeline

if TYPE_CHECKING:
    from stack.session import StackSession


class KfpOrchestrator(PipelineEngine):
    name = "kfp"

    def __init__(self, config: KfpConfig | None, context: AdapterContext) -> None:
        self.config = config or KfpConfig()
        self.context = context
        self.outputs_root = outputs_root(context.home)

    def compile(self, recipe: Recipe, output: Path) -> Path:
        """The recipe as KFP IR YAML (the stack file the steps open is `stack.yaml` in the
        image's working directory)."""
        from kfp import compiler

        pipeline = build_pipeline(
            recipe, stack_file="stack.yaml", base_dir=".", image=self.config.image
        )
        output.parent.mkdir(parents=True, exist_ok=True)
        compiler.Compiler().compile(pipeline, str(output))
        return output

    def execute(self, executor: StepExecutor, run_id: str, reused: Set[str]) -> None:
        """On the KFP endpoint when `host` is set, else with kfp.local (a process per step)."""
        recipe, session = executor.recipe, executor.session
        arguments = {"run_id": run_id, "skip": ",".join(reused)}
        if self.config.host:
            self._submit(recipe, arguments)
        else:
            stack_file = str(session.source.resolve()) if session.source else ""
            self._run_locally(recipe, stack_file, str(session.base_dir), arguments)

    def _run_locally(
        self, recipe: Recipe, stack_file: str, base_dir: str, arguments: dict[str, str]
    ) -> None:
        from kfp import local

        root = self.context.home / "kfp"
        root.mkdir(parents=True, exist_ok=True)
        local.init(
            runner=local.SubprocessRunner(use_venv=False),
            pipeline_root=str(root),
            raise_on_error=True,
        )
        pipeline = build_pipeline(
            recipe, stack_file=stack_file, base_dir=base_dir, image=self.config.image
        )
        pipeline(**arguments)

    def _submit(self, recipe: Recipe, arguments: dict[str, str]) -> None:
        import kfp

        client = kfp.Client(host=self.config.host, namespace=self.config.namespace)
        with tempfile.TemporaryDirectory() as folder:
            package = self.compile(recipe, Path(folder) / "pipeline.yaml")
            started = client.create_run_from_pipeline_package(
                str(package),
                arguments=arguments,
                run_name=f"{recipe.name}-{arguments['run_id'][:8]}",
                experiment_name=self.config.experiment,
                enable_caching=False,
            )
        finished: Any = client.wait_for_run_completion(
            started.run_id, timeout=int(self.config.timeout_seconds)
        )
        state = str(getattr(finished, "state", "")).upper()
        if state != "SUCCEEDED":
            raise StackError(f"KFP run {started.run_id} ended {state or 'unknown'}")

    def schedule(self, recipe: Recipe, session: StackSession, *, cron: str, name: str) -> str:
        """A KFP recurring run of the compiled recipe (KFP's cron has a seconds field)."""
        if not self.config.host:
            raise StackError(
                "a Kubeflow schedule is a recurring run on a KFP endpoint: set "
                "`orchestrator.host` in stack.yaml (without one, use the crontab line of the "
                "local orchestrator)"
            )
        import kfp

        client = kfp.Client(host=self.config.host, namespace=self.config.namespace)
        experiment = client.create_experiment(
            self.config.experiment, namespace=self.config.namespace
        )
        with tempfile.TemporaryDirectory() as folder:
            package = self.compile(recipe, Path(folder) / "pipeline.yaml")
            job = client.create_recurring_run(
                experiment_id=experiment.experiment_id,
                job_name=name,
                cron_expression=f"0 {cron}",
                pipeline_package_path=str(package),
                params={"run_id": "", "skip": ""},
                enable_caching=False,
            )
        return f"KFP recurring run {name} ({job.recurring_run_id}) runs {recipe.name} on '{cron}'"

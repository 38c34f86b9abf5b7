"""Running one step in a process of its own: what an orchestrator's task does when it is
not the process that started the run (a Kubeflow component, a Kubernetes pod, a subprocess).

The task is told the stack file, the recipe, the run and the step; it opens its own session
(the spine is shared: a file on one machine, PostgreSQL on a cluster), registers the recipe's
hooks, and runs the step with the StepExecutor, which reads the inputs the spine points at."""

from __future__ import annotations

from pathlib import Path

from stack.config.recipe_file import load_recipe
from stack.orchestration.executor import StepExecutor, outputs_root


def run_one_step(
    *, stack_file: str, base_dir: str, recipe: str, run_id: str, step: str, orchestrator: str
) -> None:
    """`stack_file` empty for the embedded local stack."""
    from stack.session import StackSession

    loaded = load_recipe(Path(recipe))
    source = Path(stack_file) if stack_file else None
    with StackSession.open(source, recipe=loaded, base_dir=Path(base_dir)) as session:
        for target in loaded.spec.hooks:
            session.hooks.register_target(target, origin=str(loaded.path))
        executor = StepExecutor(
            loaded, session, outputs_root(session.home), orchestrator=orchestrator
        )
        executor.run_step(run_id, step)

"""Running one step in a process of its own: what an orchestrator's task does when it is
not the process that started the run (a Kubeflow component, a Kubernetes pod, a subprocess).

The task is told the stack file, the recipe, the run and the step; it opens its own session
with the recipe (the spine is shared: a file on one machine, PostgreSQL on a cluster; the
session registers the recipe's hooks), and runs the step with the StepExecutor, which reads
the inputs the spine points at."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stack.config.recipe_file import load_recipe
from stack.orchestration.executor import StepExecutor, outputs_root


def start_run(
    *, stack_file: str, base_dir: str, recipe: str, run_id: str, orchestrator: str
) -> str:
    """The run's id: `run_id` when the caller started it already, else a run started now
    (a scheduled pipeline on a cluster starts its own)."""
    if run_id:
        return run_id
    with _executor(stack_file, base_dir, recipe, orchestrator) as executor:
        return executor.start()


def finish_run(
    *, stack_file: str, base_dir: str, recipe: str, run_id: str, orchestrator: str
) -> None:
    """Every step succeeded: the run did (once, whoever records it first)."""
    with _executor(stack_file, base_dir, recipe, orchestrator) as executor:
        executor.succeed(run_id)


def run_one_step(
    *, stack_file: str, base_dir: str, recipe: str, run_id: str, step: str, orchestrator: str
) -> None:
    """`stack_file` empty for the embedded local stack."""
    with _executor(stack_file, base_dir, recipe, orchestrator) as executor:
        executor.run_step(run_id, step)


@contextmanager
def _executor(
    stack_file: str, base_dir: str, recipe: str, orchestrator: str
) -> Iterator[StepExecutor]:
    from stack.session import StackSession

    loaded = load_recipe(Path(recipe))
    source = Path(stack_file) if stack_file else None
    with StackSession.open(source, recipe=loaded, base_dir=Path(base_dir)) as session:
        yield StepExecutor(loaded, session, outputs_root(session.home), orchestrator=orchestrator)

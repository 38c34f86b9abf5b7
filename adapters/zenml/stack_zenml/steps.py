"""The one ZenML step every recipe step runs as: mlstack's step runner, told which step.

Module level, so ZenML can find it by its source; it returns nothing ZenML must store (the
step's output is kept by mlstack, where the spine points)."""

from __future__ import annotations

from zenml import step


@step(enable_cache=False)
def mlstack_step(
    stack_file: str, base_dir: str, recipe: str, run_id: str, step_name: str, skip: str
) -> None:
    from stack.orchestration.remote import run_one_step

    if step_name in skip.split(","):
        return
    run_one_step(
        stack_file=stack_file,
        base_dir=base_dir,
        recipe=recipe,
        run_id=run_id,
        step=step_name,
        orchestrator="zenml",
    )

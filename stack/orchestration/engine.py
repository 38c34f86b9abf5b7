"""What every orchestrator's `run` shares: begin → run the steps → succeed, or fail.

An orchestrator adapter subclasses `PipelineEngine` and writes only `execute`: how its tool
runs the steps (in this process in order, as a Prefect flow, a ZenML pipeline, a KFP run). The
rest is the same for all of them, and done here: the run is started in the spine (or takes
over the run it resumes), the tool runs what is not reused, and the run is recorded as
succeeded, or failed at the step that failed (Ctrl-C at the step it stopped in) and raised
as `StepFailed` naming it, with how to resume.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Set
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from stack.config.recipe_file import Recipe
from stack.contract.orchestration import PipelineRun
from stack.errors import StackError, StepFailed
from stack.orchestration.executor import StepExecutor

if TYPE_CHECKING:
    from stack.session import StackSession


class PipelineEngine(ABC):
    """Base of the Orchestrator adapters: `run(session)` is theirs, `execute` each one's own.

    `name` is what the spine records as the run's orchestrator; `outputs_root` is where step
    outputs are kept (set it in `__init__`)."""

    name: ClassVar[str]
    outputs_root: Path

    def run(self, session: StackSession, *, resume: str | None = None) -> PipelineRun:
        """Run the session's recipe; `resume` re-runs a failed (or abandoned) run from where
        it stopped. Raises StepFailed when a step fails (recorded, with the run, in the
        spine), StackError when the tool fails the run outside any step, and
        KeyboardInterrupt as it came (the run recorded failed first)."""
        executor = StepExecutor(
            session_recipe(session), session, self.outputs_root, orchestrator=self.name
        )
        run_id, reused = executor.begin(resume)
        try:
            self.execute(executor, run_id, reused.keys())
        except StepFailed:
            raise  # raised by the step in this process: recorded, with its own cause
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (`Terminated`)
            why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            executor.fail(run_id, "pipeline", why)  # no-op once a step said so
            raise
        except Exception as exc:
            raise executor.failure(run_id, exc) from exc
        return executor.succeed(run_id)

    @abstractmethod
    def execute(self, executor: StepExecutor, run_id: str, reused: Set[str]) -> None:
        """Run each step of `executor.recipe` not in `reused` (taken over from the resumed
        run), its needs first, with `executor.run_step(run_id, name)` in this process or
        `stack.orchestration.remote.run_one_step` in another. Return when every step
        succeeded; raise when the run did not (the step's own record says why)."""


def session_recipe(session: StackSession) -> Recipe:
    """The recipe the session was opened with; StackError when it was opened without one."""
    recipe = session.recipe
    if recipe is None:
        raise StackError(
            "this session was opened without a recipe, so there is nothing to run: open it "
            "with StackSession.open(stack_file, recipe=load_recipe(path))"
        )
    return recipe

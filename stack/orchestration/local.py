"""The local orchestrator: a recipe's steps in-process, in dependency order, resumable."""

from __future__ import annotations

import traceback
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stack.config.recipe_file import Recipe
from stack.contract.orchestration import PipelineRun, RunState, StepResult, StepStatus
from stack.errors import StackError, StepFailed
from stack.orchestration.local_config import LocalOrchestratorConfig
from stack.orchestration.outputs import load_output, save_output
from stack.orchestration.steps import StepContext, load_steps
from stack.plugins.manifest import AdapterContext
from stack.spine.timeutil import now_utc

if TYPE_CHECKING:
    from stack.session import StackSession
    from stack.spine.records import StepRecord

_REUSABLE = (StepStatus.SUCCEEDED.value, StepStatus.REUSED.value)


class LocalOrchestrator:
    def __init__(self, config: LocalOrchestratorConfig | None, context: AdapterContext) -> None:
        self.config = config or LocalOrchestratorConfig()
        outputs = Path(self.config.outputs_dir)
        self.outputs_root = outputs if outputs.is_absolute() else context.home / outputs

    def run(
        self, recipe: Recipe, session: StackSession, *, resume: str | None = None
    ) -> PipelineRun:
        """Run every step; on failure record it, fire the events, and raise StepFailed."""
        steps = load_steps(recipe)  # every step importable and callable before the first runs
        spine = session.spine
        reusable = self._reusable_steps(recipe, session, resume) if resume else {}
        run_id = uuid.uuid4().hex
        spine.start_pipeline_run(
            run_id, recipe=recipe.name, orchestrator="local", resumed_from=resume
        )
        session.emit("on_run_started", subject=run_id, run_id=run_id, recipe=recipe.name)
        outputs: dict[str, Any] = {}
        results: list[StepResult] = []
        reused: set[str] = set()
        for name in recipe.order():
            spec = recipe.step(name)
            started = now_utc()
            previous = reusable.get(name)
            # Reuse only a step whose inputs were reused too: a re-run input may differ now.
            if previous is not None and previous.output_uri and reused.issuperset(spec.needs):
                reused.add(name)
                outputs[name] = load_output(previous.output_uri, previous.output_digest)
                spine.record_step(
                    run_id,
                    name,
                    status=StepStatus.REUSED,
                    started_at=started,
                    finished_at=now_utc(),
                    output_uri=previous.output_uri,
                    output_digest=previous.output_digest,
                )
                results.append(StepResult(name, StepStatus.REUSED, started, now_utc()))
                self._step_event(session, run_id, name, StepStatus.REUSED)
                continue
            spine.record_step(run_id, name, status=StepStatus.RUNNING, started_at=started)
            session.emit("on_step_started", subject=run_id, run_id=run_id, step=name)
            loaded = steps[name]
            kwargs: dict[str, Any] = {need: outputs[need] for need in spec.needs}
            kwargs.update(spec.params)
            if loaded.wants_context:
                workdir = self.outputs_root / run_id / f"{name}.files"
                kwargs["ctx"] = StepContext(
                    run_id=run_id,
                    step=name,
                    recipe=recipe,
                    session=session,
                    workdir=workdir,
                    params=dict(spec.params),
                )
            try:
                value = loaded.function(**kwargs)
                uri, digest = save_output(self.outputs_root / run_id, name, value)
            except BaseException as exc:  # Ctrl-C too: the spine must say where the run stopped
                error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                self._fail(session, recipe, run_id, name, started, error)
                if not isinstance(exc, Exception):
                    raise
                raise StepFailed(run_id, name, exc) from exc
            outputs[name] = value
            finished = now_utc()
            spine.record_step(
                run_id,
                name,
                status=StepStatus.SUCCEEDED,
                started_at=started,
                finished_at=finished,
                output_uri=uri,
                output_digest=digest,
            )
            results.append(StepResult(name, StepStatus.SUCCEEDED, started, finished))
            self._step_event(session, run_id, name, StepStatus.SUCCEEDED)
        spine.finish_pipeline_run(run_id, state=RunState.SUCCEEDED)
        self._run_event(session, recipe, run_id, RunState.SUCCEEDED)
        return PipelineRun(run_id, recipe.name, RunState.SUCCEEDED, tuple(results), resume)

    def _fail(
        self,
        session: StackSession,
        recipe: Recipe,
        run_id: str,
        step: str,
        started: Any,
        error: str,
    ) -> None:
        spine = session.spine
        spine.record_step(
            run_id,
            step,
            status=StepStatus.FAILED,
            started_at=started,
            finished_at=now_utc(),
            error=error,
        )
        spine.finish_pipeline_run(run_id, state=RunState.FAILED, error=f"{step}: {error}")
        self._step_event(session, run_id, step, StepStatus.FAILED)
        self._run_event(session, recipe, run_id, RunState.FAILED)

    @staticmethod
    def _step_event(session: StackSession, run_id: str, step: str, status: StepStatus) -> None:
        session.emit(
            "on_step_finished", subject=run_id, run_id=run_id, step=step, status=status.value
        )

    @staticmethod
    def _run_event(session: StackSession, recipe: Recipe, run_id: str, state: RunState) -> None:
        session.emit(
            "on_run_finished", subject=run_id, run_id=run_id, recipe=recipe.name, state=state.value
        )

    def _reusable_steps(
        self, recipe: Recipe, session: StackSession, resume: str
    ) -> dict[str, StepRecord]:
        previous = session.spine.pipeline_run(resume)
        if previous is None:
            raise StackError(f"no run {resume!r} to resume; `mlstack runs` lists the runs")
        if previous.recipe != recipe.name:
            raise StackError(f"run {resume} is of recipe {previous.recipe!r}, not {recipe.name!r}")
        if previous.state != RunState.FAILED.value:
            raise StackError(f"run {resume} is {previous.state}, not failed: nothing to resume")
        return {
            s.step: s
            for s in previous.steps
            if s.status in _REUSABLE and s.output_uri and Path(s.output_uri).is_file()
        }

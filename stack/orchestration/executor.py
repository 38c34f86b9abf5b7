"""One step of a pipeline run, run the same way whichever orchestrator schedules it.

An orchestrator decides *when* a step runs (in order, in parallel, in another process, on a
cluster); `StepExecutor` decides *how*: its inputs are the saved outputs of the steps it
needs, read back through the spine's record of this run (so the step may run in a process
that never saw them), the function is called, the output saved, the step recorded in the
spine and the lifecycle events fired. So the spine reads the same after a run on the local
orchestrator, Prefect, ZenML or Kubeflow Pipelines."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from stack import interrupts
from stack.config.param_overrides import ParamOverride, parse_override, same_value
from stack.config.recipe_file import Recipe
from stack.contract.capabilities import TrackerCapability
from stack.contract.orchestration import PipelineRun, RunState, StepResult, StepStatus
from stack.contract.roles import Role
from stack.contract.tracking import PIPELINE_RUN_ENV, RunCloser, RunStatus
from stack.errors import StackError, StepFailed
from stack.orchestration.failure import (
    describe_failure,
    keep_traceback,
    shown_path,
    traceback_path,
)
from stack.orchestration.lease import Heartbeat, ProcessIdentity
from stack.orchestration.outputs import load_output, save_output
from stack.orchestration.steps import LoadedStep, StepContext, check_overrides, load_steps
from stack.plugins.capabilities import declares
from stack.spine.timeutil import now_utc

if TYPE_CHECKING:
    from stack.session import StackSession
    from stack.spine.records import StepRecord


class StepExecutor:
    def __init__(
        self, recipe: Recipe, session: StackSession, outputs_root: Path, *, orchestrator: str
    ) -> None:
        self.recipe = recipe
        self.session = session
        self.outputs_root = outputs_root
        self.orchestrator = orchestrator
        self._steps: dict[str, LoadedStep] | None = None
        self._heartbeats: dict[str, Heartbeat] = {}

    @property
    def steps(self) -> dict[str, LoadedStep]:
        """Every step imported and checked (once) before the first one runs."""
        if self._steps is None:
            self._steps = load_steps(self.recipe)
        return self._steps

    # -- the run ----------------------------------------------------------------------------

    def start(
        self,
        *,
        run_id: str | None = None,
        resumed_from: str | None = None,
        overrides: tuple[ParamOverride, ...] | None = None,
        drive: bool = False,
    ) -> str:
        """Record a new run with its `--param` overrides (default: the recipe's), which
        every step of it then receives, in whichever process it runs.

        `drive`: this process drives the run to its end, and holds its lease (renewed from
        a thread until the run ends) so that its death is seen: the run shows `abandoned`
        and `--resume` takes it over."""
        self.steps  # noqa: B018  (a typo in the recipe fails before the run is recorded)
        chosen = self.recipe.overrides if overrides is None else overrides
        run_id = run_id or uuid.uuid4().hex
        spine = self.session.spine
        holder = ProcessIdentity.current() if drive else None
        spine.start_pipeline_run(
            run_id,
            recipe=self.recipe.name,
            orchestrator=self.orchestrator,
            resumed_from=resumed_from,
            param_overrides=[str(o) for o in chosen],
            lease=holder.lease(now_utc()) if holder else None,
        )
        if holder is not None:
            self._heartbeats[run_id] = Heartbeat(
                lambda: spine.renew_lease(run_id, holder.lease(now_utc()))
            ).start()
        self._emit("on_run_started", run_id, run_id=run_id, recipe=self.recipe.name)
        return run_id

    def _release(self, run_id: str) -> None:
        heartbeat = self._heartbeats.pop(run_id, None)
        if heartbeat is not None:
            heartbeat.stop()

    def succeed(self, run_id: str) -> PipelineRun:
        """The run succeeded (recorded once, whoever notices first)."""
        self._release(run_id)
        record = self.session.spine.pipeline_run(run_id)
        if record is not None and record.state == RunState.SUCCEEDED.value:
            return self.result(run_id)
        self.session.spine.finish_pipeline_run(run_id, state=RunState.SUCCEEDED)
        self._emit(
            "on_run_finished",
            run_id,
            run_id=run_id,
            recipe=self.recipe.name,
            state=RunState.SUCCEEDED.value,
        )
        return self.result(run_id)

    def fail(self, run_id: str, step: str, error: str) -> None:
        """The run failed at `step` (recorded once, whoever notices first)."""
        self._release(run_id)
        record = self.session.spine.pipeline_run(run_id)
        if record is not None and record.state == RunState.FAILED.value:
            return
        self.session.spine.finish_pipeline_run(
            run_id, state=RunState.FAILED, error=f"{step}: {error}"
        )
        self._emit(
            "on_run_finished",
            run_id,
            run_id=run_id,
            recipe=self.recipe.name,
            state=RunState.FAILED.value,
        )

    def result(self, run_id: str) -> PipelineRun:
        record = self.session.spine.pipeline_run(run_id)
        if record is None:
            raise StackError(f"no run {run_id!r} in the spine")
        steps = tuple(
            StepResult(s.step, StepStatus(s.status), s.started_at, s.finished_at, s.error)
            for s in sorted(record.steps, key=lambda s: self.recipe.order().index(s.step))
        )
        return PipelineRun(
            run_id, record.recipe, RunState(record.state), steps, record.resumed_from
        )

    # -- one step ---------------------------------------------------------------------------

    def run_step(self, run_id: str, name: str) -> Any:
        """Run `name` with the outputs its needs saved in this run; record and announce it.
        A failure is recorded (step and run) and raised as StepFailed; Ctrl-C is recorded
        and raised as it is."""
        spec = self.recipe.step(name)
        loaded = self.steps[name]
        started = now_utc()
        kwargs: dict[str, Any] = self.inputs(run_id, spec.needs)
        params = self.recipe.params(name, self.overrides(run_id))
        kwargs.update(params)
        if loaded.wants_context:
            kwargs["ctx"] = StepContext(
                run_id=run_id,
                step=name,
                recipe=self.recipe,
                session=self.session,
                workdir=self.outputs_root / run_id / f"{name}.files",
                params=dict(params),
            )
        self.session.spine.record_step(run_id, name, status=StepStatus.RUNNING, started_at=started)
        self._emit("on_step_started", run_id, run_id=run_id, step=name)
        runs_before = self._open_tracking_runs()
        try:
            with _pipeline_run_in_environment(run_id):
                value = loaded.function(**kwargs)
            interrupts.check()  # a Ctrl-C some finalizer swallowed still stops the run here
            uri, digest = save_output(self.outputs_root / run_id, name, value)
        except BaseException as exc:  # Ctrl-C too: the spine must say where the run stopped
            failure = describe_failure(exc, self._code_folders(loaded))
            kept = keep_traceback(self.outputs_root / run_id, name, failure)
            error = failure.summary
            self.session.spine.record_step(
                run_id,
                name,
                status=StepStatus.FAILED,
                started_at=started,
                finished_at=now_utc(),
                error=error,
            )
            self._emit(
                "on_step_finished", run_id, run_id=run_id, step=name, status=StepStatus.FAILED.value
            )
            self.fail(run_id, name, error)
            # after the spine, so a second Ctrl-C here cannot leave the spine saying RUNNING
            self._end_tracking_runs(runs_before, interrupted=not isinstance(exc, Exception))
            if not isinstance(exc, Exception):
                raise
            raise StepFailed(
                run_id, name, error, self.recipe_argument(), shown_path(kept) if kept else None
            ) from exc
        self.session.spine.record_step(
            run_id,
            name,
            status=StepStatus.SUCCEEDED,
            started_at=started,
            finished_at=now_utc(),
            output_uri=uri,
            output_digest=digest,
        )
        self._emit(
            "on_step_finished", run_id, run_id=run_id, step=name, status=StepStatus.SUCCEEDED.value
        )
        return value

    def _code_folders(self, loaded: LoadedStep) -> tuple[Path, ...]:
        """Where the recipe's own code lies: its folder, and its step's module's."""
        code = getattr(loaded.function, "__code__", None)  # None: a callable object
        module = (Path(code.co_filename).parent,) if code is not None else ()
        return (self.recipe.directory, *module)

    def _run_closer(self) -> RunCloser | None:
        """The tracker, when it is built already (not here: mlflow imports slowly) and can
        end the runs a step left open."""
        tracker = self.session.opened(Role.TRACKER)
        if tracker is None or not declares(self.session, TrackerCapability.CLOSE_RUNS):
            return None
        return cast(RunCloser, tracker)  # the registry checked it

    def _open_tracking_runs(self) -> frozenset[str]:
        tracker = self._run_closer()
        return tracker.open_runs() if tracker is not None else frozenset()

    def _end_tracking_runs(self, before: frozenset[str], *, interrupted: bool) -> None:
        """End FAILED (KILLED on Ctrl-C) the tracking runs the failed step opened and left
        open, else they would read FINISHED at exit; a tracker fault must not hide the step's
        error."""
        tracker = self._run_closer()
        if tracker is None:
            return
        status = RunStatus.KILLED if interrupted else RunStatus.FAILED
        try:
            tracker.end_open_runs(status, keep=before)
        except Exception as exc:
            print(
                f"mlstack: could not mark the step's tracking runs {status}: {exc}", file=sys.stderr
            )

    def reuse_step(self, run_id: str, name: str, uri: str, digest: str | None) -> None:
        """Take over a step's output from the run being resumed (recorded as `reused`)."""
        started = now_utc()
        load_output(uri, digest)  # refuses an output changed on disk
        self.session.spine.record_step(
            run_id,
            name,
            status=StepStatus.REUSED,
            started_at=started,
            finished_at=now_utc(),
            output_uri=uri,
            output_digest=digest,
        )
        self._emit(
            "on_step_finished", run_id, run_id=run_id, step=name, status=StepStatus.REUSED.value
        )

    def inputs(self, run_id: str, needs: tuple[str, ...]) -> dict[str, Any]:
        """The saved outputs of `needs` in this run, read back from where the spine says."""
        if not needs:
            return {}
        record = self.session.spine.pipeline_run(run_id)
        saved = {s.step: s for s in record.steps} if record is not None else {}
        values: dict[str, Any] = {}
        for need in needs:
            step = saved.get(need)
            if step is None or step.output_uri is None:
                raise StackError(f"step {need!r} has no saved output in run {run_id}")
            values[need] = load_output(step.output_uri, step.output_digest)
        return values

    def overrides(self, run_id: str) -> tuple[ParamOverride, ...]:
        """The `--param`s run `run_id` was started with, as the spine recorded them (so a
        step run in another process receives them too)."""
        record = self.session.spine.pipeline_run(run_id)
        return tuple(parse_override(o) for o in (record.param_overrides if record else ()))

    def begin(self, resume: str | None = None) -> tuple[str, dict[str, StepRecord]]:
        """Start a run; with `resume`, take over what the failed run may lend (recorded as
        `reused` at once). Returns the run id and the reused steps, which need no running.

        A resumed run keeps the `--param`s of the run it resumes (its reused outputs were
        made with them); one given now that differs is refused (StackError) before the run
        starts. A run whose process died (`abandoned`) is taken over: what it left behind
        is reconciled first (see `stack.orchestration.reconcile`)."""
        self.steps  # noqa: B018  (every step importable and callable before the run starts)
        overrides = self.recipe.overrides
        reuse: dict[str, StepRecord] = {}
        if resume:  # every refusal before the take-over: a refused resume changes nothing
            overrides = resumed_overrides(resume, self.overrides(resume), overrides)
            check_overrides(self.recipe, overrides, self.steps)  # the recipe may have changed
            reuse = steps_to_reuse(self.recipe, reusable_steps(self.recipe, self.session, resume))
        run_id = self.start(resumed_from=resume, overrides=overrides, drive=True)
        for name, previous in reuse.items():
            assert previous.output_uri is not None
            self.reuse_step(run_id, name, previous.output_uri, previous.output_digest)
        return run_id, reuse

    def recipe_argument(self) -> str:
        """The recipe as `mlstack run` takes it: its folder (or its file when not named
        recipe.yaml), relative to the working folder when inside it."""
        from stack.config.recipe_file import RECIPE_FILENAME

        path = self.recipe.path.resolve()
        return shown_path(path.parent if path.name == RECIPE_FILENAME else path)

    def failure(self, run_id: str, cause: BaseException) -> StackError:
        """What to raise when an engine reports a failed run: the step that failed, as that
        step recorded it in the spine (or the engine's own error when no step did)."""
        record = self.session.spine.pipeline_run(run_id)
        failed = [s for s in (record.steps if record else ()) if s.status == "failed"]
        if failed:
            step, error = failed[0].step, failed[0].error or "failed"
            self.fail(run_id, step, error)
            kept = traceback_path(self.outputs_root / run_id, step)
            return StepFailed(
                run_id,
                step,
                error,
                self.recipe_argument(),
                shown_path(kept) if kept.is_file() else None,
            )
        self.fail(run_id, "pipeline", f"{type(cause).__name__}: {cause}")
        return StackError(
            f"the {self.orchestrator} run {run_id} failed: {type(cause).__name__}: {cause}"
        )

    def _emit(self, event: str, subject: str, **arguments: Any) -> None:
        self.session.emit(event, subject=subject, **arguments)


_REUSABLE = (StepStatus.SUCCEEDED.value, StepStatus.REUSED.value)
_RESUMABLE = (RunState.FAILED.value, RunState.ABANDONED.value)


def reusable_steps(recipe: Recipe, session: StackSession, resume: str) -> dict[str, StepRecord]:
    """The steps of failed (or abandoned) run `resume` whose saved outputs a new run may
    take over. A run recorded as running whose process died is abandoned here, and what it
    left behind reconciled, before anything is taken over; one whose process lives (or
    cannot be judged from this host) is refused."""
    previous = session.spine.pipeline_run(resume)
    if previous is None:
        raise StackError(f"no run {resume!r} to resume; `mlstack runs` lists the runs")
    if previous.recipe != recipe.name:
        raise StackError(f"run {resume} is of recipe {previous.recipe!r}, not {recipe.name!r}")
    if previous.state == RunState.RUNNING.value:
        from stack.orchestration.reconcile import take_over

        previous = take_over(session, previous)
    if previous.state not in _RESUMABLE:
        raise StackError(f"run {resume} is {previous.state}, not failed: nothing to resume")
    return {
        s.step: s
        for s in previous.steps
        if s.status in _REUSABLE and s.output_uri and Path(s.output_uri).is_file()
    }


def resumed_overrides(
    resume: str, recorded: tuple[ParamOverride, ...], given: tuple[ParamOverride, ...]
) -> tuple[ParamOverride, ...]:
    """The `--param`s of a run that resumes run `resume`: those it was started with.

    A `--param` given again with the same value is accepted (the command line of the failed
    run, with `--resume` added); one with another value, or one the run did not have, would
    give the re-run steps params the reused outputs were not made with: StackError."""
    by_key = {o.key: o for o in recorded}
    conflicts = [
        o
        for o in given
        if (kept := by_key.get(o.key)) is None or not same_value(kept.value, o.value)
    ]
    if not conflicts:
        return recorded
    started = " ".join(f"--param {o}" for o in recorded) or "no --param"
    lines = "".join(
        f"\n  --param {o}: run {resume} had "
        + (f"--param {by_key[o.key]}" if o.key in by_key else f"no --param {o.step}.{o.name}")
        for o in conflicts
    )
    raise StackError(
        f"cannot resume run {resume} with other params: it was started with {started}, and "
        f"a resumed run keeps them (its reused outputs were made with them){lines}\n"
        "  hint: resume without --param (the run's own are kept), or leave out --resume "
        "to start a new run with the new values"
    )


def steps_to_reuse(recipe: Recipe, reusable: dict[str, StepRecord]) -> dict[str, StepRecord]:
    """Of the reusable steps, those whose inputs are reused too (a re-run input may differ
    now, so everything after a re-run step runs again)."""
    chosen: dict[str, StepRecord] = {}
    for name in recipe.order():
        previous = reusable.get(name)
        if previous is not None and set(recipe.step(name).needs) <= set(chosen):
            chosen[name] = previous
    return chosen


@contextmanager
def _pipeline_run_in_environment(run_id: str) -> Iterator[None]:
    """The step's code (and the processes it starts) can tell which pipeline run it works
    for: trackers tag the runs they open with it, rollouts name it as their owner."""
    before = os.environ.get(PIPELINE_RUN_ENV)
    os.environ[PIPELINE_RUN_ENV] = run_id
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(PIPELINE_RUN_ENV, None)
        else:
            os.environ[PIPELINE_RUN_ENV] = before


def outputs_root(home: Path, configured: str = "runs") -> Path:
    """Where step outputs are kept: `configured` under the stack's home unless absolute."""
    path = Path(configured)
    return path if path.is_absolute() else home / path

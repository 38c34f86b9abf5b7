"""Behaviour every Orchestrator adapter must have.

Provide an `orchestrator_session` fixture: a StackSession opened with the suite's `recipe`
fixture (`StackSession.open(stack_file, recipe=recipe)`), whose orchestrator role is the
adapter under test and whose spine lives in the test's tmp_path.
"""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest

from stack.config.recipe_file import Recipe, load_recipe
from stack.contract.capabilities import OrchestratorCapability
from stack.contract.orchestration import RunState, StepStatus
from stack.errors import StepFailed
from stack.hooks.specs import hookimpl
from stack.session import StackSession
from stack.testing.base import RoleSuite

STEPS = """
from pathlib import Path

def load():
    return [1, 2, 3]

def double(load):
    return [x * 2 for x in load]

def total(load, double, offset=0):
    return sum(load) + sum(double) + offset

def check(total):
    if not Path(__file__).with_name("fixed.flag").exists():
        raise RuntimeError("flag missing")
    return {"total": total}
"""

RECIPE = """
name: suite-recipe
steps:
  - {name: check, run: "suite_steps:check", needs: [total]}
  - {name: total, run: "suite_steps:total", needs: [load, double], params: {offset: 100}}
  - {name: double, run: "suite_steps:double", needs: [load]}
  - {name: load, run: "suite_steps:load"}
"""


class _Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []

    @hookimpl
    def on_run_started(self, run_id: str, recipe: str) -> None:
        self.events.append(("started", recipe))

    @hookimpl
    def on_step_finished(self, run_id: str, step: str, status: str) -> None:
        self.events.append(("step", step, status))

    @hookimpl
    def on_run_finished(self, run_id: str, recipe: str, state: str) -> None:
        self.events.append(("finished", state))


class OrchestratorSuite(RoleSuite):
    @pytest.fixture
    def recipe(self, tmp_path: Path) -> Recipe:
        folder = tmp_path / "suite_recipe"
        folder.mkdir()
        (folder / "suite_steps.py").write_text(dedent(STEPS))
        (folder / "recipe.yaml").write_text(dedent(RECIPE))
        return load_recipe(folder)

    @staticmethod
    def fix(recipe: Recipe) -> None:
        (recipe.directory / "fixed.flag").write_text("")

    def test_it_implements_what_it_declares(self, orchestrator_session: StackSession) -> None:
        self.check_declared(orchestrator_session.orchestrator)

    def test_steps_run_in_dependency_order_with_outputs_passed(
        self, orchestrator_session: StackSession, recipe: Recipe
    ) -> None:
        self.fix(recipe)
        run = orchestrator_session.orchestrator.run(orchestrator_session)
        assert run.state == RunState.SUCCEEDED
        assert [s.name for s in run.steps] == ["load", "double", "total", "check"]
        record = orchestrator_session.spine.pipeline_run(run.run_id)
        assert record is not None and record.state == "succeeded"
        assert {s.step: s.status for s in record.steps} == dict.fromkeys(
            ["load", "double", "total", "check"], "succeeded"
        )

    def test_outputs_reach_the_last_step(
        self, orchestrator_session: StackSession, recipe: Recipe
    ) -> None:
        self.fix(recipe)
        run = orchestrator_session.orchestrator.run(orchestrator_session)
        record = orchestrator_session.spine.pipeline_run(run.run_id)
        assert record is not None
        check = next(s for s in record.steps if s.step == "check")
        assert check.output_digest  # the output was kept for lineage and resume

    def test_first_failure_stops_the_run_naming_the_step(
        self, orchestrator_session: StackSession, recipe: Recipe
    ) -> None:
        with pytest.raises(StepFailed) as caught:
            orchestrator_session.orchestrator.run(orchestrator_session)
        assert caught.value.step == "check"
        assert "flag missing" in str(caught.value)
        record = orchestrator_session.spine.pipeline_run(caught.value.run_id)
        assert record is not None
        assert record.state == "failed"
        failed = next(s for s in record.steps if s.step == "check")
        assert failed.status == "failed" and "flag missing" in (failed.error or "")

    def test_failed_run_resumes_from_the_failed_step(
        self, orchestrator_session: StackSession, recipe: Recipe
    ) -> None:
        self.require(OrchestratorCapability.RESUME)
        with pytest.raises(StepFailed) as caught:
            orchestrator_session.orchestrator.run(orchestrator_session)
        self.fix(recipe)
        resumed = orchestrator_session.orchestrator.run(
            orchestrator_session, resume=caught.value.run_id
        )
        assert resumed.state == RunState.SUCCEEDED
        assert resumed.resumed_from == caught.value.run_id
        statuses = {s.name: s.status for s in resumed.steps}
        assert statuses == {
            "load": StepStatus.REUSED,
            "double": StepStatus.REUSED,
            "total": StepStatus.REUSED,
            "check": StepStatus.SUCCEEDED,
        }

    def test_lifecycle_events_fire_in_order(
        self, orchestrator_session: StackSession, recipe: Recipe
    ) -> None:
        self.require(
            OrchestratorCapability.IN_PROCESS
        )  # hooks registered in this process see every event
        self.fix(recipe)
        recorder = _Recorder()
        orchestrator_session.hooks.register(recorder)
        orchestrator_session.orchestrator.run(orchestrator_session)
        events: list[Any] = recorder.events
        assert events[0] == ("started", "suite-recipe")
        assert events[-1] == ("finished", "succeeded")
        assert [e[1] for e in events if e[0] == "step"] == ["load", "double", "total", "check"]

    def test_lifecycle_events_are_recorded_in_the_spine(
        self, orchestrator_session: StackSession, recipe: Recipe
    ) -> None:
        self.fix(recipe)
        run = orchestrator_session.orchestrator.run(orchestrator_session)
        names = [e.name for e in orchestrator_session.spine.events(subject=run.run_id)]
        assert names[0] == "on_run_started"
        assert names[-1] == "on_run_finished"
        assert names.count("on_step_finished") == 4

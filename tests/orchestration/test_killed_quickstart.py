"""kill -9 at every step of the quickstart: each killed run is seen `abandoned`, what it left
behind is put back (the endpoint serving a canary that never passed the serving gate, a
version in canary or shadow, an MLflow run left RUNNING), and `--resume` finishes the run.

The tests run in order and form one chain, to keep it to about one quickstart's time: the
first run is killed at `generate_data`, its resume is killed at the next step, and so on;
the last resume finishes. Each step is killed after its work, before its output is saved
(its effects done, the spine saying it runs), except `deploy` and `monitor`, killed inside
their rollouts: `deploy` once its first canary serves alone, `monitor` once the retraining
it starts has put its challenger in shadow."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack.contract.states import LifecycleState
from stack.orchestration.reconcile import Doctor, describe_state
from stack.session import StackSession
from tests.recipes.conftest import copy_recipe, endpoints_stopped
from tests.support import cli

STEPS = (
    "generate_data",
    "apply_features",
    "training_frame",
    "train",
    "evaluate",
    "register",
    "approve",
    "deploy",
    "replay",
    "late_labels",
    "monitor",
    "summary",
)

KILLING = '''
"""The quickstart's steps, each killed -9 when KILL_AT names it."""

import functools
import os
import signal

import churn
import live

from stack.hooks.specs import hookimpl


def die():
    os.kill(os.getpid(), signal.SIGKILL)


class DieInState:
    """Dies as soon as a version enters `state` (inside a rollout)."""

    def __init__(self, state):
        self.state = state

    @hookimpl
    def on_promoted(self, version, previous_state):
        if version.state.value == self.state:
            die()


INSIDE = {"deploy": "canary", "monitor": "shadow"}


def killable(step):
    @functools.wraps(step)
    def run(**kwargs):
        name = kwargs["ctx"].step
        killed = os.environ.get("KILL_AT") == name
        if killed and name in INSIDE:
            kwargs["ctx"].session.hooks.register(DieInState(INSIDE[name]), name="killer")
        result = step(**kwargs)
        if killed:
            die()
        return result

    return run


generate_customers = killable(churn.generate_customers)
apply_features = killable(churn.apply_features)
training_frame = killable(churn.training_frame)
train = killable(churn.train)
evaluate = killable(churn.evaluate)
register = killable(churn.register)
approve = killable(churn.approve)
deploy = killable(live.deploy)
replay = killable(live.replay)
late_labels = killable(live.late_labels)
monitor = killable(live.monitor)
summary = killable(live.summary)
'''


# What `mlstack doctor` finds after these kills, besides the run itself (the others leave
# nothing but the run).
FOUND = {
    "train": "tracking run(s) left open",
    "deploy": "without passing the serving gate",
    "monitor": "shadow with no rollout in progress",
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("killed-quickstart")
    recipe = copy_recipe("quickstart", folder, **{"customers: 2000": "customers: 600"})
    (recipe / "killing.py").write_text(KILLING)
    text = (recipe / "recipe.yaml").read_text()
    (recipe / "recipe.yaml").write_text(
        text.replace("run: churn:", "run: killing:").replace("run: live:", "run: killing:")
    )
    with endpoints_stopped(folder):
        yield folder


def session(project: Path) -> StackSession:
    return StackSession.open(project / "stack.yaml", base_dir=project)


def mlstack(project: Path, *args: str, kill_at: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KILL_AT": kill_at, "MLSTACK_USER": "tester"}
    return cli.mlstack(*args, cwd=project, env=env)


def latest_run(project: Path) -> str:
    with session(project) as opened:
        return opened.spine.pipeline_runs(recipe="quickstart", limit=1)[0].run_id


@pytest.fixture(scope="module")
def chain() -> list[str]:
    """The ids of the runs killed so far, in order."""
    return []


@pytest.mark.parametrize("step", STEPS)
def test_killed_at_the_step_is_abandoned_and_reported(
    project: Path, chain: list[str], step: str
) -> None:
    args = ["run", "quickstart"] + (["--resume", chain[-1]] if chain else [])
    done = mlstack(project, *args, kill_at=step)
    assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr
    run_id = latest_run(project)
    chain.append(run_id)
    with session(project) as opened:
        record = opened.spine.pipeline_run(run_id)
        assert record is not None and record.state == "running"
        assert describe_state(record).startswith("abandoned (its process, pid ")
        assert [s.step for s in record.steps if s.status == "running"] == [step]
        if step == "deploy":  # the symptom: a canary alone on the endpoint
            [endpoint] = opened.server.endpoints()
            [(ref, weight)] = endpoint.split.weights.items()
            assert weight == 1.0
            assert opened.registry.get_version("churn", int(ref.split("@")[1])).state == (
                LifecycleState.CANARY
            )
        if step in FOUND:
            found = [f"{p.subject}  {p.found}" for p in Doctor(opened).examine()]
            assert any(f"run:{run_id}" in line for line in found), found
            assert any(FOUND[step] in line for line in found), found
    if step == "deploy":  # repaired on demand here; the others by the resume itself
        repaired = mlstack(project, "doctor", "--repair")
        assert repaired.returncode == 0, repaired.stdout + repaired.stderr
        assert "undeployed endpoint churn" in repaired.stdout
        assert "canary -> approved" in repaired.stdout


def test_the_last_resume_finishes_and_nothing_is_left_behind(
    project: Path, chain: list[str]
) -> None:
    assert len(chain) == len(STEPS)
    done = mlstack(project, "run", "quickstart", "--resume", chain[-1])
    assert done.returncode == 0, done.stdout + done.stderr
    with session(project) as opened:
        spine = opened.spine
        for run_id, step in zip(chain, STEPS, strict=True):
            record = spine.pipeline_run(run_id)
            assert record is not None and record.state == "abandoned", run_id
            interrupted = {s.step: s for s in record.steps}[step]
            assert interrupted.status == "failed" and "abandoned" in (interrupted.error or "")
        actions = [e.action for e in spine.audit_entries()]
        assert actions.count("run.abandoned") >= len(STEPS)
        assert "tracking.runs_killed" in actions
        assert "rollout.rolled_back" in actions
        assert spine.verify_audit().ok

        registry = opened.registry
        serving = registry.find_by_state("churn", LifecycleState.SERVING)
        assert len(serving) == 1
        for state in (LifecycleState.CANARY, LifecycleState.SHADOW):
            assert registry.find_by_state("churn", state) == []
        [endpoint] = opened.server.endpoints()
        assert dict(endpoint.split.weights) == {serving[0].ref: 1.0}

    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{project / '.mlstack' / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    assert client.search_runs(experiments, "attributes.status = 'RUNNING'") == []
    assert mlstack(project, "doctor").stdout.strip() == "no problems found"

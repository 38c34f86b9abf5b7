"""A run whose process is killed (-9) is shown `abandoned`, `mlstack doctor` lists and repairs
it, and `--resume` finishes it from the step that was interrupted; a run on another host is
judged by its lease's age only."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from stack.spine import SpineStore
from stack.spine.records import RunLease
from stack.spine.timeutil import now_utc
from tests.cli.conftest import Cli
from tests.cli.test_run_command import make_recipe
from tests.support.cli import mlstack

KILLABLE_STEPS = """
import os
import signal


def prepare():
    return {"rows": 3}


def train(prepare):
    if os.environ.get("KILL_AT") == "train":  # kill -9, as the OOM killer or a lost node would
        os.kill(os.getpid(), signal.SIGKILL)
    return prepare["rows"] * 2
"""

KILLABLE_RECIPE = """
name: killable
steps:
  - {name: prepare, run: "steps:prepare"}
  - {name: train, run: "steps:train", needs: [prepare]}
"""


def killed_run(workdir: Path) -> str:
    recipe = make_recipe(workdir / "killable", KILLABLE_RECIPE, KILLABLE_STEPS)
    env = {**os.environ, "KILL_AT": "train", "PYTHONUNBUFFERED": "1"}
    done = mlstack("run", str(recipe), cwd=workdir, env=env, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr
    return done.stdout.split("run killable ")[1].split()[0]


@contextmanager
def spine(workdir: Path) -> Iterator[SpineStore]:
    store = SpineStore.open(f"sqlite:///{workdir / '.mlstack' / 'spine.db'}")
    try:
        yield store
    finally:
        store.close()


def test_a_killed_run_is_abandoned_and_resumes_from_the_interrupted_step(
    cli: Cli, workdir: Path
) -> None:
    run_id = killed_run(workdir)
    runs = cli("runs", check=True).stdout
    assert f"{run_id}  killable  abandoned" in runs
    assert "running    train" in runs

    refused = cli("run", "killable", "--resume", run_id, "--param", "train.rows=4")
    assert refused.returncode != 0 and "recorded abandoned" not in refused.stderr
    with spine(workdir) as store:  # a refused resume takes nothing over
        assert store.audit_entries(action="run.abandoned") == []

    resumed = cli("run", "killable", "--resume", run_id)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "↺ prepare" in resumed.stdout and "✓ train" in resumed.stdout
    assert f"mlstack: run:{run_id}: recorded abandoned" in resumed.stderr

    runs = cli("runs", check=True).stdout
    assert f"(resumes {run_id})" in runs
    assert f"{run_id}  killable  abandoned" in runs
    assert "failed     train  abandoned: its process (pid" in runs
    with spine(workdir) as store:
        [entry] = store.audit_entries(action="run.abandoned")
        assert entry.subject == f"run:{run_id}"


def test_doctor_lists_a_dead_run_and_repairs_it_on_demand(cli: Cli, workdir: Path) -> None:
    run_id = killed_run(workdir)
    found = cli("doctor")
    assert found.returncode == 1
    assert f"run:{run_id}  killable at step train: abandoned" in found.stdout
    assert "1 problem found" in found.stdout

    repaired = cli("doctor", "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert f"repaired  run run:{run_id}: recorded abandoned" in repaired.stdout
    assert cli("doctor").stdout.strip() == "no problems found"


def test_a_live_run_cannot_be_resumed(cli: Cli, workdir: Path) -> None:
    cli("spine", "upgrade", check=True)  # creates the spine
    with spine(workdir) as store:
        me = RunLease(os.getpid(), os.uname().nodename, "", now_utc())
        store.start_pipeline_run("live1", recipe="killable", orchestrator="local", lease=me)
    make_recipe(workdir / "killable", KILLABLE_RECIPE, KILLABLE_STEPS)
    refused = cli("run", "killable", "--resume", "live1")
    assert refused.returncode == 1
    assert f"run live1 is running (pid {os.getpid()}" in refused.stderr
    assert "wait for it to end, or stop it first" in refused.stderr


def test_a_run_on_another_host_is_judged_by_its_lease_age(cli: Cli, workdir: Path) -> None:
    cli("spine", "upgrade", check=True)  # creates the spine
    old = now_utc() - timedelta(minutes=10)
    with spine(workdir) as store:
        for run_id, renewed in (("far-fresh", now_utc()), ("far-old", old)):
            lease = RunLease(1, "build-node-7", "boot:1", renewed)
            store.start_pipeline_run(run_id, recipe="r", orchestrator="local", lease=lease)
    runs = cli("runs", check=True).stdout
    assert "far-fresh  r  running" in runs
    assert "far-old  r  stale" in runs

    found = cli("doctor", "--repair")
    assert found.returncode == 1
    assert "LEFT      run run:far-old: cannot be repaired from here" in found.stdout
    assert "--take-over-stale judges it dead" in found.stdout  # what would repair it
    assert "far-fresh" not in found.stdout

    taken = cli("doctor", "--repair", "--take-over-stale")
    assert taken.returncode == 0, taken.stdout + taken.stderr
    assert "repaired  run run:far-old: recorded abandoned" in taken.stdout
    assert "far-fresh" not in taken.stdout  # renewed just now: alive, even taking over

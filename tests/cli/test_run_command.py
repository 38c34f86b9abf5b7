"""`mlstack run`, `mlstack runs` and resume, as a user drives them."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from textwrap import dedent

import pytest

from tests.cli.conftest import MLSTACK, ROOT, Cli

FLAKY_STEPS = """
from pathlib import Path

def prepare():
    return {"rows": 3}

def train(prepare):
    if not Path(__file__).with_name("fixed.flag").exists():
        raise ValueError("learning rate is NaN")
    return prepare["rows"] * 2
"""

FLAKY_RECIPE = """
name: flaky
steps:
  - {name: prepare, run: "steps:prepare"}
  - {name: train, run: "steps:train", needs: [prepare]}
"""


def make_recipe(folder: Path, recipe: str, steps: str) -> Path:
    folder.mkdir()
    (folder / "recipe.yaml").write_text(dedent(recipe))
    (folder / "steps.py").write_text(dedent(steps))
    return folder


def test_failed_step_is_named_and_the_run_resumes_from_it(cli: Cli, workdir: Path) -> None:
    recipe = make_recipe(workdir / "flaky", FLAKY_RECIPE, FLAKY_STEPS)
    failed = cli("run", str(recipe))
    assert failed.returncode == 1
    assert "step 'train' failed" in failed.stderr
    assert "ValueError: learning rate is NaN" in failed.stderr
    run_id = failed.stderr.split("--resume ")[1].split()[0]
    printed = failed.stderr.split("resume with: mlstack ")[1].split()
    assert printed == ["run", "flaky", "--resume", run_id]  # a command to paste, as it is

    (recipe / "fixed.flag").write_text("")
    resumed = cli(*printed, check=True)
    assert "↺ prepare" in resumed.stdout
    assert "✓ train" in resumed.stdout
    runs = cli("runs", "--recipe", "flaky", check=True).stdout
    assert f"(resumes {run_id})" in runs
    assert "reused     prepare" in runs


DIVERGING_STEPS = """
from rates import parse_rate

def train():
    return parse_rate("0.1 diverged")
"""

RATES = """
import json


def parse_rate(text):
    return json.loads(text)  # raises inside the json library
"""


def test_a_failed_step_names_its_line_in_the_recipe_and_keeps_its_traceback(
    cli: Cli, workdir: Path
) -> None:
    """The error names the innermost line of the recipe's own code (not the library's, not
    mlstack's), and the whole traceback is kept in the run's folder, where the error says."""
    recipe = make_recipe(
        workdir / "diverging",
        'name: diverging\nsteps:\n  - {name: train, run: "steps:train"}\n',
        DIVERGING_STEPS,
    )
    (recipe / "rates.py").write_text(dedent(RATES))
    failed = cli("run", str(recipe), "-q")
    assert failed.returncode == 1
    assert "JSONDecodeError: Extra data" in failed.stderr
    assert "at diverging/rates.py:6, in parse_rate" in failed.stderr
    kept = failed.stderr.split("full traceback: ")[1].split()[0]
    run_id = failed.stderr.split("--resume ")[1].split()[0]
    assert kept == f".mlstack/runs/{run_id}/train.traceback.txt"
    traceback = (workdir / kept).read_text()
    assert traceback.startswith("Traceback (most recent call last)")
    assert 'diverging/steps.py", line 5, in train' in traceback
    assert "json/decoder.py" in traceback  # the library's frames, left out of the error
    runs = cli("runs", check=True).stdout
    assert "at diverging/rates.py:6, in parse_rate" in runs


def test_resuming_a_run_that_succeeded_is_refused(cli: Cli, workdir: Path) -> None:
    recipe = make_recipe(workdir / "flaky", FLAKY_RECIPE, FLAKY_STEPS)
    (recipe / "fixed.flag").write_text("")
    ok = cli("run", str(recipe), "-q", check=True)
    run_id = ok.stdout.split()[1].rstrip(":")
    again = cli("run", str(recipe), "--resume", run_id)
    assert again.returncode == 1
    assert "not failed: nothing to resume" in again.stderr


def test_bad_stack_file_fails_before_anything_is_created(cli: Cli, workdir: Path) -> None:
    (workdir / "stack.yaml").write_text(
        "name: s\nspine: {url: 'sqlite:///.mlstack/spine.db'}\nserver: {adapter: nosuchtool}\n"
        "tracker: none\n"
    )
    result = cli("run", str(ROOT / "recipes" / "quickstart"))
    assert result.returncode == 1
    assert "stack.yaml:3: server.adapter" in result.stderr
    assert "no adapter 'nosuchtool' for role 'server'" in result.stderr
    assert "recipe 'quickstart' needs a tracker" in result.stderr
    assert not (workdir / ".mlstack").exists()


@pytest.mark.parametrize(
    ("sent", "code", "why"),
    [(signal.SIGINT, 130, "KeyboardInterrupt"), (signal.SIGTERM, 143, "Terminated: SIGTERM")],
    ids=["ctrl-c", "sigterm"],
)
def test_an_interrupted_run_leaves_the_spine_consistent(
    cli: Cli, workdir: Path, sent: signal.Signals, code: int, why: str
) -> None:
    """Ctrl-C, and SIGTERM (a CI runner cancelling the job, a container stopping): the run
    is recorded failed at the step it stopped in, resumable, the audit chain whole."""
    recipe = make_recipe(
        workdir / "slow",
        'name: slow\nsteps:\n  - {name: wait, run: "steps:wait"}\n',
        "import time\n\ndef wait():\n    time.sleep(60)\n",
    )
    process = subprocess.Popen(
        [str(MLSTACK), "run", str(recipe)],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    for line in process.stdout:  # wait until the step is running
        if "wait" in line:
            break
    time.sleep(0.5)
    process.send_signal(sent)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert f"resume with: mlstack run {recipe} --resume " in stderr
    runs = cli("runs", check=True).stdout
    assert "slow  failed" in runs
    assert why in runs
    assert cli("audit", "verify").returncode == 0


SWALLOWING_STEPS = """
import signal


class Finalized:
    def __del__(self):  # Ctrl-C arrives while a finalizer runs: Python ignores the exception
        signal.raise_signal(signal.SIGINT)


def swallow():
    Finalized()
    return "finished as if nothing was pressed"


def after(swallow):
    raise AssertionError("the run went on after Ctrl-C")
"""


def test_ctrl_c_swallowed_by_a_finalizer_still_stops_the_run(cli: Cli, workdir: Path) -> None:
    recipe = make_recipe(
        workdir / "swallow",
        """
        name: swallow
        steps:
          - {name: swallow, run: "steps:swallow"}
          - {name: after, run: "steps:after", needs: [swallow]}
        """,
        SWALLOWING_STEPS,
    )
    result = cli("run", str(recipe))
    assert "Exception ignored" in result.stderr  # Python's own report of the lost interrupt
    assert result.returncode == 130, result.stdout + result.stderr
    runs = cli("runs", check=True).stdout
    assert "swallow  failed" in runs and "KeyboardInterrupt" in runs
    assert "after" not in runs.split("swallow  failed", 1)[1]

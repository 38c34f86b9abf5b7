"""A command forked from the tests' fork server (tests/support/forkserver.py) is what a new
interpreter running `mlstack` gives: the same exit code, stdout and stderr, in the call's
folder and environment; a command that outlives its timeout is killed and reported as
subprocess.run reports it. The rest of the suite relies on it for every `mlstack` call."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.cli.test_run_command import make_recipe
from tests.support.cli import mlstack

SLEEPY_RECIPE = """
name: sleepy
steps:
  - {name: wait, run: "steps:wait"}
"""

SLEEPY_STEPS = """
import os
import time
from pathlib import Path


def wait():
    Path("pid.txt").write_text(str(os.getpid()))
    time.sleep(600)
"""


def _stack_file(folder: Path) -> None:
    (folder / "stack.yaml").write_text(f"name: forked-{folder.name}\nhome: .mlstack\n")


@pytest.mark.parametrize(
    "args",
    [("--help",), ("nonsense",), ("stack", "show"), ("models",), ("run", "no-such-recipe")],
    ids=lambda args: " ".join(args),
)
def test_a_forked_command_answers_as_a_new_interpreter_does(
    workdir: Path, args: tuple[str, ...]
) -> None:
    _stack_file(workdir)
    env = {**os.environ, "MLSTACK_USER": "someone-else"}
    forked = mlstack(*args, cwd=workdir, env=env)
    fresh = mlstack(*args, cwd=workdir, env=env, fresh=True)
    assert (forked.returncode, forked.stdout, forked.stderr) == (
        fresh.returncode,
        fresh.stdout,
        fresh.stderr,
    )


def test_a_forked_command_takes_the_call_s_folder_and_environment(
    workdir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    _stack_file(workdir)
    shown = mlstack("stack", "show", cwd=workdir)
    assert shown.returncode == 0 and f"forked-{workdir.name}" in shown.stdout
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    missing = mlstack("models", cwd=elsewhere, env={**os.environ, "MLSTACK_STACK": "typo.yaml"})
    assert missing.returncode != 0 and "typo.yaml" in missing.stderr


def test_a_forked_command_past_its_timeout_is_killed_and_reported(workdir: Path) -> None:
    recipe = make_recipe(workdir / "sleepy", SLEEPY_RECIPE, SLEEPY_STEPS)
    with pytest.raises(subprocess.TimeoutExpired):
        mlstack("run", str(recipe), cwd=workdir, timeout=20)
    pid = int((workdir / "pid.txt").read_text())
    # the call returned once the server had reaped it: no process is left with that pid
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)

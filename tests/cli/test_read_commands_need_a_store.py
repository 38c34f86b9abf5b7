"""A command that reads what a stack holds, run in a folder that holds none, says so and
creates nothing; `mlstack run`, which may create a store, says which one it uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Cli
from tests.cli.test_run_command import make_recipe

READ_COMMANDS = [
    ("runs",),
    ("models",),
    ("card", "churn@1"),
    ("lineage", "churn@1"),
    ("audit", "log"),
    ("audit", "verify"),
    ("rollout", "status"),
    ("rollout", "history", "churn"),
    ("monitor", "history", "churn"),
    ("prompts", "list", "greeting"),
    ("alerts", "firing"),
    ("cost",),
    ("doctor",),
]


@pytest.mark.parametrize("args", READ_COMMANDS, ids=" ".join)
def test_a_read_command_in_a_folder_without_a_store_refuses_and_creates_nothing(
    cli: Cli, workdir: Path, args: tuple[str, ...]
) -> None:
    result = cli(*args)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"no spine at {workdir / '.mlstack' / 'spine.db'}" in result.stderr
    assert str(workdir) in result.stderr and "--stack" in result.stderr
    assert "MLSTACK_STACK" in result.stderr
    assert list(workdir.iterdir()) == []  # no .mlstack/, no mlflow.db, no spine.db


def test_listing_runs_in_the_wrong_folder_leaves_no_log_for_verify_to_call_intact(
    cli: Cli, workdir: Path
) -> None:
    cli("runs")
    verify = cli("audit", "verify")
    assert verify.returncode == 1 and "no spine at" in verify.stderr
    assert "chain intact" not in verify.stdout


def test_run_says_which_stack_and_store_it_uses_before_it_starts(cli: Cli, workdir: Path) -> None:
    recipe = make_recipe(
        workdir / "mine",
        'name: tiny\nsteps:\n  - {name: one, run: "steps:one"}\n',
        "def one():\n    return 1\n",
    )
    done = cli("run", "mine", check=True)
    first = done.stderr.splitlines()[0]
    store = workdir / ".mlstack"
    assert first == f"stack: the embedded local stack (store {store}, spine {store / 'spine.db'})"
    (recipe / "stack.yaml").write_text("name: mine\nhome: .state\n")  # the recipe's folder's
    again = cli("run", "mine", check=True)  # the current folder's stack, as docs/stacks.md says
    assert again.stderr.splitlines()[0] == first
